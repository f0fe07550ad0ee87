package balance

import (
	"context"
	"errors"
	"sync"
	"time"
)

// DefaultMaxCacheEntries bounds each of the Resolver's caches (DNS answers,
// and whole RFC 3263 results) when ResolverConfig.MaxEntries is 0.
const DefaultMaxCacheEntries = 10000

// ttlCache maps keys to values that expire, and coalesces concurrent fills
// of the same key into one (so a burst of requests for one domain sends one
// query). Errors are cached like values, for the TTL the fill gives them; a
// fill that returns a TTL ≤ 0 is not cached. The zero value is not usable:
// make m first.
type ttlCache[K comparable, V any] struct {
	mu  sync.RWMutex
	m   map[K]*cacheEntry[V]
	max int
}

// cacheEntry is one cached value or a fill in flight (done not yet closed).
type cacheEntry[V any] struct {
	done    chan struct{} // closed when val, err and expires are set
	filled  bool          // done is closed (read under the cache's lock)
	val     V
	err     error
	expires time.Time
}

func newTTLCache[K comparable, V any](max int) *ttlCache[K, V] {
	return &ttlCache[K, V]{m: make(map[K]*cacheEntry[V]), max: max}
}

// lookup returns the live value for key and its remaining TTL, if one is
// cached. It takes a read lock and does not allocate.
func (c *ttlCache[K, V]) lookup(key K, now time.Time) (V, time.Duration, error, bool) {
	c.mu.RLock()
	e := c.m[key]
	if e != nil && e.filled && now.Before(e.expires) {
		v, err, ttl := e.val, e.err, e.expires.Sub(now)
		c.mu.RUnlock()
		return v, ttl, err, true
	}
	c.mu.RUnlock()
	var zero V
	return zero, 0, nil, false
}

// get returns the live value for key, or runs fill (once, whatever the number
// of concurrent callers) and caches what it returns. now is read after a
// fill, to date the entry. A waiter whose leader's context ended retries
// with its own.
func (c *ttlCache[K, V]) get(ctx context.Context, key K, now func() time.Time,
	fill func() (V, time.Duration, error)) (V, time.Duration, error) {
	for {
		if v, ttl, err, ok := c.lookup(key, now()); ok {
			return v, ttl, err
		}
		c.mu.Lock()
		e := c.m[key]
		if e != nil && (!e.filled || now().Before(e.expires)) {
			filled := e.filled
			c.mu.Unlock()
			if !filled {
				select {
				case <-e.done:
				case <-ctx.Done():
					var zero V
					return zero, 0, ctx.Err()
				}
			}
			if isContextErr(e.err) && ctx.Err() == nil {
				continue // the leader gave up; try again with our context
			}
			c.mu.RLock()
			v, err, ttl := e.val, e.err, e.expires.Sub(now())
			c.mu.RUnlock()
			return v, max(ttl, 0), err
		}
		if len(c.m) >= c.max {
			c.evictLocked(now())
		}
		e = &cacheEntry[V]{done: make(chan struct{})}
		c.m[key] = e
		c.mu.Unlock()

		v, ttl, err := fill()

		c.mu.Lock()
		e.val, e.err, e.expires, e.filled = v, err, now().Add(ttl), true
		if ttl <= 0 && c.m[key] == e {
			delete(c.m, key)
		}
		c.mu.Unlock()
		close(e.done)
		return v, max(ttl, 0), err
	}
}

// evictLocked makes room: it drops expired entries and, if the cache is
// still full (a flood of distinct names), every filled entry. Fills in
// flight stay so that their waiters are not orphaned.
func (c *ttlCache[K, V]) evictLocked(now time.Time) {
	for k, e := range c.m {
		if e.filled && !now.Before(e.expires) {
			delete(c.m, k)
		}
	}
	if len(c.m) < c.max {
		return
	}
	for k, e := range c.m {
		if e.filled {
			delete(c.m, k)
		}
	}
}

// len returns the number of entries, live, expired or in flight.
func (c *ttlCache[K, V]) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
