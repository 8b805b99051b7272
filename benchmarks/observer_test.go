package benchmarks

import (
	"context"
	"fmt"
	"testing"

	redlock "github.com/go-redlock/redsync"
	redlockredis "github.com/go-redlock/redsync/redis"
	redlockgoredis "github.com/go-redlock/redsync/redis/goredis"
)

// nopObserver is an Observer that does nothing: what remains is the cost
// of recording the events.
type nopObserver struct{}

func (nopObserver) OnAcquire(context.Context, redlock.AcquireEvent) {}
func (nopObserver) OnExtend(context.Context, redlock.ExtendEvent)   {}
func (nopObserver) OnRelease(context.Context, redlock.ReleaseEvent) {}
func (nopObserver) OnLost(context.Context, redlock.LostEvent)       {}

// BenchmarkCoreObserver is BenchmarkCoreLockUnlock with an observer that
// does nothing: the cost of recording the events (per-node latencies, the
// tries) when an observer is set.
func BenchmarkCoreObserver(b *testing.B) {
	for _, n := range []int{1, 3, 5} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			mutex := redlock.New(memoryPools(n)...).NewMutex("bench:core", redlock.WithExpiry(expiry), redlock.WithObserver(nopObserver{}))
			b.ReportAllocs()
			for b.Loop() {
				if err := mutex.Lock(); err != nil {
					b.Fatal(err)
				}
				if ok, err := mutex.Unlock(); !ok {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkObserverCost alternates, on the same five nodes, an uncontended
// Lock+Unlock without an observer and with one that does nothing, and
// reports the ratio of their total times as observed/plain, like
// BenchmarkRestartGuardCost.
func BenchmarkObserverCost(b *testing.B) {
	plain := setupRedlock(b, nodeAddrs, "bench:observercost:plain")
	pools := make([]redlockredis.Pool, len(nodeAddrs))
	for i, addr := range nodeAddrs {
		pools[i] = redlockgoredis.NewPool(newGoRedisClient(b, addr))
	}
	observed := redlockLocker(pools, "bench:observercost:observed", redlock.WithObserver(nopObserver{}))
	totals, i := interleave(b, []string{"plain", "observed"}, []locker{plain, observed})
	plainTime, observedTime := totals[0], totals[1]
	b.ReportMetric(float64(observedTime)/float64(plainTime), "observed/plain")
	b.ReportMetric(float64(plainTime.Nanoseconds())/float64(i), "plain-ns/op")
	b.ReportMetric(float64(observedTime.Nanoseconds())/float64(i), "observed-ns/op")
}
