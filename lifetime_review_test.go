package redsync

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redlock/redsync/redis"
)

// Tests from a review that tried to break the lifetime promises of
// lease.go, do.go and Unlock/Extend in mutex.go (docs/LIFETIME.md, "Do",
// "Mutex.Context and WithAutoExtend", "Local hand-off"; the doc comments of
// Context, Do, WithAutoExtend, WithMaxHold, UnlockContext, ExtendContext).
// Each comment describes the defect as the review found it, in the present
// tense of that code (every one is fixed since), then the promise that the
// test checks.

// valueGate holds, on the nodes of gatedPools, the extend commands of one
// value (set with hold) until open is called or the command's context
// ends: an extension on its way over a slow link, still within its
// per-node timeout. Extensions of other values pass.
type valueGate struct {
	mu       sync.Mutex
	value    string
	opened   chan struct{}
	once     sync.Once
	held     atomic.Int32 // extend commands of value received
	executed atomic.Int32 // extend commands of value run on a node
}

func newValueGate() *valueGate { return &valueGate{opened: make(chan struct{})} }

func (g *valueGate) hold(value string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.value = value
}

func (g *valueGate) holds(value string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.value != "" && g.value == value
}

func (g *valueGate) open() { g.once.Do(func() { close(g.opened) }) }

type gatedPool struct {
	*fakeNode
	gate *valueGate
}

func (p *gatedPool) Get(ctx context.Context) (redis.Conn, error) {
	conn, _ := p.fakeNode.Get(ctx)
	return &gatedConn{Conn: conn, pool: p, ctx: ctx}, nil
}

type gatedConn struct {
	redis.Conn
	pool *gatedPool
	ctx  context.Context
}

func (c *gatedConn) Eval(script *redis.Script, keysAndArgs ...any) (any, error) {
	g := c.pool.gate
	if script == extendScript && g.holds(keysAndArgs[1].(string)) {
		g.held.Add(1)
		select {
		case <-g.opened:
		case <-c.ctx.Done():
			return nil, c.ctx.Err()
		}
		defer g.executed.Add(1)
	}
	return c.Conn.Eval(script, keysAndArgs...)
}

func gatedPools(c *fakeCluster, g *valueGate) []redis.Pool {
	pools := make([]redis.Pool, len(c.nodes))
	for i, n := range c.nodes {
		pools[i] = &gatedPool{fakeNode: n, gate: g}
	}
	return pools
}

// TestFailedHandOffUnlockCanBeRetried: Unlock finds a waiter of
// the same Redsync and hands the lock over; two of three nodes fail (a
// connection reset), so the hand-off misses its quorum and is undone, and
// the undo fails on the same two nodes. Unlock returns false with the
// node errors, not ErrLockAlreadyExpired. unlock returns handOver's result
// directly and never calls giveBack, so the acquisition stays taken: the
// retry, once the nodes are back, sends nothing and returns
// ErrLockAlreadyExpired, and the holder's value stays on the two nodes
// that nobody can release, blocking every Lock for one expiry.
//
// Promise: "An Unlock that released on no quorum for other reasons
// than expiry (node errors, ctx ended) leaves the acquisition as it was,
// so that Unlock can be called again" (UnlockContext); no key is left
// that nobody holds.
func TestFailedHandOffUnlockCanBeRetried(t *testing.T) {
	c := newFakeCluster(3)
	ctx, cancel := context.WithCancel(context.Background())
	holder, waiter, _, done := handOffScene(t, c, ctx, nil, nil)
	defer func() {
		cancel()
		if err := <-done; err == nil {
			waiter.Unlock()
		}
	}()
	value := holder.Value()

	reset := errors.New("connection reset")
	c.nodes[1].setErr(reset)
	c.nodes[2].setErr(reset)
	ok, err := holder.Unlock()
	if ok || err == nil || errors.Is(err, ErrLockAlreadyExpired) {
		t.Fatalf("Unlock() with 2 of 3 nodes failing = %v, %v; want false and the node errors (the scene needs a retriable failure)", ok, err)
	}
	c.nodes[1].setErr(nil)
	c.nodes[2].setErr(nil)

	ok, err = holder.Unlock()
	if !ok || err != nil {
		t.Errorf("Unlock() retried after a failure for node errors = %v, %v; want it to act again and release (true, nil)", ok, err)
	}
	if n := c.holders("k", value); n != 0 {
		t.Errorf("%d nodes still hold the holder's value after its retried Unlock; nobody can release them now", n)
	}
}

