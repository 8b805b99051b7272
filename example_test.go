package redsync_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/goredis"
)

// Lock waits (retrying) until the lock is free; Unlock releases it.
func ExampleMutex_Lock() {
	client := goredislib.NewClient(&goredislib.Options{Addr: "localhost:6379"})
	defer client.Close()
	rs := redsync.New(goredis.NewPool(client))

	mutex := rs.NewMutex("my-global-mutex")
	if err := mutex.Lock(); err != nil {
		fmt.Println("lock:", err)
		return
	}

	// Work on the shared resource, finishing before mutex.Until().

	if ok, err := mutex.Unlock(); !ok {
		// The lock expires by itself after its expiry (8s by default).
		fmt.Println("unlock:", err)
	}
}

// Extend keeps a lock for work longer than its expiry: extend before the
// validity ends, and stop working when an extension fails.
func ExampleMutex_Extend() {
	client := goredislib.NewClient(&goredislib.Options{Addr: "localhost:6379"})
	defer client.Close()
	rs := redsync.New(goredis.NewPool(client))

	mutex := rs.NewMutex("report-builder", redsync.WithExpiry(10*time.Second))
	if err := mutex.Lock(); err != nil {
		fmt.Println("lock:", err)
		return
	}
	defer mutex.Unlock()

	for step := range 5 {
		fmt.Println("building part", step) // each part takes a few seconds

		if ok, err := mutex.Extend(); !ok {
			// errors.Is(err, redsync.ErrExtendFailed) holds; the lock may
			// already belong to someone else, so stop here.
			fmt.Println("extend:", err)
			return
		}
		fmt.Println("lock valid until", mutex.Until().Format(time.TimeOnly))
	}
}

// With several independent Redis masters, a lock is held when a majority of
// them granted it: two of three here, so one node can be down.
func ExampleNew_multipleNodes() {
	var pools []redis.Pool
	for _, addr := range []string{"localhost:6379", "localhost:6380", "localhost:6381"} {
		client := goredislib.NewClient(&goredislib.Options{Addr: addr})
		defer client.Close()
		pools = append(pools, goredis.NewPool(client))
	}
	rs := redsync.New(pools...)

	mutex := rs.NewMutex("inventory-sync")
	if err := mutex.Lock(); err != nil {
		fmt.Println("lock:", err)
		return
	}
	defer mutex.Unlock()

	fmt.Println("holding the lock on a quorum of 2 of 3 nodes")
}

// LockContext bounds the wait for a lock. When the context ends first, the
// error matches both ErrFailed and the context's error.
func ExampleMutex_LockContext() {
	client := goredislib.NewClient(&goredislib.Options{Addr: "localhost:6379"})
	defer client.Close()
	rs := redsync.New(goredis.NewPool(client))
	mutex := rs.NewMutex("nightly-job")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()

	err := mutex.LockContext(ctx)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		// Check the context's error first: it also matches ErrFailed.
		fmt.Println("the lock stayed busy for 2s; skipping this run")
		return
	case errors.Is(err, redsync.ErrFailed):
		fmt.Println("the lock was not acquired:", err)
		return
	case err != nil:
		fmt.Println("lock:", err) // for example a bad configuration
		return
	}
	defer mutex.Unlock()

	fmt.Println("running the job")
}

// A taken lock is reported as a *ErrTaken listing the nodes that hold it.
func ExampleErrTaken() {
	client := goredislib.NewClient(&goredislib.Options{Addr: "localhost:6379"})
	defer client.Close()
	rs := redsync.New(goredis.NewPool(client))
	mutex := rs.NewMutex("single-flight")

	err := mutex.TryLock()
	var taken *redsync.ErrTaken
	switch {
	case errors.As(err, &taken):
		fmt.Println("someone else holds the lock on nodes", taken.Nodes)
		return
	case err != nil:
		fmt.Println("lock:", err)
		return
	}
	defer mutex.Unlock()

	fmt.Println("got the lock on the first try")
}

// A configuration error sends nothing to Redis: every method of the mutex
// returns an error matching ErrInvalidConfig that names the problem.
func ExampleNew_invalidConfig() {
	// No connection is made: the mutex below is rejected before any command.
	client := goredislib.NewClient(&goredislib.Options{Addr: "localhost:6379"})
	defer client.Close()
	rs := redsync.New(goredis.NewPool(client))

	mutex := rs.NewMutex("") // a lock needs a name: it is the Redis key
	err := mutex.Lock()
	fmt.Println(errors.Is(err, redsync.ErrInvalidConfig))
	fmt.Println(err)
	// Output:
	// true
	// redsync: invalid configuration: empty mutex name
}

// NewMultiMutex locks several names as one lock: on each node all of them
// or none, held when a quorum of nodes granted all of them.
func ExampleRedsync_NewMultiMutex() {
	client := goredislib.NewClient(&goredislib.Options{Addr: "localhost:6379"})
	defer client.Close()
	rs := redsync.New(goredis.NewPool(client))

	// A common hash tag keeps the names in one Redis Cluster slot.
	m := rs.NewMultiMutex([]string{"{order:42}:stock", "{order:42}:payment"})
	if err := m.Lock(); err != nil {
		fmt.Println("lock:", err)
		return
	}
	defer m.Unlock()
	// ... update the stock and the payment of order 42 together
}
