package redsync

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/goredis"
)

// Review 20: passing an acquisition on with no round (passOn, transfer.go).

// r20Pool wraps a fake node: hook, when set, sees every Eval first and may
// take it over (handled), for instance to run it on the node and then lose
// the reply.
type r20Pool struct {
	node *fakeNode
	mu   sync.Mutex
	hook func(c *fakeConn, script *redis.Script, args []any) (handled bool, reply any, err error)
}

func (p *r20Pool) Get(ctx context.Context) (redis.Conn, error) {
	return &r20Conn{fakeConn: &fakeConn{node: p.node, ctx: ctx}, p: p}, nil
}

func (p *r20Pool) setHook(h func(c *fakeConn, script *redis.Script, args []any) (bool, any, error)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hook = h
}

type r20Conn struct {
	*fakeConn
	p *r20Pool
}

func (c *r20Conn) Eval(script *redis.Script, keysAndArgs ...any) (any, error) {
	c.p.mu.Lock()
	h := c.p.hook
	c.p.mu.Unlock()
	if h != nil {
		if handled, reply, err := h(c.fakeConn, script, keysAndArgs); handled {
			return reply, err
		}
	}
	return c.fakeConn.Eval(script, keysAndArgs...)
}

// r20Pools wraps each node of c.
func r20Pools(c *fakeCluster) ([]*r20Pool, []redis.Pool) {
	ps := make([]*r20Pool, len(c.nodes))
	pools := make([]redis.Pool, len(c.nodes))
	for i, n := range c.nodes {
		ps[i] = &r20Pool{node: n}
		pools[i] = ps[i]
	}
	return ps, pools
}

var errR20ReplyLost = errors.New("r20: i/o timeout (the command ran, its reply was lost)")

// TestReview20PassOnAfterFailedUnlock breaks promise 1 (and 5: "nothing
// says the nodes lost it").
//
// An Unlock whose release reached the nodes but whose replies were lost
// (read timeouts: the per-node timeout ran out after the nodes ran the
// command) counts as "node errors": giveBack makes the acquisition current
// again, unchanged, with doubtful unset. The nodes no longer hold the
// value. The next Unlock finds a local waiter and passes the acquisition on
// with no round: the waiter's Lock returns nil, with an Until 8 s ahead,
// for a value that no node holds; a Lock of another process then takes
// the lock too. Before passOn, the second Unlock ran transfer.lua, which
// set the waiter's fresh value on every node (result 2, expired) and was
// safe.
//
// Interleaving: holder.Lock; holder.Unlock #1 (node 0 fails, nodes 1 and
// 2 run the release, replies lost; held on a gate) -- meanwhile the waiter
// Lock's first try finds the key held and the waiter queues -- gate opens,
// Unlock #1 returns false with node errors, giveBack; holder.Unlock #2
// passes on; another Redsync's TryLock succeeds.
//
// Fix: giveBack must set acq.doubtful (a release that failed on node
// errors may have landed), so that passOn refuses and a transfer round
// (which re-sets the key) is made. Fixed that way.
func TestReview20PassOnAfterFailedUnlock(t *testing.T) {
	c := newFakeCluster(3)
	ps, pools := r20Pools(c)
	rs := New(pools...)
	holder := rs.NewMutex("k")
	holder.now = c.clock.Now
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	reached := make(chan struct{}, 3)
	for i, p := range ps {
		p.setHook(func(fc *fakeConn, s *redis.Script, args []any) (bool, any, error) {
			if s != releaseNotifyScript {
				return false, nil, nil
			}
			reached <- struct{}{}
			<-gate
			if i == 0 {
				return true, nil, errR20ReplyLost // never ran
			}
			fc.Eval(s, args...)               // ran on the node ...
			return true, nil, errR20ReplyLost // ... but the reply was lost
		})
	}
	unlocked := make(chan error, 1)
	go func() {
		ok, err := holder.Unlock()
		if ok {
			err = errors.New("first Unlock succeeded")
		}
		unlocked <- err
	}()
	for range 3 {
		<-reached
	}
	waiter := rs.NewMutex("k", WithRetryDelay(time.Hour))
	waiter.now = c.clock.Now
	done := make(chan error, 1)
	go func() { done <- waiter.Lock() }()
	queuedWaiter(t, waiter)
	close(gate)
	if err := <-unlocked; errors.Is(err, ErrLockAlreadyExpired) || err == nil {
		t.Fatalf("first Unlock: %v; want node errors (the acquisition given back)", err)
	}
	for _, p := range ps {
		p.setHook(nil)
	}
	if got := c.keys("k"); got != 1 {
		t.Fatalf("after the first Unlock %d nodes hold the key, want 1 (the release landed on 2)", got)
	}
	// The second Unlock (the caller retries, as the docs invite).
	holder.Unlock()
	if err := awaitLock(t, done); err != nil {
		t.Fatalf("waiter Lock() = %v", err)
	}
	// The waiter believes it holds the lock: its Until is in the future.
	if !waiter.Until().After(c.clock.Now()) {
		t.Fatalf("waiter Until() %v is not after now", waiter.Until())
	}
	holders := c.holders("k", waiter.Value())
	other := New(c.pools()...).NewMutex("k")
	other.now = c.clock.Now
	otherErr := other.TryLock()
	if otherErr == nil {
		defer other.Unlock()
	}
	defer waiter.Unlock()
	if holders < 2 || otherErr == nil {
		t.Fatalf("the waiter's Lock returned nil (Until in %v) but only %d of 3 nodes hold its value, and another Redsync's TryLock() = %v: two holders",
			waiter.Until().Sub(c.clock.Now()), holders, otherErr)
	}
}

