// Goredis locks and unlocks a redsync mutex on one Redis node reached with
// github.com/redis/go-redis/v9.
//
//	go run ./examples/goredis
//
// With REDIS_ADDR=host:port it uses that node. Otherwise it starts a
// throwaway redis-server on a free port of 127.0.0.1 (redis-server must be
// installed) and stops it at exit.
package main

import (
	"errors"
	"fmt"
	"os"

	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis/goredis"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "goredis example:", err)
		os.Exit(1)
	}
}

func run() (err error) {
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		srv, lerr := redistest.Launch()
		if lerr != nil {
			return lerr
		}
		defer func() { err = errors.Join(err, srv.Close()) }()
		addr = srv.Addr()
		fmt.Println("started a throwaway redis-server on", addr)
	}

	// ContextTimeoutEnabled lets go-redis end a command at the per-node
	// timeout that redsync gives it.
	client := goredislib.NewClient(&goredislib.Options{Addr: addr, ContextTimeoutEnabled: true})
	defer client.Close()

	// One pool per independent Redis node; this example has one.
	rs := redsync.New(goredis.NewPool(client))
	mutex := rs.NewMutex("example-goredis")

	if err := mutex.Lock(); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	fmt.Printf("locked %q until %s\n", mutex.Name(), mutex.Until().Format("15:04:05.000"))

	// The work protected by the lock goes here.

	if ok, err := mutex.Unlock(); !ok {
		return fmt.Errorf("unlock: %w", errors.Join(errors.New("no quorum of nodes released the lock"), err))
	}
	fmt.Printf("unlocked %q\n", mutex.Name())
	return nil
}
