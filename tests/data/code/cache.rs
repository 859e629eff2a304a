//! A tiny LRU cache.

use std::collections::HashMap;
use std::hash::Hash;

/// An LRU cache with a fixed capacity.
#[derive(Debug, Clone)]
pub struct Lru<K, V> {
    map: HashMap<K, V>,
    order: Vec<K>,
    cap: usize,
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    /// Creates a cache holding at most `cap` items.
    pub fn new(cap: usize) -> Self {
        Lru { map: HashMap::new(), order: Vec::new(), cap }
    }

    /// Inserts a value, evicting the oldest one when full.
    #[inline]
    pub fn put(&mut self, k: K, v: V) {
        if self.map.len() == self.cap {
            let old = self.order.remove(0);
            self.map.remove(&old);
        }
        self.order.push(k.clone());
        self.map.insert(k, v);
    }
}

/// Something with a size.
pub trait Sized2 {
    fn size(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.size() == 0
    }
}

impl<K, V> Sized2 for Lru<K, V> {
    fn size(&self) -> usize {
        self.map.len()
    }
}

pub enum Policy {
    Lru,
    Fifo,
}

mod tests {
    fn helper() -> usize {
        3
    }
}
