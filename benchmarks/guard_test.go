package benchmarks

import (
	"testing"
)

// BenchmarkRestartGuardCost alternates, on the same five nodes, an
// uncontended Lock+Unlock without and with WithRestartGuard, and reports
// the ratio of their total times as guard/plain. Pairing the two in one
// loop makes load on the machine weigh on both alike, which separate
// benchmarks run one after the other cannot ensure.
func BenchmarkRestartGuardCost(b *testing.B) {
	plain := setupRedlock(b, nodeAddrs, "bench:guardcost:plain")
	guard := setupRedlockGuard(b, nodeAddrs, "bench:guardcost:guard")
	totals, i := interleave(b, []string{"plain", "guard"}, []locker{plain, guard})
	plainTime, guardTime := totals[0], totals[1]
	b.ReportMetric(float64(guardTime)/float64(plainTime), "guard/plain")
	b.ReportMetric(float64(plainTime.Nanoseconds())/float64(i), "plain-ns/op")
	b.ReportMetric(float64(guardTime.Nanoseconds())/float64(i), "guard-ns/op")
}