// TestSetNXExtensionOfReplacedAcquisition: with
// WithSetNXOnExtend, Unlock waits only for the extensions registered on
// the current acquisition (lockCalls.extending, and the lease's
// inFlight). An extension of the Mutex's previous acquisition A, still on
// its way (and answered within its per-node timeout: not a late command),
// is not waited for:
//
//  1. A's keys expire on the nodes while an extension of A is on its way
//     (a manual Extend, or the extender's round, which stopping does not
//     cut short with SetNX);
//  2. a Lock in another goroutine on the same Mutex, waiting for the
//     expiry as the Mutex doc says it may, takes the lock: acquisition B;
//  3. Unlock releases B at once;
//  4. A's extension lands and, finding no key, sets A's value again on
//     every node. The manual Extend even returns true.
//
// A's value is then held by nobody: Unlock and Extend send nothing, and
// every Lock fails for one expiry.
//
// Promise: "With WithSetNXOnExtend ... Unlock lets the round in
// flight finish and waits for it" (docs/LIFETIME.md); no key is left that
// nobody holds except by a command past its per-node timeout (README,
// Safety notes, "Late commands").
func TestSetNXExtensionOfReplacedAcquisition(t *testing.T) {
	tests := []struct {
		name string
		auto bool
	}{{"manual Extend", false}, {"automatic extension", true}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeCluster(3)
			g := newValueGate()
			defer g.open()
			// A per-node timeout of 3 minutes: the extension of A lands
			// well within it.
			opts := []Option{WithExpiry(time.Hour), WithSetNXOnExtend(), WithRetryDelay(0)}
			if tt.auto {
				opts = append(opts, WithAutoExtend(10*time.Millisecond))
			}
			m := New(gatedPools(c, g)...).NewMutex("k", opts...)
			m.now = c.clock.Now
			if err := m.Lock(); err != nil {
				t.Fatalf("Lock() = %v", err)
			}
			a := m.Value()
			g.hold(a)

			extended := make(chan error, 1)
			if !tt.auto {
				go func() {
					ok, err := m.Extend()
					if err == nil && !ok {
						err = errors.New("not extended")
					}
					extended <- err
				}()
			}
			eventually(t, "an extension of A held on every node", func() bool { return g.held.Load() >= int32(len(c.nodes)) })

			deleteKey(c.nodes, "k") // A expires on the nodes
			if err := m.Lock(); err != nil {
				t.Fatalf("Lock() after A expired = %v", err)
			}
			if m.Value() == a {
				t.Fatal("the second Lock kept A's value")
			}
			// Unlock of B waits for A's extension: it could set the key
			// again after the release.
			type result struct {
				ok  bool
				err error
			}
			unlocked := make(chan result, 1)
			go func() {
				ok, err := m.Unlock()
				unlocked <- result{ok, err}
			}()
			select {
			case r := <-unlocked:
				t.Fatalf("Unlock() of B = %v, %v while A's extension was still on its way", r.ok, r.err)
			case <-time.After(50 * time.Millisecond):
			}
			g.open()
			eventually(t, "A's extension run on every node", func() bool { return g.executed.Load() >= int32(len(c.nodes)) })
			select {
			case r := <-unlocked:
				if !r.ok || r.err != nil {
					t.Fatalf("Unlock() of B = %v, %v", r.ok, r.err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Unlock() of B has not returned 10s after A's extension ran")
			}
			var extendErr error
			if !tt.auto {
				select {
				case extendErr = <-extended:
				case <-time.After(10 * time.Second):
					t.Fatal("Extend() has not returned 10s after its commands ran")
				}
			}
			if n := c.holders("k", a); n != 0 {
				t.Errorf("%d nodes hold A's value after Unlock returned (Extend of A returned %v): a key nobody holds, set by an extension answered within its per-node timeout", n, extendErr)
			}
			if ok, err := m.Unlock(); ok {
				t.Errorf("a second Unlock() = %v, %v: it released", ok, err)
			}
		})
	}
}

