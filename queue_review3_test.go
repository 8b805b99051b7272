package redsync

import (
	"context"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
)

// Third review of the queue of waiters (handoff.go, free-key design):
// reproductions.

// delayPool wraps a pool (that can be listened to) so that, while armed,
// the scripts that delay picks are held for the returned duration: before
// they are sent (after false: a congested link, or the client stalled
// before it wrote the command), or after they ran on the node, with their
// reply (after true: a slow network, or the client stalled after it sent
// the try). It implements neither ScriptRunner nor Pipeliner: rounds go
// through Get and Eval.
type delayPool struct {
	inner redis.Pool
	armed *atomic.Bool
	after bool
	delay func(script *redis.Script, keysAndArgs []any) time.Duration
	// fail, when set, picks the scripts that return an error instead of
	// being sent (a pool timeout: every connection of the client busy).
	fail func(script *redis.Script, keysAndArgs []any) bool
}

func (p *delayPool) Get(ctx context.Context) (redis.Conn, error) {
	c, err := p.inner.Get(ctx)
	if err != nil {
		return nil, err
	}
	return &delayConn{Conn: c, pool: p}, nil
}

func (p *delayPool) Listen(ctx context.Context, receive func(redis.Message)) (redis.Listener, error) {
	return p.inner.(redis.Subscriber).Listen(ctx, receive)
}

type delayConn struct {
	redis.Conn
	pool *delayPool
}

func (c *delayConn) Eval(script *redis.Script, keysAndArgs ...any) (any, error) {
	var d time.Duration
	if c.pool.armed.Load() {
		if c.pool.fail != nil && c.pool.fail(script, keysAndArgs) {
			return nil, errors.New("review: redis: connection pool timeout")
		}
		if c.pool.delay != nil {
			d = c.pool.delay(script, keysAndArgs)
		}
	}
	if !c.pool.after {
		time.Sleep(d)
	}
	reply, err := c.Conn.Eval(script, keysAndArgs...)
	if c.pool.after {
		time.Sleep(d)
	}
	return reply, err
}

// delayPools returns realPools over servers wrapped in delayPools sharing
// armed.
func delayPools(t *testing.T, servers []*redistest.Server, armed *atomic.Bool, after bool, delay func(*redis.Script, []any) time.Duration) []redis.Pool {
	pools := realPools(t, servers)
	for i, p := range pools {
		pools[i] = &delayPool{inner: p, armed: armed, after: after, delay: delay}
	}
	return pools
}

// slowReplyPools delays the replies of the scripts that delay picks.
func slowReplyPools(t *testing.T, servers []*redistest.Server, armed *atomic.Bool, delay func(*redis.Script) time.Duration) []redis.Pool {
	return delayPools(t, servers, armed, true, func(s *redis.Script, _ []any) time.Duration { return delay(s) })
}

// delayBeforePools delays the sending of the scripts that delay picks.
func delayBeforePools(t *testing.T, servers []*redistest.Server, armed *atomic.Bool, delay func(*redis.Script, []any) time.Duration) []redis.Pool {
	return delayPools(t, servers, armed, false, delay)
}

// queuedEverywhere waits until every server queues w.
func queuedEverywhere(t *testing.T, servers []*redistest.Server, w *waiter) {
	t.Helper()
	eventually(t, "the waiter queued on every node", func() bool {
		for _, srv := range servers {
			if !queuedOn(t, srv, w.member) {
				return false
			}
		}
		return true
	})
}

