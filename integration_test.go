package redsync_test

// Integration tests: the library against real redis-server processes that
// the tests start (internal/redistest), through both driver adapters.

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
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

// A driver makes a redis.Pool for the server at addr and closes what it
// opened with t.Cleanup.
type driver struct {
	name    string
	newPool func(t *testing.T, addr string) redis.Pool
}

var drivers = []driver{
	{"goredis", newGoredisPool},
	{"redigo", newRedigoPool},
}

// newGoredisPool uses a go-redis client with default options, as the
// README and programs written for redsync v4 make it.
func newGoredisPool(t *testing.T, addr string) redis.Pool {
	client := goredislib.NewClient(&goredislib.Options{Addr: addr})
	t.Cleanup(func() {
		if err := client.Close(); err != nil {
			t.Errorf("closing the go-redis client of %s: %v", addr, err)
		}
	})
	return goredis.NewPool(client)
}

func newRedigoPool(t *testing.T, addr string) redis.Pool {
	pool := &redigolib.Pool{
		MaxIdle:     16,
		IdleTimeout: time.Minute,
		DialContext: func(ctx context.Context) (redigolib.Conn, error) {
			return redigolib.DialContext(ctx, "tcp", addr)
		},
	}
	t.Cleanup(func() {
		if err := pool.Close(); err != nil {
			t.Errorf("closing the redigo pool of %s: %v", addr, err)
		}
	})
	return redigo.NewPool(pool)
}

// lockName is the key every integration test locks.
const lockName = "integration-lock"

// roomy gives the per-node timeout of the default expiry (8 s) a margin
// that a loopback server answers within however loaded the machine: 4 s
// instead of 400 ms. Tests that check what every node holds after a call
// use it, so that no node is left out for answering late.
var roomy = redsync.WithTimeoutFactor(0.5)

// callSlack is how much later than the library's own bound (its per-node
// timeouts and retry delays) a call may return before a test calls it
// hung: on a loaded machine running the race detector, timers and
// goroutines run late, by a second or more. It measures no speed (the
// benchmarks do), only that a call does not wait for what it must not.
const callSlack = 5 * time.Second

// nodes is a set of redis-servers started for one test and the Redsync
// over them.
type nodes struct {
	servers []*redistest.Server
	rs      *redsync.Redsync

	mu   sync.Mutex
	kept map[int][]string // per node, keys the test made on purpose
}

// startNodes starts n servers and makes a Redsync over them with driver d.
// When the test ends, it checks that no running node holds a key other
// than those passed to keep.
func startNodes(t *testing.T, d driver, n int) *nodes {
	t.Helper()
	servers := redistest.StartN(t, n)
	pools := make([]redis.Pool, n)
	for i, srv := range servers {
		pools[i] = d.newPool(t, srv.Addr())
	}
	ns := &nodes{servers: servers, rs: redsync.New(pools...), kept: map[int][]string{}}
	// Registered after the servers' and pools' cleanups, so it runs first.
	t.Cleanup(func() { ns.checkNoKeys(t) })
	return ns
}

// keep exempts key on node i from the final check for stray keys.
func (ns *nodes) keep(i int, key string) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	ns.kept[i] = append(ns.kept[i], key)
}

// checkNoKeys fails unless every running node holds only kept keys.
func (ns *nodes) checkNoKeys(t *testing.T) {
	t.Helper()
	ns.mu.Lock()
	defer ns.mu.Unlock()
	for i, srv := range ns.servers {
		if !srv.Running() {
			continue
		}
		n, err := srv.DBSize()
		if err != nil {
			t.Errorf("node %d: DBSIZE: %v", i, err)
			continue
		}
		if n == len(ns.kept[i]) {
			continue
		}
		keys, err := srv.Keys("*")
		if err != nil {
			t.Errorf("node %d: KEYS: %v", i, err)
			continue
		}
		stray := slices.DeleteFunc(keys, func(k string) bool { return slices.Contains(ns.kept[i], k) })
		t.Errorf("node %d: DBSIZE = %d; keys left behind: %q (kept on purpose: %q)", i, n, stray, ns.kept[i])
	}
}