// TestLeaseTrustsItsTimer: the lease ends when its timer runs, not
// when its deadline passes. Context checks the deadline against the
// Mutex's clock only when it follows the lease for the first time
// (follow); once followed, it returns the context as it is, and an Extend
// moves the deadline of any lease not yet ended. Between the deadline and
// the timer's run (scheduling latency on a busy machine; on the fake clock
// here, as long as the test likes) the promises below fail. With
// WithSetNXOnExtend the extension even sets the key again after a gap in
// which another client held the lock, and the holder's context, live
// throughout, never tells it.
//
// Promises: "A context asked for once the acquisition can no longer
// be guaranteed (its validity or hold time is over) has already ended when
// Context returns" (Context); it ends "with a cause matching ErrLockLost,
// when the validity runs out"; "also after the loss: a later call does not
// renew it" (the lease is revived in effect).
func TestLeaseTrustsItsTimer(t *testing.T) {
	t.Run("Context asked again after the hold time", func(t *testing.T) {
		c := newFakeCluster(3)
		m := c.mutex("k", WithExpiry(time.Hour), WithMaxHold(time.Minute))
		if err := m.Lock(); err != nil {
			t.Fatalf("Lock() = %v", err)
		}
		defer m.Unlock()
		m.Context() // followed: a timer of one (real) minute
		c.clock.Advance(2 * time.Minute)
		ctx := m.Context()
		if ctx.Err() == nil {
			d, _ := ctx.Deadline()
			t.Errorf("Context() asked when the hold time was over %v ago is live; want it ended on return with ErrLockLost", c.clock.Now().Sub(d))
		}
	})
	t.Run("Context asked again after the validity", func(t *testing.T) {
		c := newFakeCluster(3)
		m := c.mutex("k", WithExpiry(time.Minute))
		if err := m.Lock(); err != nil {
			t.Fatalf("Lock() = %v", err)
		}
		defer m.Unlock()
		m.Context()
		c.clock.Advance(2 * time.Minute)
		if ctx := m.Context(); ctx.Err() == nil {
			t.Errorf("Context() asked when the validity was over (Until %v ago) is live; want it ended on return", c.clock.Now().Sub(m.Until()))
		}
	})
	t.Run("SetNX Extend after a gap revives the lease", func(t *testing.T) {
		c := newFakeCluster(3)
		m := c.mutex("k", WithExpiry(time.Minute), WithSetNXOnExtend())
		if err := m.Lock(); err != nil {
			t.Fatalf("Lock() = %v", err)
		}
		defer m.Unlock()
		ctx := m.Context()
		// The validity runs out; the key expires on the nodes, and
		// another client takes the lock and releases it.
		c.clock.Advance(2 * time.Minute)
		deleteKey(c.nodes, "k")
		other := c.mutex("k", WithExpiry(time.Minute))
		if err := other.Lock(); err != nil {
			t.Fatalf("the other client's Lock() in the gap = %v", err)
		}
		if ok, err := other.Unlock(); !ok || err != nil {
			t.Fatalf("the other client's Unlock() = %v, %v", ok, err)
		}
		ok, err := m.Extend()
		if !ok || err != nil {
			t.Fatalf("Extend() = %v, %v (the scene needs it to set the key again)", ok, err)
		}
		if ctx.Err() == nil {
			d, _ := ctx.Deadline()
			t.Errorf("the holder's Context() never ended although its validity ran out and another client held the lock meanwhile; its Deadline moved %v past now", d.Sub(c.clock.Now()))
		}
	})
}

