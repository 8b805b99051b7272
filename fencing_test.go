package redsync_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	redigolib "github.com/gomodule/redigo/redis"
	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/goredis"
	"github.com/go-redlock/redsync/redis/redigo"
)

// fenceDrivers makes a pool of each driver for a server address; the
// clients are closed by t.Cleanup.
var fenceDrivers = []struct {
	name string
	pool func(t *testing.T, addr string) redis.Pool
}{
	{"goredis", func(t *testing.T, addr string) redis.Pool {
		client := goredislib.NewClient(&goredislib.Options{Addr: addr, MaxRetries: -1, ContextTimeoutEnabled: true})
		t.Cleanup(func() { client.Close() })
		return goredis.NewPool(client)
	}},
	{"redigo", func(t *testing.T, addr string) redis.Pool {
		pool := &redigolib.Pool{
			MaxIdle: 8,
			DialContext: func(ctx context.Context) (redigolib.Conn, error) {
				return redigolib.DialContext(ctx, "tcp", addr)
			},
		}
		t.Cleanup(func() { pool.Close() })
		return redigo.NewPool(pool)
	}},
}

// fenceCounterKey is the name of the fencing counter of the lock name, as
// WithFencing documents it: the prefix, a hash tag and the name.
func fenceCounterKey(t *testing.T, s *redistest.Server, name string) string {
	t.Helper()
	keys, err := s.Keys("redsync:fence:{*}:" + name)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 {
		t.Fatalf("fencing counters of %q on %s = %q, want one", name, s.Addr(), keys)
	}
	return keys[0]
}

// counterOn returns the fencing counter of name on s, 0 when missing.
func counterOn(t *testing.T, s *redistest.Server, key string) uint64 {
	t.Helper()
	r := s.MustDo(t, "GET", key)
	if r.IsNil() {
		return 0
	}
	n, err := strconv.ParseUint(r.Text(), 10, 64)
	if err != nil {
		t.Fatalf("GET %s = %v: %v", key, r, err)
	}
	return n
}

// TestFencingTokensIncrease has several goroutines take turns holding one
// lock, each with its own Redsync and Mutex values: inside the critical
// section each appends its token to a log, and the log must be strictly
// increasing. Every write of the holders to a guarded resource must be
// accepted.
func TestFencingTokensIncrease(t *testing.T) {
	const (
		workers = 4
		rounds  = 15
	)
	for _, nodes := range []int{3, 5} {
		for _, driver := range fenceDrivers {
			t.Run(fmt.Sprintf("nodes=%d/driver=%s", nodes, driver.name), func(t *testing.T) {
				servers := redistest.StartN(t, nodes+1)
				resource := driver.pool(t, servers[nodes].Addr())
				name := "fence:increase"

				var (
					mu     sync.Mutex
					tokens []uint64
					errs   = make([]error, workers)
					wg     sync.WaitGroup
				)
				for w := range workers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						pools := make([]redis.Pool, nodes)
						for i, s := range servers[:nodes] {
							pools[i] = driver.pool(t, s.Addr())
						}
						// Per-node timeouts of 1 s: the machine may be busy.
						m := redsync.New(pools...).NewMutex(name, redsync.WithFencing(), redsync.WithTimeoutFactor(0.2),
							redsync.WithExpiry(5*time.Second), redsync.WithTries(1000), redsync.WithRetryDelay(5*time.Millisecond))
						for r := range rounds {
							if err := m.Lock(); err != nil {
								errs[w] = fmt.Errorf("worker %d round %d: Lock() = %w", w, r, err)
								return
							}
							token := m.FencingToken()
							mu.Lock()
							tokens = append(tokens, token)
							mu.Unlock()
							if err := redsync.GuardedSet(context.Background(), resource, "fence:resource", fmt.Sprintf("w%d r%d", w, r), token); err != nil {
								errs[w] = fmt.Errorf("worker %d round %d: GuardedSet(token %d) = %w", w, r, token, err)
								return
							}
							// A failed Unlock is no failure here: the lock then
							// expires, and the next holder still needs a
							// greater token.
							if ok, err := m.Unlock(); !ok {
								t.Logf("worker %d round %d: Unlock() = %v, %v", w, r, ok, err)
							}
							if got := m.FencingToken(); got != 0 {
								errs[w] = fmt.Errorf("worker %d round %d: FencingToken() after Unlock = %d, want 0", w, r, got)
								return
							}
						}
					}()
				}
				wg.Wait()
				if err := errors.Join(errs...); err != nil {
					t.Fatal(err)
				}
				if len(tokens) != workers*rounds {
					t.Fatalf("%d tokens logged, want %d", len(tokens), workers*rounds)
				}
				for i := 1; i < len(tokens); i++ {
					if tokens[i] <= tokens[i-1] {
						t.Fatalf("holder %d got token %d after holder %d got %d; want strictly increasing tokens: %v", i, tokens[i], i-1, tokens[i-1], tokens)
					}
				}
				if tokens[0] == 0 {
					t.Errorf("first token = 0, want at least 1")
				}
				last := tokens[len(tokens)-1]

				// Counters never expire, never exceed the last token, and a
				// quorum holds it.
				atLast := 0
				for i, s := range servers[:nodes] {
					key := fenceCounterKey(t, s, name)
					if ttl := s.MustDo(t, "PTTL", key).Text(); ttl != "-1" {
						t.Errorf("node %d: PTTL %s = %s, want -1 (no expiry)", i, key, ttl)
					}
					switch c := counterOn(t, s, key); {
					case c > last:
						t.Errorf("node %d: counter %d, above the last token %d", i, c, last)
					case c == last:
						atLast++
					}
				}
				if atLast < nodes/2+1 {
					t.Errorf("%d nodes hold the last token %d, want at least a quorum (%d)", atLast, last, nodes/2+1)
				}
				if got := servers[nodes].MustDo(t, "HGET", "fence:resource", "fence").Text(); got != strconv.FormatUint(last, 10) {
					t.Errorf("resource fence = %s, want the last token %d", got, last)
				}
			})
		}
	}
}