// holders returns the indexes of the nodes where key holds value.
func (ns *nodes) holders(t *testing.T, key, value string) []int {
	t.Helper()
	var idx []int
	for i, srv := range ns.servers {
		if !srv.Running() {
			continue
		}
		rep, err := srv.Do("GET", key)
		if err != nil {
			t.Errorf("node %d: GET %s: %v", i, key, err)
			continue
		}
		if rep.Kind == redistest.KindBulk && rep.Str == value {
			idx = append(idx, i)
		}
	}
	return idx
}

// pttl returns the PTTL of key on node i in milliseconds.
func (ns *nodes) pttl(t *testing.T, i int, key string) int64 {
	t.Helper()
	return ns.servers[i].MustDo(t, "PTTL", key).Int
}

// all returns 0, 1, ..., n-1.
func all(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// forEach runs f in a parallel subtest "driver/N=n" for each driver and
// each n in sizes; each subtest starts servers of its own.
func forEach(t *testing.T, sizes []int, f func(t *testing.T, d driver, n int)) {
	t.Helper()
	for _, d := range drivers {
		for _, n := range sizes {
			t.Run(d.name+"/N="+strconv.Itoa(n), func(t *testing.T) {
				t.Parallel()
				f(t, d, n)
			})
		}
	}
}

// redisErrorNodes returns the Node of every *RedisError in err's tree.
func redisErrorNodes(err error) []int {
	var nodes []int
	var walk func(error)
	walk = func(err error) {
		if re, ok := err.(*redsync.RedisError); ok {
			nodes = append(nodes, re.Node)
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			if inner := u.Unwrap(); inner != nil {
				walk(inner)
			}
		case interface{ Unwrap() []error }:
			for _, inner := range u.Unwrap() {
				walk(inner)
			}
		}
	}
	if err != nil {
		walk(err)
	}
	slices.Sort(nodes)
	return slices.Compact(nodes)
}

func TestIntegrationBasics(t *testing.T) {
	forEach(t, []int{1, 3, 5}, func(t *testing.T, d driver, n int) {
		ns := startNodes(t, d, n)
		m := ns.rs.NewMutex(lockName, roomy)
		if m.Name() != lockName {
			t.Errorf("Name() = %q, want %q", m.Name(), lockName)
		}
		if v := m.Value(); v != "" {
			t.Errorf("Value() before Lock = %q, want empty", v)
		}

		if err := m.Lock(); err != nil {
			t.Fatalf("Lock() = %v, want nil", err)
		}
		// The validity starts when the successful try started, before
		// Lock returned.
		locked := time.Now()
		until := m.Until()
		if !until.After(locked) || until.After(locked.Add(redsync.DefaultExpiry)) {
			t.Errorf("Until() = %v, want in (%v, %v] (Lock's return + expiry)", until, locked, locked.Add(redsync.DefaultExpiry))
		}
		value := m.Value()
		if raw, err := base64.StdEncoding.DecodeString(value); len(value) != 24 || err != nil || len(raw) != 16 {
			t.Errorf("Value() = %q, want 24 chars of base64 (16 bytes)", value)
		}
		if got := ns.holders(t, lockName, value); !slices.Equal(got, all(n)) {
			t.Errorf("nodes holding the value after Lock() = %v, want %v", got, all(n))
		}
		for i := range n {
			if ms := ns.pttl(t, i, lockName); ms <= 0 || ms > redsync.DefaultExpiry.Milliseconds() {
				t.Errorf("node %d: PTTL = %d ms, want (0, %d]", i, ms, redsync.DefaultExpiry.Milliseconds())
			}
		}

		if ok, err := m.Valid(); !ok || err != nil {
			t.Errorf("Valid() = %v, %v; want true, nil", ok, err)
		}
		time.Sleep(5 * time.Millisecond)
		if ok, err := m.Extend(); !ok || err != nil {
			t.Errorf("Extend() = %v, %v; want true, nil", ok, err)
		}
		if !m.Until().After(until) {
			t.Errorf("Until() after Extend() = %v, want after %v", m.Until(), until)
		}
		if m.Value() != value {
			t.Errorf("Value() after Extend() = %q, want %q", m.Value(), value)
		}

		if ok, err := m.Unlock(); !ok || err != nil {
			t.Errorf("Unlock() = %v, %v; want true, nil", ok, err)
		}
		for i, srv := range ns.servers {
			if size, err := srv.DBSize(); size != 0 || err != nil {
				t.Errorf("node %d: DBSIZE after Unlock() = %d, %v; want 0", i, size, err)
			}
		}

		// Locking again takes a fresh value.
		if err := m.Lock(); err != nil {
			t.Fatalf("second Lock() = %v, want nil", err)
		}
		if m.Value() == value {
			t.Errorf("second Lock() kept the value %q, want a fresh one", value)
		}
		if ok, err := m.Unlock(); !ok || err != nil {
			t.Errorf("second Unlock() = %v, %v; want true, nil", ok, err)
		}
	})
}

func TestIntegrationContention(t *testing.T) {
	const workers, rounds = 8, 25
	for _, shared := range []bool{false, true} {
		name := "OwnMutex"
		if shared {
			name = "SharedMutex"
		}
		t.Run(name, func(t *testing.T) {
			forEach(t, []int{1, 3, 5}, func(t *testing.T, d driver, n int) {
				ns := startNodes(t, d, n)
				newMutex := func() *redsync.Mutex {
					// 1 ms between tries: the waiters spin hard. 100000
					// tries are far more than 8 workers need. The
					// spinning loads a 2-core machine so much that a
					// command can take longer than the default per-node
					// timeout (400 ms); an expiry of 30 s gives 1.5 s.
					return ns.rs.NewMutex(lockName,
						redsync.WithExpiry(30*time.Second),
						redsync.WithRetryDelay(time.Millisecond),
						redsync.WithTries(100000))
				}
				sharedMutex := newMutex()

				var (
					inside   atomic.Int32
					overlaps atomic.Int64
					sections atomic.Int64
					wg       sync.WaitGroup
				)
				for w := range workers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						m := sharedMutex
						if !shared {
							m = newMutex()
						}
						for r := range rounds {
							if err := m.Lock(); err != nil {
								t.Errorf("worker %d, round %d: Lock() = %v, want nil", w, r, err)
								return
							}
							if inside.Add(1) != 1 {
								overlaps.Add(1)
							}
							time.Sleep(100 * time.Microsecond)
							inside.Add(-1)
							sections.Add(1)
							if ok, err := m.Unlock(); !ok || err != nil {
								// Go on: the lock expires by itself, and
								// the count below stays exact.
								t.Errorf("worker %d, round %d: Unlock() = %v, %v; want true, nil", w, r, ok, err)
							}
						}
					}()
				}
				wg.Wait()
				if got := overlaps.Load(); got != 0 {
					t.Errorf("%d critical sections overlapped another, want 0", got)
				}
				if got := sections.Load(); got != workers*rounds {
					t.Errorf("%d critical sections ran, want %d", got, workers*rounds)
				}
			})
		})
	}
}

