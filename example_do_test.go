package redsync_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/redis/goredis"
)

// Do holds the lock while the function runs: it extends the lock in the
// background and cancels the function's context as soon as the lock can
// no longer be guaranteed.
func ExampleRedsync_Do() {
	client := goredislib.NewClient(&goredislib.Options{Addr: "localhost:6379"})
	defer client.Close()
	rs := redsync.New(goredis.NewPool(client))

	err := rs.Do(context.Background(), "report:daily", func(ctx context.Context) error {
		for page := range 100 {
			// Check the context between steps: once the lock is lost,
			// another client may hold it.
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			_ = page // ... work on one page of the report
		}
		return nil
	}, redsync.WithExpiry(10*time.Second))
	switch {
	case errors.Is(err, redsync.ErrFailed):
		fmt.Println("someone else is writing the report")
	case errors.Is(err, redsync.ErrLockLost):
		fmt.Println("lost the lock part-way; the report may be incomplete:", err)
	case err != nil:
		fmt.Println("report failed:", err)
	}
}

// The function of Do finds the Mutex in its context, for example to log
// the lock's value or its current validity.
func ExampleMutexFromContext() {
	client := goredislib.NewClient(&goredislib.Options{Addr: "localhost:6379"})
	defer client.Close()
	rs := redsync.New(goredis.NewPool(client))

	_ = rs.Do(context.Background(), "cache:rebuild", func(ctx context.Context) error {
		m := redsync.MutexFromContext(ctx)
		log.Printf("rebuilding under lock %s, valid until %v", m.Name(), m.Until())
		return nil
	})
}

// With WithAutoExtend a Mutex extends itself until Unlock; its Context
// ends when the lock is lost.
func ExampleWithAutoExtend() {
	client := goredislib.NewClient(&goredislib.Options{Addr: "localhost:6379"})
	defer client.Close()
	rs := redsync.New(goredis.NewPool(client))

	mutex := rs.NewMutex("queue:consumer",
		redsync.WithExpiry(3*time.Second),
		redsync.WithAutoExtend(time.Second), // 0 would mean a third of the expiry
		redsync.WithMaxHold(time.Hour),      // give the lock up after an hour at most
	)
	if err := mutex.Lock(); err != nil {
		fmt.Println("lock:", err)
		return
	}
	defer mutex.Unlock()

	ctx := mutex.Context()
	for {
		select {
		case <-ctx.Done():
			fmt.Println("stopping:", context.Cause(ctx))
			return
		case <-time.After(100 * time.Millisecond):
			// ... consume one message
		}
	}
}

// Without automatic extension, the Context of a Mutex still ends when the
// validity runs out, and its Deadline follows each Extend.
func ExampleMutex_Context() {
	client := goredislib.NewClient(&goredislib.Options{Addr: "localhost:6379"})
	defer client.Close()
	rs := redsync.New(goredis.NewPool(client))

	mutex := rs.NewMutex("migration")
	if err := mutex.Lock(); err != nil {
		fmt.Println("lock:", err)
		return
	}
	defer mutex.Unlock()

	ctx := mutex.Context()
	deadline, _ := ctx.Deadline() // == mutex.Until()
	fmt.Println("must finish by", deadline)
	if ok, err := mutex.Extend(); ok {
		deadline, _ = ctx.Deadline() // moved forward
		fmt.Println("now by", deadline)
	} else {
		fmt.Println("extend:", err)
	}
}

// Hand-off by notification is on by default; turn it off to keep redsync
// v4's polling (for example when an ACL forbids SUBSCRIBE).
func ExampleWithReleaseNotification() {
	client := goredislib.NewClient(&goredislib.Options{Addr: "localhost:6379"})
	defer client.Close()
	rs := redsync.New(goredis.NewPool(client))

	mutex := rs.NewMutex("polling-only", redsync.WithReleaseNotification(false))
	if err := mutex.Lock(); err != nil {
		fmt.Println("lock:", err)
		return
	}
	mutex.Unlock()
}
