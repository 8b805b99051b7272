package redsync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/goredis"
)

// Tests from a review that tried to break the promises of the local
// hand-off and of Unlock (issue #11; docs/LIFETIME.md, mutex.go). Each
// comment describes the defect as the review found it, in the present
// tense of that code (every one is fixed since), then the promise that the
// test checks.

// waitQueuedConfirmed waits until m's Lock call waits in the queue of a
// channel that a quorum of nodes confirmed, so that the confirmation's
// wake-up (see notifier.receive) is over.
func waitQueuedConfirmed(t *testing.T, m *Mutex) {
	t.Helper()
	eventually(t, "a confirmed waiter queued", func() bool {
		m.notify.mu.Lock()
		defer m.notify.mu.Unlock()
		kw := m.notify.keys[m.name]
		return kw != nil && int(m.notify.nconfirm.Load()) >= m.notify.quorum && len(kw.queue) > 0
	})
}

// TestHandOffBoundPingPong: two goroutines of one process take
// turns with a lock (each locks again shortly after its Unlock, as a
// worker loop does). Every Unlock finds the other one waiting and hands
// the lock over. The waiter's Lock returns, its wait ends, and with no
// waiter left the channel, and with it the count of hand-offs in a row
// (channelWait.handoffs), is dropped; the next Lock makes a new channel
// with a count of 0. So the bound of 16 never comes, the lock is never
// released on the nodes, and a Lock of another process never gets it.
//
// Promise: "hand-offs are bounded (16 in a row locally) so other
// processes get a chance" (docs/LIFETIME.md, Local hand-off, Fairness
// across processes).
func TestHandOffBoundPingPong(t *testing.T) {
	c := newFakeCluster(3)
	rs := New(c.subPools()...)
	obs := newRecordingObserver()
	ms := [2]*Mutex{}
	for i := range ms {
		ms[i] = rs.NewMutex("k", WithRetryDelay(time.Hour), WithObserver(obs))
		ms[i].now = c.clock.Now
	}
	if err := ms[0].Lock(); err != nil {
		t.Fatal(err)
	}
	// Another process polls for the lock all along.
	other := New(c.pools()...).NewMutex("k", WithRetryDelay(time.Millisecond), WithTries(1<<20))
	other.now = c.clock.Now
	otherCtx, stopOther := context.WithCancel(context.Background())
	defer stopOther()
	otherDone := make(chan error, 1)
	go func() { otherDone <- other.LockContext(otherCtx) }()

	const rounds = 3 * maxLocalHandoffs
	inARow := 0
	for r := range rounds {
		holder, waiter := ms[r%2], ms[(r+1)%2]
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- waiter.LockContext(ctx) }()
		waitQueuedConfirmed(t, waiter)
		if ok, err := holder.Unlock(); !ok || err != nil {
			cancel()
			t.Fatalf("round %d: Unlock() = %v, %v", r, ok, err)
		}
		obs.mu.Lock()
		handed := obs.releases[len(obs.releases)-1].HandedOver
		obs.mu.Unlock()
		if !handed {
			// The bound released the lock, as promised: the waiter, whose
			// retry delay is an hour, hears nothing from the fakes.
			cancel()
			<-done
			break
		}
		inARow++
		if err := <-done; err != nil {
			cancel()
			t.Fatalf("round %d: the waiter's Lock() = %v after a hand-off", r, err)
		}
		cancel()
		// The next Lock comes after the waiter's Lock returned (a worker
		// does a little work between Unlock and Lock).
	}
	stopOther()
	otherErr := <-otherDone
	for _, m := range ms {
		m.Unlock()
	}
	if inARow > maxLocalHandoffs {
		t.Fatalf("%d local hand-offs in a row (bound %d); the other process's Lock, polling all along, got %v",
			inARow, maxLocalHandoffs, otherErr)
	}
}

