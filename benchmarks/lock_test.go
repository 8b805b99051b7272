// Package benchmarks compares the cost of an uncontended Lock followed by an
// Unlock with github.com/go-redlock/redsync ("redlock"), its predecessor
// github.com/go-redsync/redsync/v4 ("redsyncv4") and the single-node
// github.com/bsm/redislock ("redislock").
//
// All benchmarks share five redis-server processes that TestMain starts once
// on 127.0.0.1. Each benchmark opens its own clients and uses its own key, so
// the benchmarks do not influence one another through connection pools or
// lock state. See README.md and cmd/benchtable for how to run and compare
// them.
package benchmarks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/bsm/redislock"
	redsyncv4 "github.com/go-redsync/redsync/v4"
	redsyncv4redis "github.com/go-redsync/redsync/v4/redis"
	redsyncv4goredis "github.com/go-redsync/redsync/v4/redis/goredis/v9"
	redsyncv4redigo "github.com/go-redsync/redsync/v4/redis/redigo"
	redigolib "github.com/gomodule/redigo/redis"
	goredislib "github.com/redis/go-redis/v9"

	redlock "github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/internal/redistest"
	redlockredis "github.com/go-redlock/redsync/redis"
	redlockgoredis "github.com/go-redlock/redsync/redis/goredis"
	redlockredigo "github.com/go-redlock/redsync/redis/redigo"
)

// expiry is the lock lifetime used by every library.
const expiry = 8 * time.Second

// maxNodes is how many redis-server processes TestMain starts.
const maxNodes = 5

// nodeAddrs holds the addresses of the servers started by TestMain.
var nodeAddrs []string

func TestMain(m *testing.M) {
	servers, err := redistest.LaunchN(maxNodes)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchmarks: starting redis-server:", err)
		os.Exit(1)
	}
	for _, s := range servers {
		nodeAddrs = append(nodeAddrs, s.Addr())
	}
	code := m.Run()
	for _, s := range servers {
		if err := s.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "benchmarks: stopping redis-server:", err)
		}
	}
	os.Exit(code)
}

// locker takes and releases one lock of one library. Both steps return an
// error when they fail; unlock also fails when it finds the lock not held.
type locker struct {
	lock   func(ctx context.Context) error
	unlock func(ctx context.Context) error
}

// library is one locking library under test.
type library struct {
	name  string // the lib= element of the benchmark name
	nodes []int  // the node counts it is measured with
	// setup connects to addrs (registering tb.Cleanup to disconnect) and
	// returns the locker of key.
	setup func(tb testing.TB, addrs []string, key string) locker
}

// libraries lists the benchmarked libraries in the order of the table.
var libraries = []library{
	{name: "redlock", nodes: []int{1, 3, 5}, setup: setupRedlock},
	{name: "redsyncv4", nodes: []int{1, 3, 5}, setup: setupRedsyncV4},
	{name: "redislock", nodes: []int{1}, setup: setupRedislock},
	{name: "redlock-redigo", nodes: []int{1, 5}, setup: setupRedlockRedigo},
	{name: "redsyncv4-redigo", nodes: []int{1, 5}, setup: setupRedsyncV4Redigo},
	{name: "redlock-batched", nodes: []int{1, 5}, setup: setupRedlockBatched},
	{name: "redlock-guard", nodes: []int{5}, setup: setupRedlockGuard},
}

// newGoRedisClient returns a go-redis client for addr, closed when tb's
// cleanups run. Its options are the defaults but for ContextTimeoutEnabled,
// which makes go-redis end a command by its context's deadline: the setting
// that redsync's goredis.NewPool recommends, and the same for every library.
func newGoRedisClient(tb testing.TB, addr string) *goredislib.Client {
	client := goredislib.NewClient(&goredislib.Options{Addr: addr, ContextTimeoutEnabled: true})
	tb.Cleanup(func() { client.Close() })
	return client
}

