package redsynctest_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/redsynctest"
)

// runDailyReport is code under test: each replica of a service calls it
// at midnight, and the report must be made once a day, however many
// replicas there are. The lock is not released: it expires after a day.
// A few quick tries settle a split vote among replicas that try at once.
func runDailyReport(rs *redsync.Redsync, day string, makeReport func()) error {
	m := rs.NewMutex("report:"+day, redsync.WithExpiry(24*time.Hour),
		redsync.WithTries(3), redsync.WithRetryDelay(10*time.Millisecond))
	err := m.Lock()
	var taken *redsync.ErrTaken
	if errors.As(err, &taken) {
		return nil // another replica made it
	}
	if err != nil {
		return err
	}
	makeReport()
	return nil
}

// A job that must run once across replicas: three replicas, each a
// Redsync of its own over the same nodes, call the job at once.
func Example_runOnce() {
	// In a test: nodes, _ := redsynctest.New(t, 3), closed when it ends.
	nodes, _, err := redsynctest.Start(3)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nodes.Close()

	var made atomic.Int32
	var wg sync.WaitGroup
	for range 3 {
		replica := redsync.New(nodes.Pools()...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := runDailyReport(replica, "2026-12-04", func() { made.Add(1) }); err != nil {
				fmt.Println("runDailyReport:", err)
			}
		}()
	}
	wg.Wait()
	fmt.Println("reports made by three replicas:", made.Load())
	for _, n := range nodes {
		// A split vote may have left out a node: read one that holds it.
		if ttl := n.TTL("report:2026-12-04"); ttl > 0 {
			fmt.Println("the lock lasts:", ttl.Round(time.Hour))
			break
		}
	}

	// A day later the lock is gone from every node.
	nodes.FastForward(24 * time.Hour)
	fmt.Println("keys a day later:", nodes[0].Keys(), nodes[1].Keys(), nodes[2].Keys())
	// Output:
	// reports made by three replicas: 1
	// the lock lasts: 24h0m0s
	// keys a day later: [] [] []
}

// consume is code under test: it handles jobs while it holds the lock
// "consumer", and must stop as soon as the lock is lost.
func consume(ctx context.Context, rs *redsync.Redsync, jobs <-chan int, handle func(int)) error {
	return rs.Do(ctx, "consumer", func(ctx context.Context) error {
		for {
			select {
			case <-ctx.Done():
				return nil // Do reports why the context ended
			case job := <-jobs:
				handle(job)
			}
		}
	}, redsync.WithExpiry(3*time.Second))
}

// A handler that must stop on ErrLockLost: the lock expires on every node
// while the handler runs (as after a long pause of the process), its next
// extension fails, and the handler's context ends.
func Example_stopOnLockLost() {
	nodes, rs, err := redsynctest.Start(3)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nodes.Close()

	jobs := make(chan int)
	handled := make(chan int)
	done := make(chan error, 1)
	go func() { done <- consume(context.Background(), rs, jobs, func(j int) { handled <- j }) }()

	jobs <- 1
	fmt.Println("handled job", <-handled)
	nodes.ExpireNow("consumer")

	select {
	case err := <-done:
		fmt.Println("stopped; lock lost:", errors.Is(err, redsync.ErrLockLost))
	case <-time.After(10 * time.Second):
		fmt.Println("the handler did not stop")
	}
	// Output:
	// handled job 1
	// stopped; lock lost: true
}

// A lock that must survive one node down: with one of three nodes
// stopped, the lock is taken, extended and released on the other two, and
// a node restarted without its data takes part again.
func Example_nodeDown() {
	nodes, rs, err := redsynctest.Start(3)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nodes.Close()

	nodes[0].Stop()

	m := rs.NewMutex("invoice:42", redsync.WithExpiry(10*time.Second))
	if err := m.Lock(); err != nil {
		fmt.Println("Lock:", err)
		return
	}
	fmt.Println("held on nodes", nodes.Holders("invoice:42", m.Value()))
	ok, err := m.Extend()
	fmt.Println("extended:", ok, err)

	if err := nodes[0].RestartEmpty(); err != nil {
		fmt.Println("RestartEmpty:", err)
		return
	}
	ok, err = m.Unlock()
	fmt.Println("released:", ok, err)
	if err := m.Lock(); err != nil {
		fmt.Println("Lock:", err)
		return
	}
	fmt.Println("held on nodes", nodes.Holders("invoice:42", m.Value()))
	m.Unlock()
	// Output:
	// held on nodes [1 2]
	// extended: true <nil>
	// released: true <nil>
	// held on nodes [0 1 2]
}
