package benchmarks

import (
	"fmt"
	"testing"

	redlockredis "github.com/go-redlock/redsync/redis"
	redlockredigo "github.com/go-redlock/redsync/redis/redigo"
)

// setupRedlockBatched is setupRedlockRedigo over redigo.NewBatchedPool:
// the same redigo pools, with concurrent calls sharing a connection. An
// uncontended Lock+Unlock, alone on its pools, takes the path of NewPool.
func setupRedlockBatched(tb testing.TB, addrs []string, key string) locker {
	pools := make([]redlockredis.Pool, len(addrs))
	for i, addr := range addrs {
		b := redlockredigo.NewBatchedPool(newRedigoPool(tb, addr))
		tb.Cleanup(func() { b.Close() })
		pools[i] = b
	}
	return redlockLocker(pools, key)
}

// BenchmarkBatchedAlone checks that a BatchedPool costs an uncontended
// Lock+Unlock nothing: it interleaves this library over redigo.NewPool and
// over redigo.NewBatchedPool (the same kind of redigo pools), one
// Lock+Unlock of each in turn, and reports batched/redigo, the ratio of
// their mean times. Only the two run, so that each always follows the
// other.
func BenchmarkBatchedAlone(b *testing.B) {
	for _, nodes := range []int{1, 5} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			addrs := nodeAddrs[:nodes]
			names := []string{"redlock-redigo", "redlock-batched"}
			lockers := []locker{
				setupRedlockRedigo(b, addrs, fmt.Sprintf("bench:alone:%d:redigo", nodes)),
				setupRedlockBatched(b, addrs, fmt.Sprintf("bench:alone:%d:batched", nodes)),
			}
			totals, n := interleave(b, names, lockers)
			for i, name := range names {
				b.ReportMetric(float64(totals[i].Nanoseconds())/float64(n), name+"-ns/op")
			}
			b.ReportMetric(float64(totals[1])/float64(totals[0]), "batched/redigo")
		})
	}
}
