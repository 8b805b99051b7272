package benchmarks

import (
	"context"
	"fmt"
	"testing"
	"time"

	redlock "github.com/go-redlock/redsync"
	redlockredis "github.com/go-redlock/redsync/redis"
	redlockgoredis "github.com/go-redlock/redsync/redis/goredis"
)

// redlock-fencing is redlock with WithFencing: each Lock also reads the
// nodes' fencing counters (in the acquire round) and writes the new token
// (one more round).
func init() {
	libraries = append(libraries, library{name: "redlock-fencing", nodes: []int{5}, setup: setupRedlockFencing})
}

func setupRedlockFencing(tb testing.TB, addrs []string, key string) locker {
	pools := make([]redlockredis.Pool, len(addrs))
	for i, addr := range addrs {
		pools[i] = redlockgoredis.NewPool(newGoRedisClient(tb, addr))
	}
	mutex := redlock.New(pools...).NewMutex(key, redlock.WithExpiry(expiry), redlock.WithFencing())
	var last uint64
	return locker{
		lock: func(context.Context) error {
			if err := mutex.Lock(); err != nil {
				return fmt.Errorf("lock: %w", err)
			}
			token := mutex.FencingToken()
			if token <= last {
				return fmt.Errorf("lock: fencing token %d after %d", token, last)
			}
			last = token
			return nil
		},
		unlock: func(context.Context) error { return unlocked(mutex.Unlock()) },
	}
}

// BenchmarkFencingCost alternates, on the same five nodes, an uncontended
// Lock+Unlock without and with WithFencing, and reports the ratio of their
// total times as fencing/plain. Pairing the two in one loop makes load on
// the machine weigh on both alike, which separate benchmarks run one after
// the other cannot ensure.
func BenchmarkFencingCost(b *testing.B) {
	plain := setupRedlock(b, nodeAddrs, "bench:fencingcost:plain")
	fenced := setupRedlockFencing(b, nodeAddrs, "bench:fencingcost:fenced")
	ctx := context.Background()
	var plainTime, fencedTime time.Duration
	timed := func(l locker, total *time.Duration) {
		start := time.Now()
		if err := lockUnlock(ctx, l); err != nil {
			b.Fatal(err)
		}
		*total += time.Since(start)
	}
	// Warm up both: connections, and the scripts loaded on the servers.
	timed(plain, new(time.Duration))
	timed(fenced, new(time.Duration))
	i := 0
	for b.Loop() {
		// Alternate the order, so that neither always runs first.
		if i%2 == 0 {
			timed(plain, &plainTime)
			timed(fenced, &fencedTime)
		} else {
			timed(fenced, &fencedTime)
			timed(plain, &plainTime)
		}
		i++
	}
	b.ReportMetric(float64(fencedTime)/float64(plainTime), "fencing/plain")
	b.ReportMetric(float64(plainTime.Nanoseconds())/float64(i), "plain-ns/op")
	b.ReportMetric(float64(fencedTime.Nanoseconds())/float64(i), "fencing-ns/op")
}