// TestReview3TurnedWaiterSlowTryStallsQueue breaks promise 3 (liveness):
// "waiters that ... get cancelled while their turn is in flight must not
// leave other waiters stuck beyond a standby wait or two".
//
// W1 is the head of the queue, W2 is behind it. The holder's Unlock
// gives W1 the turn and names W2 standby of rank 1. W1 tries at once; its
// try takes the free key on every node, but its replies are slow (a
// congested link, or W1's process stalled after sending). W2's standby
// try, 100 ms after the release, finds the key held by W1's try and puts
// W2 back in the queue. Then W1's try fails:
//
//   - cancelled: W1's Lock is cancelled while the try is in flight;
//   - timedout: the replies come after the per-node timeout (no cancel
//     at all; W1 goes on waiting).
//
// Either way the try is undone with queue_leave.lua "undo", which deletes
// W1's value on every node and wakes nobody (handoff.go: "a failed try is
// undone by the same script, which puts the waiter back in the queue";
// queue_leave.lua: "It wakes nobody"). The key is free on every node, and
// nothing will wake anyone: no release will come, the standby wait is used
// up, and the failed try was no split vote (no quick retry). The waiters
// wait for their renewal (half their entry's life, 30 s here) or their
// retry delay (1 h).
func TestReview3TurnedWaiterSlowTryStallsQueue(t *testing.T) {
	for _, mode := range []string{"cancelled", "timedout"} {
		t.Run(mode, func(t *testing.T) {
			servers := redistest.StartN(t, 3)
			opts := []Option{WithRetryDelay(time.Hour), WithTries(2), WithExpiry(time.Minute)}
			delay := 1500 * time.Millisecond
			if mode == "timedout" {
				// Per-node timeout 600 ms: the replies come 1 s late.
				opts = append(opts, WithTimeoutFactor(0.01))
				delay = time.Second
			}
			holder := New(realPools(t, servers)...).NewMutex("stall", opts...)
			if err := holder.Lock(); err != nil {
				t.Fatal(err)
			}

			var armed atomic.Bool
			slow := slowReplyPools(t, servers, &armed, func(s *redis.Script) time.Duration {
				if s == queueAcquireScript {
					return delay
				}
				return 0
			})
			w1m := New(slow...).NewMutex("stall", opts...)
			ctx1, cancel1 := context.WithCancel(context.Background())
			defer cancel1()
			w1done := make(chan error, 1)
			go func() { w1done <- w1m.LockContext(ctx1) }()
			w1 := queuedWaiter(t, w1m)
			queuedEverywhere(t, servers, w1)

			w2m := New(realPools(t, servers)...).NewMutex("stall", opts...)
			w2done := startLock(t, w2m)
			w2 := queuedWaiter(t, w2m)
			queuedEverywhere(t, servers, w2)

			armed.Store(true)
			if ok, err := holder.Unlock(); !ok || err != nil {
				t.Fatalf("holder Unlock() = %v, %v", ok, err)
			}
			// W1's turned try is under way; W2's standby try (after 100
			// ms) finds the key held by it.
			time.Sleep(600 * time.Millisecond)
			if mode == "cancelled" {
				cancel1()
				select {
				case err := <-w1done:
					if err == nil {
						t.Fatalf("W1's Lock succeeded although cancelled mid-try; the scenario needs it to give up")
					}
					t.Logf("W1 gave up: %v", err)
				case <-time.After(10 * time.Second):
					t.Fatal("W1's Lock did not return after its ctx was cancelled")
				}
			} else {
				// The try and its undo are over once the late replies came.
				time.Sleep(delay + 500*time.Millisecond)
			}
			armed.Store(false)
			failed := time.Now()
			free := 0
			for _, srv := range servers {
				if srv.MustDo(t, "EXISTS", "stall").Int == 0 {
					free++
				}
			}
			t.Logf("after W1's try failed the key is free on %d of %d nodes; W2 is queued on %d", free, len(servers), countQueued(t, servers, w2.member))
			select {
			case err := <-w2done:
				if err != nil {
					t.Fatalf("W2 Lock() = %v", err)
				}
				t.Logf("W2 got the lock %v after W1's try failed", time.Since(failed))
				w2m.Unlock()
			case err := <-w1done:
				if err != nil {
					t.Fatalf("W1 Lock() = %v", err)
				}
				t.Logf("W1 got the lock %v after its try failed", time.Since(failed))
				w1m.Unlock()
			case <-time.After(5 * time.Second):
				t.Fatalf("no waiter got the lock within 5s after the turned try of the head failed, with the key free on %d of %d nodes (retry delay 1h; the next wake-up is a renewal after 30s)", free, len(servers))
			}
		})
	}
}

