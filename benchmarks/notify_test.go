package benchmarks

import (
	"context"
	"fmt"
	"testing"

	redlock "github.com/go-redlock/redsync"
	redlockredis "github.com/go-redlock/redsync/redis"
	redlockgoredis "github.com/go-redlock/redsync/redis/goredis"
)

// BenchmarkNotifyCost measures what the release notification adds to an
// uncontended Lock+Unlock of this library: the same loop as
// BenchmarkLockUnlock with WithReleaseNotification on (the default: Unlock
// PUBLISHes the release) and off. Sub-benchmarks are named
// notify=BOOL/nodes=N.
func BenchmarkNotifyCost(b *testing.B) {
	for _, n := range []int{1, 5} {
		for _, notify := range []bool{false, true} {
			b.Run(fmt.Sprintf("notify=%v/nodes=%d", notify, n), func(b *testing.B) {
				benchmarkNotifyCost(b, notify, n)
			})
		}
	}
}

func benchmarkNotifyCost(b *testing.B, notify bool, n int) {
	if n > len(nodeAddrs) {
		b.Fatalf("%d nodes wanted, %d started", n, len(nodeAddrs))
	}
	pools := make([]redlockredis.Pool, n)
	for i, addr := range nodeAddrs[:n] {
		pools[i] = redlockgoredis.NewPool(newGoRedisClient(b, addr))
	}
	key := fmt.Sprintf("bench:notify:%v:nodes=%d", notify, n)
	mutex := redlock.New(pools...).NewMutex(key, redlock.WithExpiry(expiry), redlock.WithReleaseNotification(notify))
	l := locker{
		lock:   func(context.Context) error { return mutex.Lock() },
		unlock: func(context.Context) error { return unlocked(mutex.Unlock()) },
	}
	ctx := context.Background()
	if err := lockUnlock(ctx, l); err != nil {
		b.Fatalf("warm-up: %v", err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := lockUnlock(ctx, l); err != nil {
			b.Fatal(err)
		}
	}
}