func TestIntegrationNodeDown(t *testing.T) {
	tests := []struct {
		name   string
		n      int
		killed []int
		locks  bool
	}{
		{"1of3", 3, []int{1}, true},
		{"2of5", 5, []int{0, 3}, true},
		{"2of3", 3, []int{0, 2}, false},
		{"3of5", 5, []int{0, 2, 4}, false},
	}
	for _, d := range drivers {
		for _, tt := range tests {
			t.Run(d.name+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				ns := startNodes(t, d, tt.n)
				for _, i := range tt.killed {
					if err := ns.servers[i].Kill(); err != nil {
						t.Fatalf("Kill() node %d: %v", i, err)
					}
				}
				// A per-node timeout of 1 s, so that every live node
				// answers each round. It is also how long a round waits
				// for a killed node behind go-redis, which retries its
				// dials. The failing Lock makes two tries, each with its
				// undo, and waits at most 250 ms between them.
				const (
					nodeTimeout = time.Second
					tries       = 2
				)
				timeout := redsync.WithTimeoutFactor(float64(nodeTimeout) / float64(redsync.DefaultExpiry))
				opts := []redsync.Option{timeout, redsync.WithTries(tries)}
				if tt.locks {
					opts = []redsync.Option{timeout}
				}
				m := ns.rs.NewMutex(lockName, opts...)
				start := time.Now()
				err := m.Lock()
				elapsed := time.Since(start)

				if tt.locks {
					if err != nil {
						t.Fatalf("Lock() with %v of %d nodes killed = %v, want nil", tt.killed, tt.n, err)
					}
					want := slices.DeleteFunc(all(tt.n), func(i int) bool { return slices.Contains(tt.killed, i) })
					if got := ns.holders(t, lockName, m.Value()); !slices.Equal(got, want) {
						t.Errorf("nodes holding the lock = %v, want %v", got, want)
					}
					if ok, err := m.Extend(); !ok {
						t.Errorf("Extend() = %v, %v; want true", ok, err)
					}
					if ok, err := m.Unlock(); !ok {
						t.Errorf("Unlock() = %v, %v; want true", ok, err)
					}
					return
				}

				if !errors.Is(err, redsync.ErrFailed) {
					t.Errorf("Lock() with %v of %d nodes killed = %v, want ErrFailed", tt.killed, tt.n, err)
				}
				var re *redsync.RedisError
				if !errors.As(err, &re) || !slices.Contains(tt.killed, re.Node) {
					t.Errorf("Lock() = %v, want a *RedisError naming a killed node %v", err, tt.killed)
				}
				if got := redisErrorNodes(err); !slices.Equal(got, tt.killed) {
					t.Errorf("the *RedisErrors of Lock() name nodes %v, want exactly the killed %v", got, tt.killed)
				}
				var taken *redsync.ErrTaken
				if errors.As(err, &taken) {
					t.Errorf("Lock() = %v, want no *ErrTaken: nobody holds the lock", err)
				}
				bound := tries*2*nodeTimeout + (tries-1)*250*time.Millisecond
				if limit := bound + callSlack; elapsed > limit {
					t.Errorf("Lock() with a majority down took %v, want at most %v (%v, and %v of slack): it waited for the dead nodes", elapsed, limit, bound, callSlack)
				}
			})
		}
	}
}

