package redsync

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-redlock/redsync/redis"
)

// Review 21: passing an acquisition on with no round (passOn, transfer.go),
// after review 20's fixes (doubtful after a failed Unlock, keepEntries, no
// pass-on from a guarded holder).

// r21Pool wraps a fake node: getHook, when set, runs after a GET was served
// on the node (it saw value), before its reply is returned; it may hold the
// reply back.
type r21Pool struct {
	node    *fakeNode
	mu      sync.Mutex
	getHook func(value string)
}

func (p *r21Pool) Get(ctx context.Context) (redis.Conn, error) {
	return &r21Conn{fakeConn: &fakeConn{node: p.node, ctx: ctx}, p: p}, nil
}

func (p *r21Pool) setGetHook(h func(value string)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.getHook = h
}

type r21Conn struct {
	*fakeConn
	p *r21Pool
}

func (c *r21Conn) Get(name string) (string, error) {
	v, err := c.fakeConn.Get(name)
	c.p.mu.Lock()
	h := c.p.getHook
	c.p.mu.Unlock()
	if h != nil && err == nil {
		h(v)
	}
	return v, err
}

// r21Pools wraps each node of c.
func r21Pools(c *fakeCluster) ([]*r21Pool, []redis.Pool) {
	ps := make([]*r21Pool, len(c.nodes))
	pools := make([]redis.Pool, len(c.nodes))
	for i, n := range c.nodes {
		ps[i] = &r21Pool{node: n}
		pools[i] = ps[i]
	}
	return ps, pools
}

// r21Waiter starts m.Lock in a goroutine and returns once it waits for a
// hand-off.
func r21Waiter(t *testing.T, m *Mutex) chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- m.Lock() }()
	queuedWaiter(t, m)
	return done
}

