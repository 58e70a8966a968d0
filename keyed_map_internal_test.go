package ckpt

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// keyedMap against a Go map: random inserts, updates in place through
// the returned slot, deletes (which leave tombstones that rehashing
// clears) and lookups of present and absent keys, with string and
// integer keys, then every entry listed once.
func TestKeyedMapMatchesMap(t *testing.T) {
	t.Run("string", func(t *testing.T) {
		testKeyedMap(t, keyKindOf[string](), func(i int) string { return fmt.Sprintf("k%d", i) })
	})
	t.Run("int8", func(t *testing.T) {
		testKeyedMap(t, keyKindOf[int8](), func(i int) int8 { return int8(i) })
	})
	t.Run("int64", func(t *testing.T) {
		testKeyedMap(t, keyKindOf[int64](), func(i int) int64 { return int64(i)*7919 - 1<<40 })
	})
	t.Run("uint32", func(t *testing.T) {
		testKeyedMap(t, keyKindOf[uint32](), func(i int) uint32 { return uint32(i) << 20 })
	})
}

func testKeyedMap[K Key](t *testing.T, kk keyKind, key func(int) K) {
	r := rand.New(rand.NewPCG(3, 4))
	m := newKeyedMap[K, int](kk, 0)
	model := make(map[K]int)
	space := 5000
	if kk.size == 1 {
		space = 256
	}
	for op := range 200_000 {
		k := key(r.IntN(space))
		s := m.find(k)
		want, ok := model[k]
		if (s != nil) != ok || ok && s.v != want {
			t.Fatalf("op %d: find(%v) = %v, model %d, %v", op, k, s, want, ok)
		}
		switch r.IntN(3) {
		case 0:
			m.delete(k)
			delete(model, k)
		default:
			if s == nil {
				s = m.insert(k)
			}
			s.v += op
			model[k] += op
		}
		if m.len() != len(model) {
			t.Fatalf("op %d: len %d, want %d", op, m.len(), len(model))
		}
	}
	seen := make(map[K]bool)
	m.all(func(k K, s *slot[int]) bool {
		if seen[k] || model[k] != s.v {
			t.Fatalf("all: %v = %d (seen %v), want %d", k, s.v, seen[k], model[k])
		}
		seen[k] = true
		return true
	})
	if len(seen) != len(model) {
		t.Fatalf("all listed %d keys, want %d", len(seen), len(model))
	}
	if len(m.ents) > 4*(len(model)+16)*2 {
		t.Fatalf("%d entries for %d keys: tombstones are not cleared", len(m.ents), len(model))
	}
}

// findEach finds what find finds, key after key, across batch boundaries
// and while its function deletes the keys it is given; a key listed from
// its slot (keyOf) and the hash find computed (last) find the same slot.
func TestKeyedMapFindEach(t *testing.T) {
	m := newKeyedMap[string, int](keyKindOf[string](), 0)
	for i := range 1000 {
		m.insert(fmt.Sprintf("k%d", i)).v = i
	}
	var keys []dirtyKey[string]
	for i := 0; i < 1100; i += 3 { // a third present and deleted, some absent
		key := fmt.Sprintf("k%d", i)
		keys = append(keys, dirtyKey[string]{key, m.hash(key)})
	}
	keys = append(keys, keys[5]) // deleted by then: absent
	n := 0
	m.findEach(keys, func(key string, s *slot[int]) {
		var i int
		fmt.Sscanf(key, "k%d", &i)
		switch {
		case n == len(keys)-1 || i >= 1000:
			if s != nil {
				t.Fatalf("key %d: %s found, want absent", n, key)
			}
		case s == nil || s.v != i:
			t.Fatalf("key %d: %s: slot %v, want value %d", n, key, s, i)
		default:
			m.delete(key)
		}
		n++
	})
	for i := range 1000 {
		key := fmt.Sprintf("k%d", i)
		s := m.find(key)
		if s == nil {
			continue
		}
		if got := m.keyOf(s); got != key || m.last != m.hash(key) {
			t.Fatalf("keyOf = %q, last = %x; want %q, %x", got, m.last, key, m.hash(key))
		}
		if i == 1 {
			// An empty map of the same seed hashes alike.
			if e := m.empty(); e.hash(key) != m.hash(key) || e.len() != 0 {
				t.Fatal("empty() hashes differently or is not empty")
			}
		}
	}
	if n != len(keys) || m.len() != 1000-334 {
		t.Fatalf("%d calls for %d keys, %d keys left, want %d", n, len(keys), m.len(), 1000-334)
	}
}

// insertEach, as a restore uses it: batches of new keys into a table
// that starts empty and grows (its slots move) between and within
// batches.
func TestKeyedMapInsertEach(t *testing.T) {
	m := newKeyedMap[uint64, int](keyKindOf[uint64](), 0)
	var es []frozenEntry[uint64, int]
	for i := range 5000 {
		es = append(es, frozenEntry[uint64, int]{key: uint64(i) * 7919, v: i})
	}
	for len(es) > 0 {
		n := min(len(es), 37)
		m.insertEach(es[:n])
		es = es[n:]
	}
	if m.len() != 5000 {
		t.Fatalf("len %d, want 5000", m.len())
	}
	for i := range 5000 {
		if s := m.find(uint64(i) * 7919); s == nil || s.v != i || s.kind != entryPut {
			t.Fatalf("key %d: %v", i, s)
		}
	}
	if s := m.find(1); s != nil {
		t.Fatal("an absent key is found")
	}
}
