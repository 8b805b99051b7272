package redsync_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/goredis"
)

// roundCounter is an Observer that counts the acquire rounds of the slots.
type roundCounter struct {
	redsync.BaseObserver
	rounds atomic.Int64
}

func (c *roundCounter) OnAcquire(_ context.Context, e redsync.AcquireEvent) {
	c.rounds.Add(int64(e.Attempts))
}

// BenchmarkSemaphore measures what a permit costs on real nodes
// (loopback, go-redis): "free" is TryAcquire+Release with every permit
// free, "full" a TryAcquire that finds every permit held. It reports the
// acquire rounds per operation (rounds/op).
//
//	go test -run '^$' -bench BenchmarkSemaphore -benchtime 2000x .
func BenchmarkSemaphore(b *testing.B) {
	for _, n := range []int{3, 5} {
		for _, permits := range []int{1, 4, 16} {
			for _, full := range []bool{false, true} {
				state := "free"
				if full {
					state = "full"
				}
				b.Run(fmt.Sprintf("N=%d/P=%d/%s", n, permits, state), func(b *testing.B) {
					benchSemaphore(b, n, permits, full)
				})
			}
		}
	}
}

func benchSemaphore(b *testing.B, n, permits int, full bool) {
	servers := startBenchNodes(b, n)
	var rounds roundCounter
	s := servers.NewSemaphore("bench-sem", permits, redsync.WithObserver(&rounds))
	ctx := context.Background()
	if full {
		holder := servers.NewSemaphore("bench-sem", permits)
		for range permits {
			p, err := holder.Acquire(ctx)
			if err != nil {
				b.Fatalf("Acquire() = %v", err)
			}
			defer p.Release(ctx)
		}
	}
	rounds.rounds.Store(0)
	b.ResetTimer()
	for range b.N {
		p, err := s.TryAcquire(ctx)
		switch {
		case full && err == nil:
			b.Fatalf("TryAcquire() of a full semaphore = nil, want an error")
		case !full && err != nil:
			b.Fatalf("TryAcquire() = %v, want nil", err)
		case !full:
			p.Release(ctx)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(rounds.rounds.Load())/float64(b.N), "rounds/op")
}

// startBenchNodes starts n servers and returns a Redsync over them.
func startBenchNodes(b *testing.B, n int) *redsync.Redsync {
	var pools []redis.Pool
	for _, srv := range redistest.StartN(b, n) {
		client := goredislib.NewClient(&goredislib.Options{Addr: srv.Addr()})
		b.Cleanup(func() { client.Close() })
		pools = append(pools, goredis.NewPool(client))
	}
	return redsync.New(pools...)
}
