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

// The tests in this file hold the lease to what Mutex.Context, WithMaxHold,
// WithAutoExtend and Do promise, on fake nodes and the fake clock. The
// lease's timers are real ones set to fake durations: a test that moves the
// clock past a deadline waits for the timer, never for the clock.

// endedBy waits up to 5s (the deadlines here are milliseconds of real time)
// for ctx to end and returns its cause.
func endedBy(t *testing.T, what string, ctx context.Context) error {
	t.Helper()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: the context has not ended after 5s", what)
		return nil
	}
}

// deleteKey deletes key on nodes, as an expiry or a restart would.
func deleteKey(nodes []*fakeNode, key string) {
	for _, n := range nodes {
		n.mu.Lock()
		delete(n.keys, key)
		n.mu.Unlock()
	}
}

// TestContextAfterLoss calls Context again once the acquisition was lost:
// it is the same context, ended, and a WithMaxHold bound is not renewed.
func TestContextAfterLoss(t *testing.T) {
	tests := []struct {
		name string
		opts []Option
		lose func(c *fakeCluster)
	}{
		{"hold time over", []Option{WithExpiry(time.Hour), WithMaxHold(20 * time.Millisecond)},
			func(c *fakeCluster) { c.clock.Advance(time.Second) }},
		{"extension failed", []Option{WithExpiry(time.Hour), WithAutoExtend(10 * time.Millisecond)},
			func(c *fakeCluster) { deleteKey(c.nodes[1:], "k") }},
		{"validity over", []Option{WithExpiry(50 * time.Millisecond)},
			func(c *fakeCluster) { c.clock.Advance(time.Second) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeCluster(3)
			m := c.mutex("k", tt.opts...)
			if err := m.Lock(); err != nil {
				t.Fatalf("Lock() = %v, want nil", err)
			}
			defer m.Unlock()
			first := m.Context()
			tt.lose(c)
			if cause := endedBy(t, "first Context()", first); !errors.Is(cause, ErrLockLost) {
				t.Fatalf("first Context() cause = %v, want ErrLockLost", cause)
			}
			again := m.Context()
			if again.Err() == nil {
				t.Fatal("Context() after the loss is live, want it ended")
			}
			if cause := context.Cause(again); !errors.Is(cause, ErrLockLost) {
				t.Errorf("Context() after the loss: cause %v, want ErrLockLost", cause)
			}
			if again != first {
				t.Error("Context() after the loss is not the acquisition's context")
			}
		})
	}
}

// TestContextCalledLate calls Context for the first time once the
// acquisition can no longer be guaranteed: the context it returns has
// ended already, and the observer hears of the loss once.
func TestContextCalledLate(t *testing.T) {
	tests := []struct {
		name string
		opts []Option
	}{
		{"validity over", []Option{WithExpiry(time.Second)}},
		{"hold time over", []Option{WithExpiry(time.Hour), WithMaxHold(time.Second)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeCluster(3)
			obs := newRecordingObserver()
			m := c.mutex("k", append(tt.opts, WithObserver(obs))...)
			if err := m.Lock(); err != nil {
				t.Fatalf("Lock() = %v, want nil", err)
			}
			defer m.Unlock()
			c.clock.Advance(2 * time.Second)
			ctx := m.Context()
			if ctx.Err() == nil {
				t.Fatal("Context() called after the end is live, want it ended on return")
			}
			if cause := context.Cause(ctx); !errors.Is(cause, ErrLockLost) {
				t.Errorf("Context() cause = %v, want ErrLockLost", cause)
			}
			if m.Context() != ctx {
				t.Error("a second Context() returned another context")
			}
			if _, _, _, lost := obs.counts(); lost != 1 {
				t.Errorf("OnLost called %d times, want once", lost)
			}
		})
	}
}

// TestMaxHoldCountsFromAcquisition calls Context well after Lock, without
// WithAutoExtend: the hold time counts from the acquisition all the same,
// and for a lock passed on by a local hand-off, from the hand-off.
func TestMaxHoldCountsFromAcquisition(t *testing.T) {
	const hold = time.Second
	t.Run("Lock", func(t *testing.T) {
		c := newFakeCluster(3)
		m := c.mutex("k", WithExpiry(time.Hour), WithMaxHold(hold))
		locked := c.clock.Now() // the fake nodes answer at once
		if err := m.Lock(); err != nil {
			t.Fatalf("Lock() = %v, want nil", err)
		}
		defer m.Unlock()
		c.clock.Advance(hold / 2)
		if d, _ := m.Context().Deadline(); !d.Equal(locked.Add(hold)) {
			t.Errorf("Deadline() = Lock + %v, want Lock + %v", d.Sub(locked), hold)
		}
	})
	t.Run("handed off", func(t *testing.T) {
		c := newFakeCluster(3)
		holder, waiter, _, done := handOffScene(t, c, context.Background(), nil, []Option{WithMaxHold(hold)})
		c.clock.Advance(300 * time.Millisecond)
		handedAt := c.clock.Now() // the fake nodes answer at once
		if ok, err := holder.Unlock(); !ok || err != nil {
			t.Fatalf("holder Unlock() = %v, %v", ok, err)
		}
		if err := <-done; err != nil {
			t.Fatalf("waiter Lock() = %v", err)
		}
		defer waiter.Unlock()
		c.clock.Advance(hold / 2)
		if d, _ := waiter.Context().Deadline(); !d.Equal(handedAt.Add(hold)) {
			t.Errorf("Deadline() = hand-off + %v, want hand-off + %v", d.Sub(handedAt), hold)
		}
	})
}

