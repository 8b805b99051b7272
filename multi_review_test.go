package redsync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redlock/redsync/redis"
)

// Tests from a review that tried to break NewMultiMutex (multi.go, the
// multi-key scripts) and the engine refactor (options.go config, nodes.go,
// acquisition.go). Tests named TestReview... that are skipped with
// "finding:" fail without the skip: each states the broken promise.

// runnerPipeNode is a fake node that is also a redis.ScriptRunner and a
// redis.Pipeliner (with no connection to spare, so every round spills to
// runScript). It records which node each runner call reached.
type runnerPipeNode struct {
	*fakeNode
	id   int
	runs atomic.Int32
}

func (p *runnerPipeNode) RunScript(ctx context.Context, call *redis.ScriptCall) (any, error) {
	p.runs.Add(1)
	conn, _ := p.fakeNode.Get(ctx)
	return conn.Eval(call.Script(), call.KeysAndArgs()...)
}

func (p *runnerPipeNode) SendScript(context.Context, *redis.ScriptCall) (redis.PendingReply, bool, error) {
	return nil, false, nil
}

func (p *runnerPipeNode) SendCommand(context.Context, ...any) (redis.PendingReply, bool, error) {
	return nil, false, nil
}

// TestReviewShuffledNodesAligned: WithShufflePools makes a shuffled copy
// of the nodes; runners[i] and pipeliners[i] must stay pools[i], and the
// Redsync's own nodes must not move.
func TestReviewShuffledNodesAligned(t *testing.T) {
	c := newFakeCluster(7)
	pools := make([]redis.Pool, len(c.nodes))
	for i, n := range c.nodes {
		pools[i] = &runnerPipeNode{fakeNode: n, id: i}
	}
	rs := New(pools...)
	if rs.nodes.pipeliners == nil {
		t.Fatal("every pool is a Pipeliner, but the nodes have no pipeliners")
	}
	moved := false
	for range 50 {
		m := rs.NewMultiMutex([]string{"a", "b"}, WithShufflePools(true))
		for i, p := range m.nodes.pools {
			if any(m.nodes.runners[i]) != any(p) {
				t.Fatalf("shuffled runners[%d] is not pools[%d]", i, i)
			}
			if any(m.nodes.pipeliners[i]) != any(p) {
				t.Fatalf("shuffled pipeliners[%d] is not pools[%d]", i, i)
			}
			if p.(*runnerPipeNode).id != i {
				moved = true
			}
		}
		if m.nodes.quorum != rs.nodes.quorum || m.nodes.inline != rs.nodes.inline {
			t.Fatalf("shuffled quorum/inline = %d/%v, want %d/%v", m.nodes.quorum, m.nodes.inline, rs.nodes.quorum, rs.nodes.inline)
		}
	}
	if !moved {
		t.Fatal("50 shuffles of 7 pools never moved one")
	}
	for i, p := range rs.nodes.pools {
		if p.(*runnerPipeNode).id != i || any(rs.nodes.runners[i]) != any(p) || any(rs.nodes.pipeliners[i]) != any(p) {
			t.Fatalf("the Redsync's node %d moved after shuffling copies", i)
		}
	}
	// Behaviour: a shuffled multi-key Lock and Unlock reach every node once
	// each, through that node's runner.
	m := rs.NewMultiMutex([]string{"a", "b"}, WithShufflePools(true), WithFailFast(false))
	m.now = c.clock.Now
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v", err)
	}
	for i, n := range c.nodes {
		if v, _ := n.value("a"); v != m.Value() {
			t.Errorf("node %d: a = %q, want the value", i, v)
		}
	}
	if ok, err := m.Unlock(); !ok || err != nil {
		t.Fatalf("Unlock() = %v, %v", ok, err)
	}
	for i, p := range pools {
		if got := p.(*runnerPipeNode).runs.Load(); got != 2 {
			t.Errorf("node %d: runner calls = %d, want 2 (acquire and release)", i, got)
		}
	}
}