// newRedigoPool returns a redigo pool of connections to addr, closed when
// tb's cleanups run.
func newRedigoPool(tb testing.TB, addr string) *redigolib.Pool {
	pool := &redigolib.Pool{
		MaxIdle: 4,
		Dial:    func() (redigolib.Conn, error) { return redigolib.Dial("tcp", addr) },
	}
	tb.Cleanup(func() { pool.Close() })
	return pool
}

// unlocked turns the result of an Unlock into an error.
func unlocked(ok bool, err error) error {
	if err != nil {
		return fmt.Errorf("unlock: %w", err)
	}
	if !ok {
		return errors.New("unlock: the lock was not held")
	}
	return nil
}

func setupRedlock(tb testing.TB, addrs []string, key string) locker {
	pools := make([]redlockredis.Pool, len(addrs))
	for i, addr := range addrs {
		pools[i] = redlockgoredis.NewPool(newGoRedisClient(tb, addr))
	}
	return redlockLocker(pools, key)
}

func setupRedlockRedigo(tb testing.TB, addrs []string, key string) locker {
	pools := make([]redlockredis.Pool, len(addrs))
	for i, addr := range addrs {
		pools[i] = redlockredigo.NewPool(newRedigoPool(tb, addr))
	}
	return redlockLocker(pools, key)
}

