package redsync

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// Tests of the skipped first try (lockWait.begin, keyWaiters.cover) on
// fake nodes, which count the tries they run.

// triesOn sums the acquire scripts, plain or queued, that c's nodes ran.
func triesOn(c *fakeCluster) int {
	k := 0
	for _, n := range c.nodes {
		k += n.tries()
	}
	return k
}

// queuedOnFakes reports on how many of c's nodes member is queued for k.
func queuedOnFakes(c *fakeCluster, member string) int {
	k := 0
	for _, n := range c.nodes {
		if slices.Contains(n.queued("k"), member) {
			k++
		}
	}
	return k
}

// listedWaiter starts a Lock of a new Mutex of rs for "k" (held by another
// process) and returns it once its waiter is in every node's queue and rs
// hears a quorum.
func listedWaiter(t *testing.T, c *fakeCluster, rs *Redsync, ctx context.Context) (*Mutex, *waiter, chan error) {
	t.Helper()
	m := rs.NewMutex("k", WithRetryDelay(time.Hour), WithTries(1000))
	done := make(chan error, 1)
	go func() { done <- m.LockContext(ctx) }()
	w := queuedWaiter(t, m)
	eventually(t, "the Redsync hears a quorum", rs.notify.hears)
	eventually(t, "the first waiter in every node's queue", func() bool { return queuedOnFakes(c, w.member) == len(c.nodes) })
	return m, w, done
}