// TestReviewShuffledNilPoolIndex: the error for a nil pool names its index
// in the list given to New. With WithShufflePools, NewMutex shuffles the
// nodes before it validates them, so the error names the nil pool's
// position in the shuffled copy: "pool #0 is nil" or "pool #2 is nil" for
// New(p0, nil, p2).
func TestReviewShuffledNilPoolIndex(t *testing.T) {
	c := newFakeCluster(3)
	pools := c.pools()
	pools[1] = nil
	rs := New(pools...)
	var wrong []string
	for range 30 {
		err := rs.NewMutex("k", WithShufflePools(true)).Lock()
		if !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("Lock() = %v, want ErrInvalidConfig", err)
		}
		if !strings.Contains(err.Error(), "pool #1 is nil") {
			wrong = append(wrong, err.Error())
		}
	}
	if c.calls() != 0 {
		t.Errorf("commands sent = %d, want 0", c.calls())
	}
	if len(wrong) > 0 {
		t.Errorf("with WithShufflePools the error for a nil pool names its shuffled index, not its index in New's list: %q", wrong[0])
	}
}

// TestReviewShuffledClusterSlotIndex: the same for NewMultiMutex's
// cluster-slot error ("pool #%d is a Redis Cluster client").
func TestReviewShuffledClusterSlotIndex(t *testing.T) {
	c := newFakeCluster(3)
	pools := c.pools()
	pools[2] = clusteredNode{c.nodes[2]}
	rs := New(pools...)
	var wrong []string
	for range 30 {
		err := rs.NewMultiMutex([]string{"order:42:stock", "order:42:payment"}, WithShufflePools(true)).Lock()
		if !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("Lock() = %v, want ErrInvalidConfig", err)
		}
		if !strings.Contains(err.Error(), "pool #2 is a Redis Cluster client") {
			wrong = append(wrong, err.Error())
		}
	}
	if c.calls() != 0 {
		t.Errorf("commands sent = %d, want 0", c.calls())
	}
	if len(wrong) > 0 {
		t.Errorf("with WithShufflePools the cluster-slot error names the clustered pool's shuffled index: %q", wrong[0])
	}
}

// TestReviewMultiBadInputSendsNothing: every method of a multi-key Mutex
// with bad input, also with WithValue, WithAutoExtend, WithSetNXOnExtend,
// WithShufflePools and listening pools, fails with ErrInvalidConfig (or
// reports no lock) and sends nothing, and starts no listener.
func TestReviewMultiBadInputSendsNothing(t *testing.T) {
	slotClash := []string{"x", "y"} // different slots
	tests := []struct {
		name      string
		names     []string
		opts      []Option
		clustered bool
	}{
		{"nil names", nil, nil, false},
		{"empty slice", []string{}, nil, false},
		{"one empty name", []string{""}, nil, false},
		{"empty second name", []string{"a", ""}, []Option{WithValue("v")}, false},
		{"repeated name", []string{"a", "b", "a"}, []Option{WithValue("v"), WithSetNXOnExtend()}, false},
		{"restart guard too short", []string{"a", "b"}, []Option{WithRestartGuard(time.Millisecond), WithAutoExtend(0), WithValue("v")}, false},
		{"fencing and setnx", []string{"a", "b"}, []Option{WithFencing(), WithSetNXOnExtend()}, false},
		{"slots", slotClash, []Option{WithValue("v"), WithShufflePools(true), WithSetNXOnExtend()}, true},
		{"slots, tag empty", []string{"{}x", "{}y"}, []Option{WithValue("v")}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeCluster(3)
			pools := c.subPools()
			if tt.clustered {
				pools[0] = clusteredNode{c.nodes[0]}
			}
			rs := New(pools...)
			m := rs.NewMultiMutex(tt.names, append([]Option{WithRetryDelay(0)}, tt.opts...)...)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			checks := []struct {
				name string
				err  error
			}{
				{"Lock", m.Lock()},
				{"LockContext", m.LockContext(ctx)},
				{"TryLock", m.TryLock()},
				{"TryLockContext", m.TryLockContext(ctx)},
				{"Extend", second(m.Extend())},
				{"ExtendContext", second(m.ExtendContext(ctx))},
				{"Valid", second(m.Valid())},
				{"Unlock", second(m.Unlock())},
				{"UnlockContext", second(m.UnlockContext(ctx))},
			}
			for _, ch := range checks {
				if !errors.Is(ch.err, ErrInvalidConfig) {
					t.Errorf("%s() = %v, want an error matching ErrInvalidConfig", ch.name, ch.err)
				}
			}
			if ok, _ := m.Valid(); ok {
				t.Error("Valid() = true with a bad configuration")
			}
			if cctx := m.Context(); cctx.Err() == nil || !errors.Is(context.Cause(cctx), ErrInvalidConfig) {
				t.Errorf("Context() = %v (cause %v), want an ended context whose cause matches ErrInvalidConfig", cctx.Err(), context.Cause(cctx))
			}
			if m.FencingToken() != 0 {
				t.Errorf("FencingToken() = %d, want 0", m.FencingToken())
			}
			if n := c.calls(); n != 0 {
				t.Errorf("commands sent = %d, want 0", n)
			}
			if rs.notify != nil && rs.notify.watched.Load() != 0 {
				t.Errorf("waiters registered = %d, want 0", rs.notify.watched.Load())
			}
		})
	}
}