// acquireLog is an Observer that keeps the AcquireEvents it is told.
type acquireLog struct {
	mu     sync.Mutex
	events []redsync.AcquireEvent
}

func (l *acquireLog) OnAcquire(_ context.Context, e redsync.AcquireEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}
func (*acquireLog) OnExtend(context.Context, redsync.ExtendEvent)   {}
func (*acquireLog) OnRelease(context.Context, redsync.ReleaseEvent) {}
func (*acquireLog) OnLost(context.Context, redsync.LostEvent)       {}

// last returns the last AcquireEvent told, or fails the test.
func (l *acquireLog) last(t *testing.T) redsync.AcquireEvent {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.events) == 0 {
		t.Fatal("no AcquireEvent, want one per Lock call")
	}
	return l.events[len(l.events)-1]
}

// lastAttempts returns the Attempts of the last AcquireEvent told, or 0.
func (l *acquireLog) lastAttempts() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.events) == 0 {
		return 0
	}
	return l.events[len(l.events)-1].Attempts
}

// waitNoKeys waits up to within until srv holds no key.
func waitNoKeys(t *testing.T, srv *redistest.Server, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		keys, err := srv.Keys("*")
		if err == nil && len(keys) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s still holds keys %q (%v) after %v, want none", srv.Addr(), keys, err, within)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitSubscribed waits until every server has a client subscribed to the
// channel of a Redsync on which its waiters are told their turns: a Lock
// call of a Redsync over them waits for a lock and listens. name is the
// lock's name (the channel does not depend on it).
func waitSubscribed(t *testing.T, servers []*redistest.Server, name string) {
	t.Helper()
	deadline := time.Now().Add(callSlack)
	for i := 0; i < len(servers); {
		rep, err := servers[i].Do("PUBSUB", "CHANNELS", "redsync:wake:*")
		if err == nil && len(rep.Elems) > 0 {
			i++
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d: PUBSUB CHANNELS redsync:wake:* = %s (%v) after %v while %s is awaited, want a channel", i, rep, err, callSlack, name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestIntegrationSlowNode(t *testing.T) {
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			ns := startNodes(t, d, 3)
			const (
				expiry = 2 * time.Second // per-node timeout 100 ms
				slow   = 2
			)
			var log acquireLog
			m := ns.rs.NewMutex(lockName, redsync.WithExpiry(expiry), redsync.WithObserver(&log))
			// The slow node answers nothing until it is resumed, after
			// Lock and Unlock returned: they must not wait for it.
			if err := ns.servers[slow].Pause(); err != nil {
				t.Fatalf("Pause() = %v", err)
			}
			resumed := false
			resume := func() {
				if !resumed {
					resumed = true
					if err := ns.servers[slow].Resume(); err != nil {
						t.Errorf("Resume() = %v", err)
					}
				}
			}
			defer resume()
			if err := m.Lock(); err != nil {
				t.Errorf("Lock() with node %d paused = %v, want nil", slow, err)
			} else {
				tries := log.last(t).Tries
				for _, r := range tries[len(tries)-1].Nodes {
					switch {
					case r.Node == slow && (r.Outcome != redsync.NodeFailed || !errors.Is(r.Err, context.DeadlineExceeded)):
						t.Errorf("the paused node's result = %v, want failed by the per-node timeout", r)
					case r.Node != slow && r.Outcome != redsync.NodeOK:
						t.Errorf("node %d's result = %v, want ok", r.Node, r)
					}
				}
				for _, i := range []int{0, 1} {
					if rep := ns.servers[i].MustDo(t, "GET", lockName); rep.Str != m.Value() {
						t.Errorf("node %d holds %s, want the lock value %q", i, rep, m.Value())
					}
				}
				if ok, err := m.Unlock(); !ok {
					t.Errorf("Unlock() with node %d paused = %v, %v; want true", slow, ok, err)
				}
			}

			// Resumed, the slow node runs the commands it had queued; a
			// lock key they set there must expire by itself.
			resume()
			if ms := ns.pttl(t, slow, lockName); ms == -1 || ms > expiry.Milliseconds() {
				t.Errorf("slow node: PTTL after the pause = %d ms, want no key (-2) or at most %d", ms, expiry.Milliseconds())
			}
			waitNoKeys(t, ns.servers[slow], expiry+callSlack)
		})
	}
}

