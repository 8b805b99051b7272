package redsync_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// BenchmarkSemaphoreContended measures permits under contention: 16
// goroutines of one Redsync, each holding a permit for 1 ms at a time,
// with the default retry delay (50-250 ms): each operation is one permit
// acquired, held and released. It reports the acquire rounds per permit
// (rounds/op) and the longest wait for one (max-wait-ms).
//
//	go test -run '^$' -bench BenchmarkSemaphoreContended -benchtime 400x .
func BenchmarkSemaphoreContended(b *testing.B) {
	const workers = 16
	for _, permits := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("N=5/P=%d/workers=%d", permits, workers), func(b *testing.B) {
			var rounds roundCounter
			s := startBenchNodes(b, 5).NewSemaphore("bench-sem", permits, redsync.WithObserver(&rounds), redsync.WithTries(1<<20))
			ctx := context.Background()
			var (
				left    atomic.Int64
				maxWait atomic.Int64
				wg      sync.WaitGroup
			)
			left.Store(int64(b.N))
			b.ResetTimer()
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for left.Add(-1) >= 0 {
						began := time.Now()
						p, err := s.Acquire(ctx)
						if err != nil {
							b.Errorf("Acquire() = %v", err)
							return
						}
						if w := time.Since(began).Milliseconds(); w > maxWait.Load() {
							maxWait.Store(w) // racy maximum: good enough for a report
						}
						time.Sleep(time.Millisecond)
						p.Release(ctx)
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(rounds.rounds.Load())/float64(b.N), "rounds/op")
			b.ReportMetric(float64(maxWait.Load()), "max-wait-ms")
		})
	}
}
