<?php

namespace App\Shop;

use App\Models\Product;
use Psr\Log\LoggerInterface as Logger;

/**
 * A shopping cart.
 */
#[Entity(table: "carts")]
final class Cart implements \Countable
{
    /** @var array<int, Product> */
    private array $products = [];

    public function __construct(private Logger $log)
    {
    }

    /**
     * Adds a product.
     */
    public function add(Product $product): void
    {
        $this->products[] = $product;
        $this->log->info("added");
    }

    public function count(): int
    {
        return count($this->products);
    }
}

interface Priced
{
    public function price(): int;
}

function total(array $items): int
{
    return array_sum($items);
}