// TestReview21PassOnAfterValidFoundMissing breaks "no pass-on ... after
// Valid found it missing" (transfer.go, "Passing on", second rule; LIFETIME
// "Only an acquisition the nodes are not known to have lost") and with it
// "at most one holder".
//
// Valid marks the acquisition doubtful only when, as its round ends, the
// Mutex's current acquisition is still the one it checked
// (m.acq.calls == calls), and nothing keeps passOn from running while a
// Valid is in flight (an Extend in flight is counted in acq.extends; a
// Valid is not). The verdict of a Valid whose GETs already ran is lost when
// the acquisition is passed on meanwhile: it lands on the old Mutex's dead
// acquisition, the new holder's acquisition (same value, same keys) is not
// doubtful, and it is passed on again, strictly after Valid returned false.
//
// Interleaving (3 fake nodes, one Redsync): holder locks "k"; waiter W1
// and W2 wait; nodes 0 and 1 lose the key (a restart without persistence, which
// is what Valid exists to notice); holder.Valid() sends its GETs, which see
// the key missing on 0 and 1 (their replies are held back); holder.Unlock()
// passes the acquisition on to W1 (no round); Valid returns false; W1.Unlock() passes the acquisition on to W2 (no round) although
// a Valid of it found it missing. W2's Lock returns nil with ~8 s of
// validity for a value that 1 of 3 nodes holds, and another Redsync's
// TryLock takes the lock: two holders. A transfer round at either step
// would have set a fresh value on all three nodes (transfer.lua sets the
// key where it expired) and been safe.
//
// Fix: count Valid calls in flight as Extend calls are (increment in
// ValidContext before the round, as beginExtend does; passOn refuses while
// any is in flight), or keep doubtful on the lockCalls rather than on the
// Mutex's acquisition and have passOn carry it to the next calls, so that
// a verdict that arrives late still reaches whoever holds the value.
// Fixed the first way: beginCheck registers Valid calls as well.
func TestReview21PassOnAfterValidFoundMissing(t *testing.T) {
	c := newFakeCluster(3)
	ps, pools := r21Pools(c)
	rs := New(pools...)
	holder := rs.NewMutex("k")
	holder.now = c.clock.Now
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	value, _ := c.nodes[2].value("k")
	w1 := rs.NewMutex("k", WithRetryDelay(time.Hour))
	w1.now = c.clock.Now
	done1 := r21Waiter(t, w1)
	w2 := rs.NewMutex("k", WithRetryDelay(time.Hour))
	w2.now = c.clock.Now
	done2 := make(chan error, 1)
	go func() { done2 <- w2.Lock() }()
	queuedWaiters(t, w2, 2)

	// Nodes 0 and 1 lose the key.
	for _, n := range c.nodes[:2] {
		n.mu.Lock()
		delete(n.keys, "k")
		n.mu.Unlock()
	}
	gate := make(chan struct{})
	seen := make(chan string, 3)
	for _, p := range ps {
		p.setGetHook(func(v string) {
			seen <- v
			<-gate
		})
	}
	valid := make(chan bool, 1)
	go func() {
		ok, _ := holder.Valid()
		valid <- ok
	}()
	missing := 0
	for range 3 {
		if v := <-seen; v == "" {
			missing++
		}
	}
	if missing != 2 {
		t.Fatalf("Valid's GETs found the key missing on %d nodes, want 2", missing)
	}
	// Valid's GETs have run on every node: the nodes have told it the key
	// is gone on a quorum. Its replies are on their way.
	holder.Unlock()
	if err := awaitLock(t, done1); err != nil {
		t.Fatalf("W1 Lock() = %v", err)
	}
	close(gate)
	if ok := <-valid; ok {
		t.Fatal("Valid() = true with the key on 1 of 3 nodes")
	}
	for _, p := range ps {
		p.setGetHook(nil)
	}

	// Strictly after Valid returned false: W1 hands the lock to W2, which
	// has waited since before the loss.
	select {
	case err := <-done2:
		t.Fatalf("W2's Lock returned %v before W1's Unlock", err)
	default:
	}
	sent := c.calls()
	w1.Unlock()
	if err := awaitLock(t, done2); err != nil {
		t.Fatalf("W2 Lock() = %v", err)
	}
	defer w2.Unlock()
	passedOn := c.calls() == sent
	holders := c.holders("k", w2.Value())
	other := New(c.pools()...).NewMutex("k")
	other.now = c.clock.Now
	otherErr := other.TryLock()
	if otherErr == nil {
		defer other.Unlock()
	}
	if w2.Until().After(c.clock.Now()) && otherErr == nil {
		t.Fatalf("W2's Lock returned nil (Until in %v; passed on with no round: %v, value %q was the holder's: %v) but %d of 3 nodes hold its value, and another Redsync's TryLock() succeeded: two holders of an acquisition that Valid had found missing",
			w2.Until().Sub(c.clock.Now()), passedOn, w2.Value(), w2.Value() == value, holders)
	}
}

// r21InjectEntry puts a queue entry of member, with ticket, in node n's
// queue of "k", as a holder's queue try that failed there leaves it, and
// makes the holder's acquisition carry it as prepare does.
func r21InjectEntry(c *fakeCluster, n *fakeNode, holder *Mutex, member string, ticket int64) {
	n.mu.Lock()
	if n.queues == nil {
		n.queues = map[string][]fakeEntry{}
	}
	n.queues["k"] = append(n.queues["k"], fakeEntry{member: member, ticket: ticket, until: c.clock.Now().Add(time.Hour)})
	n.mu.Unlock()
	holder.mu.Lock()
	calls := holder.acq.calls
	tk := strconv.FormatInt(ticket, 10)
	calls.queue = &queueTry{member: member, ticket: tk}
	calls.release = redis.NewScriptCall(releaseNotifyScript, holder.keyArg, holder.queueKeyArg, calls.value, member, tk)
	holder.mu.Unlock()
}