// TestHandOffBoundPingPongServers is TestHandOffBoundPingPong
// on three real redis-servers, with no timing forced: two worker
// goroutines of one process (one Redsync) loop on Lock, hold 10 ms, Unlock,
// work 1 ms; a Lock of another process (another Redsync) waits with the
// default retry delay and notification. Every Unlock hands the lock over,
// far more than 16 times in a row, and the other process starves.
//
// Promise: hand-offs are bounded (16 in a row locally).
func TestHandOffBoundPingPongServers(t *testing.T) {
	servers := redistest.StartN(t, 3)
	newPools := func() []redis.Pool {
		pools := make([]redis.Pool, len(servers))
		for i, s := range servers {
			client := goredislib.NewClient(&goredislib.Options{Addr: s.Addr(), MaxRetries: -1})
			t.Cleanup(func() { client.Close() })
			pools[i] = goredis.NewPool(client)
		}
		return pools
	}
	local := New(newPools()...)
	obs := newRecordingObserver()
	local.SetObserver(obs)
	other := New(newPools()...).NewMutex("k", WithTries(1<<20))

	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := local.NewMutex("k", WithTries(1<<20))
			for ctx.Err() == nil {
				if m.LockContext(ctx) != nil {
					return
				}
				time.Sleep(10 * time.Millisecond)
				m.Unlock()
				time.Sleep(time.Millisecond)
			}
		}()
	}
	time.Sleep(50 * time.Millisecond) // the workers are going
	otherStart := time.Now()
	otherErr := other.LockContext(ctx)
	otherWait := time.Since(otherStart)
	if otherErr == nil {
		other.Unlock()
	}
	<-ctx.Done()
	wg.Wait()

	obs.mu.Lock()
	longest, run, total := 0, 0, len(obs.releases)
	for _, e := range obs.releases {
		if e.HandedOver {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	obs.mu.Unlock()
	t.Logf("longest %d of %d, other waited %v: %v", longest, total, otherWait, otherErr)
	if longest > maxLocalHandoffs {
		t.Fatalf("%d local hand-offs in a row (bound %d) among %d Unlocks; the other process's Lock waited %v and got %v",
			longest, maxLocalHandoffs, total, otherWait.Round(time.Millisecond), otherErr)
	}
}

// TestExtendSetNXAfterRelease: Extend with WithSetNXOnExtend reads
// the acquisition, sends extend.lua, and an Unlock of the same Mutex
// releases the lock while the extension is on its way to the nodes (a
// slow link, a GC pause between current() and the write). The extension
// lands after the release, finds no key and sets it again with the
// released value. Extend returns true; the nodes hold a lock that nobody
// holds: the Mutex says it is unlocked, and its Unlock sends nothing any
// more, so the key stays for a whole expiry. released() waits for an
// automatic extension in flight for exactly this reason, but not for a
// manual Extend.
//
// Promises: "Unlock releases the lock" / "a stray Extend after
// Unlock sends nothing" (mutex.go, UnlockContext and the doc of released),
// and the brief's: no key held by nobody.
func TestExtendSetNXAfterRelease(t *testing.T) {
	c := newFakeCluster(3)
	m := c.mutex("k", WithSetNXOnExtend(), WithExpiry(10*time.Second))
	if err := m.Lock(); err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	for _, n := range c.nodes {
		n.mu.Lock()
		n.block, n.slow = hold, "extend"
		n.mu.Unlock()
	}
	type result struct {
		ok  bool
		err error
	}
	extended := make(chan result, 1)
	go func() {
		ok, err := m.Extend()
		extended <- result{ok, err}
	}()
	eventually(t, "the extension reached every node", func() bool {
		for _, n := range c.nodes {
			if !slices.Contains(n.ran(), "extend") {
				return false
			}
		}
		return true
	})
	if ok, err := m.Unlock(); !ok || err != nil {
		t.Fatalf("Unlock() = %v, %v", ok, err)
	}
	if got := c.keys("k"); got != 0 {
		t.Fatalf("%d nodes hold the key right after Unlock", got)
	}
	close(hold)
	r := <-extended
	keys := c.keys("k")
	sent := c.calls()
	ok2, err2 := m.Unlock()
	if keys != 0 {
		t.Fatalf("Unlock() = true, then the Extend() that was in flight returned %v, %v and set the key again on %d of 3 nodes: "+
			"a lock held by nobody for a whole expiry (the Mutex's second Unlock() = %v, %v, sent %d commands)",
			r.ok, r.err, keys, ok2, err2, c.calls()-sent)
	}
}

// TestUnlockInAcquireGap: Lock on a Mutex makes the acquisition
// visible (setAcquisition) and only then, after releasing m.mu, runs
// acquired(), which sets m.unlocked = false again and starts the lease
// (with WithAutoExtend, its extender). An Unlock of the same Mutex from
// another goroutine (a Mutex is safe for concurrent use, and Unlock acts on
// the current acquisition whichever goroutine calls it) that runs in
// between takes the acquisition, releases it on the nodes and returns
// true; acquired() then undoes its mark. The Mutex now holds a released
// acquisition as if it were live: Context() is live, Extend and a second
// Unlock send commands, and with WithAutoExtend and WithSetNXOnExtend the
// new extender sets the key again after the release and keeps it alive for
// as long as the process runs: a lock held by nobody, for ever. (takeGrant
// has the same gap between setAcquisition and acquiredSince.)
//
// Promises: "Unlock acts once per acquisition; Extend/Valid after
// Unlock send nothing" (UnlockContext), Context "ends with Unlock"
// (lease.go), at most one holder (with a local waiter queued, the Unlock
// hands the lock over while the Mutex's Context stays live).
//
// The window is a few instructions wide, so the test races a spinning
// Unlock against Lock many times; under -race about 5% of runs hit it.
func TestUnlockInAcquireGap(t *testing.T) {
	deadline := time.Now().Add(1500 * time.Millisecond)
	runs := 0
	for ; runs < 20000 && time.Now().Before(deadline); runs++ {
		c := newFakeCluster(3)
		m := c.mutex("k", WithExpiry(2*time.Second), WithAutoExtend(10*time.Millisecond), WithSetNXOnExtend())
		unlocked := make(chan bool, 1)
		go func() {
			for {
				ok, err := m.Unlock()
				if ok || !errors.Is(err, ErrNotLocked) {
					unlocked <- ok
					return
				}
			}
		}()
		if err := m.Lock(); err != nil {
			t.Fatal(err)
		}
		if ok := <-unlocked; !ok {
			m.Unlock()
			continue
		}
		if m.Context().Err() == nil {
			// Unlock returned true for this acquisition; wait a few
			// extension intervals.
			time.Sleep(50 * time.Millisecond)
			keys := c.keys("k")
			holders := c.holders("k", m.Value())
			sent := c.calls()
			ok, err := m.Unlock()
			t.Fatalf("run %d: Unlock() returned true during Lock, yet afterwards the Mutex's Context() is live and "+
				"50ms later %d of 3 nodes hold the key (%d with the released value), set again by the Mutex's own extender; "+
				"a second Unlock() = %v, %v sent %d commands (want none)", runs, keys, holders, ok, err, c.calls()-sent)
		}
		if got := c.keys("k"); got != 0 {
			var hist []string
			for i, n := range c.nodes {
				v, _ := n.value("k")
				hist = append(hist, fmt.Sprintf("node %d: value %q (the released one: %v), ran %v", i, v, v == m.Value(), n.ran()))
			}
			t.Fatalf("run %d: %d nodes hold the key after Lock and Unlock: %v", runs, got, hist)
		}
	}
	t.Logf("%d runs, the gap was not hit", runs)
}

// TestUnlockInGrantGapTwoHolders is the gap of
// TestUnlockInAcquireGap on the hand-off path (takeGrant:
// setAcquisition, then acquiredSince), with a second waiter queued: a
// holder hands the lock to a Lock call of Mutex m; an Unlock of m from
// another goroutine, in the gap, takes that acquisition and hands it on to
// the next waiter w; then acquiredSince marks m's acquisition live again.
// w's Lock returned nil and m.Context() is live, with m.Until() ahead: two
// holders of one lock at the same instant, as far as the API tells them.
//
// Promise: at most one holder at any instant; Context ends with
// Unlock.
func TestUnlockInGrantGapTwoHolders(t *testing.T) {
	deadline := time.Now().Add(1500 * time.Millisecond)
	runs, tried := 0, 0
	for ; runs < 5000 && time.Now().Before(deadline); runs++ {
		c := newFakeCluster(3)
		rs := New(c.subPools()...)
		h := rs.NewMutex("k")
		m := rs.NewMutex("k", WithRetryDelay(time.Hour))
		w := rs.NewMutex("k", WithRetryDelay(time.Hour))
		if err := h.Lock(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		mDone, wDone := make(chan error, 1), make(chan error, 1)
		go func() { mDone <- m.LockContext(ctx) }()
		waitQueuedConfirmed(t, m)
		go func() { wDone <- w.LockContext(ctx) }()
		queuedWaiters(t, w, 2)
		stop := make(chan struct{})
		unlocked := make(chan bool, 1)
		go func() {
			for {
				select {
				case <-stop:
					unlocked <- false
					return
				default:
				}
				ok, err := m.Unlock()
				if ok || !errors.Is(err, ErrNotLocked) {
					unlocked <- ok
					return
				}
			}
		}()
		if ok, err := h.Unlock(); !ok || err != nil {
			t.Fatalf("h.Unlock() = %v, %v", ok, err)
		}
		var mErr error
		select {
		case mErr = <-mDone:
		case <-time.After(2 * time.Second):
			mErr = context.DeadlineExceeded
		}
		if mErr != nil {
			close(stop) // m never got the lock: nothing for the spinner
		}
		mUnlocked := <-unlocked
		var wErr error
		select {
		case wErr = <-wDone:
		case <-time.After(100 * time.Millisecond):
			wErr = context.DeadlineExceeded
		}
		if mErr == nil && mUnlocked && wErr == nil {
			tried++
			if m.Context().Err() == nil && w.Context().Err() == nil {
				mUntil, wUntil := m.Until(), w.Until()
				t.Fatalf("run %d: m's Lock() = nil, m.Unlock() from another goroutine = true (handing the lock to w), w's Lock() = nil; "+
					"now m.Context() and w.Context() are both live (m.Until() %v, w.Until() %v ahead of the clock): two holders; "+
					"the nodes hold m's value on %d, w's on %d of 3", runs, time.Until(mUntil).Round(time.Millisecond),
					time.Until(wUntil).Round(time.Millisecond), c.holders("k", m.Value()), c.holders("k", w.Value()))
			}
		}
		cancel()
		<-wDoneOr(wDone, wErr)
		m.Unlock()
		w.Unlock()
	}
	t.Logf("%d runs, %d with the hand-off sequence, the gap was not hit", runs, tried)
}

// wDoneOr returns done, or a closed channel when err shows the result was
// already taken from it.
func wDoneOr(done chan error, err error) <-chan error {
	if err != context.DeadlineExceeded {
		c := make(chan error)
		close(c)
		return c
	}
	return done
}

// TestFailedUnlockCanBeRetried: an UnlockContext whose ctx ends
// before the nodes answer (a slow link, a short deadline) releases
// nothing and says so (false, a timeout, not ErrLockAlreadyExpired). It
// has taken the acquisition all the same, so the caller's retry sends
// nothing and reports ErrLockAlreadyExpired, while every node still holds
// the key: the lock is held by nobody until it expires, and the error says
// the opposite of what the nodes hold. (In redsync v4 the retry released
// it.) The hand-off path does not have this hole: its undo runs with
// context.WithoutCancel.
//
// Promise: UnlockContext's "the error matches ErrLockAlreadyExpired
// when the lock had already expired on so many nodes that no quorum could
// release it", and no key left held by nobody. (Arguably by design of "one
// Unlock per acquisition"; the first Unlock should then release with
// WithoutCancel, as the hand-off's undo does.)
func TestFailedUnlockCanBeRetried(t *testing.T) {
	c := newFakeCluster(3)
	m := c.mutex("k", WithExpiry(10*time.Second))
	if err := m.Lock(); err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	for _, n := range c.nodes {
		n.mu.Lock()
		n.block, n.slow = hold, "release"
		n.mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	ok, err := m.UnlockContext(ctx)
	if ok || errors.Is(err, ErrLockAlreadyExpired) {
		t.Fatalf("UnlockContext(short ctx) with slow nodes = %v, %v; want false and a timeout", ok, err)
	}
	close(hold)
	sent := c.calls()
	ok2, err2 := m.Unlock()
	if keys := c.keys("k"); keys > 0 {
		t.Fatalf("first UnlockContext = false, %v; the retry Unlock() = %v, %v sent %d commands; "+
			"%d of 3 nodes still hold the key, which nobody can release until it expires",
			err, ok2, err2, c.calls()-sent, keys)
	}
}

// lostUnlocker is an Observer whose OnLost calls Unlock on the Mutex that
// lost its lock, a natural clean-up ("the lock is gone: let go of it"). It
// runs Unlock on a goroutine of its own and waits up to a second for it, so
// that a deadlock shows as a timeout instead of hanging the test binary.
type lostUnlocker struct {
	m        *Mutex
	returned chan bool // whether Unlock returned within OnLost's second
}

func (o *lostUnlocker) OnAcquire(context.Context, AcquireEvent) {}
func (o *lostUnlocker) OnExtend(context.Context, ExtendEvent)   {}
func (o *lostUnlocker) OnRelease(context.Context, ReleaseEvent) {}
func (o *lostUnlocker) OnLost(context.Context, LostEvent) {
	done := make(chan struct{})
	go func() {
		o.m.Unlock()
		close(done)
	}()
	select {
	case <-done:
		o.returned <- true
	case <-time.After(time.Second):
		o.returned <- false
	}
}

// TestUnlockFromOnLostDeadlocks: with WithAutoExtend and
// WithSetNXOnExtend, a failed automatic extension ends the lease on the
// extender's goroutine, which calls OnLost. An OnLost that calls Unlock
// (the Observer doc: "No lock of the Mutex is held during a call, so an
// Observer may call the Mutex's methods") enters released(), which waits
// for the extender's goroutine to end (<-l.ext.done) although the lease
// has ended already: that goroutine is the one running OnLost. Called
// synchronously, Unlock never returns and the extender never ends. (The
// same with OnExtend of an automatic extension that calls Unlock.)
//
// Promise: Observer may call the Mutex's methods (hooks.go); Unlock
// returns (bounded by the per-node timeout).
func TestUnlockFromOnLostDeadlocks(t *testing.T) {
	c := newFakeCluster(3)
	obs := &lostUnlocker{returned: make(chan bool, 1)}
	m := c.mutex("k", WithAutoExtend(10*time.Millisecond), WithSetNXOnExtend(), WithObserver(obs))
	obs.m = m
	if err := m.Lock(); err != nil {
		t.Fatal(err)
	}
	// Another owner takes the key on every node: the next extension is
	// refused, and the lock is lost.
	for _, n := range c.nodes {
		n.set("k", "someone else")
	}
	select {
	case returned := <-obs.returned:
		if !returned {
			t.Fatal("Unlock() called from OnLost did not return within a second: it waits for the extender's goroutine, which is the one running OnLost (a synchronous call deadlocks for ever)")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the lock was not lost")
	}
}