// TestGuardedWriteRejectsStaleHolder is the pause of Kleppmann's critique:
// a holder stops past its validity, another client takes the lock and
// writes, then the first one wakes up and writes with its old token.
func TestGuardedWriteRejectsStaleHolder(t *testing.T) {
	const expiry = 300 * time.Millisecond
	for _, driver := range fenceDrivers {
		t.Run("driver="+driver.name, func(t *testing.T) {
			servers := redistest.StartN(t, 4)
			pools := make([]redis.Pool, 3)
			for i, s := range servers[:3] {
				pools[i] = driver.pool(t, s.Addr())
			}
			resource := driver.pool(t, servers[3].Addr())
			ctx := context.Background()
			opts := []redsync.Option{redsync.WithFencing(), redsync.WithExpiry(expiry), redsync.WithRetryDelay(20 * time.Millisecond)}

			stale := redsync.New(pools...).NewMutex("fence:stale", opts...)
			if err := stale.Lock(); err != nil {
				t.Fatalf("Lock() = %v", err)
			}
			old := stale.FencingToken()
			if err := redsync.GuardedSet(ctx, resource, "fence:doc", "stale 1", old); err != nil {
				t.Fatalf("GuardedSet(token %d) by the holder = %v", old, err)
			}

			// The pause: past the validity, and past the key's expiry.
			time.Sleep(time.Until(stale.Until()) + expiry)

			fresh := redsync.New(pools...).NewMutex("fence:stale", opts...)
			if err := fresh.Lock(); err != nil {
				t.Fatalf("Lock() by the next holder = %v", err)
			}
			defer fresh.Unlock()
			next := fresh.FencingToken()
			if next <= old {
				t.Fatalf("next holder's token = %d, want more than the paused holder's %d", next, old)
			}
			if err := redsync.GuardedSet(ctx, resource, "fence:doc", "fresh", next); err != nil {
				t.Fatalf("GuardedSet(token %d) by the next holder = %v", next, err)
			}

			// The paused holder wakes up, still believing it holds the lock.
			if got := stale.FencingToken(); got != old {
				t.Errorf("FencingToken() of the paused holder = %d, want its token %d", got, old)
			}
			err := redsync.GuardedSet(ctx, resource, "fence:doc", "stale 2", old)
			if !errors.Is(err, redsync.ErrStaleToken) {
				t.Fatalf("GuardedSet(token %d) by the paused holder = %v, want ErrStaleToken", old, err)
			}
			var se *redsync.StaleTokenError
			if !errors.As(err, &se) || se.Stored != next || se.Offered != old || se.Key != "fence:doc" {
				t.Errorf("GuardedSet() = %#v, want a *StaleTokenError with Key fence:doc, Stored %d, Offered %d", err, next, old)
			}
			if !strings.Contains(err.Error(), strconv.FormatUint(next, 10)) || !strings.Contains(err.Error(), strconv.FormatUint(old, 10)) {
				t.Errorf("GuardedSet() = %q, want both tokens in the text", err)
			}
			if got := servers[3].MustDo(t, "HGET", "fence:doc", "value").Text(); got != "fresh" {
				t.Errorf("resource value = %q, want %q: the stale write must not land", got, "fresh")
			}
			// The same holder may write again with the same token.
			if err := redsync.GuardedSet(ctx, resource, "fence:doc", "fresh 2", next); err != nil {
				t.Errorf("second GuardedSet(token %d) by the holder = %v", next, err)
			}
		})
	}
}

