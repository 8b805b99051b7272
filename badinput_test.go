package redsync_test

// The bad-input suite: every bad configuration and every error reply of
// ../shared/REDLOCK.md's fault table, through both adapters. Each case
// checks that the error names the problem (errors.Is on the sentinels,
// errors.As on *RedisError with the node's index), and afterwards that no
// key was left on any node and no goroutine outlived the case.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	redigolib "github.com/gomodule/redigo/redis"
	goredislib "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/goredis"
	"github.com/go-redlock/redsync/redis/redigo"
)

// A badInputDriver makes a pool for addr, authenticating with password
// when it is not empty, and closes it with t.Cleanup.
type badInputDriver struct {
	name    string
	newPool func(t *testing.T, addr, password string) redis.Pool
}

var badInputDrivers = []badInputDriver{
	{"goredis", func(t *testing.T, addr, password string) redis.Pool {
		client := goredislib.NewClient(&goredislib.Options{Addr: addr, Password: password})
		t.Cleanup(func() { client.Close() })
		return goredis.NewPool(client)
	}},
	{"redigo", func(t *testing.T, addr, password string) redis.Pool {
		pool := &redigolib.Pool{
			MaxIdle: 4,
			DialContext: func(ctx context.Context) (redigolib.Conn, error) {
				return redigolib.DialContext(ctx, "tcp", addr, redigolib.DialPassword(password))
			},
		}
		t.Cleanup(func() { pool.Close() })
		return redigo.NewPool(pool)
	}},
}

// badEnv is a case's lock nodes and the pools over them.
type badEnv struct {
	t        *testing.T
	driver   badInputDriver
	servers  []*redistest.Server // the live nodes, checked for stray keys
	pools    []redis.Pool
	password string // given to the pools
	keys     int    // keys the case itself left on the nodes, in all
}

// start starts n nodes with extra arguments and adds a pool for each.
func (e *badEnv) start(n int, extra ...string) {
	e.t.Helper()
	for _, s := range redistest.StartN(e.t, n, extra...) {
		e.servers = append(e.servers, s)
		e.pools = append(e.pools, e.driver.newPool(e.t, s.Addr(), e.password))
	}
}

// deadPool adds a pool for an address where nothing listens.
func (e *badEnv) deadPool() {
	e.t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	e.pools = append(e.pools, e.driver.newPool(e.t, addr, ""))
}

// fastFail are the options of cases whose errors another try might cure:
// few tries, short delays.
var fastFail = []redsync.Option{redsync.WithTries(2), redsync.WithRetryDelay(10 * time.Millisecond)}

// everyNode are the options of cases that expect an answer from every
// node, within a per-node timeout of seconds (see roomy).
var everyNode = append([]redsync.Option{roomy}, fastFail...)

// badInputCase is one row of the suite.
type badInputCase struct {
	name string
	// setup starts the nodes (and breaks them) and returns the mutex.
	setup func(e *badEnv) *redsync.Mutex
	// act runs the operation under test; the default is Lock.
	act func(ctx context.Context, m *redsync.Mutex) error
	// want checks the error.
	want func(t *testing.T, err error)
}

func TestBadInput(t *testing.T) {
	lock := func(ctx context.Context, m *redsync.Mutex) error { return m.LockContext(ctx) }
	for _, tc := range badInputCases() {
		for _, d := range badInputDrivers {
			t.Run(tc.name+"/"+d.name, func(t *testing.T) {
				ignore := goleak.IgnoreCurrent()
				// Registered first, so it runs last: after the clients and
				// the servers are closed.
				t.Cleanup(func() {
					goleak.VerifyNone(t, ignore,
						goleak.IgnoreAnyFunction("github.com/go-redlock/redsync/internal/redistest.spawnLoop"))
				})
				e := &badEnv{t: t, driver: d}
				m := tc.setup(e)
				act := tc.act
				if act == nil {
					act = lock
				}
				err := act(context.Background(), m)
				tc.want(t, err)
				if err != nil && strings.Contains(err.Error(), "\n\n") {
					t.Errorf("error text has an empty line: %q", err)
				}
				e.checkKeys()
			})
		}
	}
}

