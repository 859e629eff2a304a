// Package server serves key-value pairs over HTTP.
package server

import (
	"encoding/json"
	"net/http"
	"sync"
)

// Store is a concurrent map.
type Store[K comparable, V any] struct {
	mu    sync.Mutex
	items map[K]V
}

type (
	// Key names an item.
	Key string
	// Getter reads items.
	Getter interface {
		Get(k Key) (string, bool)
	}
)

// NewStore returns an empty store.
func NewStore[K comparable, V any]() *Store[K, V] {
	return &Store[K, V]{items: make(map[K]V)}
}

// Get returns the value of k.
func (s *Store[K, V]) Get(k K) (V, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.items[k]
	return v, ok
}

// ServeHTTP writes the store as JSON.
func (s *Store[K, V]) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = json.NewEncoder(w).Encode(s.items)
}