// r20SubPool is an r20Pool that can be listened to (see subPools).
type r20SubPool struct {
	*r20Pool
	sub fakeSubNode
}

func (p *r20SubPool) Listen(ctx context.Context, receive func(redis.Message)) (redis.Listener, error) {
	return p.sub.Listen(ctx, receive)
}

// r20SubPools wraps each node of c in a pool that can be listened to.
func r20SubPools(c *fakeCluster) ([]*r20Pool, []redis.Pool) {
	ps := make([]*r20Pool, len(c.nodes))
	pools := make([]redis.Pool, len(c.nodes))
	for i, n := range c.nodes {
		sp := &r20SubPool{r20Pool: &r20Pool{node: n}}
		n.mu.Lock()
		n.subs = append(n.subs, &sp.sub)
		n.mu.Unlock()
		ps[i], pools[i] = sp.r20Pool, sp
	}
	return ps, pools
}

// waitFor polls cond for up to d.
func r20WaitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// TestReview20LeftIgnoresLateEarlierTry breaks promise 9 (and 7: no entry
// left in the nodes' queues).
//
// acquire sets calls.queue.left when the winning queue try took the key on
// every node. But an earlier queue try of the same waiter may still be in
// flight on a node (it timed out there, and the undo's awaitSettled is
// bounded by the per-node timeout): when it lands after the winning try,
// queue_acquire.lua finds the key held (by the winner's value) and joins
// the waiter's entry again. With left set, entry() is empty, so neither
// the transfer round (holder member "") nor passing on removes it, and it
// stays until its life ends, waking a member that no longer exists. Before
// the change, the hand-off's transfer.lua got the holder's member and
// ticket and took the entry out.
//
// Interleaving: O (another Redsync) holds k; H's queue try T1 joins the
// queue on nodes 0 and 1 and hangs on node 2 past its timeout; T1 fails
// (ErrTaken) and is undone; O's key expires on node 2 and O unlocks, the
// turns of nodes 0 and 1 make H try T2, which takes k on all 3 nodes
// (left = true); T1 lands on node 2 and joins H's
// entry; H's Unlock hands over to a local waiter W: node 2 keeps H's entry.
//
// Fix: set left only when no earlier queue try of the waiter can still
// land (e.g. only for the waiter's first queue try, fresh = "1", or when
// every earlier try settled); otherwise keep member/ticket in entry().
// Fixed by removing left: an acquisition passed on carries the entries
// of the try that made it (keepEntries in handoff.go), and a transfer
// round takes them out; this test now guards that the hand-off's round
// takes H's entry out.
func TestReview20LeftIgnoresLateEarlierTry(t *testing.T) {
	c := newFakeCluster(3)
	ps, pools := r20SubPools(c)
	rs := New(pools...)
	other := New(c.pools()...).NewMutex("k")
	other.now = c.clock.Now
	if err := other.Lock(); err != nil {
		t.Fatal(err)
	}
	otherValue, _ := c.nodes[2].value("k")
	gate := make(chan struct{})
	landed := make(chan struct{})
	blocked := make(chan struct{}, 1)
	var once sync.Once
	ps[2].setHook(func(fc *fakeConn, s *redis.Script, args []any) (bool, any, error) {
		if s != queueAcquireScript {
			return false, nil, nil
		}
		if v, _ := fc.node.value("k"); v != otherValue {
			return false, nil, nil // only a try made while O holds the lock
		}
		first := false
		once.Do(func() { first = true })
		if !first {
			return false, nil, nil
		}
		blocked <- struct{}{}
		<-gate
		// The command was written before the timeout: it runs now.
		late := &fakeConn{node: fc.node, ctx: context.Background()}
		late.Eval(s, args...)
		close(landed)
		return true, nil, context.DeadlineExceeded
	})
	opts := []Option{WithRetryDelay(time.Hour), WithTimeoutFactor(0.01)} // 80 ms per node
	h := rs.NewMutex("k", opts...)
	h.now = c.clock.Now
	done := make(chan error, 1)
	go func() { done <- h.Lock() }()
	select {
	case <-blocked:
	case <-time.After(10 * time.Second):
		t.Fatal("H made no queue try")
	}
	var member string
	if !r20WaitFor(5*time.Second, func() bool {
		q := c.nodes[0].queued("k")
		if len(q) == 1 && len(c.nodes[1].queued("k")) == 1 {
			member = q[0]
			return true
		}
		return false
	}) {
		t.Fatal("H's first queue try did not join the queues of nodes 0 and 1")
	}
	// Let T1 fail and be undone before the release.
	queuedWaiter(t, h)
	// O's key is gone from node 2 first (as by its expiry there), so that
	// H's next try, which the turns of nodes 0 and 1 start, finds node 2
	// free.
	c.nodes[2].mu.Lock()
	delete(c.nodes[2].keys, "k")
	c.nodes[2].mu.Unlock()
	if ok, err := other.Unlock(); !ok || err != nil {
		t.Fatalf("other Unlock() = %v, %v", ok, err)
	}
	if err := awaitLock(t, done); err != nil {
		t.Fatalf("H Lock() = %v", err)
	}
	hv, _ := c.nodes[0].value("k")
	if c.holders("k", hv) != 3 {
		t.Fatalf("H's winning try holds %d of 3 nodes, want every node (left set)", c.holders("k", hv))
	}
	close(gate)
	<-landed
	if q := c.nodes[2].queued("k"); len(q) != 1 || q[0] != member {
		v2, _ := c.nodes[2].value("k")
		t.Fatalf("node 2's queue %v after the late try, want H's entry %q (node 2 holds %q, H %q; commands %v)", q, member, v2, hv, c.nodes[2].ran())
	}
	w := rs.NewMutex("k", opts...)
	w.now = c.clock.Now
	wdone := make(chan error, 1)
	go func() { wdone <- w.Lock() }()
	queuedWaiter(t, w)
	if ok, err := h.Unlock(); !ok || err != nil {
		t.Fatalf("H Unlock() = %v, %v", ok, err)
	}
	if err := awaitLock(t, wdone); err != nil {
		t.Fatalf("W Lock() = %v", err)
	}
	defer w.Unlock()
	gone := r20WaitFor(time.Second, func() bool {
		return !slices.Contains(c.nodes[2].queued("k"), member)
	})
	if !gone {
		t.Errorf("after H's hand-off, node 2's queue still holds H's entry %q (its Lock ended): %v", member, c.nodes[2].queued("k"))
	}
}