// checkKeys fails the test when the nodes hold more keys than the case
// left on purpose. Replicas may lag their primary for a moment.
func (e *badEnv) checkKeys() {
	e.t.Helper()
	deadline := time.Now().Add(callSlack)
	for {
		total := 0
		var per []int
		for _, s := range e.servers {
			n, err := s.DBSize()
			if err != nil {
				e.t.Fatalf("DBSIZE: %v", err)
			}
			total += n
			per = append(per, n)
		}
		if total == e.keys {
			return
		}
		if time.Now().After(deadline) {
			e.t.Errorf("the nodes hold %v keys, want %d in all: stray keys", per, e.keys)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wantConfig returns a check that err matches ErrInvalidConfig and names
// the problem.
func wantConfig(problem string) func(t *testing.T, err error) {
	return func(t *testing.T, err error) {
		t.Helper()
		if !errors.Is(err, redsync.ErrInvalidConfig) || !strings.Contains(err.Error(), problem) {
			t.Errorf("error = %v, want ErrInvalidConfig naming %q", err, problem)
		}
	}
}

// nodeErrors returns the *RedisError values in err by node index.
func nodeErrors(err error) map[int]*redsync.RedisError {
	found := map[int]*redsync.RedisError{}
	var walk func(error)
	walk = func(err error) {
		var re *redsync.RedisError
		switch e := err.(type) {
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
		default:
			if errors.As(err, &re) {
				found[re.Node] = re
			}
		}
	}
	walk(err)
	return found
}

// wantNodes returns a check that err matches ErrFailed (and sentinel, when
// not nil) and holds a *RedisError for exactly the nodes listed, each
// naming the node and containing text (or one of its "|"-separated
// alternatives).
func wantNodes(sentinel error, text string, nodes ...int) func(t *testing.T, err error) {
	return func(t *testing.T, err error) {
		t.Helper()
		if !errors.Is(err, redsync.ErrFailed) {
			t.Errorf("error = %v, want ErrFailed", err)
		}
		if sentinel != nil && !errors.Is(err, sentinel) {
			t.Errorf("error = %v, want it to match %v", err, sentinel)
		}
		found := nodeErrors(err)
		var got []int
		for node, re := range found {
			got = append(got, node)
			matched := slices.ContainsFunc(strings.Split(text, "|"), func(alt string) bool {
				return strings.Contains(re.Error(), alt)
			})
			if !strings.Contains(re.Error(), fmt.Sprintf("node #%d", node)) || !matched {
				t.Errorf("node error %q, want it to name node #%d and contain %q", re, node, text)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, nodes) {
			t.Errorf("RedisError for nodes %v, want %v; error: %v", got, nodes, err)
		}
	}
}

func wantNil(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("error = %v, want nil", err)
	}
}

// mutex returns a mutex over e's pools.
func (e *badEnv) mutex(name string, opts ...redsync.Option) *redsync.Mutex {
	return redsync.New(e.pools...).NewMutex(name, opts...)
}

// readonlyReplicas starts a primary and two replicas of it, and gives
// the replicas as nodes 0 and 1, the primary as node 2.
func (e *badEnv) readonlyReplicas() {
	e.t.Helper()
	// No wait before the replicas' full sync (5 s by default).
	primary := redistest.Start(e.t, "--repl-diskless-sync-delay", "0")
	e.start(2, "--replicaof", "127.0.0.1", fmt.Sprint(primary.Port()))
	e.servers = append(e.servers, primary)
	e.pools = append(e.pools, e.driver.newPool(e.t, primary.Addr(), ""))
	for _, s := range e.servers[:2] {
		pollUntil(e.t, "the replication link", func() bool {
			rep, err := s.Do("INFO", "replication")
			return err == nil && strings.Contains(rep.Str, "master_link_status:up")
		})
	}
}

// TestReadonlyReplicasTriesCounted: a Lock whose tries fail with node
// errors makes no more tries than WithTries, the one that joins the
// queue of waiters and a few that its own undos' wake-ups bring forward,
// also when wake-ups keep coming. Replicas given as nodes echo their primary's messages:
// the undo of every try (which took the key on the primary alone)
// published a turn that a quorum of nodes delivered, and each such turn
// brought an extra try forward, which did not count: a Lock with
// WithTries(2) went on for minutes (hundreds of tries) with go-redis.
func TestReadonlyReplicasTriesCounted(t *testing.T) {
	const tries = 2
	for _, d := range badInputDrivers {
		t.Run(d.name, func(t *testing.T) {
			e := &badEnv{t: t, driver: d}
			e.readonlyReplicas()
			log := &acquireLog{}
			m := e.mutex("bad", roomy, redsync.WithTries(tries), redsync.WithRetryDelay(10*time.Millisecond), redsync.WithObserver(log))
			err := m.Lock()
			wantNodes(nil, "READONLY", 0, 1)(t, err)
			log.mu.Lock()
			defer log.mu.Unlock()
			if len(log.events) != 1 {
				t.Fatalf("%d acquire events, want 1", len(log.events))
			}
			// The try that joins the queue of waiters is extra, and so
			// are up to three in a row that the echoed wake-ups of the
			// Lock's own undos bring forward (maxOwnTurns).
			if n, most := log.events[0].Attempts, tries+1+3; n > most {
				t.Errorf("Lock with WithTries(%d) made %d tries, each failed by READONLY on a quorum, want at most %d", tries, n, most)
			}
			e.checkKeys()
		})
	}
}

// pollUntil polls cond every 20 ms for up to 10 s.
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func badInputCases() []badInputCase {
	// The Lock calls of the case "wrong-type key on every node", one per
	// driver, one after the other.
	var wrongTypeLog acquireLog
	return []badInputCase{
		{
			name:  "empty name",
			setup: func(e *badEnv) *redsync.Mutex { e.start(1); return e.mutex("") },
			want:  wantConfig("empty mutex name"),
		},
		{
			name:  "zero expiry",
			setup: func(e *badEnv) *redsync.Mutex { e.start(1); return e.mutex("bad", redsync.WithExpiry(0)) },
			want:  wantConfig("expiry is 0s"),
		},
		{
			name:  "negative expiry",
			setup: func(e *badEnv) *redsync.Mutex { e.start(1); return e.mutex("bad", redsync.WithExpiry(-time.Second)) },
			want:  wantConfig("expiry is -1s"),
		},
		{
			name: "expiry below the per-node timeout",
			setup: func(e *badEnv) *redsync.Mutex {
				e.start(1)
				return e.mutex("bad", redsync.WithExpiry(10*time.Millisecond))
			},
			want: wantConfig("per-node timeout"),
		},
		{
			name: "expiry leaving no validity",
			setup: func(e *badEnv) *redsync.Mutex {
				e.start(1)
				return e.mutex("bad", redsync.WithExpiry(4*time.Millisecond), redsync.WithTimeoutFactor(0.5))
			},
			want: wantConfig("too short"),
		},
		{
			name:  "zero tries",
			setup: func(e *badEnv) *redsync.Mutex { e.start(1); return e.mutex("bad", redsync.WithTries(0)) },
			want:  wantConfig("tries is 0"),
		},
		{
			name:  "no pools",
			setup: func(e *badEnv) *redsync.Mutex { return e.mutex("bad") },
			want:  wantConfig("no Redis pools"),
		},
		{
			name: "nil pool",
			setup: func(e *badEnv) *redsync.Mutex {
				e.start(1)
				e.pools = append(e.pools, nil)
				return e.mutex("bad")
			},
			want: wantConfig("pool #1 is nil"),
		},
		{
			name: "restart guard shorter than the expiry",
			setup: func(e *badEnv) *redsync.Mutex {
				e.start(1)
				return e.mutex("bad", redsync.WithExpiry(time.Second), redsync.WithRestartGuard(time.Millisecond))
			},
			want: wantConfig("restart guard"),
		},
		{
			name:  "cancelled ctx",
			setup: func(e *badEnv) *redsync.Mutex { e.start(3); return e.mutex("bad") },
			act: func(ctx context.Context, m *redsync.Mutex) error {
				ctx, cancel := context.WithCancel(ctx)
				cancel()
				return m.LockContext(ctx)
			},
			want: func(t *testing.T, err error) {
				if !errors.Is(err, redsync.ErrFailed) || !errors.Is(err, context.Canceled) {
					t.Errorf("LockContext(cancelled) = %v, want ErrFailed and context.Canceled", err)
				}
			},
		},
		{
			name: "ctx ending while the lock is taken",
			setup: func(e *badEnv) *redsync.Mutex {
				e.start(3)
				holder := e.mutex("bad", roomy)
				if err := holder.Lock(); err != nil {
					e.t.Fatal(err)
				}
				e.t.Cleanup(func() { holder.Unlock() })
				e.keys = 3 // the holder's, until its cleanup
				return e.mutex("bad")
			},
			act: func(ctx context.Context, m *redsync.Mutex) error {
				ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
				defer cancel()
				return m.LockContext(ctx)
			},
			want: func(t *testing.T, err error) {
				if !errors.Is(err, redsync.ErrFailed) || !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("LockContext(deadline) = %v, want ErrFailed and context.DeadlineExceeded", err)
				}
			},
		},
		{
			name: "huge value (WithValue)",
			setup: func(e *badEnv) *redsync.Mutex {
				e.start(1)
				return e.mutex("bad", redsync.WithValue(strings.Repeat("v", 5000)))
			},
			act: func(ctx context.Context, m *redsync.Mutex) error {
				_, err := m.UnlockContext(ctx)
				return err
			},
			want: wantConfig("lock value is 5000 bytes"),
		},
		{
			name: "huge value (WithGenValueFunc)",
			setup: func(e *badEnv) *redsync.Mutex {
				e.start(1)
				return e.mutex("bad", redsync.WithGenValueFunc(func() (string, error) { return strings.Repeat("v", 5000), nil }))
			},
			want: wantConfig("returned 5000 bytes"),
		},
		{
			name: "empty value (WithGenValueFunc)",
			setup: func(e *badEnv) *redsync.Mutex {
				e.start(1)
				return e.mutex("bad", redsync.WithGenValueFunc(func() (string, error) { return "", nil }))
			},
			want: wantConfig("returned 0 bytes"),
		},
		{
			name: "value generator error",
			setup: func(e *badEnv) *redsync.Mutex {
				e.start(1)
				return e.mutex("bad", redsync.WithGenValueFunc(func() (string, error) { return "", errors.New("no entropy") }))
			},
			want: func(t *testing.T, err error) {
				if !errors.Is(err, redsync.ErrFailed) || !strings.Contains(err.Error(), "no entropy") {
					t.Errorf("error = %v, want ErrFailed carrying the generator's error", err)
				}
			},
		},
		{
			name: "wrong-type key on every node",
			setup: func(e *badEnv) *redsync.Mutex {
				e.start(3)
				for _, s := range e.servers {
					s.MustDo(e.t, "LPUSH", "bad", "item")
				}
				e.keys = 3
				return e.mutex("bad", roomy, redsync.WithObserver(&wrongTypeLog))
			},
			act: func(ctx context.Context, m *redsync.Mutex) error {
				// WRONGTYPE is permanent: Lock must not spend its 32 tries.
				err := m.LockContext(ctx)
				if n := wrongTypeLog.lastAttempts(); n != 1 {
					return fmt.Errorf("Lock made %d tries; it must stop retrying on WRONGTYPE: %w", n, err)
				}
				return err
			},
			want: wantNodes(redsync.ErrWrongType, "WRONGTYPE", 0, 1, 2),
		},
		{
			name: "wrong-type key on a minority",
			setup: func(e *badEnv) *redsync.Mutex {
				e.start(3)
				e.servers[0].MustDo(e.t, "HSET", "bad", "field", "value")
				e.keys = 1
				return e.mutex("bad", roomy)
			},
			act: func(ctx context.Context, m *redsync.Mutex) error {
				if err := m.LockContext(ctx); err != nil {
					return err
				}
				_, err := m.UnlockContext(ctx)
				return err
			},
			want: wantNil,
		},
		{
			name: "OOM on a majority",
			setup: func(e *badEnv) *redsync.Mutex {
				e.start(3)
				for _, s := range e.servers[:2] {
					s.MustDo(e.t, "CONFIG", "SET", "maxmemory-policy", "noeviction")
					s.MustDo(e.t, "CONFIG", "SET", "maxmemory", "1")
				}
				return e.mutex("bad", everyNode...)
			},
			want: wantNodes(nil, "OOM", 0, 1),
		},
		{
			name: "READONLY replicas",
			setup: func(e *badEnv) *redsync.Mutex {
				e.readonlyReplicas()
				return e.mutex("bad", everyNode...)
			},
			want: wantNodes(nil, "READONLY", 0, 1),
		},
		{
			name: "MISCONF on a majority",
			setup: func(e *badEnv) *redsync.Mutex {
				e.start(3, "--save", "3600 1", "--stop-writes-on-bgsave-error", "yes", "--enable-protected-configs", "yes")
				for _, s := range e.servers[:2] {
					breakBGSave(e.t, s)
				}
				return e.mutex("bad", everyNode...)
			},
			want: wantNodes(nil, "MISCONF", 0, 1),
		},
		{
			name: "NOSCRIPT after SCRIPT FLUSH",
			setup: func(e *badEnv) *redsync.Mutex {
				e.start(3)
				m := e.mutex("bad", roomy)
				if err := m.Lock(); err != nil {
					e.t.Fatal(err)
				}
				if _, err := m.Unlock(); err != nil {
					e.t.Fatal(err)
				}
				for _, s := range e.servers {
					s.MustDo(e.t, "SCRIPT", "FLUSH")
				}
				return m
			},
			act: func(ctx context.Context, m *redsync.Mutex) error {
				// Every script call falls back to EVAL once.
				if err := m.LockContext(ctx); err != nil {
					return err
				}
				if _, err := m.ExtendContext(ctx); err != nil {
					return err
				}
				_, err := m.UnlockContext(ctx)
				return err
			},
			want: wantNil,
		},
		{
			name: "NOAUTH",
			setup: func(e *badEnv) *redsync.Mutex {
				e.start(3, "--requirepass", "secret")
				return e.mutex("bad", roomy)
			},
			want: wantNodes(nil, "NOAUTH", 0, 1, 2),
		},
		{
			name: "WRONGPASS",
			setup: func(e *badEnv) *redsync.Mutex {
				e.password = "not-the-secret"
				e.start(3, "--requirepass", "secret")
				return e.mutex("bad", roomy)
			},
			want: wantNodes(nil, "WRONGPASS", 0, 1, 2),
		},
		{
			name: "dead address on a majority",
			setup: func(e *badEnv) *redsync.Mutex {
				e.deadPool()
				e.deadPool()
				e.start(1)
				return e.mutex("bad", fastFail...)
			},
			// go-redis retries failed dials with a back-off (5 dials by
			// default) that outlasts the per-node timeout.
			want: wantNodes(nil, "connection refused|no reply within the per-node timeout", 0, 1),
		},
		{
			name: "dead address on a minority",
			setup: func(e *badEnv) *redsync.Mutex {
				e.start(2)
				e.deadPool()
				return e.mutex("bad", roomy)
			},
			act: func(ctx context.Context, m *redsync.Mutex) error {
				if err := m.LockContext(ctx); err != nil {
					return err
				}
				_, err := m.UnlockContext(ctx)
				return err
			},
			want: wantNil,
		},
	}
}

// breakBGSave makes s fail its background saves, so that it refuses writes
// with MISCONF: its working directory is removed (a root process can write
// in any directory, but not in one that no longer exists).
func breakBGSave(t *testing.T, s *redistest.Server) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "gone")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s.MustDo(t, "CONFIG", "SET", "dir", dir)
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	// Registered after the server's cleanup, so it runs first: with a save
	// point and no directory, the server refuses SIGTERM (its shutdown
	// save fails) and is killed only after redistest.StopTimeout.
	t.Cleanup(func() { s.Do("CONFIG", "SET", "save", "") })
	s.MustDo(t, "BGSAVE")
	pollUntil(t, "the failed BGSAVE", func() bool {
		rep, err := s.Do("INFO", "persistence")
		return err == nil && strings.Contains(rep.Str, "rdb_last_bgsave_status:err") &&
			strings.Contains(rep.Str, "rdb_bgsave_in_progress:0")
	})
}