// TestReviewOptionAfterNewMultiMutex: an Option applied to a Mutex that
// NewMultiMutex returned has no effect: not on what it sends, not on its
// checks, not on its state.
func TestReviewOptionAfterNewMultiMutex(t *testing.T) {
	c := newFakeCluster(3)
	m := c.multiMutex([]string{"a", "b"}, WithTries(1), WithExpiry(4*time.Second))
	before := m.config
	for _, o := range []Option{
		WithTries(7), WithExpiry(time.Hour), WithValue("planted"), WithFencing(),
		WithRestartGuard(time.Hour), WithSetNXOnExtend(), WithShufflePools(true),
		WithAutoExtend(time.Second), WithMaxHold(time.Second), WithFailFast(true),
		WithReleaseNotification(false), WithDriftFactor(0.5), WithTimeoutFactor(0.9),
		WithGenValueFunc(func() (string, error) { return "fixed", nil }),
		WithRetryDelay(time.Hour), WithObserver(BaseObserver{}),
	} {
		o.Apply(m)
	}
	if m.tries != before.tries || m.expiry != before.expiry || m.initValue != before.initValue ||
		m.fence.on || m.guard.on || m.setNXOnExtend || m.shuffle || m.autoExtendOn || m.maxHold != 0 ||
		m.failFast || m.noNotify || m.driftFactor != before.driftFactor || m.timeoutFactor != before.timeoutFactor ||
		m.observer != before.observer {
		t.Fatalf("an Option applied after NewMultiMutex changed the configuration")
	}
	if m.configErr != nil {
		t.Fatalf("configErr = %v after late options, want nil", m.configErr)
	}
	if m.Value() != "" {
		t.Errorf("Value() = %q after a late WithValue, want empty", m.Value())
	}
	if _, err := m.Unlock(); !errors.Is(err, ErrNotLocked) {
		t.Errorf("Unlock() after a late WithValue = %v, want ErrNotLocked", err)
	}
	if n := c.calls(); n != 0 {
		t.Errorf("commands sent = %d, want 0", n)
	}
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v", err)
	}
	if m.Value() == "fixed" {
		t.Error("a late WithGenValueFunc made the value")
	}
	for i, n := range c.nodes {
		if v, _ := n.value("a"); v != m.Value() {
			t.Errorf("node %d: a = %q, want %q", i, v, m.Value())
		}
	}
	if want := m.clock().Add(m.validFor()); !m.Until().Equal(want) {
		// The fake clock does not move: Until is the try's start plus the
		// validity of the 4 s expiry.
		t.Errorf("Until() = %v, want %v (expiry 4s)", m.Until(), want)
	}
	if ok, err := m.Unlock(); !ok || err != nil {
		t.Errorf("Unlock() = %v, %v", ok, err)
	}
}

// clock reads the Mutex's clock.
func (m *Mutex) clock() time.Time { return m.now() }