// TestFencingCounterFormat checks the counter's key and the exact 64-bit
// comparison of the scripts: counters near the top of uint64 are taken as
// they are, and an exhausted counter fails the try.
func TestFencingCounterFormat(t *testing.T) {
	servers := redistest.StartN(t, 3)
	pools := make([]redis.Pool, len(servers))
	for i, s := range servers {
		pools[i] = fenceDrivers[0].pool(t, s.Addr())
	}
	name := "{orders}:42"
	m := redsync.New(pools...).NewMutex(name, redsync.WithFencing(), redsync.WithTries(1))
	lockUnlock := func() (uint64, error) {
		t.Helper()
		if err := m.Lock(); err != nil {
			return 0, err
		}
		token := m.FencingToken()
		if _, err := m.Unlock(); err != nil {
			t.Fatalf("Unlock() = %v", err)
		}
		return token, nil
	}
	if token, err := lockUnlock(); err != nil || token != 1 {
		t.Fatalf("first Lock() on fresh nodes: token %d, %v; want 1, nil", token, err)
	}
	key := fenceCounterKey(t, servers[0], name)
	if !strings.HasPrefix(key, "redsync:fence:{") || !strings.HasSuffix(key, "}:"+name) {
		t.Errorf("counter key = %q, want redsync:fence:{TAG}:%s", key, name)
	}
	if used, err := servers[0].Do("MEMORY", "USAGE", key); err == nil {
		t.Logf("MEMORY USAGE %s = %v bytes", key, used)
	}

	// 2^53+1 is where float64 stops being exact; the scripts compare strings.
	big := uint64(1)<<53 + 1
	servers[1].MustDo(t, "SET", key, strconv.FormatUint(big, 10))
	if token, err := lockUnlock(); err != nil || token != big+1 {
		t.Fatalf("Lock() with a counter of %d on one node: token %d, %v; want %d", big, token, err, big+1)
	}
	for i, s := range servers {
		if got := counterOn(t, s, key); got != big+1 {
			t.Errorf("node %d: counter %d, want %d", i, got, big+1)
		}
	}
	// A lower token never lowers a counter.
	servers[2].MustDo(t, "SET", key, strconv.FormatUint(big+10, 10))
	if token, err := lockUnlock(); err != nil || token != big+11 {
		t.Fatalf("Lock(): token %d, %v; want %d", token, err, big+11)
	}

	for _, s := range servers {
		s.MustDo(t, "SET", key, strconv.FormatUint(math.MaxUint64-1, 10))
	}
	if token, err := lockUnlock(); err != nil || token != math.MaxUint64 {
		t.Fatalf("Lock() with counters at MaxUint64-1: token %d, %v; want MaxUint64", token, err)
	}
	_, err := lockUnlock()
	if !errors.Is(err, redsync.ErrFailed) || !strings.Contains(err.Error(), "exhausted") {
		t.Errorf("Lock() with counters at MaxUint64 = %v, want ErrFailed saying the counter is exhausted", err)
	}
	for i, s := range servers {
		if n, _ := s.Keys(name); len(n) != 0 {
			t.Errorf("node %d: lock key left after a failed Lock", i)
		}
	}
}