// TestUnlockWithTheLockContext passes the acquisition's own context
// (Mutex.Context, or Do's function context's parent) to UnlockContext, as
// in
//
//	ctx := m.Context()
//	err := work(ctx)
//	m.UnlockContext(ctx)
//
// takeForUnlock ends the lease, which cancels ctx, before the release is
// sent with ctx: every node fails with context.Canceled, Unlock returns
// false with context.Canceled, and the key stays on the nodes until it
// expires or Unlock is called again (with WithAutoExtend, the extender is
// stopped all the same). Whether a fake node ran the release before the
// cancellation was seen varies; the result does not.
//
// Promise: UnlockContext "releases the lock"; the context "ends with
// Unlock" (it ends before Unlock has done anything).
func TestUnlockWithTheLockContext(t *testing.T) {
	for _, auto := range []bool{false, true} {
		name := "plain"
		opts := []Option{WithExpiry(time.Hour)}
		if auto {
			name = "WithAutoExtend"
			opts = append(opts, WithAutoExtend(time.Minute))
		}
		t.Run(name, func(t *testing.T) {
			c := newFakeCluster(3)
			m := c.mutex("k", opts...)
			if err := m.Lock(); err != nil {
				t.Fatalf("Lock() = %v", err)
			}
			ctx := m.Context()
			ok, err := m.UnlockContext(ctx)
			if !ok || err != nil {
				t.Errorf("UnlockContext(m.Context()) = %v, %v; want true, nil", ok, err)
				m.Unlock() // the retry (giveBack) releases
			}
		})
	}
}

// TestDoExtendsAfterFnContextEnded: Do with WithSetNXOnExtend. The
// caller's ctx ends while an automatic extension round is on its way (a
// slow link, well within the per-node timeout). Do stops the extender and
// ends the function's context, but a SetNX round is not cut short: it
// lands afterwards, succeeds, and moves Until and the lease's Deadline
// forward (by the time between the round's start and the previous
// extension's: up to one interval, which is a third of the expiry by
// default). A function that ignores its context (here it waits for the
// round) holds the lock longer than the validity it had when its context
// ended.
//
// Promise: "Once fn's context has ended, the lock is no longer
// extended: it expires at the end of its validity at the latest, also when
// fn ignores its context and goes on" (Do); "Do stops extending when the
// caller's ctx ends" (docs/LIFETIME.md). TestDoStopsExtendingWhenCallerEnds
// allows a round in flight to reach the nodes, but with SetNX it does not
// only reach them, it extends the lock.
func TestDoExtendsAfterFnContextEnded(t *testing.T) {
	c := newFakeCluster(3)
	g := newValueGate()
	defer g.open()
	rs := New(gatedPools(c, g)...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var before, after time.Time
	err := rs.Do(ctx, "k", func(fctx context.Context) error {
		m := MutexFromContext(fctx)
		g.hold(m.Value())
		eventually(t, "an extension round held on every node", func() bool { return g.held.Load() >= int32(len(c.nodes)) })
		cancel()
		<-fctx.Done()
		before = m.Until()
		g.open() // the round in flight lands
		eventually(t, "the round run on every node", func() bool { return g.executed.Load() >= int32(len(c.nodes)) })
		// Give extend() its moment to record the result.
		for deadline := time.Now().Add(time.Second); time.Now().Before(deadline) && m.Until().Equal(before); {
			time.Sleep(5 * time.Millisecond)
		}
		after = m.Until()
		return nil
	}, WithExpiry(time.Hour), WithAutoExtend(10*time.Millisecond), WithSetNXOnExtend())
	if !errors.Is(err, ErrLockLost) {
		t.Errorf("Do() = %v, want ErrLockLost (the caller's ctx ended)", err)
	}
	if after.After(before) {
		t.Errorf("the lock was extended by %v after the function's context ended (Until moved from %v to %v)",
			after.Sub(before), before.Format(time.StampMilli), after.Format(time.StampMilli))
	}
}
