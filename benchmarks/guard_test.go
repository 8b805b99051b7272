package benchmarks

import (
	"context"
	"testing"
	"time"
)

// BenchmarkRestartGuardCost alternates, on the same five nodes, an
// uncontended Lock+Unlock without and with WithRestartGuard, and reports
// the ratio of their total times as guard/plain. Pairing the two in one
// loop makes load on the machine weigh on both alike, which separate
// benchmarks run one after the other cannot ensure.
func BenchmarkRestartGuardCost(b *testing.B) {
	plain := setupRedlock(b, nodeAddrs, "bench:guardcost:plain")
	guard := setupRedlockGuard(b, nodeAddrs, "bench:guardcost:guard")
	ctx := context.Background()
	var plainTime, guardTime time.Duration
	timed := func(l locker, total *time.Duration) {
		start := time.Now()
		if err := lockUnlock(ctx, l); err != nil {
			b.Fatal(err)
		}
		*total += time.Since(start)
	}
	i := 0
	for b.Loop() {
		// Alternate the order, so that neither always runs first.
		if i%2 == 0 {
			timed(plain, &plainTime)
			timed(guard, &guardTime)
		} else {
			timed(guard, &guardTime)
			timed(plain, &plainTime)
		}
		i++
	}
	b.ReportMetric(float64(guardTime)/float64(plainTime), "guard/plain")
	b.ReportMetric(float64(plainTime.Nanoseconds())/float64(i), "plain-ns/op")
	b.ReportMetric(float64(guardTime.Nanoseconds())/float64(i), "guard-ns/op")
}