// TestFencingBadCounter checks the errors when the counter key holds
// something other than a token: the try fails on that node, naming it, and
// nothing is left locked.
func TestFencingBadCounter(t *testing.T) {
	servers := redistest.StartN(t, 3)
	pools := make([]redis.Pool, len(servers))
	for i, s := range servers {
		pools[i] = fenceDrivers[0].pool(t, s.Addr())
	}
	name := "fence:bad"
	m := redsync.New(pools...).NewMutex(name, redsync.WithFencing(), redsync.WithTries(1))
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v", err)
	}
	if _, err := m.Unlock(); err != nil {
		t.Fatalf("Unlock() = %v", err)
	}
	key := fenceCounterKey(t, servers[0], name)

	servers[0].MustDo(t, "SET", key, "007")
	servers[1].MustDo(t, "DEL", key)
	servers[1].MustDo(t, "RPUSH", key, "x")
	err := m.Lock()
	if !errors.Is(err, redsync.ErrFailed) || !errors.Is(err, redsync.ErrWrongType) {
		t.Fatalf("Lock() with bad counters on 2 of 3 nodes = %v, want ErrFailed and ErrWrongType", err)
	}
	if !strings.Contains(err.Error(), "node #0") || !strings.Contains(err.Error(), "not a token") {
		t.Errorf("Lock() = %q, want node #0's reply that its counter is not a token", err)
	}
	var re *redsync.RedisError
	if !errors.As(err, &re) {
		t.Errorf("Lock() = %v, want a *RedisError", err)
	}
	for i, s := range servers {
		if n, _ := s.Keys(name); len(n) != 0 {
			t.Errorf("node %d: lock key left after a failed Lock", i)
		}
	}
}

// TestFencingWithRestartGuard runs the guarded variant of the fenced
// acquire script: a restarted node is still denied its vote, and with
// appendfsync always the nodes keep their counters across the restart, so
// tokens still grow.
func TestFencingWithRestartGuard(t *testing.T) {
	servers := redistest.StartN(t, 3, "--appendonly", "yes", "--appendfsync", "always")
	pools := guardPools(t, servers)
	// appendfsync always makes writes slow on a busy machine: a per-node
	// timeout of 200 ms instead of 25.
	opts := []redsync.Option{redsync.WithFencing(), redsync.WithExpiry(time.Second), redsync.WithTimeoutFactor(0.2),
		redsync.WithRestartGuard(fenceGuardTTL)}
	m := redsync.New(pools...).NewMutex("fence:guard", opts...)
	lockEventually(t, m)
	first := m.FencingToken()
	if _, err := m.Unlock(); err != nil {
		t.Fatalf("Unlock() = %v", err)
	}
	// The lock needed a quorum of old nodes only: node 2, the one that
	// stays up, may have started later and still be too young to vote.
	waitUptime(t, servers[2], fenceGuardTTL+2*time.Second)

	if err := servers[1].Kill(); err != nil {
		t.Fatal(err)
	}
	if err := servers[0].Kill(); err != nil {
		t.Fatal(err)
	}
	if err := servers[0].Restart(); err != nil {
		t.Fatal(err)
	}
	err := m.TryLock()
	if !errors.Is(err, redsync.ErrNodeRestarted) {
		t.Fatalf("TryLock() with one node restarted and one down = %v, want ErrNodeRestarted", err)
	}
	if got := restartedNodes(err); len(got) != 1 || got[0] != 0 {
		t.Errorf("restarted nodes named = %v, want [0]", got)
	}

	if err := servers[1].Restart(); err != nil {
		t.Fatal(err)
	}
	lockEventually(t, m)
	if second := m.FencingToken(); second <= first {
		t.Errorf("token after the restarts = %d, want more than %d", second, first)
	}
	if _, err := m.Unlock(); err != nil {
		t.Fatalf("Unlock() = %v", err)
	}
}