func TestIntegrationNoScript(t *testing.T) {
	forEach(t, []int{1, 3, 5}, func(t *testing.T, d driver, n int) {
		ns := startNodes(t, d, n)
		flush := func() {
			for _, srv := range ns.servers {
				srv.MustDo(t, "SCRIPT", "FLUSH")
			}
		}
		m := ns.rs.NewMutex(lockName, roomy)
		if err := m.Lock(); err != nil {
			t.Fatalf("Lock() = %v, want nil", err)
		}
		flush()
		if ok, err := m.Extend(); !ok || err != nil {
			t.Errorf("Extend() after SCRIPT FLUSH = %v, %v; want true, nil", ok, err)
		}
		flush()
		if ok, err := m.Valid(); !ok || err != nil {
			t.Errorf("Valid() after SCRIPT FLUSH = %v, %v; want true, nil", ok, err)
		}
		flush()
		if ok, err := m.Unlock(); !ok || err != nil {
			t.Errorf("Unlock() after SCRIPT FLUSH = %v, %v; want true, nil", ok, err)
		}
		flush()
		if err := m.Lock(); err != nil {
			t.Fatalf("Lock() after SCRIPT FLUSH = %v, want nil", err)
		}
		if ok, err := m.Unlock(); !ok || err != nil {
			t.Errorf("Unlock() = %v, %v; want true, nil", ok, err)
		}
	})
}