// TestReviewMultiWithValue: WithValue on a set acts on the whole set, and
// the acquisition's life (acqGiven -> acqUnlocked, giveBack) is that of
// one name.
func TestReviewMultiWithValue(t *testing.T) {
	c := newFakeCluster(3)
	names := []string{"a", "b", "c"}
	holder := c.multiMutex(names)
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	other := New(c.pools()...).NewMultiMutex(names, WithValue(holder.Value()), WithRetryDelay(0))
	other.now = c.clock.Now
	if other.Name() != "a,b,c" {
		t.Errorf("Name() = %q", other.Name())
	}
	if ok, err := other.Valid(); !ok || err != nil {
		t.Errorf("Valid() by value = %v, %v, want true", ok, err)
	}
	if ok, err := other.Extend(); !ok || err != nil {
		t.Errorf("Extend() by value = %v, %v, want true", ok, err)
	}
	if other.FencingToken() != 0 {
		t.Errorf("FencingToken() = %d", other.FencingToken())
	}
	if cctx := other.Context(); cctx.Err() == nil {
		t.Error("Context() of a WithValue Mutex is live")
	}
	// A failed Unlock (node errors on a quorum) gives the acquisition
	// back: a second Unlock acts on it.
	for _, n := range c.nodes[:2] {
		n.setErr(errors.New("down"))
	}
	if ok, err := other.Unlock(); ok || err == nil || errors.Is(err, ErrLockAlreadyExpired) {
		t.Fatalf("Unlock() with 2 of 3 nodes down = %v, %v, want false and a node error", ok, err)
	}
	for _, n := range c.nodes[:2] {
		n.setErr(nil)
	}
	if ok, err := other.Unlock(); !ok || err != nil {
		t.Fatalf("second Unlock() after a failed one = %v, %v, want true, nil", ok, err)
	}
	for _, name := range names {
		if got := c.keys(name); got != 0 {
			t.Errorf("nodes with %s after Unlock by value = %d, want 0", name, got)
		}
	}
	sent := c.calls()
	if ok, err := other.Unlock(); ok || !errors.Is(err, ErrLockAlreadyExpired) {
		t.Errorf("third Unlock() = %v, %v, want ErrLockAlreadyExpired", ok, err)
	}
	if ok, err := other.Extend(); ok || !errors.Is(err, ErrExtendFailed) {
		t.Errorf("Extend() after Unlock = %v, %v, want ErrExtendFailed", ok, err)
	}
	if ok, err := other.Valid(); ok || err != nil {
		t.Errorf("Valid() after Unlock = %v, %v, want false, nil", ok, err)
	}
	if got := c.calls(); got != sent {
		t.Errorf("commands sent after the Unlock = %d, want 0", got-sent)
	}
	// The holder lost the set.
	if ok, err := holder.Extend(); ok || !errors.Is(err, ErrLockAlreadyExpired) {
		t.Errorf("holder Extend() after release by value = %v, %v, want ErrLockAlreadyExpired", ok, err)
	}
	if ok, err := holder.Unlock(); ok || !errors.Is(err, ErrLockAlreadyExpired) {
		t.Errorf("holder Unlock() = %v, %v, want ErrLockAlreadyExpired", ok, err)
	}
}

// TestReviewMultiConcurrentUnlock: concurrent Unlock, Extend, Valid,
// Context and Value of one multi-key acquisition: exactly one Unlock acts,
// no race (run with -race), nothing left behind.
func TestReviewMultiConcurrentUnlock(t *testing.T) {
	for round := range 20 {
		c := newFakeCluster(3)
		m := c.multiMutex([]string{"a", "b"}, WithAutoExtend(time.Millisecond), WithExpiry(time.Second), WithSetNXOnExtend())
		if err := m.Lock(); err != nil {
			t.Fatal(err)
		}
		var (
			wg       sync.WaitGroup
			unlocked atomic.Int32
		)
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				switch g % 4 {
				case 0:
					if ok, _ := m.Unlock(); ok {
						unlocked.Add(1)
					}
				case 1:
					_, _ = m.Extend()
				case 2:
					_, _ = m.Valid()
				default:
					_ = m.Context()
					_ = m.Value()
					_ = m.Until()
				}
			}()
		}
		wg.Wait()
		if got := unlocked.Load(); got != 1 {
			t.Fatalf("round %d: successful Unlock calls = %d, want 1", round, got)
		}
		// An Extend with SetNX that raced the Unlock must not have set the
		// keys again.
		if got := c.keys("a") + c.keys("b"); got != 0 {
			t.Fatalf("round %d: keys left after Unlock = %d, want 0", round, got)
		}
		if cctx := m.Context(); cctx.Err() == nil {
			t.Fatalf("round %d: Context() live after Unlock", round)
		}
	}
}