// TestReview21HeldCarriedEntriesChainThenRound: an acquisition whose try
// left an entry (node 2) is passed on twice, H -> W1 -> W2, with no
// command; W2's acquisition still names the entry, and the transfer round
// to W3 (which has an observer, so the hand-off is a round) takes it out:
// no entry is left behind, W3 holds a fresh value on every node, and the
// passed-on value is dead.
func TestReview21HeldCarriedEntriesChainThenRound(t *testing.T) {
	c := newFakeCluster(3)
	rs := New(c.pools()...)
	h := rs.NewMutex("k")
	h.now = c.clock.Now
	if err := h.Lock(); err != nil {
		t.Fatal(err)
	}
	value, _ := c.nodes[0].value("k")
	r21InjectEntry(c, c.nodes[2], h, "elsewhere:1", 7)
	holder := h
	for i, opts := range [][]Option{nil, nil, {WithObserver(newRecordingObserver())}} {
		m := rs.NewMutex("k", append([]Option{WithRetryDelay(time.Hour)}, opts...)...)
		m.now = c.clock.Now
		done := r21Waiter(t, m)
		sent := c.calls()
		if ok, err := holder.Unlock(); !ok || err != nil {
			t.Fatalf("hand-off %d: Unlock() = %v, %v", i, ok, err)
		}
		if err := awaitLock(t, done); err != nil {
			t.Fatalf("hand-off %d: Lock() = %v", i, err)
		}
		m.mu.Lock()
		member, _ := m.acq.calls.entry()
		m.mu.Unlock()
		if i < 2 {
			if c.calls() != sent {
				t.Fatalf("hand-off %d sent %d commands, want none (passed on)", i, c.calls()-sent)
			}
			if member != "elsewhere:1" {
				t.Fatalf("hand-off %d: the acquisition names entry %q, want the carried one", i, member)
			}
			if got := c.nodes[2].queued("k"); len(got) != 1 {
				t.Fatalf("hand-off %d: node 2's queue %v, want the entry kept", i, got)
			}
		} else {
			if got := c.nodes[2].queued("k"); len(got) != 0 {
				t.Fatalf("node 2's queue %v after the transfer round, want the carried entry gone", got)
			}
			v := m.Value()
			if v == value || c.holders("k", v) < 2 {
				t.Fatalf("W3 holds %q on %d nodes (the passed-on value was %q)", v, c.holders("k", v), value)
			}
		}
		holder = m
	}
	eventually(t, "the last node follows the round", func() bool { return c.holders("k", holder.Value()) == 3 })
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("W3 Unlock() = %v, %v", ok, err)
	}
	if c.keys("k") != 0 {
		t.Fatalf("%d nodes hold the key after the last Unlock", c.keys("k"))
	}
}

