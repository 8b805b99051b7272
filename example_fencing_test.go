package redsync_test

import (
	"context"
	"errors"
	"fmt"

	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/goredis"
)

// WithFencing gives each holder a token that grows from one holder to the
// next; the resource refuses writes with a token older than the last one
// it accepted, so a holder that paused past its validity cannot overwrite
// the work of the next one.
func ExampleWithFencing() {
	var pools []redis.Pool
	for _, addr := range []string{"10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"} {
		client := goredislib.NewClient(&goredislib.Options{Addr: addr})
		defer client.Close()
		pools = append(pools, goredis.NewPool(client))
	}
	// The resource lives on another Redis server.
	store := goredislib.NewClient(&goredislib.Options{Addr: "10.0.0.9:6379"})
	defer store.Close()
	resource := goredis.NewPool(store)

	mutex := redsync.New(pools...).NewMutex("invoice:42", redsync.WithFencing())
	if err := mutex.Lock(); err != nil {
		fmt.Println("lock:", err)
		return
	}
	defer mutex.Unlock()

	token := mutex.FencingToken()
	// ... compute the new state, perhaps for longer than planned ...
	err := redsync.GuardedSet(context.Background(), resource, "invoice:42:state", "paid", token)
	if errors.Is(err, redsync.ErrStaleToken) {
		// A later holder has written: this holder's lock is long gone.
		fmt.Println("stale:", err)
		return
	}
	if err != nil {
		fmt.Println("write:", err)
	}
}

// Within Redsync.Do, the function finds the token on the Mutex of its
// context.
func ExampleMutex_FencingToken() {
	client := goredislib.NewClient(&goredislib.Options{Addr: "localhost:6379"})
	defer client.Close()
	pool := goredis.NewPool(client)
	rs := redsync.New(pool)

	err := rs.Do(context.Background(), "report:daily", func(ctx context.Context) error {
		token := redsync.MutexFromContext(ctx).FencingToken()
		return redsync.GuardedSet(ctx, pool, "report:daily:result", "done", token)
	}, redsync.WithFencing())
	if err != nil {
		fmt.Println("do:", err)
	}
}
