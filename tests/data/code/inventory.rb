require "json"

# Tracks stock levels.
module Shop
  # An inventory of items.
  class Inventory < Base
    attr_reader :items

    # Creates an empty inventory.
    def initialize
      @items = {}
    end

    # Adds +qty+ of +sku+.
    def add(sku, qty = 1)
      @items[sku] = (@items[sku] || 0) + qty
    end

    def self.load(path)
      new.tap { |inv| inv.items.merge!(JSON.parse(File.read(path))) }
    end

    class Item
      def to_s
        "item"
      end
    end
  end
end

def helper
  42
end