func TestIntegrationWrongType(t *testing.T) {
	forEach(t, []int{1, 3, 5}, func(t *testing.T, d driver, n int) {
		ns := startNodes(t, d, n)
		lists := all(n/2 + 1) // a majority holds a list under the lock's key
		for _, i := range lists {
			ns.servers[i].MustDo(t, "RPUSH", lockName, "a", "b")
			ns.keep(i, lockName)
		}

		// The default retry delay and 32 tries; seconds per node, so
		// that every node's WRONGTYPE is in the first try.
		var log acquireLog
		m := ns.rs.NewMutex(lockName, roomy, redsync.WithObserver(&log))
		err := m.Lock()
		if !errors.Is(err, redsync.ErrWrongType) || !errors.Is(err, redsync.ErrFailed) {
			t.Errorf("Lock() on a list key = %v, want ErrWrongType and ErrFailed", err)
		}
		var re *redsync.RedisError
		if !errors.As(err, &re) || !slices.Contains(lists, re.Node) || !errors.Is(re, redsync.ErrWrongType) {
			t.Errorf("Lock() = %v, want a *RedisError matching ErrWrongType naming one of nodes %v", err, lists)
		}
		if got := redisErrorNodes(err); !slices.Equal(got, lists) {
			t.Errorf("the *RedisErrors of Lock() name nodes %v, want %v", got, lists)
		}
		if e := log.last(t); e.Attempts != 1 {
			t.Errorf("Lock() on a list key made %d tries, want 1: another try cannot help", e.Attempts)
		}

		for _, i := range lists {
			rep := ns.servers[i].MustDo(t, "LRANGE", lockName, "0", "-1")
			if got, _ := rep.Strings(); !slices.Equal(got, []string{"a", "b"}) {
				t.Errorf("node %d: the list is %s after Lock(), want [a b]", i, rep)
			}
			if ms := ns.pttl(t, i, lockName); ms != -1 {
				t.Errorf("node %d: the list's PTTL is %d after Lock(), want -1 (none)", i, ms)
			}
		}
	})
}

