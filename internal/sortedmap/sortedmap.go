// Package sortedmap is a map for large indexes that are looked up now and
// then, not in a hot loop: half a Go map's memory, or less, for a
// bisection per lookup.
package sortedmap

import (
	"cmp"
	"iter"
)

// Map maps keys to values in two arrays sorted by key, searched by
// bisection, and a short unsorted tail of the keys put out of order since
// the arrays were last merged: 16 bytes a key of 8-byte keys and values
// (12 with 4-byte ones), where a Go map takes about 30. Keys put in
// ascending order are appended. The zero V marks a deleted key and is
// never stored. The zero Map is empty. Not safe for concurrent use.
//
// It is written for little code (a router's flash holds each
// instantiation): no Go map, no sort package.
type Map[K cmp.Ordered, V comparable] struct {
	keys []K
	vals []V // beside keys; the zero V where the key was deleted
	dead int // deleted keys still in keys
	// tail has the keys put out of order since the last merge, none of
	// them in keys, at most tailMax.
	tail     []K
	tailVals []V
}

// tailMax bounds the tail, which Get scans, at about the square root of
// the keys (32 at least): a merge moves every key, so a key put out of
// order costs about 2√n steps, and a Get √n after its bisection.
func (m *Map[K, V]) tailMax() int {
	r := 32
	for r*r < len(m.keys) {
		r *= 2
	}
	return r
}

// Get returns k's value, the zero V if it has none.
func (m *Map[K, V]) Get(k K) V {
	if i, found := m.search(k); found {
		return m.vals[i]
	}
	if j := m.inTail(k); j >= 0 {
		return m.tailVals[j]
	}
	var zero V
	return zero
}

// inTail returns where k is in the tail, -1 if it is not there.
func (m *Map[K, V]) inTail(k K) int {
	for j, t := range m.tail {
		if t == k {
			return j
		}
	}
	return -1
}

// search returns where k is in keys, or would be.
func (m *Map[K, V]) search(k K) (int, bool) {
	lo, hi := 0, len(m.keys)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if m.keys[mid] < k {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, lo < len(m.keys) && m.keys[lo] == k
}

// Put gives k the value v, not the zero V.
func (m *Map[K, V]) Put(k K, v V) {
	var zero V
	if v == zero {
		panic("sortedmap: Put of the zero value")
	}
	i, found := m.search(k)
	if found {
		if m.vals[i] == zero {
			m.dead--
		}
		m.vals[i] = v
		return
	}
	if j := m.inTail(k); j >= 0 {
		m.tailVals[j] = v
		return
	}
	if i == len(m.keys) { // after every key: a counter's, say
		m.keys, m.vals = append(m.keys, k), append(m.vals, v)
		return
	}
	m.tail, m.tailVals = append(m.tail, k), append(m.tailVals, v)
	if len(m.tail) > m.tailMax() {
		m.merge()
	}
}

// Delete removes k's value, if it has one. It must not be called during
// All.
func (m *Map[K, V]) Delete(k K) {
	var zero V
	if j := m.inTail(k); j >= 0 {
		last := len(m.tail) - 1
		m.tail[j], m.tailVals[j] = m.tail[last], m.tailVals[last]
		m.tailVals[last] = zero
		m.tail, m.tailVals = m.tail[:last], m.tailVals[:last]
		return
	}
	if i, found := m.search(k); found && m.vals[i] != zero {
		m.vals[i] = zero
		m.dead++
		if m.dead > max(64, len(m.keys)/2) {
			m.merge()
		}
	}
}

// merge moves the tail into the arrays, in order, and drops the deleted
// keys; arrays half empty or less are made anew, as long as needed.
func (m *Map[K, V]) merge() {
	var zero V
	// The tail in order: insertion sort, as it is short.
	for i := 1; i < len(m.tail); i++ {
		for j := i; j > 0 && m.tail[j] < m.tail[j-1]; j-- {
			m.tail[j], m.tail[j-1] = m.tail[j-1], m.tail[j]
			m.tailVals[j], m.tailVals[j-1] = m.tailVals[j-1], m.tailVals[j]
		}
	}
	// The live keys to the front, in order.
	live := 0
	for i, k := range m.keys {
		if m.vals[i] != zero {
			m.keys[live], m.vals[live] = k, m.vals[i]
			live++
		}
	}
	clear(m.vals[live:]) // no stale value keeps memory from the collector
	n := live + len(m.tail)
	keys, vals := m.keys[:live], m.vals[:live]
	if 2*n <= cap(keys) && cap(keys) > 64 {
		keys, vals = append(make([]K, 0, n), keys...), append(make([]V, 0, n), vals...)
	}
	// Merged from the back, so that the arrays are their own destination.
	keys, vals = append(keys, m.tail...), append(vals, m.tailVals...)
	for i, j, w := live-1, len(m.tail)-1, n-1; j >= 0; w-- {
		if i >= 0 && keys[i] > m.tail[j] {
			keys[w], vals[w] = keys[i], vals[i]
			i--
		} else {
			keys[w], vals[w] = m.tail[j], m.tailVals[j]
			j--
		}
	}
	clear(m.tailVals)
	m.keys, m.vals, m.dead = keys, vals, 0
	m.tail, m.tailVals = m.tail[:0], m.tailVals[:0]
}

// Len is the number of keys with a value.
func (m *Map[K, V]) Len() int { return len(m.keys) - m.dead + len(m.tail) }

// All yields each key and its value: those in the arrays in key order,
// then the tail's in no order. The map must not change meanwhile.
func (m *Map[K, V]) All() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		var zero V
		for i, k := range m.keys {
			if m.vals[i] != zero && !yield(k, m.vals[i]) {
				return
			}
		}
		for i, k := range m.tail {
			if !yield(k, m.tailVals[i]) {
				return
			}
		}
	}
}