// r20GuardAsAcquire makes the fake nodes run the restart guard's acquire
// script (not emulated by the fakes) as the plain acquire: every node is
// old enough to vote.
func r20GuardAsAcquire(ps []*r20Pool) {
	guarded := acquireScripts[0][1][0]
	for _, p := range ps {
		p.setHook(func(fc *fakeConn, s *redis.Script, args []any) (bool, any, error) {
			if s != guarded {
				return false, nil, nil
			}
			// name, marker, value, ttl, guard ttl
			reply, err := fc.Eval(acquireScript, args[0], args[2], args[3])
			return true, reply, err
		})
	}
}

// TestReview20RestartGuardHolderPassesOn breaks promise 8 as the brief
// states it ("WithRestartGuard never takes part in passing on"): only a
// waiter with the guard is excluded (canTakeOver); a holder with
// WithRestartGuard (canHandOver, passOn check neither m.guard.on) passes
// its acquisition on, with no round, to a plain waiter. (Safety-wise the
// guarded acquisition is as good as any; this is a mismatch between the
// promise and the code: the comment at the top of transfer.go says only
// "waiters with a restart guard take no part".)
//
// Fix: either exclude m.guard.on in passOn (and/or canHandOver), or state
// in the docs that a guarded holder may pass on. Fixed: passOn refuses a
// holder with the guard.
func TestReview20RestartGuardHolderPassesOn(t *testing.T) {
	c := newFakeCluster(3)
	ps, pools := r20Pools(c)
	r20GuardAsAcquire(ps)
	rs := New(pools...)
	holder := rs.NewMutex("k", WithRestartGuard(time.Hour))
	holder.now = c.clock.Now
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	value, _ := c.nodes[0].value("k")
	waiter := rs.NewMutex("k", WithRetryDelay(time.Hour))
	waiter.now = c.clock.Now
	done := make(chan error, 1)
	go func() { done <- waiter.Lock() }()
	queuedWaiter(t, waiter)
	sent := c.calls()
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("holder Unlock() = %v, %v", ok, err)
	}
	if err := awaitLock(t, done); err != nil {
		t.Fatalf("waiter Lock() = %v", err)
	}
	defer waiter.Unlock()
	if got := waiter.Value(); got == value || c.calls() == sent {
		t.Errorf("the acquisition of a holder with WithRestartGuard was passed on with no round (%d commands, waiter value = holder's: %v)",
			c.calls()-sent, got == value)
	}
}

