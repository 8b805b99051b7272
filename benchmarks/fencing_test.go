package benchmarks

import (
	"context"
	"fmt"
	"testing"

	redlock "github.com/go-redlock/redsync"
	redlockredis "github.com/go-redlock/redsync/redis"
	redlockgoredis "github.com/go-redlock/redsync/redis/goredis"
)

// redlock-fencing is redlock with WithFencing, one Mutex locking again and
// again: each Lock proposes the right token in the acquire round (the fast
// path, no extra round trip). redlock-fencing-handoff has two Mutex values
// of the same name, of two Redsync values (as two processes would), take
// turns, so that each Lock finds the other's token and needs the second
// round: the cost of a lock that changes hands.
func init() {
	libraries = append(libraries,
		library{name: "redlock-fencing", nodes: []int{5}, setup: setupRedlockFencing},
		library{name: "redlock-fencing-handoff", nodes: []int{5}, setup: setupRedlockFencingHandoff})
}

func setupRedlockFencing(tb testing.TB, addrs []string, key string) locker {
	return fencedLocker(tb, addrs, key, 1)
}

func setupRedlockFencingHandoff(tb testing.TB, addrs []string, key string) locker {
	return fencedLocker(tb, addrs, key, 2)
}

// fencedLocker returns a locker of key over n fenced Mutex values, each of
// its own Redsync, used in turn, and checks that the tokens grow.
func fencedLocker(tb testing.TB, addrs []string, key string, n int) locker {
	pools := make([]redlockredis.Pool, len(addrs))
	for i, addr := range addrs {
		pools[i] = redlockgoredis.NewPool(newGoRedisClient(tb, addr))
	}
	mutexes := make([]*redlock.Mutex, n)
	for i := range mutexes {
		mutexes[i] = redlock.New(pools...).NewMutex(key, redlock.WithExpiry(expiry), redlock.WithFencing())
	}
	var (
		turn int
		last uint64
	)
	return locker{
		lock: func(context.Context) error {
			mutex := mutexes[turn%n]
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
		unlock: func(context.Context) error {
			mutex := mutexes[turn%n]
			turn++
			return unlocked(mutex.Unlock())
		},
	}
}

// BenchmarkFencingCost runs, on the same five nodes and in one loop, an
// uncontended Lock+Unlock without fencing, with fencing by one Mutex (the
// fast path), and with fencing by two Mutex values taking turns (every
// Lock needs the second round), and reports the ratios of their total
// times to the first. Interleaving them makes load on the machine weigh on
// all alike, which separate benchmarks run one after the other cannot
// ensure.
func BenchmarkFencingCost(b *testing.B) {
	lockers := []locker{
		setupRedlock(b, nodeAddrs, "bench:fencingcost:plain"),
		setupRedlockFencing(b, nodeAddrs, "bench:fencingcost:fenced"),
		setupRedlockFencingHandoff(b, nodeAddrs, "bench:fencingcost:handoff"),
	}
	totals, n := interleave(b, []string{"plain", "fencing", "handoff"}, lockers)
	b.ReportMetric(float64(totals[1])/float64(totals[0]), "fencing/plain")
	b.ReportMetric(float64(totals[2])/float64(totals[0]), "handoff/plain")
	b.ReportMetric(float64(totals[0].Nanoseconds())/float64(n), "plain-ns/op")
	b.ReportMetric(float64(totals[1].Nanoseconds())/float64(n), "fencing-ns/op")
	b.ReportMetric(float64(totals[2].Nanoseconds())/float64(n), "handoff-ns/op")
}
