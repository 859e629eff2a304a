using System;
using System.Collections.Generic;

namespace Shop.Orders
{
    /// <summary>An order line.</summary>
    public record Line(string Sku, int Qty);

    /// <summary>
    /// Keeps orders in memory.
    /// </summary>
    [Serializable]
    public class OrderBook<TKey> where TKey : notnull
    {
        private readonly Dictionary<TKey, List<Line>> _orders = new();

        /// <summary>Number of orders.</summary>
        public int Count => _orders.Count;

        /// <summary>Adds a line to an order.</summary>
        [Obsolete("use AddRange")]
        public void Add(TKey key, Line line)
        {
            if (!_orders.TryGetValue(key, out var lines))
            {
                lines = new List<Line>();
                _orders[key] = lines;
            }
            lines.Add(line);
        }

        public void Add(TKey key, IEnumerable<Line> lines)
        {
            foreach (var l in lines) Add(key, l);
        }

        public interface IVisitor
        {
            void Visit(Line line);
        }
    }

    public enum Status { Open, Closed }
}