func TestIntegrationExpired(t *testing.T) {
	forEach(t, []int{1, 3, 5}, func(t *testing.T, d driver, n int) {
		ns := startNodes(t, d, n)
		// A per-node timeout of 500 ms rather than the default 50 ms, so
		// that a busy test machine does not turn "expired" into "timed out".
		const expiry = time.Second
		m := ns.rs.NewMutex(lockName, redsync.WithExpiry(expiry), redsync.WithTimeoutFactor(0.5))
		if err := m.Lock(); err != nil {
			t.Fatalf("Lock() = %v, want nil", err)
		}
		// The nodes set the key before Lock returned: it has expired.
		time.Sleep(expiry + 100*time.Millisecond)

		var (
			taken     *redsync.ErrTaken
			nodeTaken *redsync.ErrNodeTaken
		)
		ok, err := m.Unlock()
		if ok || !errors.Is(err, redsync.ErrLockAlreadyExpired) {
			t.Errorf("Unlock() of an expired lock = %v, %v; want false and ErrLockAlreadyExpired", ok, err)
		}
		if errors.As(err, &taken) || errors.As(err, &nodeTaken) {
			t.Errorf("Unlock() of an expired lock = %v, want no *ErrTaken or *ErrNodeTaken", err)
		}

		ok, err = m.Extend()
		if ok || !errors.Is(err, redsync.ErrExtendFailed) || !errors.Is(err, redsync.ErrLockAlreadyExpired) {
			t.Errorf("Extend() of an expired lock = %v, %v; want false, ErrExtendFailed and ErrLockAlreadyExpired", ok, err)
		}
		if errors.As(err, &taken) || errors.As(err, &nodeTaken) {
			t.Errorf("Extend() of an expired lock = %v, want no *ErrTaken or *ErrNodeTaken", err)
		}

		if ok, err := m.Valid(); ok {
			t.Errorf("Valid() of an expired lock = %v, %v; want false", ok, err)
		}
	})
}

func TestIntegrationContext(t *testing.T) {
	forEach(t, []int{1, 3, 5}, func(t *testing.T, d driver, n int) {
		ns := startNodes(t, d, n)

		t.Run("AlreadyCancelled", func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			m := ns.rs.NewMutex(lockName)
			if err := m.LockContext(ctx); !errors.Is(err, redsync.ErrFailed) || !errors.Is(err, context.Canceled) {
				t.Errorf("LockContext(cancelled) = %v, want ErrFailed and context.Canceled", err)
			}
			if err := m.TryLockContext(ctx); !errors.Is(err, redsync.ErrFailed) || !errors.Is(err, context.Canceled) {
				t.Errorf("TryLockContext(cancelled) = %v, want ErrFailed and context.Canceled", err)
			}
			ns.checkNoKeys(t)
		})

		t.Run("TimeoutWhileHeld", func(t *testing.T) {
			holder := ns.rs.NewMutex(lockName, roomy)
			if err := holder.Lock(); err != nil {
				t.Fatalf("holder: Lock() = %v, want nil", err)
			}
			const timeout = 300 * time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			waiter := ns.rs.NewMutex(lockName)
			start := time.Now()
			err := waiter.LockContext(ctx)
			elapsed := time.Since(start)
			if !errors.Is(err, redsync.ErrFailed) || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("LockContext() while held = %v, want ErrFailed and context.DeadlineExceeded", err)
			}
			// The try under way when ctx ends is undone with a per-node
			// timeout of its own.
			nodeTimeout := time.Duration(float64(redsync.DefaultExpiry) * redsync.DefaultTimeoutFactor)
			if limit := timeout + nodeTimeout + callSlack; elapsed > limit {
				t.Errorf("LockContext() with a %v timeout took %v, want at most %v (%v, an undo of %v, and %v of slack)", timeout, elapsed, limit, timeout, nodeTimeout, callSlack)
			}
			if got := ns.holders(t, lockName, holder.Value()); !slices.Equal(got, all(n)) {
				t.Errorf("nodes holding the holder's value = %v, want %v", got, all(n))
			}
			if ok, err := holder.Unlock(); !ok || err != nil {
				t.Errorf("holder: Unlock() = %v, %v; want true, nil", ok, err)
			}
			ns.checkNoKeys(t)
		})

		t.Run("CancelCause", func(t *testing.T) {
			holder := ns.rs.NewMutex(lockName, roomy)
			if err := holder.Lock(); err != nil {
				t.Fatalf("holder: Lock() = %v, want nil", err)
			}
			cause := errors.New("shutting down")
			ctx, cancel := context.WithCancelCause(context.Background())
			timer := time.AfterFunc(100*time.Millisecond, func() { cancel(cause) })
			defer timer.Stop()
			err := ns.rs.NewMutex(lockName).LockContext(ctx)
			if !errors.Is(err, redsync.ErrFailed) || !errors.Is(err, cause) {
				t.Errorf("LockContext() cancelled with a cause = %v, want ErrFailed and the cause", err)
			}
			if ok, err := holder.Unlock(); !ok || err != nil {
				t.Errorf("holder: Unlock() = %v, %v; want true, nil", ok, err)
			}
			ns.checkNoKeys(t)
		})
	})
}