// countExtends counts the extend commands the nodes received.
func countExtends(nodes []*fakeNode) int {
	n := 0
	for _, node := range nodes {
		for _, cmd := range node.ran() {
			if cmd == "extend" {
				n++
			}
		}
	}
	return n
}

// TestDoStopsExtendingWhenCallerEnds cancels Do's ctx while its function
// goes on, ignoring its own context: the lock is extended no more.
func TestDoStopsExtendingWhenCallerEnds(t *testing.T) {
	c := newFakeCluster(3)
	rs := New(c.pools()...)
	const interval = 10 * time.Millisecond
	ctx, cancel := context.WithCancelCause(context.Background())
	shutdown := errors.New("shutting down")
	err := rs.Do(ctx, "k", func(fctx context.Context) error {
		eventually(t, "a first extension", func() bool { return countExtends(c.nodes) > 0 })
		cancel(shutdown)
		<-fctx.Done()
		// A round in flight when ctx ended may still reach the nodes;
		// none may start after it. Twenty intervals leave room for many.
		before := countExtends(c.nodes)
		time.Sleep(20 * interval)
		if after := countExtends(c.nodes); after > before+len(c.nodes) {
			t.Errorf("%d extend commands after the caller's ctx ended, want at most one round (%d)", after-before, len(c.nodes))
		}
		if lease := MutexFromContext(fctx).Context(); lease.Err() != nil {
			t.Errorf("the lock's Context() ended with the caller's ctx (%v); want it held to the end of its validity", context.Cause(lease))
		}
		return nil
	}, WithExpiry(time.Hour), WithAutoExtend(interval))
	if !errors.Is(err, ErrLockLost) || !errors.Is(err, shutdown) {
		t.Errorf("Do() = %v, want ErrLockLost and the caller's cause", err)
	}
	if n := c.keys("k"); n != 0 {
		t.Errorf("%d nodes hold the key after Do, want 0", n)
	}
}

// blockExtends makes the nodes hold every extend command until its context
// ends, or until the test ends.
func blockExtends(t *testing.T, nodes []*fakeNode) {
	block := make(chan struct{})
	for _, n := range nodes {
		n.mu.Lock()
		n.slow, n.block = "extend", block
		n.mu.Unlock()
	}
	t.Cleanup(func() { close(block) })
}

// unlockWithin runs m.Unlock and fails the test when it has not returned
// within limit.
func unlockWithin(t *testing.T, m *Mutex, limit time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		ok, err := m.Unlock()
		if err == nil && !ok {
			err = errors.New("not released by a quorum")
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Unlock() = %v, want true, nil", err)
		}
	case <-time.After(limit):
		t.Fatalf("Unlock() has not returned after %v: it waits for the extension in flight", limit)
	}
}

// TestUnlockDoesNotWaitForExtension calls Unlock while an automatic
// extension hangs on every node: Unlock cancels it and releases at once,
// where it used to wait for the per-node timeout of each of its tries.
func TestUnlockDoesNotWaitForExtension(t *testing.T) {
	c := newFakeCluster(3)
	// A per-node timeout of 3 minutes: far beyond the wait for Unlock.
	m := c.mutex("k", WithExpiry(time.Hour), WithAutoExtend(10*time.Millisecond))
	blockExtends(t, c.nodes)
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil", err)
	}
	eventually(t, "an extension on every node", func() bool { return countExtends(c.nodes) == len(c.nodes) })
	unlockWithin(t, m, 10*time.Second)
	if n := c.keys("k"); n != 0 {
		t.Errorf("%d nodes hold the key after Unlock, want 0", n)
	}
	for i, n := range c.nodes {
		for _, cmd := range n.servedCommands() {
			if cmd == "extend" {
				t.Errorf("node %d served the extension; want it cancelled", i)
			}
		}
	}
}

// extendGate holds the extend commands of heldExtendPools until it opens,
// and tells when the first release command was sent.
type extendGate struct {
	open     chan struct{}
	released chan struct{} // closed at the first release command
	once     sync.Once
}

