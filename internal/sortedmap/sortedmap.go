// Package sortedmap is a map for large indexes (an entry a series): half a
// Go map's memory, or less, for a bisection per lookup (14 steps at 10k
// keys, where a Go map takes one or two).
package sortedmap

import (
	"iter"
	"unsafe"
)

// Map maps uint64 keys (hashes, refs) to pointers, in two arrays sorted by
// key, searched by bisection, and a short unsorted tail of the keys put
// out of order since the arrays were last merged: 16 bytes a key, where a
// Go map takes about 30. Keys put in ascending order are appended. nil
// marks a deleted key and is never stored. The zero Map is empty. Not safe
// for concurrent use.
//
// It is written for little code, as a router's flash holds each copy of
// it: every Map[T] is a thin typed front of one untyped core, with no Go
// map and no sort package.
type Map[T any] struct{ c core }

// Get returns k's value, nil if it has none.
func (m *Map[T]) Get(k uint64) *T { return (*T)(m.c.get(k)) }

// Put gives k the value v, not nil.
func (m *Map[T]) Put(k uint64, v *T) {
	if v == nil {
		panic("sortedmap: Put of nil")
	}
	m.c.put(k, unsafe.Pointer(v))
}

// Delete removes k's value, if it has one. It must not be called during
// All.
func (m *Map[T]) Delete(k uint64) { m.c.delete(k) }

// DeleteFunc removes every key for which del, given the key and its value,
// returns true. del must not change the map.
func (m *Map[T]) DeleteFunc(del func(uint64, *T) bool) {
	m.c.deleteFunc(func(k uint64, v unsafe.Pointer) bool { return del(k, (*T)(v)) })
}

// Len is the number of keys with a value.
func (m *Map[T]) Len() int { return len(m.c.keys) - m.c.dead + len(m.c.tail) }

// All yields each key and its value: those in the arrays in key order,
// then the tail's in no order. The map must not change meanwhile.
func (m *Map[T]) All() iter.Seq2[uint64, *T] {
	return func(yield func(uint64, *T) bool) {
		m.c.all(func(k uint64, v unsafe.Pointer) bool { return yield(k, (*T)(v)) })
	}
}

// core is Map without its type: the values are pointers, which the garbage
// collector follows, of whichever type the Map has.
type core struct {
	keys []uint64
	vals []unsafe.Pointer // beside keys; nil where the key was deleted
	dead int              // deleted keys still in keys
	// tail has the keys put out of order since the last merge, none of
	// them in keys, at most tailMax.
	tail     []uint64
	tailVals []unsafe.Pointer
}

// tailMax bounds the tail, which get scans, at about the square root of
// the keys (32 at least): a merge moves every key, so a key put out of
// order costs about 2√n steps, and a get √n after its bisection.
func (m *core) tailMax() int {
	r := 32
	for r*r < len(m.keys) {
		r *= 2
	}
	return r
}

func (m *core) get(k uint64) unsafe.Pointer {
	if i, found := m.search(k); found {
		return m.vals[i]
	}
	if j := m.inTail(k); j >= 0 {
		return m.tailVals[j]
	}
	return nil
}

// inTail returns where k is in the tail, -1 if it is not there.
func (m *core) inTail(k uint64) int {
	for j, t := range m.tail {
		if t == k {
			return j
		}
	}
	return -1
}

// search returns where k is in keys, or would be.
func (m *core) search(k uint64) (int, bool) {
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

func (m *core) put(k uint64, v unsafe.Pointer) {
	i, found := m.search(k)
	if found {
		if m.vals[i] == nil {
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

func (m *core) delete(k uint64) {
	if j := m.inTail(k); j >= 0 {
		last := len(m.tail) - 1
		m.tail[j], m.tailVals[j] = m.tail[last], m.tailVals[last]
		m.tailVals[last] = nil
		m.tail, m.tailVals = m.tail[:last], m.tailVals[:last]
		return
	}
	if i, found := m.search(k); found && m.vals[i] != nil {
		m.vals[i] = nil
		m.dead++
		m.mergeIfHalfDead()
	}
}

func (m *core) deleteFunc(del func(uint64, unsafe.Pointer) bool) {
	for i, k := range m.keys {
		if m.vals[i] != nil && del(k, m.vals[i]) {
			m.vals[i] = nil
			m.dead++
		}
	}
	kept := 0
	for j, k := range m.tail {
		if !del(k, m.tailVals[j]) {
			m.tail[kept], m.tailVals[kept] = k, m.tailVals[j]
			kept++
		}
	}
	clear(m.tailVals[kept:])
	m.tail, m.tailVals = m.tail[:kept], m.tailVals[:kept]
	m.mergeIfHalfDead()
}

// mergeIfHalfDead merges once half the keys, 64 at least, are deleted
// ones, so that bisections do not step over many of them.
func (m *core) mergeIfHalfDead() {
	if m.dead > max(64, len(m.keys)/2) {
		m.merge()
	}
}

// merge moves the tail into the arrays, in order, and drops the deleted
// keys; arrays half empty or less are made anew, as long as needed.
func (m *core) merge() {
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
		if m.vals[i] != nil {
			m.keys[live], m.vals[live] = k, m.vals[i]
			live++
		}
	}
	clear(m.vals[live:]) // no stale value keeps memory from the collector
	n := live + len(m.tail)
	keys, vals := m.keys[:live], m.vals[:live]
	if 2*n <= cap(keys) && cap(keys) > 64 {
		keys, vals = append(make([]uint64, 0, n), keys...), append(make([]unsafe.Pointer, 0, n), vals...)
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

func (m *core) all(yield func(uint64, unsafe.Pointer) bool) {
	for i, k := range m.keys {
		if m.vals[i] != nil && !yield(k, m.vals[i]) {
			return
		}
	}
	for j, k := range m.tail {
		if !yield(k, m.tailVals[j]) {
			return
		}
	}
}