// TestReview20HeldOldHolderLocksAgainAtOnce: right after an Unlock that
// passed the acquisition on, and before the waiter's goroutine took the
// grant, the old holder's Mutex tries again (TryLock) and Value: the try
// fails on every node (the waiter's value holds them), Value is empty,
// and the waiter's Lock then returns holding the value on every node.
func TestReview20HeldOldHolderLocksAgainAtOnce(t *testing.T) {
	for range 50 {
		c := newFakeCluster(3)
		holder, waiter, value, done := passOnScene(t, c, nil, nil)
		if ok, err := holder.Unlock(); !ok || err != nil {
			t.Fatalf("holder Unlock() = %v, %v", ok, err)
		}
		if got := holder.Value(); got != "" {
			t.Fatalf("holder Value() after passing on = %q", got)
		}
		var taken *ErrTaken
		if err := holder.TryLock(); !errors.As(err, &taken) {
			t.Fatalf("old holder TryLock() right after passing on = %v, want *ErrTaken", err)
		}
		if err := awaitLock(t, done); err != nil {
			t.Fatalf("waiter Lock() = %v", err)
		}
		if got := waiter.Value(); got != value || c.holders("k", value) != 3 {
			t.Fatalf("waiter Value() = %q (holder's %q) held on %d nodes", got, value, c.holders("k", value))
		}
		if ok, err := holder.Unlock(); ok || !errors.Is(err, ErrLockAlreadyExpired) {
			t.Fatalf("old holder Unlock() after a failed TryLock = %v, %v", ok, err)
		}
		if ok, err := waiter.Unlock(); !ok || err != nil {
			t.Fatalf("waiter Unlock() = %v, %v", ok, err)
		}
		if c.keys("k") != 0 {
			t.Fatal("keys left")
		}
	}
}