// TestReviewMultiNotAHandOffWaiter: a Lock of a set that waits for a name
// held by a single-name Mutex of the same Redsync never becomes a waiter
// of the notifier, so the holder's Unlock releases (no transfer) and the
// set's Lock takes the names by polling. A single-name Mutex whose name
// equals the set's joined name ("a,b") changes nothing.
func TestReviewMultiNotAHandOffWaiter(t *testing.T) {
	c := newFakeCluster(3)
	rs := New(c.subPools()...)
	holder := rs.NewMutex("a")
	holder.now = c.clock.Now
	joined := rs.NewMutex("a,b") // a lock called "a,b", unrelated to the set
	joined.now = c.clock.Now
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	if err := joined.Lock(); err != nil {
		t.Fatal(err)
	}
	set := rs.NewMultiMutex([]string{"a", "b"}, WithRetryDelay(5*time.Millisecond), WithTries(2000))
	set.now = c.clock.Now
	done := make(chan error, 1)
	go func() { done <- set.Lock() }()
	// Let the set's Lock fail a few tries.
	eventually(t, "the set's Lock retried", func() bool {
		n := 0
		for _, s := range c.nodes[0].ran() {
			if s == "acquire" {
				n++
			}
		}
		return n >= 5
	})
	rs.notify.mu.Lock()
	for key, kw := range rs.notify.keys {
		for _, w := range kw.queue {
			if w.m == set {
				t.Errorf("the set's Lock waits in the queue of %q", key)
			}
		}
	}
	rs.notify.mu.Unlock()
	if got := rs.notify.watched.Load(); got != 0 {
		t.Errorf("waiters = %d, want 0", got)
	}
	if ok, err := joined.Unlock(); !ok || err != nil {
		t.Fatalf("joined.Unlock() = %v, %v", ok, err)
	}
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("holder.Unlock() = %v, %v", ok, err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("set.Lock() = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("set.Lock() did not take the names after their release")
	}
	for i, n := range c.nodes {
		if slices.Contains(n.ran(), "transfer") {
			t.Errorf("node %d ran a transfer: %v", i, n.ran())
		}
		for _, name := range []string{"a", "b"} {
			if v, _ := n.value(name); v != set.Value() {
				t.Errorf("node %d: %s = %q, want the set's value", i, name, v)
			}
		}
	}
	if ok, err := set.Unlock(); !ok || err != nil {
		t.Errorf("set.Unlock() = %v, %v", ok, err)
	}
}

// TestReviewMultiHolderHandsNothing: a set's Unlock, with a single-name
// Lock of the same Redsync queued for one of its names (and one queued for
// the joined name), releases and wakes the waiter of the name; it hands
// nothing over: the waiter of "a" may take "a" with a try of its own, and
// the waiter of "a,b" (held elsewhere) gets nothing.
func TestReviewMultiHolderHandsNothing(t *testing.T) {
	c := newFakeCluster(3)
	pools := c.subPools()
	rs := New(pools...)
	set := rs.NewMultiMutex([]string{"a", "b"})
	set.now = c.clock.Now
	if err := set.Lock(); err != nil {
		t.Fatal(err)
	}
	// "a,b" is held by another process, so its waiter queues too.
	for _, n := range c.nodes {
		n.set("a,b", "elsewhere")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	waiters := map[string]*Mutex{}
	results := map[string]chan error{}
	for _, name := range []string{"a", "a,b"} {
		w := rs.NewMutex(name, WithRetryDelay(time.Hour))
		w.now = c.clock.Now
		waiters[name] = w
		done := make(chan error, 1)
		results[name] = done
		go func() { done <- w.LockContext(ctx) }()
	}
	subscribedEverywhere(t, listenersOf(pools))
	queuedWaiter(t, waiters["a"])
	queuedWaiter(t, waiters["a,b"])
	if ok, err := set.Unlock(); !ok || err != nil {
		t.Fatalf("set.Unlock() = %v, %v", ok, err)
	}
	// The release woke the waiter of "a" (retry delay: an hour).
	select {
	case err := <-results["a"]:
		if err != nil {
			t.Fatalf("the waiter of a: Lock() = %v, want the lock after the set's release", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the set's Unlock did not wake the waiter of a")
	}
	for i, n := range c.nodes {
		if slices.Contains(n.ran(), "transfer") {
			t.Errorf("node %d ran a transfer: %v", i, n.ran())
		}
		if _, ok := n.value("b"); ok {
			t.Errorf("node %d: b exists after the set's Unlock", i)
		}
	}
	// The waiter holds a by its own try on a quorum (its try may have
	// reached one node before the set's release did).
	var own int
	for _, n := range c.nodes {
		if v, _ := n.value("a"); v == waiters["a"].Value() {
			own++
		}
	}
	if own < 2 {
		t.Errorf("a holds the value of its waiter's own try %q on %d of 3 nodes, want a quorum", waiters["a"].Value(), own)
	}
	cancel()
	if err := <-results["a,b"]; err == nil {
		t.Error("the waiter of a,b got a lock held elsewhere")
	}
	if v := waiters["a,b"].Value(); v != "" {
		t.Errorf("waiter %q has a value %q", "a,b", v)
	}
	waiters["a"].Unlock()
}

// TestReviewMultiFailFastUndoOvertaken: with WithFailFast, a failed try
// returns once a quorum refused it. On a node where the try's own acquire
// is still in flight, the undo must not run first (it would find nothing,
// and the late acquire would then set every name until the expiry): the
// undo waits until every node ended the acquire (lockCalls.settled), at
// most the per-node timeout. (Found by review; the same held for one
// name.)
func TestReviewMultiFailFastUndoOvertaken(t *testing.T) {
	for _, tc := range []struct {
		name  string
		names []string
	}{{"set", []string{"a", "b"}}, {"one name", []string{"b"}}} {
		t.Run(tc.name, func(t *testing.T) {
			c := newFakeCluster(3)
			for _, n := range c.nodes[:2] {
				n.set("b", "other")
			}
			hold := make(chan struct{})
			c.nodes[2].block, c.nodes[2].slow = hold, "acquire"
			m := c.multiMutex(tc.names, WithFailFast(true), WithTries(1), WithTimeoutFactor(0.5))
			var taken *ErrTaken
			if err := m.Lock(); !errors.As(err, &taken) {
				close(hold)
				t.Fatalf("Lock() = %v, want *ErrTaken", err)
			}
			close(hold)
			var left []string
			for _, name := range tc.names {
				if v, ok := c.nodes[2].value(name); ok {
					left = append(left, fmt.Sprintf("%s=%q", name, v))
				}
			}
			if len(left) > 0 {
				t.Errorf("a failed WithFailFast try left keys of ours on the slow node 2: %v (served %v)", left, c.nodes[2].servedCommands())
			}
		})
	}
}

// TestReviewMultiPartialNodeState: a node where some names are ours (an
// earlier try's landing), some missing and one another owner's grants
// none and keeps every key as it was; the Lock fails, and the undo removes
// only our stale keys.
func TestReviewMultiPartialNodeState(t *testing.T) {
	c := newFakeCluster(3)
	m := c.multiMutex([]string{"x", "y", "z"}, WithTries(1), WithGenValueFunc(func() (string, error) { return "mine", nil }))
	for _, n := range c.nodes[:2] {
		n.set("x", "mine") // a late landing of an earlier try of ours
		n.set("z", "theirs")
	}
	var taken *ErrTaken
	if err := m.Lock(); !errors.As(err, &taken) {
		t.Fatalf("Lock() = %v, want *ErrTaken", err)
	}
	for i, n := range c.nodes {
		if _, ok := n.value("x"); ok {
			t.Errorf("node %d: x left behind after the failed try", i)
		}
		if _, ok := n.value("y"); ok {
			t.Errorf("node %d: y set by a failed try", i)
		}
	}
	if got := c.holders("z", "theirs"); got != 2 {
		t.Errorf("nodes where z is the other owner's = %d, want 2", got)
	}
}

// TestReviewMultiNamesCopied: NewMultiMutex keeps its own copy of the
// names; a caller that reuses its slice changes nothing.
func TestReviewMultiNamesCopied(t *testing.T) {
	c := newFakeCluster(3)
	names := []string{"a", "b"}
	m := c.multiMutex(names)
	names[0], names[1] = "z", "a"
	if err := m.Lock(); err != nil {
		t.Fatal(err)
	}
	if m.Name() != "a,b" || c.holders("a", m.Value()) != 3 || c.holders("b", m.Value()) != 3 || c.keys("z") != 0 {
		t.Errorf("after the caller changed its slice: Name %q, a on %d, b on %d, z on %d nodes", m.Name(), c.holders("a", m.Value()), c.holders("b", m.Value()), c.keys("z"))
	}
	if ok, err := m.Unlock(); !ok || err != nil {
		t.Errorf("Unlock() = %v, %v", ok, err)
	}
}
