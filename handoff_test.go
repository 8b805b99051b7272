package redsync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-redlock/redsync/redis"
)

// fakeSubNode is a redis.Pool and redis.Subscriber whose listeners the
// test drives by hand: it records what they subscribe to and delivers the
// messages the test sends.
type fakeSubNode struct {
	mu        sync.Mutex
	listens   int
	current   *fakeListener
	listenErr error
}

func (f *fakeSubNode) Get(context.Context) (redis.Conn, error) {
	return nil, errors.New("fake: no commands")
}

func (f *fakeSubNode) Listen(_ context.Context, receive func(redis.Message)) (redis.Listener, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.listenErr != nil {
		return nil, f.listenErr
	}
	f.listens++
	l := &fakeListener{node: f, receive: receive, channels: map[string]bool{}}
	f.current = l
	return l, nil
}

func (f *fakeSubNode) listener() *fakeListener {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.current
}

type fakeListener struct {
	node    *fakeSubNode
	receive func(redis.Message)

	mu       sync.Mutex
	channels map[string]bool
	closed   bool
}

func (l *fakeListener) Subscribe(_ context.Context, channels ...string) error {
	l.mu.Lock()
	for _, c := range channels {
		l.channels[c] = true
	}
	l.mu.Unlock()
	for _, c := range channels {
		l.receive(redis.Message{Channel: c, Subscribed: true})
	}
	return nil
}

func (l *fakeListener) Unsubscribe(_ context.Context, channels ...string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range channels {
		delete(l.channels, c)
	}
	return nil
}

func (l *fakeListener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	return nil
}

func (l *fakeListener) state() (channels []string, closed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.channels {
		channels = append(channels, c)
	}
	slices.Sort(channels)
	return channels, l.closed
}

// publish delivers a release announcement of value's id on key's channel.
func (l *fakeListener) publish(key, id string) {
	l.receive(redis.Message{Channel: releaseChannel(key), Payload: id})
}

func newFakeSubNodes(n int) ([]*fakeSubNode, []redis.Pool) {
	nodes := make([]*fakeSubNode, n)
	pools := make([]redis.Pool, n)
	for i := range nodes {
		nodes[i] = &fakeSubNode{}
		pools[i] = nodes[i]
	}
	return nodes, pools
}

// eventually polls cond for up to 2s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not true after 2s: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// subscribedEverywhere waits until every node's listener is subscribed to
// key's channel.
func subscribedEverywhere(t *testing.T, nodes []*fakeSubNode, key string) {
	t.Helper()
	eventually(t, "every node subscribed", func() bool {
		for _, f := range nodes {
			l := f.listener()
			if l == nil {
				return false
			}
			if chans, _ := l.state(); !slices.Contains(chans, releaseChannel(key)) {
				return false
			}
		}
		return true
	})
}