// TestSkipSendsNoFirstTry: while a Lock call of a Redsync is in the nodes'
// queues, two more Lock calls of it for the same lock send nothing: they
// stand behind it. When it takes the lock, the last of them (not the
// first, which the local hand-off serves next) tries once and joins the
// queues; the lock then goes to both by local hand-off, without another
// try, and nothing is left on the nodes.
func TestSkipSendsNoFirstTry(t *testing.T) {
	c := newFakeCluster(3)
	other := New(c.pools()...).NewMutex("k")
	if err := other.Lock(); err != nil {
		t.Fatal(err)
	}
	rs := New(c.subPools()...)
	m1, w1, d1 := listedWaiter(t, c, rs, context.Background())
	before := triesOn(c)

	m2 := rs.NewMutex("k", WithRetryDelay(time.Hour), WithTries(1000))
	d2 := startLock(t, m2)
	queuedWaiters(t, m1, 2)
	w2 := otherWaiter(t, m2, w1)
	m3 := rs.NewMutex("k", WithRetryDelay(time.Hour), WithTries(1000))
	d3 := startLock(t, m3)
	queuedWaiters(t, m1, 3)
	var w3 *waiter
	rs.notify.mu.Lock()
	for _, q := range rs.notify.keys["k"].queue {
		if q != w1 && q != w2 {
			w3 = q
		}
	}
	rs.notify.mu.Unlock()
	time.Sleep(50 * time.Millisecond)
	if got := triesOn(c); got != before {
		t.Fatalf("the nodes ran %d tries after two more Lock calls of the Redsync began waiting behind a listed one, want 0", got-before)
	}
	for _, w := range []*waiter{w2, w3} {
		if k := queuedOnFakes(c, w.member); k != 0 {
			t.Errorf("a waiter standing behind is queued on %d nodes", k)
		}
	}

	// The release gives W1 its turn; W1 takes the lock, and W3 (the last
	// behind) tries and joins the queues.
	if _, err := other.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := <-d1; err != nil {
		t.Fatalf("W1 Lock() = %v", err)
	}
	eventually(t, "W3 in every node's queue", func() bool { return queuedOnFakes(c, w3.member) == len(c.nodes) })
	if k := queuedOnFakes(c, w2.member); k != 0 {
		t.Errorf("W2 is queued on %d nodes, want 0 (W3 covers it)", k)
	}
	// W1's try, and W3's.
	if got, want := triesOn(c)-before, 2*len(c.nodes); got != want {
		t.Errorf("the nodes ran %d tries after the release, want %d (W1's winning try, W3's joining try)", got, want)
	}

	for i, step := range []struct {
		holder *Mutex
		done   chan error
	}{{m1, d2}, {m2, d3}} {
		if ok, err := step.holder.Unlock(); !ok || err != nil {
			t.Fatalf("Unlock %d = %v, %v", i+1, ok, err)
		}
		select {
		case err := <-step.done:
			if err != nil {
				t.Fatalf("waiter %d Lock() = %v", i+2, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("waiter %d was not handed the lock", i+2)
		}
	}
	if ok, err := m3.Unlock(); !ok || err != nil {
		t.Fatalf("last Unlock = %v, %v", ok, err)
	}
	if got, want := triesOn(c)-before, 2*len(c.nodes); got != want {
		t.Errorf("the nodes ran %d tries in all, want %d: the hand-offs need none", got, want)
	}
	for i, n := range c.nodes {
		if q := n.queued("k"); len(q) != 0 {
			t.Errorf("node %d still queues %q", i, q)
		}
		if v, ok := n.value("k"); ok {
			t.Errorf("node %d still holds %q", i, v)
		}
	}
}

// TestSkipCoveredBeforeItsFirstWait: a Lock call decides to stand behind
// the only listed waiter of its Redsync (lockWait.begin), and that waiter
// ends before the new call's first wait began. The end must reach it all
// the same: its first wait ends at once with a try (the first skip woke
// only calls already in their wait, and this one waited for its retry
// delay, with no entry on the nodes).
func TestSkipCoveredBeforeItsFirstWait(t *testing.T) {
	c := newFakeCluster(3)
	other := New(c.pools()...).NewMutex("k")
	if err := other.Lock(); err != nil {
		t.Fatal(err)
	}
	rs := New(c.subPools()...)
	ctx1, cancel1 := context.WithCancel(context.Background())
	defer cancel1()
	_, _, d1 := listedWaiter(t, c, rs, ctx1)

	m2 := rs.NewMutex("k", WithRetryDelay(time.Hour), WithTries(1000))
	lw := lockWait{m: m2}
	if first := lw.begin(m2, 1000); first != 1 {
		t.Fatalf("begin() = %d behind a listed waiter, want 1 (the first try skipped)", first)
	}
	cancel1()
	if err := <-d1; !errors.Is(err, context.Canceled) {
		t.Fatalf("W1 LockContext() = %v, want context.Canceled", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, g := lw.await(ctx, 1)
	lw.close(context.Background())
	if r != waitExtra || g != nil {
		t.Fatalf("the first wait of a call standing behind a waiter that ended = %v, %v; want a try at once (%v)", r, g, waitExtra)
	}
	if _, err := other.Unlock(); err != nil {
		t.Fatal(err)
	}
}

// TestSkipNotBehindPollers: a waiter that polls (WithFencing here) is never
// listed, so a Lock of the same Redsync for the same lock does not stand
// behind it: its first try goes out.
func TestSkipNotBehindPollers(t *testing.T) {
	c := newFakeCluster(3)
	other := New(c.pools()...).NewMutex("k")
	if err := other.Lock(); err != nil {
		t.Fatal(err)
	}
	rs := New(c.subPools()...)
	fenced := rs.NewMutex("k", WithRetryDelay(time.Hour), WithTries(1000), WithFencing())
	startLock(t, fenced)
	queuedWaiter(t, fenced)
	eventually(t, "the Redsync hears a quorum", rs.notify.hears)

	m := rs.NewMutex("k", WithRetryDelay(time.Hour), WithTries(1000))
	lw := lockWait{m: m}
	first := lw.begin(m, 1000)
	lw.close(context.Background())
	if first != 0 {
		t.Fatalf("begin() = %d behind a fencing waiter only, want 0 (a first try)", first)
	}
	if _, err := other.Unlock(); err != nil {
		t.Fatal(err)
	}
}

// TestSkipNotBehindWaiterWhoseTryFailed: a waiter whose queue try failed
// on every node (node errors: it is in no queue) stands for nobody. A Lock
// of its Redsync that comes once the nodes answer again must not stand
// behind it: the release by another process must wake one of them, not
// leave both waiting for the retry delay (an hour) or the renewal while
// the lock is free.
func TestSkipNotBehindWaiterWhoseTryFailed(t *testing.T) {
	c := newFakeCluster(3)
	other := New(c.pools()...).NewMutex("k")
	if err := other.Lock(); err != nil {
		t.Fatal(err)
	}
	down := errors.New("fake: node down")
	for _, n := range c.nodes {
		n.setErr(down)
	}
	rs := New(c.subPools()...)
	m1 := rs.NewMutex("k", WithRetryDelay(time.Hour), WithTries(1000), WithExpiry(time.Minute))
	d1 := startLock(t, m1)
	w1 := queuedWaiter(t, m1)
	// Its plain try, then its queue try once a quorum listens: both fail.
	eventually(t, "W1's queue try failed", func() bool {
		for _, s := range c.nodes[0].ran() {
			if s == "queue-acquire" {
				return true
			}
		}
		return false
	})
	queuedWaiters(t, m1, 1)
	for _, n := range c.nodes {
		n.setErr(nil)
	}
	if k := queuedOnFakes(c, w1.member); k != 0 {
		t.Fatalf("W1 is queued on %d nodes, want 0 (its try failed everywhere)", k)
	}

	m2 := rs.NewMutex("k", WithRetryDelay(time.Hour), WithTries(1000), WithExpiry(time.Minute))
	d2 := startLock(t, m2)
	otherWaiter(t, m2, w1)
	if _, err := other.Unlock(); err != nil {
		t.Fatal(err)
	}
	// Whichever waiter gets the lock hands it to the other.
	mutexes, dones := []*Mutex{m1, m2}, []chan error{d1, d2}
	for range 2 {
		var i int
		var err error
		select {
		case err = <-dones[0]:
		case err = <-dones[1]:
			i = 1
		case <-time.After(5 * time.Second):
			t.Fatal("a waiter did not get the free lock within 5s (W1's try had failed on every node; retry delay 1h, renewal after 30s)")
		}
		if err != nil {
			t.Fatalf("W%d Lock() = %v", i+1, err)
		}
		if ok, err := mutexes[i].Unlock(); !ok || err != nil {
			t.Fatalf("W%d Unlock() = %v, %v", i+1, ok, err)
		}
		dones[i] = nil
	}
}