func TestIntegrationSetNXOnExtend(t *testing.T) {
	for _, setNX := range []bool{true, false} {
		t.Run(fmt.Sprintf("SetNX=%v", setNX), func(t *testing.T) {
			forEach(t, []int{1, 3, 5}, func(t *testing.T, d driver, n int) {
				ns := startNodes(t, d, n)
				const expiry = 5 * time.Second
				opts := []redsync.Option{redsync.WithExpiry(expiry), roomy}
				if setNX {
					opts = append(opts, redsync.WithSetNXOnExtend())
				}
				m := ns.rs.NewMutex(lockName, opts...)
				if err := m.Lock(); err != nil {
					t.Fatalf("Lock() = %v, want nil", err)
				}
				ns.servers[0].MustDo(t, "DEL", lockName)

				ok, err := m.Extend()
				holders := ns.holders(t, lockName, m.Value())
				switch {
				case setNX:
					if !ok || err != nil {
						t.Errorf("Extend() = %v, %v; want true, nil", ok, err)
					}
					if !slices.Equal(holders, all(n)) {
						t.Errorf("nodes holding the lock after Extend() = %v, want %v (re-created on node 0)", holders, all(n))
					}
					if ms := ns.pttl(t, 0, lockName); ms <= 0 || ms > expiry.Milliseconds() {
						t.Errorf("node 0: PTTL = %d ms after Extend(), want (0, %d]", ms, expiry.Milliseconds())
					}
				case n == 1:
					if ok || !errors.Is(err, redsync.ErrExtendFailed) || !errors.Is(err, redsync.ErrLockAlreadyExpired) {
						t.Errorf("Extend() = %v, %v; want false, ErrExtendFailed and ErrLockAlreadyExpired", ok, err)
					}
				default:
					if !ok {
						t.Errorf("Extend() = %v, %v; want true: a quorum still holds the lock", ok, err)
					}
					if slices.Contains(holders, 0) {
						t.Errorf("nodes holding the lock after Extend() = %v, want node 0 left out (no WithSetNXOnExtend)", holders)
					}
				}
				m.Unlock()
			})
		})
	}
}

// TestIntegrationOptionAfterNewMutex: an option applied to a Mutex that
// NewMutex returned changes nothing, neither the TTL the nodes get nor
// the validity that Until reports (in redsync v4 the TTL changed; here the
// configuration is fixed at NewMutex, and the two cannot disagree).
func TestIntegrationOptionAfterNewMutex(t *testing.T) {
	ns := startNodes(t, drivers[0], 1)
	m := ns.rs.NewMutex(lockName, redsync.WithExpiry(2*time.Second), roomy)
	redsync.WithExpiry(time.Hour).Apply(m)
	redsync.WithTries(0).Apply(m) // would be an invalid configuration
	start := time.Now()
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil", err)
	}
	if ttl := ns.pttl(t, 0, lockName); ttl <= 0 || ttl > 2000 {
		t.Errorf("PTTL after Lock = %d ms, want within (0, 2000]: the expiry given to NewMutex", ttl)
	}
	if until := m.Until(); until.After(start.Add(2*time.Second)) || until.Before(start) {
		t.Errorf("Until() = %v after Lock at %v, want within the 2s expiry given to NewMutex", until, start)
	}
	if ok, err := m.Unlock(); !ok || err != nil {
		t.Errorf("Unlock() = %v, %v, want true, nil", ok, err)
	}
}