// waitUptime waits until srv's process has been up for at least d by its
// own account (INFO server's uptime_in_seconds, whole seconds), failing
// the test after d and 10 seconds.
func waitUptime(t *testing.T, srv *redistest.Server, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d + 10*time.Second)
	for {
		info := srv.MustDo(t, "INFO", "server").Text()
		_, rest, _ := strings.Cut(info, "uptime_in_seconds:")
		field, _, _ := strings.Cut(rest, "\r\n")
		if up, err := strconv.Atoi(strings.TrimSpace(field)); err == nil && time.Duration(up)*time.Second >= d {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: uptime below %v after %v", srv.Addr(), d, d+10*time.Second)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fenceGuardTTL is the restart guard's span in TestFencingWithRestartGuard.
const fenceGuardTTL = 2 * time.Second

// lockEventually tries m until it acquires the lock, failing the test after
// fenceGuardTTL and 6 seconds. Unlike lockWhenOld it retries after any
// failure: on a busy machine a node with appendfsync always may miss its
// per-node timeout.
func lockEventually(t *testing.T, m *redsync.Mutex) {
	t.Helper()
	wait := fenceGuardTTL + 6*time.Second
	deadline := time.Now().Add(wait)
	for {
		err := m.TryLock()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("TryLock() = %v, want nil within %v", err, wait)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFencingDo reads the token from Do's function.
func TestFencingDo(t *testing.T) {
	servers := redistest.StartN(t, 3)
	pools := make([]redis.Pool, len(servers))
	for i, s := range servers {
		pools[i] = fenceDrivers[0].pool(t, s.Addr())
	}
	rs := redsync.New(pools...)
	var tokens []uint64
	for range 2 {
		err := rs.Do(context.Background(), "fence:do", func(ctx context.Context) error {
			tokens = append(tokens, redsync.MutexFromContext(ctx).FencingToken())
			return nil
		}, redsync.WithFencing())
		if err != nil {
			t.Fatalf("Do() = %v", err)
		}
	}
	if tokens[0] == 0 || tokens[1] <= tokens[0] {
		t.Errorf("tokens read in Do = %v, want two increasing tokens", tokens)
	}
}

// heldPool is a pool whose Eval can be held back and watched: before runs
// before each script (it may block), after once the script has run. Both
// get the script's source. It implements nothing but redis.Pool, so the
// Mutex sends every command through Conn.Eval.
type heldPool struct {
	redis.Pool
	before, after func(src string)
}

func (p *heldPool) Get(ctx context.Context) (redis.Conn, error) {
	conn, err := p.Pool.Get(ctx)
	if err != nil {
		return nil, err
	}
	return &heldConn{Conn: conn, pool: p}, nil
}

type heldConn struct {
	redis.Conn
	pool *heldPool
}

func (c *heldConn) Eval(script *redis.Script, keysAndArgs ...any) (any, error) {
	c.pool.before(script.Src)
	defer c.pool.after(script.Src)
	return c.Conn.Eval(script, keysAndArgs...)
}

// TestFencingLateGrantRealServers is TestFencingLateGrantSharesNoToken
// (issue #11, item 6) on three redis-servers, with the real scripts: A's
// acquire command to node 2 is held until B, of another Redsync, has won
// nodes 1 and 2 with token 8 and unlocked (A's key on node 1 having
// vanished meanwhile), then lands. A's fencing round must not count node
// 2, whose counter B raised to 8: A's try fails, is undone, and A's next
// one takes 9. The order is forced by channels; nothing depends on timing.
func TestFencingLateGrantRealServers(t *testing.T) {
	const name = "fence:late"
	for _, driver := range fenceDrivers {
		t.Run("driver="+driver.name, func(t *testing.T) {
			servers := redistest.StartN(t, 3)
			plain := make([]redis.Pool, len(servers))
			for i, s := range servers {
				plain[i] = driver.pool(t, s.Addr())
			}
			// A first holder makes the counters, which are then set to 7.
			first := redsync.New(plain...).NewMutex(name, redsync.WithFencing(), redsync.WithTries(1))
			if err := first.Lock(); err != nil {
				t.Fatalf("Lock() = %v", err)
			}
			if _, err := first.Unlock(); err != nil {
				t.Fatalf("Unlock() = %v", err)
			}
			counter := fenceCounterKey(t, servers[0], name)
			for _, s := range servers {
				s.MustDo(t, "SET", counter, "7")
			}

			var (
				gate              = make(chan struct{}) // holds A's acquire command to node 2
				openGate, landing sync.Once
				landed            = make(chan struct{})
				interlude         sync.Once
				bErr              error
				bToken            uint64
			)
			t.Cleanup(func() { openGate.Do(func() { close(gate) }) })
			isAcquire := func(src string) bool { return strings.Contains(src, "fence_acquire.lua") }
			isAdvance := func(src string) bool { return strings.Contains(src, "fence_advance.lua") }
			pools := make([]redis.Pool, len(servers))
			for i := range servers {
				pools[i] = &heldPool{Pool: plain[i],
					before: func(src string) {
						switch {
						case i == 2 && isAcquire(src):
							<-gate
						case isAdvance(src):
							interlude.Do(func() {
								if _, err := servers[1].Do("DEL", name); err != nil {
									bErr = err
									return
								}
								b := redsync.New(plain...).NewMutex(name, redsync.WithFencing(), redsync.WithTries(1))
								if bErr = b.Lock(); bErr == nil {
									bToken = b.FencingToken()
									_, bErr = b.Unlock()
								}
								openGate.Do(func() { close(gate) })
								<-landed
							})
						}
					},
					after: func(src string) {
						if i == 2 && isAcquire(src) {
							landing.Do(func() { close(landed) })
						}
					},
				}
			}
			// An expiry of a minute makes the per-node timeout 3 s: a
			// busy machine does not fail the rounds.
			a := redsync.New(pools...).NewMutex(name, redsync.WithFencing(), redsync.WithTries(1),
				redsync.WithFailFast(true), redsync.WithExpiry(time.Minute))
			err := a.Lock()
			if bErr != nil || bToken != 8 {
				t.Fatalf("B: Lock(), Unlock() = %v, token %d; want nil, 8", bErr, bToken)
			}
			if err == nil {
				t.Fatalf("A: Lock() = nil with token %d after B held 8; want the fencing round to fail: node 2's counter was at 8", a.FencingToken())
			}
			if !errors.Is(err, redsync.ErrFailed) || !strings.Contains(err.Error(), "node #2") || !strings.Contains(err.Error(), "FENCED") {
				t.Errorf("A: Lock() = %v, want ErrFailed with node #2's FENCED reply", err)
			}
			for i, s := range servers {
				if keys, _ := s.Keys(name); len(keys) != 0 {
					t.Errorf("node %d: lock key left after A's failed try", i)
				}
			}
			if err := a.Lock(); err != nil {
				t.Fatalf("A: second Lock() = %v", err)
			}
			if got := a.FencingToken(); got != 9 {
				t.Errorf("A: FencingToken() = %d, want 9", got)
			}
			if _, err := a.Unlock(); err != nil {
				t.Errorf("A: Unlock() = %v", err)
			}
		})
	}
}

// TestFenceAdvanceScript runs fence_advance.lua, as the file holds it, on
// a redis-server: the node confirms the token (1) only where it raised the
// counter to it.
func TestFenceAdvanceScript(t *testing.T) {
	src, err := os.ReadFile("lua/fence_advance.lua")
	if err != nil {
		t.Fatal(err)
	}
	s := redistest.Start(t)
	const top = "18446744073709551615"
	tests := []struct {
		name    string
		lock    string // the lock key's value; "" for none
		counter string // "" for none
		token   string
		reply   string // the reply's text: 1, 0, or the start of an error
		after   string // the counter afterwards
	}{
		{"no counter", "mine", "", "1", "1", "1"},
		{"counter below", "mine", "7", "8", "1", "8"},
		{"counter below, fewer digits", "mine", "9", "10", "1", "10"},
		{"counter at the token", "mine", "8", "8", "FENCED", "8"},
		{"counter above", "mine", "9", "8", "FENCED", "9"},
		{"counter above, more digits", "mine", "10", "9", "FENCED", "10"},
		{"at the top", "mine", top, top, "FENCED", top},
		{"key gone", "", "7", "8", "LOCKGONE", "7"},
		{"key taken", "other", "7", "8", "0", "7"},
		{"not a token", "mine", "08", "9", "ERR", "08"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.MustDo(t, "DEL", "k", "c")
			if tt.lock != "" {
				s.MustDo(t, "SET", "k", tt.lock)
			}
			if tt.counter != "" {
				s.MustDo(t, "SET", "c", tt.counter)
			}
			r, err := s.Do("EVAL", string(src), "2", "k", "c", "mine", tt.token)
			got := r.Text()
			if err != nil {
				got = err.Error()
			}
			if !strings.HasPrefix(got, tt.reply) {
				t.Errorf("fence_advance.lua with counter %q, token %s = %q, want %s", tt.counter, tt.token, got, tt.reply)
			}
			if after := s.MustDo(t, "GET", "c").Text(); after != tt.after {
				t.Errorf("counter afterwards = %q, want %q", after, tt.after)
			}
		})
	}
}
