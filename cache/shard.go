package cache

import (
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Sharding splits the lock of the hot path; minShardSize keeps shards large
// enough that splitting the capacity does not noticeably distort LRU order,
// so small caches get a single shard.
const (
	maxShards    = 32
	minShardSize = 256
)

// shard is one lock's worth of the cache. simplelru is golang-lru/v2's
// unlocked LRU: the shard lock guards it and the counts together, which the
// locked lru.Cache could not do without a second lock.
type shard struct {
	mu     sync.Mutex
	lru    *simplelru.LRU[key, *entry] // guarded by mu
	counts [3]int                      // entries per kind; guarded by mu
}

// shardCount picks the number of shards for size entries: a power of two,
// at most maxShards, each holding at least minShardSize when size allows.
func shardCount(size int) int {
	n := 1
	for n < maxShards && size/(n*2) >= minShardSize {
		n *= 2
	}
	return n
}

// capacities splits size entries over the shards.
func capacities(size int) []int {
	n := shardCount(size)
	caps := make([]int, n)
	for i := range caps {
		caps[i] = size / n
		if i < size%n {
			caps[i]++
		}
	}
	return caps
}

func newShards(size int) []*shard {
	var shards []*shard
	for _, capacity := range capacities(size) {
		s := &shard{}
		// capacity >= 1 (shardCount), so NewLRU cannot fail. The callback
		// runs under s.mu, inside Add and Remove.
		s.lru, _ = simplelru.NewLRU(capacity, func(_ key, e *entry) { s.counts[e.kind]-- })
		shards = append(shards, s)
	}
	return shards
}

// lookup returns the entry for k if it is usable at now (see usable); an
// entry that is not is dropped.
func (s *shard) lookup(k key, now time.Time, stale time.Duration) *entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.lru.Get(k)
	if !ok {
		return nil
	}
	if e.usable(now, stale) {
		return e
	}
	s.lru.Remove(k)
	return nil
}

// add stores e under k and reports whether an entry was evicted to make room.
// A SERVFAIL never replaces an entry still usable at now: data that can still
// be served, fresh or stale, beats a cached failure.
func (s *shard) add(k key, e *entry, now time.Time, stale time.Duration) (evicted bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.lru.Peek(k); ok {
		if e.kind == kindServfail && old.usable(now, stale) {
			return false
		}
		s.counts[old.kind]-- // replaced: Add calls no callback for it
	}
	s.counts[e.kind]++
	return s.lru.Add(k, e)
}

func (s *shard) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lru.Len()
}

func (s *shard) count(kind entryKind) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[kind]
}