// setupRedlockGuard is setupRedlock with WithRestartGuard(expiry). It first
// waits until every node has been up long enough to vote.
func setupRedlockGuard(tb testing.TB, addrs []string, key string) locker {
	pools := make([]redlockredis.Pool, len(addrs))
	for i, addr := range addrs {
		pools[i] = redlockgoredis.NewPool(newGoRedisClient(tb, addr))
	}
	deadline := time.Now().Add(expiry + 5*time.Second)
	for i, pool := range pools {
		node := redlock.New(pool).NewMutex(key, redlock.WithExpiry(expiry), redlock.WithRestartGuard(expiry))
		for {
			err := node.TryLock()
			if err == nil {
				break
			}
			if !errors.Is(err, redlock.ErrNodeRestarted) || time.Now().After(deadline) {
				tb.Fatalf("waiting for node %d to vote with the restart guard: %v", i, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err := unlocked(node.Unlock()); err != nil {
			tb.Fatal(err)
		}
	}
	return redlockLocker(pools, key, redlock.WithRestartGuard(expiry))
}

func redlockLocker(pools []redlockredis.Pool, key string, opts ...redlock.Option) locker {
	mutex := redlock.New(pools...).NewMutex(key, append([]redlock.Option{redlock.WithExpiry(expiry)}, opts...)...)
	return locker{
		lock: func(context.Context) error {
			if err := mutex.Lock(); err != nil {
				return fmt.Errorf("lock: %w", err)
			}
			return nil
		},
		unlock: func(context.Context) error { return unlocked(mutex.Unlock()) },
	}
}

func setupRedsyncV4(tb testing.TB, addrs []string, key string) locker {
	pools := make([]redsyncv4redis.Pool, len(addrs))
	for i, addr := range addrs {
		pools[i] = redsyncv4goredis.NewPool(newGoRedisClient(tb, addr))
	}
	return redsyncV4Locker(pools, key)
}

// redsyncV4Locker locks key with redsync v4 over pools.
func redsyncV4Locker(pools []redsyncv4redis.Pool, key string) locker {
	mutex := redsyncv4.New(pools...).NewMutex(key, redsyncv4.WithExpiry(expiry))
	return locker{
		lock: func(context.Context) error {
			if err := mutex.Lock(); err != nil {
				return fmt.Errorf("lock: %w", err)
			}
			return nil
		},
		unlock: func(context.Context) error { return unlocked(mutex.Unlock()) },
	}
}

// setupRedsyncV4Redigo is setupRedsyncV4 with v4's redigo adapter, over
// the same redigo pools as setupRedlockRedigo.
func setupRedsyncV4Redigo(tb testing.TB, addrs []string, key string) locker {
	pools := make([]redsyncv4redis.Pool, len(addrs))
	for i, addr := range addrs {
		pools[i] = redsyncv4redigo.NewPool(newRedigoPool(tb, addr))
	}
	return redsyncV4Locker(pools, key)
}

func setupRedislock(tb testing.TB, addrs []string, key string) locker {
	if len(addrs) != 1 {
		tb.Fatalf("redislock works with one node, not %d", len(addrs))
	}
	client := redislock.New(newGoRedisClient(tb, addrs[0]))
	var held *redislock.Lock
	return locker{
		lock: func(ctx context.Context) error {
			lock, err := client.Obtain(ctx, key, expiry, nil)
			if err != nil {
				return fmt.Errorf("obtain: %w", err)
			}
			held = lock
			return nil
		},
		unlock: func(ctx context.Context) error {
			if held == nil {
				return errors.New("release: no lock obtained")
			}
			lock := held
			held = nil
			if err := lock.Release(ctx); err != nil {
				return fmt.Errorf("release: %w", err)
			}
			return nil
		},
	}
}

// BenchmarkLockUnlock measures one uncontended Lock followed by one Unlock
// per iteration. Sub-benchmarks are named lib=NAME/nodes=N.
//
// Connecting, and loading the Lua scripts into the servers, happen in a
// warm-up round before the timed loop. The mutex (or redislock client) is
// made once per benchmark: the loop measures Lock and Unlock only.
func BenchmarkLockUnlock(b *testing.B) {
	for _, lib := range libraries {
		b.Run("lib="+lib.name, func(b *testing.B) {
			for _, n := range lib.nodes {
				b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
					benchmarkLockUnlock(b, lib, n)
				})
			}
		})
	}
}

func benchmarkLockUnlock(b *testing.B, lib library, n int) {
	if n > len(nodeAddrs) {
		b.Fatalf("%d nodes wanted, %d started", n, len(nodeAddrs))
	}
	key := fmt.Sprintf("bench:lockunlock:%s:nodes=%d", lib.name, n)
	l := lib.setup(b, nodeAddrs[:n], key)
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

// lockUnlock is one iteration of the benchmark.
func lockUnlock(ctx context.Context, l locker) error {
	if err := l.lock(ctx); err != nil {
		return err
	}
	return l.unlock(ctx)
}

// TestSmoke runs the benchmark's operation with every library and node
// count, checking on every node that the key is set with a TTL of at most
// the expiry while the lock is held, and is gone after the release.
func TestSmoke(t *testing.T) {
	for _, lib := range libraries {
		for _, n := range lib.nodes {
			t.Run(fmt.Sprintf("lib=%s/nodes=%d", lib.name, n), func(t *testing.T) {
				addrs := nodeAddrs[:n]
				key := fmt.Sprintf("smoke:%s:nodes=%d", lib.name, n)
				checkers := make([]*goredislib.Client, n)
				for i, addr := range addrs {
					checkers[i] = newGoRedisClient(t, addr)
				}
				ctx := context.Background()
				l := lib.setup(t, addrs, key)
				for round := range 2 {
					if err := l.lock(ctx); err != nil {
						t.Fatalf("round %d: %v", round, err)
					}
					for i, c := range checkers {
						ttl, err := c.PTTL(ctx, key).Result()
						if err != nil {
							t.Fatalf("round %d: node %d: PTTL %q: %v", round, i, key, err)
						}
						if ttl <= 0 || ttl > expiry {
							t.Errorf("round %d: node %d: PTTL %q = %v while locked; want in (0, %v]", round, i, key, ttl, expiry)
						}
					}
					if err := l.unlock(ctx); err != nil {
						t.Fatalf("round %d: %v", round, err)
					}
					for i, c := range checkers {
						n, err := c.Exists(ctx, key).Result()
						if err != nil {
							t.Fatalf("round %d: node %d: EXISTS %q: %v", round, i, key, err)
						}
						if n != 0 {
							t.Errorf("round %d: node %d: %q still exists after unlock", round, i, key)
						}
					}
				}
				// A second unlock must report the lock as not held.
				if err := l.unlock(ctx); err == nil {
					t.Errorf("unlock of a released lock succeeded")
				}
			})
		}
	}
}