// heldExtendPool is a fake node whose extend commands, once sent, wait
// for the gate whatever their context says, as a command already written
// to a slow connection does; then they run, and fail with err when it is
// set.
type heldExtendPool struct {
	*fakeNode
	gate     *extendGate
	err      error
	held     atomic.Int32 // extend commands received
	executed atomic.Int32 // extend commands run on the node
}

func (p *heldExtendPool) Get(ctx context.Context) (redis.Conn, error) {
	conn, _ := p.fakeNode.Get(ctx)
	return &heldExtendConn{Conn: conn, pool: p}, nil
}

type heldExtendConn struct {
	redis.Conn
	pool *heldExtendPool
}

func (c *heldExtendConn) Eval(script *redis.Script, keysAndArgs ...any) (any, error) {
	p := c.pool
	switch script {
	case extendScript:
		p.held.Add(1)
		<-p.gate.open
		reply, err := c.Conn.Eval(script, keysAndArgs...)
		p.executed.Add(1)
		if p.err != nil {
			return nil, p.err
		}
		return reply, err
	case releaseScript, releaseNotifyScript:
		p.gate.once.Do(func() { close(p.gate.released) })
	}
	return c.Conn.Eval(script, keysAndArgs...)
}

// TestUnlockAfterExtensionWithSetNX calls Unlock while an automatic
// extension with WithSetNXOnExtend is on its way to the nodes: the release
// must come after it, or it would set the key again, but Unlock must not
// wait for more tries (the held extensions fail with a node error, which
// the extender would otherwise try again).
func TestUnlockAfterExtensionWithSetNX(t *testing.T) {
	c := newFakeCluster(3)
	gate := &extendGate{open: make(chan struct{}), released: make(chan struct{})}
	var nodes []*heldExtendPool
	var pools []redis.Pool
	for _, n := range c.nodes {
		p := &heldExtendPool{fakeNode: n, gate: gate, err: errors.New("connection reset")}
		nodes, pools = append(nodes, p), append(pools, p)
	}
	// An interval of a second gives the extender half a second for its
	// tries: time enough to try again after the gate opens.
	m := New(pools...).NewMutex("k", WithExpiry(time.Hour), WithAutoExtend(time.Second), WithSetNXOnExtend())
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil", err)
	}
	heldAll := func() bool {
		for _, p := range nodes {
			if p.held.Load() == 0 {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(5 * time.Second); !heldAll(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no extension reached every node within 5s")
		}
	}
	// Open the gate once the release is sent (too early: the extensions
	// would set the key again), or after a while if Unlock waits.
	go func() {
		select {
		case <-gate.released:
		case <-time.After(100 * time.Millisecond):
		}
		close(gate.open)
	}()
	unlockWithin(t, m, 10*time.Second)
	for _, p := range nodes {
		if p.executed.Load() != p.held.Load() {
			t.Errorf("an extension still in flight after Unlock: %d sent, %d run", p.held.Load(), p.executed.Load())
		}
		if n := p.held.Load(); n != 1 {
			t.Errorf("a node received %d extend commands, want 1: Unlock waited for another try", n)
		}
	}
	if n := c.keys("k"); n != 0 {
		t.Errorf("%d nodes hold the key after Unlock, want 0: an extension set it again", n)
	}
}

// unlockingObserver calls Unlock from within the first OnExtend, as an
// observer may (it runs on the extender's goroutine).
type unlockingObserver struct {
	*recordingObserver
	m    *Mutex
	once sync.Once
	done chan error
}

func (o *unlockingObserver) OnExtend(ctx context.Context, e ExtendEvent) {
	o.recordingObserver.OnExtend(ctx, e)
	o.once.Do(func() {
		_, err := o.m.Unlock()
		o.done <- err
	})
}

// TestUnlockFromOnExtend calls Unlock from an observer's OnExtend, within
// the extension round: Unlock must not wait for that round to end.
func TestUnlockFromOnExtend(t *testing.T) {
	tests := []struct {
		name  string
		setNX bool
	}{{"plain", false}, {"SetNX on extend", true}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeCluster(3)
			obs := &unlockingObserver{recordingObserver: newRecordingObserver(), done: make(chan error, 1)}
			// A per-node timeout of 100 ms bounds the wait with SetNX.
			opts := []Option{WithExpiry(10 * time.Second), WithTimeoutFactor(0.01), WithAutoExtend(10 * time.Millisecond), WithObserver(obs)}
			if tt.setNX {
				opts = append(opts, WithSetNXOnExtend())
			}
			m := c.mutex("k", opts...)
			obs.m = m
			if err := m.Lock(); err != nil {
				t.Fatalf("Lock() = %v, want nil", err)
			}
			select {
			case err := <-obs.done:
				if err != nil {
					t.Errorf("Unlock() from OnExtend = %v, want nil", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Unlock() from OnExtend has not returned after 10s")
			}
			if n := c.keys("k"); n != 0 {
				t.Errorf("%d nodes hold the key after Unlock, want 0", n)
			}
		})
	}
}
