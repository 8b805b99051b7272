package benchmarks

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// interleave runs, on each iteration of b's loop, one Lock+Unlock of every
// locker in turn, rotating the order so that none always runs first, after
// one warm-up round (connections, scripts loaded). It returns each
// locker's total time and the number of iterations. Load on the machine
// then weighs on all of them alike, which benchmarks run one after the
// other cannot ensure.
func interleave(b *testing.B, names []string, lockers []locker) (totals []time.Duration, n int) {
	ctx := context.Background()
	totals = make([]time.Duration, len(lockers))
	timed := func(i int) {
		start := time.Now()
		if err := lockUnlock(ctx, lockers[i]); err != nil {
			b.Fatalf("%s: %v", names[i], err)
		}
		totals[i] += time.Since(start)
	}
	for i := range lockers {
		timed(i)
		totals[i] = 0
	}
	for b.Loop() {
		for j := range lockers {
			timed((n + j) % len(lockers))
		}
		n++
	}
	return totals, n
}

// BenchmarkPaired measures the same uncontended Lock+Unlock as
// BenchmarkLockUnlock, but interleaved: each iteration runs one
// Lock+Unlock of every library in turn (rotating the order), on the same
// nodes, and the benchmark reports each library's mean time and its ratio
// to redsync v4 (and, at one node, to redislock). On a shared, noisy
// machine the libraries then see the same load, so the ratios hold even
// when the absolute times drift from one run to the next.
func BenchmarkPaired(b *testing.B) {
	for _, nodes := range []int{1, 5} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			addrs := nodeAddrs[:nodes]
			names := []string{"redlock", "redsyncv4", "floor-goredis"}
			lockers := []locker{
				setupRedlock(b, addrs, fmt.Sprintf("bench:paired:%d:redlock", nodes)),
				setupRedsyncV4(b, addrs, fmt.Sprintf("bench:paired:%d:redsyncv4", nodes)),
				setupFloor(b, addrs, fmt.Sprintf("bench:paired:%d:floor", nodes)),
			}
			if nodes == 1 {
				names = append(names, "redislock")
				lockers = append(lockers, setupRedislock(b, addrs, "bench:paired:1:redislock"))
			} else {
				names = append(names, "floor-pipelined", "redlock-redigo", "redsyncv4-redigo")
				lockers = append(lockers,
					setupFloorPipelined(b, addrs, fmt.Sprintf("bench:paired:%d:pipelined", nodes)),
					setupRedlockRedigo(b, addrs, fmt.Sprintf("bench:paired:%d:redlock-redigo", nodes)),
					setupRedsyncV4Redigo(b, addrs, fmt.Sprintf("bench:paired:%d:redsyncv4-redigo", nodes)))
			}
			totals, n := interleave(b, names, lockers)
			for i, name := range names {
				b.ReportMetric(float64(totals[i].Nanoseconds())/float64(n), name+"-ns/op")
			}
			b.ReportMetric(float64(totals[0])/float64(totals[1]), "redlock/redsyncv4")
			b.ReportMetric(float64(totals[2])/float64(totals[1]), "floor/redsyncv4")
			if nodes == 1 {
				b.ReportMetric(float64(totals[0])/float64(totals[3]), "redlock/redislock")
				b.ReportMetric(float64(totals[2])/float64(totals[3]), "floor/redislock")
			} else {
				b.ReportMetric(float64(totals[3])/float64(totals[1]), "pipelined/redsyncv4")
				b.ReportMetric(float64(totals[4])/float64(totals[1]), "redlock-redigo/redsyncv4")
				b.ReportMetric(float64(totals[4])/float64(totals[5]), "redlock-redigo/redsyncv4-redigo")
				b.ReportMetric(float64(totals[3])/float64(totals[5]), "pipelined/redsyncv4-redigo")
			}
		})
	}
}
