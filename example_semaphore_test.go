package redsync_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/goredis"
)

// exampleNodes starts three throwaway redis-servers for the examples of
// this file and returns a pool for each, and a function that stops them.
// A program would make the pools of its own Redis masters instead.
func exampleNodes() ([]redis.Pool, func()) {
	servers, err := redistest.LaunchN(3)
	if err != nil {
		panic(err)
	}
	var pools []redis.Pool
	var clients []*goredislib.Client
	for _, srv := range servers {
		client := goredislib.NewClient(&goredislib.Options{Addr: srv.Addr()})
		clients = append(clients, client)
		pools = append(pools, goredis.NewPool(client))
	}
	return pools, func() {
		for _, c := range clients {
			c.Close()
		}
		for _, srv := range servers {
			srv.Close()
		}
	}
}

// A Semaphore lets a fixed number of holders in at once: here two
// permits; a third must wait until one is released.
func ExampleSemaphore() {
	pools, stop := exampleNodes()
	defer stop()
	rs := redsync.New(pools...)
	ctx := context.Background()

	sem := rs.NewSemaphore("exports", 2)
	first, err := sem.Acquire(ctx)
	if err != nil {
		fmt.Println("acquire:", err)
		return
	}
	second, err := sem.Acquire(ctx)
	if err != nil {
		fmt.Println("acquire:", err)
		return
	}
	fmt.Println("two permits, in different slots:", first.Slot() != second.Slot())

	_, err = sem.TryAcquire(ctx)
	fmt.Println("a third permit:", errors.Is(err, redsync.ErrFailed), err)

	first.Release(ctx)
	third, err := sem.TryAcquire(ctx)
	fmt.Println("after a release:", err, third.Slot() == first.Slot())

	second.Release(ctx)
	third.Release(ctx)
	// Output:
	// two permits, in different slots: true
	// a third permit: true redsync: no permit of semaphore "exports" acquired: all 2 permits are held
	// after a release: <nil> true
}

// Semaphore.Do runs a function while holding a permit: here at most two
// of six jobs run at once, across every process that uses the semaphore
// "thumbnails" with two permits.
func ExampleSemaphore_Do() {
	pools, stop := exampleNodes()
	defer stop()
	rs := redsync.New(pools...)
	sem := rs.NewSemaphore("thumbnails", 2, redsync.WithExpiry(5*time.Second))

	var running, most atomic.Int32
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := sem.Do(context.Background(), func(ctx context.Context) error {
				n := running.Add(1)
				defer running.Add(-1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				// Work until done, or until the permit is lost.
				select {
				case <-time.After(20 * time.Millisecond):
					return nil
				case <-ctx.Done():
					return context.Cause(ctx)
				}
			})
			if err != nil {
				fmt.Println("job:", err)
			}
		}()
	}
	wg.Wait()
	fmt.Println("at most 2 jobs at once:", most.Load() <= 2)
	// Output:
	// at most 2 jobs at once: true
}