// TestReview20HeldCancelAsPassedOn: the waiter's ctx ends while an Unlock
// passes the acquisition on. Either the waiter holds it (Lock nil, the
// value on every node) or its Lock ends with ctx and the grant is released
// (no key left); never a key held by nobody, never a nil Lock without the
// value on the nodes.
func TestReview20HeldCancelAsPassedOn(t *testing.T) {
	got := map[bool]int{}
	for range 200 {
		c := newFakeCluster(3)
		rs := New(c.pools()...)
		holder := rs.NewMutex("k")
		if err := holder.Lock(); err != nil {
			t.Fatal(err)
		}
		value, _ := c.nodes[0].value("k")
		waiter := rs.NewMutex("k", WithRetryDelay(time.Hour))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- waiter.LockContext(ctx) }()
		queuedWaiter(t, waiter)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); cancel() }()
		go func() { defer wg.Done(); holder.Unlock() }()
		wg.Wait()
		err := awaitLock(t, done)
		got[err == nil]++
		if err == nil {
			if waiter.Value() != value || c.holders("k", value) != 3 {
				t.Fatalf("Lock nil but the nodes hold %d of the value", c.holders("k", value))
			}
			waiter.Unlock()
		} else if !errors.Is(err, context.Canceled) {
			t.Fatalf("LockContext() = %v", err)
		}
		if n := c.keys("k"); n != 0 {
			t.Fatalf("%d nodes hold the key after everyone let go (Lock err %v)", n, err)
		}
	}
	t.Logf("held %d, cancelled %d", got[true], got[false])
}

// TestReview20HeldRealServersChain: on three redis-servers, a holder hands
// over to a listed waiter W1 (entries on the nodes: a transfer round), W1
// hands over to W2, which stood behind W1 (passed on when W1's Unlock comes
// before W2's cover try, else a round); W2 holds its value on every node,
// and after W2's Unlock no node holds any key, queues included.
func TestReview20HeldRealServersChain(t *testing.T) {
	servers := redistest.StartN(t, 3)
	pools := make([]redis.Pool, len(servers))
	for i, s := range servers {
		client := goredislib.NewClient(&goredislib.Options{Addr: s.Addr(), MaxRetries: -1})
		t.Cleanup(func() { client.Close() })
		pools[i] = goredis.NewPool(client)
	}
	rs := New(pools...)
	holder := rs.NewMutex("k")
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	w1 := rs.NewMutex("k", WithRetryDelay(time.Hour))
	d1 := make(chan error, 1)
	go func() { d1 <- w1.Lock() }()
	eventually(t, "W1 listed", func() bool {
		rs.notify.mu.Lock()
		defer rs.notify.mu.Unlock()
		kw := rs.notify.keys["k"]
		return kw != nil && len(kw.queue) == 1 && kw.queue[0].standing == listed
	})
	w2 := rs.NewMutex("k", WithRetryDelay(time.Hour))
	d2 := make(chan error, 1)
	go func() { d2 <- w2.Lock() }()
	eventually(t, "W2 behind", func() bool {
		rs.notify.mu.Lock()
		defer rs.notify.mu.Unlock()
		kw := rs.notify.keys["k"]
		return kw != nil && len(kw.queue) == 2 && kw.queue[1].standing == behind
	})
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("holder Unlock() = %v, %v", ok, err)
	}
	if err := awaitLock(t, d1); err != nil {
		t.Fatalf("W1 Lock() = %v", err)
	}
	if ok, err := w1.Unlock(); !ok || err != nil {
		t.Fatalf("W1 Unlock() = %v, %v", ok, err)
	}
	if err := awaitLock(t, d2); err != nil {
		t.Fatalf("W2 Lock() = %v", err)
	}
	// W1's Lock call ended, so cover made W2 try: W2 joined the queues
	// and is handed the lock by a round, unless W1's Unlock came first.
	t.Logf("passed on from W1 to W2: %v", w1.Value() == "")
	// A transfer round returns at a quorum, and a node where W2's own
	// failed try got in first is left out: a quorum holds W2's value.
	held := 0
	for _, s := range servers {
		if s.MustDo(t, "GET", "k").Str == w2.Value() {
			held++
		}
	}
	if held < 2 {
		t.Errorf("%d of 3 nodes hold W2's value, want a quorum", held)
	}
	if ok, err := w2.Unlock(); !ok || err != nil {
		t.Fatalf("W2 Unlock() = %v, %v", ok, err)
	}
	for i, s := range servers {
		deadline := time.Now().Add(3 * time.Second)
		for {
			keys, err := s.Keys("*")
			if err == nil && len(keys) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("node %d keeps %q (%v) after every holder unlocked", i, keys, err)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