func isReady(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func TestNotifierNeedsQuorumOfSubscribers(t *testing.T) {
	_, pools := newFakeSubNodes(3)
	mixed := []redis.Pool{pools[0], newFakeNode(nil), newFakeNode(nil)}
	if n := newNotifier(mixed); n == nil || n.listens() {
		t.Errorf("newNotifier with 1 of 3 pools able to subscribe = %v, want a notifier that does not listen", n)
	}
	if n := newNotifier(pools); n == nil || len(n.nodes) != 3 {
		t.Errorf("newNotifier with 3 of 3 = %v, want 3 listening nodes", n)
	}
}

func TestNotifierQuorumAndWakeOne(t *testing.T) {
	nodes, pools := newFakeSubNodes(5)
	n := newNotifier(pools)
	since := time.Now()
	w1, w2 := n.watch(&Mutex{config: config{name: "k"}}), n.watch(&Mutex{config: config{name: "k"}})
	subscribedEverywhere(t, nodes, "k")
	// The subscriptions' confirmation may have woken the first waiter
	// (a release may have been missed during the set-up); start clean.
	w1.wait(since)
	w1.stopWaiting()
	c1, c2 := w1.wait(time.Now()), w2.wait(time.Now())

	// Two announcements of release "a" are no quorum of five.
	nodes[0].listener().publish("k", "a")
	nodes[1].listener().publish("k", "a")
	nodes[1].listener().publish("k", "a") // a repeat from one node counts once
	if isReady(c1) || isReady(c2) {
		t.Fatal("a waiter woke before a quorum announced the release")
	}
	// The third makes a quorum and wakes the first waiter only.
	nodes[4].listener().publish("k", "a")
	if !isReady(c1) || isReady(c2) {
		t.Fatalf("after a quorum: first waiter woken %v, second %v; want true, false", isReady(c1), isReady(c2))
	}
	// The stragglers of the same release wake nobody.
	nodes[2].listener().publish("k", "a")
	nodes[3].listener().publish("k", "a")
	if isReady(c2) {
		t.Fatal("stragglers of a release that already woke a waiter woke another")
	}
	// The next release wakes the second waiter.
	for _, f := range nodes[:3] {
		f.listener().publish("k", "b")
	}
	if !isReady(c2) {
		t.Fatal("second release did not wake the second waiter")
	}
	w1.close()
	w2.close()
	eventually(t, "listeners closed", func() bool {
		for _, f := range nodes {
			if _, closed := f.listener().state(); !closed {
				return false
			}
		}
		return true
	})
}

// TestNotifierSpread: a release announced with the number of listening
// processes makes the woken waiter wait a random share of the others' try
// durations before its try; without the number, or alone, it tries at once.
// spreadScene returns three fake nodes and the lockWait of a waiter for
// "k" that listens on all of them, out of the queue after the wake-up of
// the subscriptions' confirmation, its last try taking 1 ms.
func spreadScene(t *testing.T) ([]*fakeSubNode, *waiter, *lockWait) {
	t.Helper()
	nodes, pools := newFakeSubNodes(3)
	n := newNotifier(pools)
	w := n.watch(&Mutex{config: config{name: "k"}})
	t.Cleanup(w.close)
	subscribedEverywhere(t, nodes, "k")
	w.wait(time.Now()) // the confirmation's wake, if any
	w.stopWaiting()
	return nodes, w, &lockWait{w: w, lastTry: time.Millisecond}
}

// takeSpread ends the wait of lw's waiter as lockWait.end does and returns
// its spread delay, setting the release a successful try would claim.
func takeSpread(lw *lockWait) time.Duration {
	_, by, spread := lw.w.stopWaiting()
	lw.claimID = by
	return lw.spreadDelay(spread)
}

func TestNotifierSpread(t *testing.T) {
	nodes, w, lw := spreadScene(t)
	for round, tc := range []struct {
		listeners string
		max       time.Duration // the delay is in [0, max), or 0 when max is 0
	}{{" 5", 4 * time.Millisecond}, {"", 0}, {" 1", 0}, {" 0", 0}, {" 17", 16 * time.Millisecond}} {
		c := w.wait(time.Now())
		for _, f := range nodes[:2] {
			f.listener().publish("k", fmt.Sprintf("release-%d%s", round, tc.listeners))
		}
		if !isReady(c) {
			t.Fatalf("payload suffix %q: the waiter was not woken", tc.listeners)
		}
		got := takeSpread(lw)
		if tc.max == 0 && got != 0 || got < 0 || tc.max > 0 && got >= tc.max {
			t.Errorf("payload suffix %q: spread delay %v, want in [0, %v)", tc.listeners, got, tc.max)
		}
		if again := takeSpread(lw); again != 0 {
			t.Errorf("payload suffix %q: a second spreadDelay gave %v, want 0 (used once per wake)", tc.listeners, again)
		}
		w.stopWaiting()
	}
	// Over many wakes, the shares cover the range: not all at one end.
	var low, high int
	for round := range 200 {
		c := w.wait(time.Now())
		for _, f := range nodes[:2] {
			f.listener().publish("k", fmt.Sprintf("many-%d 3", round))
		}
		if !isReady(c) {
			t.Fatal("the waiter was not woken")
		}
		if d := takeSpread(lw); d < time.Millisecond {
			low++
		} else {
			high++
		}
		w.stopWaiting()
	}
	if low < 50 || high < 50 {
		t.Errorf("spread delays over [0, 2ms): %d below 1ms, %d above; want both about 100", low, high)
	}
}

func TestNotifierFIFOByTicket(t *testing.T) {
	nodes, pools := newFakeSubNodes(3)
	n := newNotifier(pools)
	ws := []*waiter{n.watch(&Mutex{config: config{name: "k"}}), n.watch(&Mutex{config: config{name: "k"}}), n.watch(&Mutex{config: config{name: "k"}})}
	subscribedEverywhere(t, nodes, "k")
	for _, w := range ws {
		w.wait(time.Now())
		w.stopWaiting()
	}
	// Waiters queue in the order they started waiting, whatever the order
	// in which they come back to the queue.
	now := time.Now()
	chans := []<-chan struct{}{ws[2].wait(now), ws[0].wait(now), ws[1].wait(now)}
	order := []int{2, 0, 1} // index in ws of chans[i]
	var woken []int
	for i, id := range []string{"a", "b", "c"} {
		for _, f := range nodes[:2] {
			f.listener().publish("k", id)
		}
		for j, c := range chans {
			if isReady(c) {
				woken = append(woken, order[j])
			}
		}
		if len(woken) != i+1 {
			t.Fatalf("after %d releases %d waiters woke, want %d", i+1, len(woken), i+1)
		}
	}
	if !slices.Equal(woken, []int{0, 1, 2}) {
		t.Errorf("waiters woke in order %v, want [0 1 2] (by ticket)", woken)
	}
	for _, w := range ws {
		w.close()
	}
}

func TestNotifierPendingRelease(t *testing.T) {
	nodes, pools := newFakeSubNodes(3)
	n := newNotifier(pools)
	w := n.watch(&Mutex{config: config{name: "k"}})
	subscribedEverywhere(t, nodes, "k")
	w.wait(time.Now())
	w.stopWaiting()
	// A release announced while the waiter was busy with a try: the next
	// wait returns at once, when the try started before the release.
	tryStart := time.Now()
	for _, f := range nodes[:2] {
		f.listener().publish("k", "a")
	}
	if c := w.wait(tryStart); !isReady(c) {
		t.Error("a release during the try did not wake the next wait")
	}
	w.stopWaiting()
	// A release before the try started is not for this wait.
	for _, f := range nodes[:2] {
		f.listener().publish("k", "b")
	}
	if c := w.wait(time.Now()); isReady(c) {
		t.Error("a release before the try woke the wait")
	}
	w.close()
}

func TestNotifierReconnects(t *testing.T) {
	nodes, pools := newFakeSubNodes(3)
	n := newNotifier(pools)
	w := n.watch(&Mutex{config: config{name: "k"}})
	defer w.close()
	subscribedEverywhere(t, nodes, "k")
	broken := nodes[0].listener()
	broken.receive(redis.Message{Err: errors.New("connection reset")})
	eventually(t, "node 0 listens again", func() bool {
		l := nodes[0].listener()
		if l == broken {
			return false
		}
		chans, _ := l.state()
		return slices.Contains(chans, releaseChannel("k"))
	})
	if _, closed := broken.state(); !closed {
		t.Error("the failed listener was not closed")
	}
	// Messages of the old listener are ignored.
	w.wait(time.Now())
	w.stopWaiting()
	c := w.wait(time.Now())
	broken.publish("k", "a")
	nodes[1].listener().publish("k", "a")
	if isReady(c) {
		t.Error("a message of the failed listener counted")
	}
	nodes[0].listener().publish("k", "a")
	if !isReady(c) {
		t.Error("a quorum with the new listener did not wake the waiter")
	}
}

func TestNotifierListenFailureBacksOff(t *testing.T) {
	nodes, pools := newFakeSubNodes(3)
	nodes[2].listenErr = errors.New("connection refused")
	n := newNotifier(pools)
	w := n.watch(&Mutex{config: config{name: "k"}})
	subscribedEverywhere(t, nodes[:2], "k")
	time.Sleep(50 * time.Millisecond)
	nodes[2].mu.Lock()
	nodes[2].listenErr = nil
	nodes[2].mu.Unlock()
	subscribedEverywhere(t, nodes, "k") // after the back-off
	w.close()
	eventually(t, "listeners closed", func() bool {
		for _, f := range nodes {
			if _, closed := f.listener().state(); !closed {
				return false
			}
		}
		return true
	})
	eventually(t, "listen goroutines stopped", func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		for _, ln := range n.nodes {
			if ln.running {
				return false
			}
		}
		return true
	})
}