// countQueued counts the servers that queue member.
func countQueued(t *testing.T, servers []*redistest.Server, member string) int {
	n := 0
	for _, srv := range servers {
		if queuedOn(t, srv, member) {
			n++
		}
	}
	return n
}

// TestReview3ThreeCrashedWaitersAtHead breaks promise 3 (liveness: "waiters
// that crash ... must not leave other waiters stuck beyond a standby wait
// or two"). release_notify.lua names only two standbys. A process that
// crashed with three Lock calls waiting for the lock (a worker pool: its
// waiters queue one after the other, at the head) leaves three live
// entries for a lock's expiry: the release gives the turn to the first,
// names the second and third standbys, and the live waiter behind them is
// told nothing, although the key is free. It waits for its renewal (half
// its entry's life, 30 s here) or its retry delay (1 h).
// (TestReviewTwoCrashedWaitersAtHead, with two, passes.)
func TestReview3ThreeCrashedWaitersAtHead(t *testing.T) {
	servers := redistest.StartN(t, 3)
	holder := New(realPools(t, servers)...).NewMutex("k3")
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	m := New(realPools(t, servers)...).NewMutex("k3", WithRetryDelay(time.Hour), WithTries(2), WithExpiry(time.Minute))
	done := startLock(t, m)
	w := queuedWaiter(t, m)
	queuedEverywhere(t, servers, w)
	// The crashed process's three waiters, ahead of the live one (lower
	// tickets), each entry still within its life.
	queueCrashedAhead(t, servers, w.member, 3, time.Minute)
	if unlockThenLocked(t, holder, done) {
		m.Unlock()
		return
	}
	t.Fatalf("three crashed waiters at the head kept the live waiter from a free lock for 5s (retry delay 1h, renewal after 30s)")
}

// TestReview3MultiMutexReleaseWakesNobody breaks the promise of
// NewMultiMutex's doc comment and docs/MULTIKEY.md ("its Unlock announces
// the release of every name, which wakes the Lock calls waiting for one of
// the names"), and promise 3 (waiters stuck). multi_release.lua still
// only PUBLISHes on redsync:released:NAME, which no Redsync listens to any
// more: a waiting Lock of a single name is queued (redsync:queue:...) and
// is woken only by a "turn" on its Redsync's channel, which only
// release_notify.lua sends. So when the lock of a name is held by a
// multi-key Mutex, its single-name waiters wait for their retry delay (1 h
// here) or renewal (30 s) after the set is released.
func TestReview3MultiMutexReleaseWakesNobody(t *testing.T) {
	servers := redistest.StartN(t, 3)
	set := New(realPools(t, servers)...).NewMultiMutex([]string{"{order}:a", "{order}:b"})
	if err := set.Lock(); err != nil {
		t.Fatal(err)
	}
	m := New(realPools(t, servers)...).NewMutex("{order}:a", WithRetryDelay(time.Hour), WithTries(2), WithExpiry(time.Minute))
	done := startLock(t, m)
	w := queuedWaiter(t, m)
	queuedEverywhere(t, servers, w)
	start := time.Now()
	if ok, err := set.Unlock(); !ok || err != nil {
		t.Fatalf("multi-key Unlock() = %v, %v", ok, err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Lock() = %v", err)
		}
		t.Logf("the waiter of one name got the lock %v after the set's release", time.Since(start))
		m.Unlock()
	case <-time.After(5 * time.Second):
		t.Fatalf("the release of a multi-key lock did not wake the queued waiter of one of its names within 5s (retry delay 1h, renewal after 30s)")
	}
}

