package redsync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
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
	// Generous: the machine may be busy; only a failure waits it out.
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not true after 10s: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// subscribedEverywhere waits until every node's listener is subscribed to
// the channel of a Redsync.
func subscribedEverywhere(t *testing.T, nodes []*fakeSubNode) {
	t.Helper()
	eventually(t, "every node subscribed", func() bool {
		for _, f := range nodes {
			l := f.listener()
			if l == nil {
				return false
			}
			chans, _ := l.state()
			if !slices.ContainsFunc(chans, func(c string) bool { return strings.HasPrefix(c, wakeChannelPrefix) }) {
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

// turnMsg is a message of a node on the Redsync's channel: "turn" or
// "next" for member, about the release id.
func turnMsg(n *notifier, kind, member, id string) redis.Message {
	return redis.Message{Channel: n.channel, Payload: kind + " " + member + " " + id}
}

// readyWaiter registers a waiter for "k" on n once every node listens, and
// clears the try that the subscriptions' confirmation asks of every
// waiter (a turn may have been missed during the set-up).
func readyWaiter(t *testing.T, n *notifier, nodes []*fakeSubNode) *waiter {
	t.Helper()
	w := n.watch(&Mutex{config: config{name: "k"}})
	t.Cleanup(w.close)
	subscribedEverywhere(t, nodes)
	eventually(t, "a quorum confirmed", func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.hears()
	})
	w.tryStarts()
	select {
	case <-w.wake:
	default:
	}
	return w
}

// TestNotifierTurnQuorum: a waiter is told to try when a quorum of nodes
// gave it the turn of one release, once; turns of other members, of a
// release heard by too few nodes, and repeats wake nobody.
func TestNotifierTurnQuorum(t *testing.T) {
	nodes, pools := newFakeSubNodes(5)
	n := newNotifier(pools)
	w1 := readyWaiter(t, n, nodes)
	w2 := readyWaiter(t, n, nodes)
	w1.tryStarts()
	c1, c2 := w1.wait(), w2.wait()

	send := func(node int, kind string, w *waiter, id string) {
		nodes[node].listener().receive(turnMsg(n, kind, w.member, id))
	}
	before := time.Now()
	send(0, "turn", w1, "a")
	send(1, "turn", w1, "a")
	send(1, "turn", w1, "a") // a repeat from one node counts once
	if turned, _, standby := w1.take(); turned || isReady(c2) {
		t.Fatal("a waiter was told to try before a quorum gave it the turn")
	} else if standby.Before(before.Add(standbyWait)) || standby.After(time.Now().Add(standbyWait)) {
		// The first turn of a release sets a standby wait, in case the
		// quorum never comes (the nodes' queues came apart).
		t.Fatalf("after a turn from one node, standby at %v, want a standby wait after it", standby.Sub(before))
	}
	<-c1 // the standby's signal
	send(4, "turn", w1, "a")
	if turned, _, _ := w1.take(); !turned || !isReady(c1) || isReady(c2) {
		t.Fatalf("after a quorum of turns: first waiter turned %v woken %v, second woken %v; want true, true, false", turned, isReady(c1), isReady(c2))
	}
	// The stragglers of the same release tell nothing new.
	send(2, "turn", w1, "a")
	send(3, "turn", w1, "a")
	if turned, _, _ := w1.take(); turned || isReady(c1) {
		t.Fatal("stragglers of a turn already heard woke the waiter again")
	}
	// A turn for a member that is not waiting (any more) is ignored.
	for i := range nodes {
		nodes[i].listener().receive(turnMsg(n, "turn", n.id+":999", "b"))
	}
	if isReady(c1) || isReady(c2) {
		t.Fatal("a turn of an unknown member woke a waiter")
	}
	// The next release's turns for the second waiter wake it.
	for i := range 3 {
		send(i, "turn", w2, "c")
	}
	if turned, _, _ := w2.take(); !turned || !isReady(c2) {
		t.Fatal("a quorum of turns did not wake the second waiter")
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

// TestNotifierNextStandby: a waiter that a quorum named next tries after
// standbyWait unless its own turn comes first (the waiter given the turn
// may have crashed).
func TestNotifierNextStandby(t *testing.T) {
	nodes, pools := newFakeSubNodes(3)
	n := newNotifier(pools)
	w := readyWaiter(t, n, nodes)
	c := w.wait()
	before := time.Now()
	for i := range 2 {
		nodes[i].listener().receive(turnMsg(n, "next", w.member, "a"))
	}
	turned, _, standby := w.take()
	if turned || !isReady(c) {
		t.Fatalf("named next by a quorum: turned %v, woken %v; want false, true", turned, isReady(c))
	}
	if standby.Before(before.Add(standbyWait)) || standby.After(time.Now().Add(standbyWait)) {
		t.Fatalf("standby at %v after the message, want %v", standby.Sub(before), standbyWait)
	}
	// Its own turn replaces the standby.
	for i := range 2 {
		nodes[i].listener().receive(turnMsg(n, "turn", w.member, "b"))
	}
	if turned, _, standby := w.take(); !turned || !standby.IsZero() {
		t.Fatalf("after a quorum of turns: turned %v, standby %v; want true, none", turned, standby)
	}
}

// TestNotifierLocalOrderByTicket: the waiters of a Redsync that a local
// hand-off may take are ordered by ticket (the order in which they
// started waiting), whatever the order in which they come back to wait.
func TestNotifierLocalOrderByTicket(t *testing.T) {
	nodes, pools := newFakeSubNodes(3)
	n := newNotifier(pools)
	ws := []*waiter{readyWaiter(t, n, nodes), readyWaiter(t, n, nodes), readyWaiter(t, n, nodes)}
	if !(ws[0].ticket < ws[1].ticket && ws[1].ticket < ws[2].ticket) {
		t.Fatalf("tickets %d, %d, %d; want increasing", ws[0].ticket, ws[1].ticket, ws[2].ticket)
	}
	ws[2].wait()
	ws[0].wait()
	ws[1].wait()
	var got []*waiter
	for range ws {
		w, g := n.claim("k", 0)
		if w == nil {
			t.Fatal("claim found no waiter")
		}
		got = append(got, w)
		close(g.done)
		w.stopWaiting()
	}
	if !slices.Equal(got, ws) {
		t.Error("claim took the waiters out of ticket order")
	}
}

// TestTurnDuringTryIsKept: a quorum of turns that came while the waiter's
// try was under way (the try reached the nodes before the release) makes
// the next wait end at once with an extra try, not wait for the retry
// delay.
func TestTurnDuringTryIsKept(t *testing.T) {
	nodes, pools := newFakeSubNodes(3)
	rs := New(pools...)
	m := rs.NewMutex("k", WithRetryDelay(time.Hour))
	lw := &lockWait{m: m}
	lw.w = m.notify.watch(m)
	defer lw.close(context.Background())
	subscribedEverywhere(t, nodes)
	lw.tryStarts() // the try starts; the release comes during it
	for i := range 2 {
		nodes[i].listener().receive(turnMsg(m.notify, "turn", lw.w.member, "a"))
	}
	done := make(chan waitResult, 1)
	go func() {
		r, _ := lw.await(context.Background(), 1)
		done <- r
	}()
	select {
	case r := <-done:
		if r != waitExtra {
			t.Fatalf("await() = %v, want waitExtra", r)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a turn heard during the try was lost: the wait goes on")
	}
}

func TestNotifierReconnects(t *testing.T) {
	nodes, pools := newFakeSubNodes(3)
	n := newNotifier(pools)
	w := readyWaiter(t, n, nodes)
	broken := nodes[0].listener()
	broken.receive(redis.Message{Err: errors.New("connection reset")})
	eventually(t, "node 0 listens again", func() bool {
		l := nodes[0].listener()
		if l == broken {
			return false
		}
		chans, _ := l.state()
		return slices.Contains(chans, n.channel)
	})
	if _, closed := broken.state(); !closed {
		t.Error("the failed listener was not closed")
	}
	// The confirmation of the new subscription asks for a try.
	w.tryStarts()
	// Messages of the old listener are ignored.
	broken.receive(turnMsg(n, "turn", w.member, "a"))
	nodes[1].listener().receive(turnMsg(n, "turn", w.member, "a"))
	if turned, _, _ := w.take(); turned {
		t.Error("a message of the failed listener counted")
	}
	nodes[0].listener().receive(turnMsg(n, "turn", w.member, "a"))
	if turned, _, _ := w.take(); !turned {
		t.Error("a quorum with the new listener did not turn the waiter")
	}
}

func TestNotifierListenFailureBacksOff(t *testing.T) {
	nodes, pools := newFakeSubNodes(3)
	nodes[2].listenErr = errors.New("connection refused")
	n := newNotifier(pools)
	w := n.watch(&Mutex{config: config{name: "k"}})
	subscribedEverywhere(t, nodes[:2])
	time.Sleep(50 * time.Millisecond)
	nodes[2].mu.Lock()
	nodes[2].listenErr = nil
	nodes[2].mu.Unlock()
	subscribedEverywhere(t, nodes) // after the back-off
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
	eventually(t, "a second try", func() bool { return c.nodes[0].tries() >= 2 })
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

// ownTurnFixture returns the wait of a Lock call of a Mutex over three
// fake nodes (quorum 2, retry delay 1 h) whose Redsync hears a quorum, a
// function that sends the waiter a message from some nodes, and one that
// makes the waiter's newest try an own try whose id it returns.
func ownTurnFixture(t *testing.T) (lw *lockWait, send func(kind, id string, from ...int), own func(i int) string) {
	t.Helper()
	nodes, pools := newFakeSubNodes(3)
	m := New(pools...).NewMutex("k", WithRetryDelay(time.Hour))
	lw = &lockWait{m: m}
	lw.w = m.notify.watch(m)
	t.Cleanup(func() { lw.close(context.Background()) })
	subscribedEverywhere(t, nodes)
	eventually(t, "a quorum confirmed", func() bool {
		m.notify.mu.Lock()
		defer m.notify.mu.Unlock()
		return m.notify.hears()
	})
	lw.tryStarts() // the try that the subscriptions' confirmation asks for
	send = func(kind, id string, from ...int) {
		for _, i := range from {
			nodes[i].listener().receive(turnMsg(m.notify, kind, lw.w.member, id))
		}
	}
	own = func(i int) string {
		id := fmt.Sprintf("own%d", i)
		m.notify.mu.Lock()
		lw.w.tries[0], lw.w.tries[1] = id, lw.w.tries[0]
		m.notify.mu.Unlock()
		return id
	}
	return lw, send, own
}

// ownTurnTries brings n tries in a row forward with turns from a quorum
// (nodes 0 and 1) naming the waiter's own newest try, each a try that
// took the key on a quorum and whose undo freed it (ownTurnFixture's
// send and own), and starts each.
func ownTurnTries(t *testing.T, lw *lockWait, send func(kind, id string, from ...int), own func(i int) string, n int) {
	t.Helper()
	for i := range n {
		send("turn", own(i), 0, 1)
		awaitTry(t, lw, 2*time.Second, fmt.Sprintf("own turn %d from a quorum", i+1))
		lw.tryStarts()
	}
}

// awaitTry runs one wait of lw and fails unless it ends with an extra try
// within limit (the context ends after 3 s; ownTurnFixture's retry delay
// is an hour).
func awaitTry(t *testing.T, lw *lockWait, limit time.Duration, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	r, _ := lw.await(ctx, 1)
	took := time.Since(start)
	if r != waitExtra || took > limit {
		t.Fatalf("%s: await = %v after %v, want an extra try within %v; the retry delay is 1h (waitDone = ctx of 3s ended: the waiter sleeps with the lock free)",
			what, r, took.Round(time.Millisecond), limit)
	}
	t.Logf("%s: await = %v after %v", what, r, took.Round(time.Millisecond))
}

// TestOwnTurnsBringFewTries: turns from a quorum that only the undos of
// the waiter's own tries gave (replicas given as nodes echo them) bring at
// most maxOwnTurns tries in a row forward; another owner's turn counts
// again, and resets the count.
func TestOwnTurnsBringFewTries(t *testing.T) {
	lw, send, own := ownTurnFixture(t)
	// turn sends the turn of id from a quorum during a try, and reports
	// whether the wait after the try ends at once with a try (the retry
	// delay is an hour).
	turn := func(id string) bool {
		lw.tryStarts()
		send("turn", id, 0, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		r, _ := lw.await(ctx, 1)
		return r == waitExtra
	}
	for round := range 2 {
		for i := range maxOwnTurns {
			if !turn(own(round*10 + i)) {
				t.Fatalf("round %d: own turn %d brought no try; want up to %d in a row", round, i+1, maxOwnTurns)
			}
		}
		if turn(own(round*10 + maxOwnTurns)) {
			t.Fatalf("round %d: own turn %d brought a try; want at most %d in a row", round, maxOwnTurns+1, maxOwnTurns)
		}
		if !turn(fmt.Sprintf("release%d", round)) {
			t.Fatalf("round %d: another owner's turn brought no try", round)
		}
	}
}