func TestTallySplit(t *testing.T) {
	const a, b, c = replyTakenBy + 7, replyTakenBy + 8, replyTakenBy + 9 // three owners
	failed := nodeResult{err: errors.New("connection refused")}
	tests := []struct {
		name    string
		replies []nodeResult
		q       int
		want    bool
	}{
		{"nothing taken", []nodeResult{{reply: replyDone}, {reply: replyDone}}, 2, false},
		{"one owner on a quorum", []nodeResult{{reply: a}, {reply: a}, {reply: replyDone}}, 2, false},
		{"one owner on a minority", []nodeResult{{reply: a}, {reply: replyDone}, {reply: replyDone}}, 2, true},
		{"three owners, a node each", []nodeResult{{reply: a}, {reply: b}, {reply: c}}, 2, true},
		{"two owners, one with a quorum", []nodeResult{{reply: a}, {reply: b}, {reply: a}}, 2, false},
		{"five nodes, two owners on two each", []nodeResult{{reply: a}, {reply: b}, {reply: a}, {reply: b}, {reply: replyDone}}, 3, true},
		{"owners not told apart, on a quorum", []nodeResult{{reply: replyTaken}, {reply: replyTaken}, {reply: replyDone}}, 2, false},
		{"owners not told apart, on a minority", []nodeResult{{reply: replyTaken}, {reply: replyDone}, {reply: replyDone}}, 2, true},
		{"split, but a node failed", []nodeResult{{reply: a}, {reply: b}, failed}, 2, false},
	}
	for _, tt := range tests {
		tl := tally{nodes: len(tt.replies)}
		for i, r := range tt.replies {
			r.node = i
			tl.add(r)
		}
		if got := tl.split(tt.q); got != tt.want {
			t.Errorf("%s: split = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestSplitAmongOthersRetriesSoon: three other owners hold a node each
// (they split the vote, and each will undo its try on one node, which
// announces no release to a quorum). The waiter must not take "taken on a
// quorum" for a holder and wait for an announcement that never comes: it
// retries after a short back-off and gets the lock once the keys are gone.
func TestSplitAmongOthersRetriesSoon(t *testing.T) {
	c := newFakeCluster(3)
	for i, n := range c.nodes {
		n.set("k", fmt.Sprintf("other-%d", i))
	}
	m := New(c.subPools()...).NewMutex("k", WithTries(1000), WithRetryDelay(time.Hour))
	m.now = c.clock.Now
	done := make(chan error, 1)
	go func() { done <- m.Lock() }()
	eventually(t, "a second try", func() bool {
		n := 0
		for _, s := range c.nodes[0].ran() {
			if s == "acquire" {
				n++
			}
		}
		return n >= 2
	})
	for _, n := range c.nodes {
		n.mu.Lock()
		delete(n.keys, "k")
		n.mu.Unlock()
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Lock() = %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Lock still waits 2s after the split was over: it took the split for a holder and waits for an announcement")
	}
	if _, err := m.Unlock(); err != nil {
		t.Fatal(err)
	}
}

func TestLifetimeConfig(t *testing.T) {
	c := newFakeCluster(3)
	tests := []struct {
		name string
		opts []Option
	}{
		{"negative interval", []Option{WithAutoExtend(-time.Second)}},
		{"interval beyond validity", []Option{WithExpiry(time.Second), WithAutoExtend(time.Second)}},
		{"negative max hold", []Option{WithMaxHold(-time.Second)}},
	}
	for _, tt := range tests {
		m := c.mutex("k", tt.opts...)
		if err := m.Lock(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Lock() = %v, want ErrInvalidConfig", tt.name, err)
		}
		if cause := context.Cause(m.Context()); !errors.Is(cause, ErrLockLost) || !errors.Is(cause, ErrInvalidConfig) {
			t.Errorf("%s: Context() cause = %v, want ErrLockLost and ErrInvalidConfig", tt.name, cause)
		}
	}
}

func TestContextWithoutAcquisition(t *testing.T) {
	c := newFakeCluster(3)
	m := New(c.pools()...).NewMutex("k")
	ctx := m.Context()
	if ctx.Err() == nil {
		t.Fatal("Context() before Lock has not ended")
	}
	if cause := context.Cause(ctx); !errors.Is(cause, ErrLockLost) || !errors.Is(cause, ErrNotLocked) {
		t.Errorf("Context() cause before Lock = %v, want ErrLockLost and ErrNotLocked", cause)
	}
	if err := m.Lock(); err != nil {
		t.Fatal(err)
	}
	held := m.Context()
	if held.Err() != nil || m.Context() != held {
		t.Fatalf("Context() while held: ended %v, same on each call %v; want live and the same", held.Err(), m.Context() == held)
	}
	if ok, err := m.Unlock(); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if cause := context.Cause(held); !errors.Is(cause, context.Canceled) || errors.Is(cause, ErrLockLost) {
		t.Errorf("cause after Unlock = %v, want context.Canceled only", cause)
	}
	if cause := context.Cause(m.Context()); !errors.Is(cause, ErrLockLost) {
		t.Errorf("Context() after Unlock: cause %v, want an ended context (ErrLockLost)", cause)
	}
}

func TestNewAcquisitionEndsOldLease(t *testing.T) {
	c := newFakeCluster(3)
	m := New(c.pools()...).NewMutex("k", WithAutoExtend(0))
	if err := m.Lock(); err != nil {
		t.Fatal(err)
	}
	old := m.Context()
	// The key vanished (expired, say): the next Lock succeeds.
	for _, node := range c.nodes {
		node.mu.Lock()
		delete(node.keys, "k")
		node.mu.Unlock()
	}
	if err := m.Lock(); err != nil {
		t.Fatal(err)
	}
	if cause := context.Cause(old); !errors.Is(cause, ErrLockLost) {
		t.Errorf("old acquisition's context: cause %v, want ErrLockLost", cause)
	}
	if m.Context() == old || m.Context().Err() != nil {
		t.Error("the new acquisition has no live context of its own")
	}
	m.Unlock()
}

func TestDoWithFakes(t *testing.T) {
	c := newFakeCluster(3)
	rs := New(c.pools()...)
	boom := errors.New("boom")
	err := rs.Do(context.Background(), "k", func(ctx context.Context) error {
		if got := c.keys("k"); got != 3 {
			t.Errorf("nodes holding the key during fn = %d, want 3", got)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("Do() = %v, want fn's error", err)
	}
	if got := c.keys("k"); got != 0 {
		t.Errorf("nodes holding the key after Do = %d, want 0", got)
	}
	// A release that fails is reported when the lock was not lost.
	err = rs.Do(context.Background(), "k", func(ctx context.Context) error {
		for _, node := range c.nodes {
			node.set("k", "stolen")
		}
		return nil
	})
	if err == nil {
		t.Error("Do() = nil after its lock was stolen, want the release's error")
	}
}

// TestNotifierClaim wakes a waiter by a release that several processes
// heard, then tells it, while it waits out its spread, that another
// process took the lock.
func TestNotifierClaim(t *testing.T) {
	nodes, w, lw := spreadScene(t)

	wake := func(id string) {
		t.Helper()
		c := w.wait(time.Now())
		for _, f := range nodes[:2] {
			f.listener().publish("k", id+" 4")
		}
		if !isReady(c) {
			t.Fatalf("release %s: the waiter was not woken", id)
		}
		if d := takeSpread(lw); d < 0 || d >= 3*time.Millisecond {
			t.Fatalf("release %s: spread delay %v, want in [0, 3ms)", id, d)
		}
		if lw.claimID != id {
			t.Fatalf("release %s: the try would claim %q", id, lw.claimID)
		}
	}

	wake("r1")
	nodes[0].listener().publish("k", "r0 claimed")
	if isReady(lw.w.claimed) {
		t.Error("the claim of another release reached the waiter")
	}
	nodes[2].listener().publish("k", "r1 claimed") // one node is enough
	if !isReady(lw.w.claimed) {
		t.Fatal("the claim of the release that woke the waiter did not reach it")
	}
	lw.w.stopSpread()

	// A claim that comes after the spread ended leaves nothing behind.
	wake("r2")
	lw.w.stopSpread()
	nodes[0].listener().publish("k", "r2 claimed")
	if isReady(lw.w.claimed) {
		t.Error("a claim after the spread ended reached the waiter")
	}

	// A claim is not a release: it wakes nobody.
	c := w.wait(time.Now())
	for _, f := range nodes {
		f.listener().publish("k", "r3 claimed")
	}
	if isReady(c) {
		t.Error("claims from every node woke a waiter")
	}
	w.stopWaiting()

	// Released without the listeners' count: no spread, nothing to claim.
	c = w.wait(time.Now())
	for _, f := range nodes[:2] {
		f.listener().publish("k", "r4")
	}
	if !isReady(c) {
		t.Fatal("release r4: the waiter was not woken")
	}
	if d := takeSpread(lw); d != 0 || lw.claimID != "" {
		t.Errorf("release r4 (one listener): spread %v, claim %q; want 0 and none", d, lw.claimID)
	}
}

// TestNotifierPendingSpread announces a release while the waiter is out
// of the queue (its try under way): when it comes back, it is woken at
// once, spread like a waiter woken by the announcement.
func TestNotifierPendingSpread(t *testing.T) {
	nodes, w, lw := spreadScene(t)

	since := time.Now() // the try starts
	for _, f := range nodes[:2] {
		f.listener().publish("k", "r1 5")
	}
	if c := w.wait(since); !isReady(c) {
		t.Fatal("the release announced during the try did not wake the waiter")
	}
	if d := takeSpread(lw); d < 0 || d >= 4*time.Millisecond || lw.claimID != "r1" {
		t.Errorf("spread delay %v, claim %q; want in [0, 4ms) and r1", d, lw.claimID)
	}
	nodes[1].listener().publish("k", "r1 claimed")
	if !isReady(lw.w.claimed) {
		t.Error("the claim did not reach the waiter woken by the pending release")
	}
	lw.w.stopSpread()
}