// TestReview3ExclusionChaos attacks promise 1 (mutual exclusion) with a mix
// of everything on five real servers: three Redsyncs (processes) with
// goroutines of several kinds (default, WithFailFast, a
// WithReleaseNotification(false) poller, local hand-offs between the
// goroutines of one Redsync, queue waiters, cancelled Lock calls), a
// v4-style client (SET NX PX on every node, compare-and-delete), while a
// chaos goroutine pauses a random node (SIGSTOP) for 20-250 ms at a time.
// A holder enters the critical section only while time.Now() is before
// its validity's end and leaves it well before; two inside at once is a
// double grant. It held in every run (coverage, not a finding).
func TestReview3ExclusionChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("stress")
	}
	servers := redistest.StartN(t, 5)
	const (
		name     = "chaos"
		expiry   = 2 * time.Second
		duration = 12 * time.Second
	)
	var (
		inside, doubles, locks atomic.Int32
		stop                   = make(chan struct{})
		wg                     sync.WaitGroup
	)
	critical := func(until time.Time) {
		if !time.Now().Add(50 * time.Millisecond).Before(until) {
			return // too little validity left to enter safely
		}
		locks.Add(1)
		if inside.Add(1) != 1 {
			doubles.Add(1)
		}
		time.Sleep(time.Duration(mathrand.IntN(2000)) * time.Microsecond)
		inside.Add(-1)
	}
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	for p := range 3 {
		rs := New(realPoolsCtx(t, servers)...)
		for g := range 3 {
			var opts []Option
			switch (p + g) % 3 {
			case 1:
				opts = append(opts, WithFailFast(true))
			case 2:
				if g == 2 {
					opts = append(opts, WithReleaseNotification(false))
				}
			}
			m := rs.NewMutex(name, append(opts, WithExpiry(expiry), WithTries(1<<20), WithRetryDelay(30*time.Millisecond))...)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stopped() {
					ctx, cancel := context.WithTimeout(context.Background(), time.Duration(5+mathrand.IntN(300))*time.Millisecond)
					err := m.LockContext(ctx)
					cancel()
					if err != nil {
						continue
					}
					critical(m.Until())
					m.Unlock()
				}
			}()
		}
	}
	// A v4-style client: SET NX PX on every node, quorum within the
	// validity, compare-and-delete.
	clients := make([]*goredislib.Client, len(servers))
	for i, s := range servers {
		clients[i] = goredislib.NewClient(&goredislib.Options{Addr: s.Addr(), MaxRetries: -1, ContextTimeoutEnabled: true})
		t.Cleanup(func() { clients[i].Close() })
	}
	del := goredislib.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; !stopped(); n++ {
			value := fmt.Sprintf("v4-%d-%d", n, mathrand.Int64())
			start := time.Now()
			var got atomic.Int32
			var cwg sync.WaitGroup
			for _, c := range clients {
				cwg.Add(1)
				go func() {
					defer cwg.Done()
					ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
					defer cancel()
					if ok, err := c.SetNX(ctx, name, value, expiry).Result(); err == nil && ok {
						got.Add(1)
					}
				}()
			}
			cwg.Wait()
			until := start.Add(expiry - expiry/100 - 2*time.Millisecond)
			if got.Load() >= 3 && time.Now().Before(until) {
				critical(until)
			}
			for _, c := range clients {
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				del.Run(ctx, c, []string{name}, value)
				cancel()
			}
			time.Sleep(time.Duration(mathrand.IntN(20)) * time.Millisecond)
		}
	}()
	// Chaos: pause a random node now and then.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stopped() {
			srv := servers[mathrand.IntN(len(servers))]
			if srv.Pause() == nil {
				time.Sleep(time.Duration(20+mathrand.IntN(230)) * time.Millisecond)
				srv.Resume()
			}
			time.Sleep(time.Duration(100+mathrand.IntN(400)) * time.Millisecond)
		}
	}()
	time.Sleep(duration)
	close(stop)
	wg.Wait()
	t.Logf("%d critical sections", locks.Load())
	if d := doubles.Load(); d > 0 {
		t.Errorf("%d times two holders inside their validity at once", d)
	}
}