// TestReview21HeldRefusedGrantReleasesCarriedEntries: the waiter's ctx
// ends while an acquisition with a carried entry is passed on to it (the
// grant is claimed, the waiter sees its ctx end and waits for the grant,
// then the Unlock passes on, as unlock does): the waiter's Lock returns the
// cancellation, and its refusal releases the key and takes the carried
// entry out. The holder's Mutex sends nothing and has no value left.
func TestReview21HeldRefusedGrantReleasesCarriedEntries(t *testing.T) {
	c := newFakeCluster(3)
	rs := New(c.pools()...)
	holder := rs.NewMutex("k")
	holder.now = c.clock.Now
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	r21InjectEntry(c, c.nodes[2], holder, "elsewhere:1", 7)
	waiter := rs.NewMutex("k", WithRetryDelay(time.Hour))
	waiter.now = c.clock.Now
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- waiter.LockContext(ctx) }()
	queuedWaiter(t, waiter)

	// Unlock, step by step: take the acquisition, claim the waiter.
	calls, endLease, err := holder.takeForUnlock()
	if err != nil {
		t.Fatal(err)
	}
	w, g := holder.claimWaiter(calls)
	if w == nil {
		t.Fatal("no waiter claimed")
	}
	// Since review 26 a waiter whose ctx has ended is not passed a lock:
	// the ctx ends here just after passOn decided (handOver's first step),
	// before the grant is delivered (handOver's end: close and wake).
	sent := c.calls()
	if !holder.passOn(calls, w, g) || c.calls() != sent {
		t.Fatalf("passOn refused, or sent %d commands; want passed on", c.calls()-sent)
	}
	cancel()
	// The waiter's wait ended with ctx: it took the grant out of its
	// waiter and waits for the hand-off to end.
	eventually(t, "the waiter waits for the grant", func() bool {
		w.n.mu.Lock()
		defer w.n.mu.Unlock()
		return w.grant == nil
	})
	close(g.done)
	select {
	case w.wake <- struct{}{}:
	default:
	}
	endLease()
	if err := awaitLock(t, done); !errors.Is(err, context.Canceled) {
		t.Fatalf("LockContext() = %v, want the cancellation", err)
	}
	if got := c.keys("k"); got != 0 {
		t.Fatalf("%d nodes hold the key after the refusal", got)
	}
	if got := c.nodes[2].queued("k"); len(got) != 0 {
		t.Fatalf("node 2's queue %v after the refusal, want the carried entry gone", got)
	}
	if v := holder.Value(); v != "" {
		t.Fatalf("holder Value() = %q after passing on", v)
	}
}

// TestReview21HeldSelfPassOnExtendInFlight: one Mutex used by a holder
// goroutine and a waiting goroutine. With an Extend of the acquisition in
// flight, the Unlock hands over by a round (fresh value on the nodes);
// without, it passes the acquisition on to itself with no command, and the
// Mutex's next Unlock releases it.
func TestReview21HeldSelfPassOnExtendInFlight(t *testing.T) {
	for _, extending := range []bool{false, true} {
		c := newFakeCluster(3)
		rs := New(c.pools()...)
		m := rs.NewMutex("k", WithRetryDelay(time.Hour))
		m.now = c.clock.Now
		if err := m.Lock(); err != nil {
			t.Fatal(err)
		}
		value, _ := c.nodes[0].value("k")
		done := r21Waiter(t, m)
		var extended chan struct{}
		n := c.nodes[2]
		if extending {
			n.mu.Lock()
			n.block, n.slow = make(chan struct{}), "extend"
			n.mu.Unlock()
			extended = make(chan struct{})
			go func() { m.Extend(); close(extended) }()
			eventually(t, "the Extend reached node 2", func() bool { return slicesContains(n.ran(), "extend") })
		}
		sent := c.calls()
		if ok, err := m.Unlock(); !ok || err != nil {
			t.Fatalf("extending %v: Unlock() = %v, %v", extending, ok, err)
		}
		if err := awaitLock(t, done); err != nil {
			t.Fatalf("extending %v: waiting Lock() = %v", extending, err)
		}
		if extending {
			n.mu.Lock()
			close(n.block)
			n.block = nil
			n.mu.Unlock()
			<-extended
		}
		v := m.Value()
		switch {
		case !extending && (v != value || c.calls() != sent):
			t.Fatalf("no Extend: the Mutex holds %q after %d commands, want %q passed on with none", v, c.calls()-sent, value)
		case extending && (v == value || c.calls() == sent):
			t.Fatalf("Extend in flight: the Mutex holds %q after %d commands, want a fresh value by a round", v, c.calls()-sent)
		}
		eventually(t, "every node holds the value", func() bool { return c.holders("k", v) == 3 })
		if ok, err := m.Unlock(); !ok || err != nil {
			t.Fatalf("extending %v: second Unlock() = %v, %v", extending, ok, err)
		}
		if c.keys("k") != 0 {
			t.Fatalf("extending %v: %d nodes hold the key", extending, c.keys("k"))
		}
	}
}

func slicesContains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}
