package redsync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/go-redlock/redsync/redis"
)

// fakeSubScriptNode is a fake node that runs the lock scripts and can be
// listened to, so that a Redsync over such nodes has a notifier and its
// mutexes hand the lock over locally.
type fakeSubScriptNode struct {
	*fakeNode
	sub fakeSubNode
}

func (f *fakeSubScriptNode) Listen(ctx context.Context, receive func(redis.Message)) (redis.Listener, error) {
	return f.sub.Listen(ctx, receive)
}

// subPools returns the cluster's nodes as pools that can be listened to.
func (c *fakeCluster) subPools() []redis.Pool {
	pools := make([]redis.Pool, len(c.nodes))
	for i, n := range c.nodes {
		f := &fakeSubScriptNode{fakeNode: n}
		n.mu.Lock()
		n.subs = append(n.subs, &f.sub)
		n.mu.Unlock()
		pools[i] = f
	}
	return pools
}

// listenersOf returns the fake listening side of subPools' nodes.
func listenersOf(pools []redis.Pool) []*fakeSubNode {
	subs := make([]*fakeSubNode, len(pools))
	for i, p := range pools {
		subs[i] = &p.(*fakeSubScriptNode).sub
	}
	return subs
}

// queuedWaiter waits until a Lock call waits in m's queue and returns it.
func queuedWaiter(t *testing.T, m *Mutex) *waiter {
	t.Helper()
	var w *waiter
	eventually(t, "a waiter queued", func() bool {
		m.notify.mu.Lock()
		defer m.notify.mu.Unlock()
		if kw := m.notify.keys[m.name]; kw != nil && len(kw.queue) > 0 {
			w = kw.queue[0]
		}
		return w != nil
	})
	return w
}

// handOffScene locks "k" on c's nodes with a holder Mutex and starts, on
// the same Redsync, a waiter Mutex in LockContext(ctx), with a retry delay
// of an hour so that only a hand-off ends its Lock within a test. It
// returns once the waiter is queued; done receives the waiter's result.
func handOffScene(t *testing.T, c *fakeCluster, ctx context.Context, holderOpts, waiterOpts []Option) (holder, waiter *Mutex, w *waiter, done chan error) {
	t.Helper()
	rs := New(c.subPools()...)
	holder = rs.NewMutex("k", holderOpts...)
	holder.now = c.clock.Now
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	waiter = rs.NewMutex("k", append([]Option{WithRetryDelay(time.Hour)}, waiterOpts...)...)
	waiter.now = c.clock.Now
	done = make(chan error, 1)
	go func() { done <- waiter.LockContext(ctx) }()
	return holder, waiter, queuedWaiter(t, waiter), done
}

// lastCommands returns the last k commands node ran.
func lastCommands(n *fakeNode, k int) []string {
	ran := n.ran()
	return ran[max(0, len(ran)-k):]
}

func TestLocalHandOffFakes(t *testing.T) {
	c := newFakeCluster(5)
	holderObs, waiterObs := newRecordingObserver(), newRecordingObserver()
	holder, waiter, _, done := handOffScene(t, c, context.Background(),
		[]Option{WithObserver(holderObs)}, []Option{WithExpiry(5 * time.Second), WithObserver(waiterObs)})

	start := c.clock.Now()
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("holder Unlock() = %v, %v; want true, nil", ok, err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("waiter Lock() = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter was not handed the lock")
	}
	value := waiter.Value()
	if value == "" || value == holder.Value() {
		t.Fatalf("waiter value %q, holder value %q: want a fresh value", value, holder.Value())
	}
	// The round ended at a quorum; the other nodes follow.
	eventually(t, "every node holds the waiter's value", func() bool { return c.holders("k", value) == 5 })
	// The validity is the waiter's: its expiry less its drift, from the
	// start of the hand-off round.
	if want := start.Add(5*time.Second - 52*time.Millisecond); !waiter.Until().Equal(want) {
		t.Errorf("waiter Until() = %v, want %v", waiter.Until(), want)
	}
	for i, n := range c.nodes {
		if got := lastCommands(n, 1); !slices.Equal(got, []string{"transfer"}) {
			t.Errorf("node %d ran %v last, want [transfer]: no release, no try", i, got)
		}
	}
	// Both observers saw the hand-off.
	rel := holderObs.releases[0]
	if !rel.HandedOver || rel.Err != nil || len(rel.Nodes) < 3 {
		t.Errorf("holder's ReleaseEvent: HandedOver %v, Err %v, %d nodes; want true, nil, a quorum of 3 or more", rel.HandedOver, rel.Err, len(rel.Nodes))
	}
	acq := waiterObs.acquires[0]
	// Attempts counts the failed tries (the first, and one more when the
	// subscriptions' confirmation woke the waiter); the hand-off adds a
	// Try of its own.
	if !acq.HandedOver || acq.Err != nil || acq.Value != value || acq.Attempts < 1 || len(acq.Tries) != acq.Attempts+1 {
		t.Fatalf("waiter's AcquireEvent: HandedOver %v, Err %v, Value %q, %d attempts, %d tries; want true, nil, %q, >= 1, attempts+1",
			acq.HandedOver, acq.Err, acq.Value, acq.Attempts, len(acq.Tries), value)
	}
	if last := acq.Tries[len(acq.Tries)-1]; last.Err != nil || len(last.Nodes) < 3 || last.Nodes[0].Outcome != NodeOK {
		t.Errorf("the hand-off's Try: %+v; want a quorum of nodes ok", last)
	}
	if ok, err := waiter.Unlock(); !ok || err != nil {
		t.Fatalf("waiter Unlock() = %v, %v", ok, err)
	}
	if rel := waiterObs.releases[0]; rel.HandedOver {
		t.Errorf("the waiter's Unlock, with nobody waiting, reported a hand-off")
	}
	if got := c.keys("k"); got != 0 {
		t.Errorf("%d nodes still hold the key after the waiter's Unlock", got)
	}
}

// TestLocalHandOffExpiredHolder hands over a lock that expired on some or
// all nodes: the waiter takes the key where it is free, and the holder's
// Unlock reports what it would have without a waiter.
func TestLocalHandOffExpiredHolder(t *testing.T) {
	for _, tc := range []struct {
		expired int
		ok      bool
	}{{2, true}, {3, false}, {5, false}} {
		c := newFakeCluster(5)
		obs := newRecordingObserver()
		// Deleting the keys stands for an expiry that the holder did not
		// see coming; a waiter with an expiry of its own needs the round,
		// which finds them gone (a waiter that took the holder's
		// acquisition as it is would trust the holder's validity).
		holder, waiter, _, done := handOffScene(t, c, context.Background(), []Option{WithObserver(obs)}, []Option{WithExpiry(7 * time.Second)})
		for _, n := range c.nodes[:tc.expired] {
			n.mu.Lock()
			delete(n.keys, "k")
			n.mu.Unlock()
		}
		ok, err := holder.Unlock()
		if ok != tc.ok || (!ok && !errors.Is(err, ErrLockAlreadyExpired)) || (ok && err != nil) {
			t.Errorf("%d of 5 expired: holder Unlock() = %v, %v; want %v (ErrLockAlreadyExpired when false)", tc.expired, ok, err, tc.ok)
		}
		if err := <-done; err != nil {
			t.Fatalf("%d of 5 expired: waiter Lock() = %v", tc.expired, err)
		}
		eventually(t, "every node holds the waiter's value", func() bool { return c.holders("k", waiter.Value()) == 5 })
		missing := 0
		for _, r := range obs.releases[0].Nodes {
			if r.Outcome == NodeMissing {
				missing++
			}
		}
		if missing == 0 && len(obs.releases[0].Nodes) == 5 {
			t.Errorf("%d of 5 expired: the holder's ReleaseEvent shows no node missing: %v", tc.expired, obs.releases[0].Nodes)
		}
		waiter.Unlock()
	}
}

// TestLocalHandOffStraggler stalls the hand-off on one node of three: the
// waiter, with WithFailFast, gets the lock from the other two, but its
// Unlock waits for the straggler, which would otherwise set the key after
// the release. (Without WithFailFast the round waits for every node.)
func TestLocalHandOffStraggler(t *testing.T) {
	c := newFakeCluster(3)
	// A waiter with an expiry of its own needs the hand-off round.
	holder, waiter, _, done := handOffScene(t, c, context.Background(), nil, []Option{WithExpiry(7 * time.Second), WithFailFast(true)})
	stall := make(chan struct{})
	straggler := c.nodes[2]
	straggler.mu.Lock()
	straggler.block, straggler.slow = stall, "transfer"
	straggler.mu.Unlock()

	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("holder Unlock() = %v, %v", ok, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("waiter Lock() = %v", err)
	}
	unlocked := make(chan bool, 1)
	go func() {
		ok, _ := waiter.Unlock()
		unlocked <- ok
	}()
	time.Sleep(50 * time.Millisecond)
	if got := lastCommands(straggler, 1); !slices.Equal(got, []string{"transfer"}) {
		t.Fatalf("the straggler ran %v while the hand-off was stalled there, want nothing after [transfer]", got)
	}
	close(stall)
	if ok := <-unlocked; !ok {
		t.Error("waiter Unlock() = false")
	}
	// The release returns at a quorum (WithFailFast); the last node
	// follows, unless the hand-off landed there after it.
	eventually(t, "no node holds the key after the Unlock (else the hand-off landed after the release)", func() bool { return c.keys("k") == 0 })
}

// TestLocalHandOffTooSlow makes the hand-off round outlast the waiter's
// validity: it is undone on every node, the holder's Unlock still reports
// the release, and the waiter takes the lock with a try of its own.
func TestLocalHandOffTooSlow(t *testing.T) {
	c := newFakeCluster(5)
	holder, waiter, _, done := handOffScene(t, c, context.Background(), nil, []Option{WithExpiry(5 * time.Second)})
	for _, n := range c.nodes {
		n.mu.Lock()
		n.latency, n.slow = 1800*time.Millisecond, "transfer" // a quorum of 3: 5.4s > 5s
		n.mu.Unlock()
	}
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("holder Unlock() = %v, %v; want true, nil (the undo released it)", ok, err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("waiter Lock() = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter did not try again after the failed hand-off")
	}
	if got := c.holders("k", waiter.Value()); got != 5 {
		t.Errorf("%d of 5 nodes hold the waiter's value", got)
	}
	// The waiter's try is a queued one: it waits in the nodes' queue.
	want := []string{"transfer", "transfer-undo", "queue-acquire"}
	for i, n := range c.nodes {
		if got := lastCommands(n, 3); !slices.Equal(got, want) {
			t.Errorf("node %d ran %v last, want %v", i, got, want)
		}
	}
	if ok, err := waiter.Unlock(); !ok || err != nil {
		t.Fatalf("waiter Unlock() = %v, %v", ok, err)
	}
}

// TestLocalHandOffCancelled cancels the waiter's ctx while the lock is
// being handed to it: its Lock reports the cancellation and the lock it
// was handed is released, not leaked.
func TestLocalHandOffCancelled(t *testing.T) {
	c := newFakeCluster(3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A waiter with an expiry of its own needs the hand-off round.
	holder, _, w, done := handOffScene(t, c, ctx, nil, []Option{WithExpiry(7 * time.Second)})

	block := make(chan struct{})
	for _, n := range c.nodes {
		n.mu.Lock()
		n.block = block
		n.mu.Unlock()
	}
	unlocked := make(chan error, 1)
	go func() {
		ok, err := holder.Unlock()
		if err == nil && !ok {
			err = errors.New("not released")
		}
		unlocked <- err
	}()
	eventually(t, "the hand-off round reached every node", func() bool {
		for _, n := range c.nodes {
			if got := lastCommands(n, 1); !slices.Equal(got, []string{"transfer"}) {
				return false
			}
		}
		return true
	})
	cancel()
	// The waiter has seen ctx end when it took its grant out of the
	// waiter; it now waits for the hand-off to end.
	eventually(t, "the waiter saw ctx end", func() bool {
		w.n.mu.Lock()
		defer w.n.mu.Unlock()
		return w.grant == nil
	})
	for _, n := range c.nodes {
		n.mu.Lock()
		n.block = nil
		n.mu.Unlock()
	}
	close(block)
	if err := <-unlocked; err != nil {
		t.Fatalf("holder Unlock: %v", err)
	}
	err := <-done
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrFailed) {
		t.Fatalf("waiter LockContext() = %v, want ErrFailed and context.Canceled", err)
	}
	if got := c.keys("k"); got != 0 {
		t.Errorf("%d nodes still hold the key: the lock handed to a cancelled Lock leaked", got)
	}
}

func TestClaimBoundsLocalHandOffs(t *testing.T) {
	nodes, pools := newFakeSubNodes(3)
	n := newNotifier(pools)
	w := n.watch(&Mutex{config: config{name: "k"}})
	defer w.close()
	// The subscriptions' confirmation may wake the waiter (a release may
	// have been missed during the set-up): let it happen first.
	subscribedEverywhere(t, nodes)
	// The acquisition handed over k times in a row is handed over again
	// while k < maxLocalHandoffs.
	claimed := 0
	for k := range maxLocalHandoffs + 2 {
		w.wait()
		got, g := n.claim("k", k)
		if got == nil {
			w.stopWaiting()
			break
		}
		if got != w {
			t.Fatalf("claim returned another waiter")
		}
		claimed++
		close(g.done)
		if g, _ := w.stopWaiting(); g != nil {
			t.Fatalf("stopWaiting returned a grant that was not ok")
		}
	}
	if claimed != maxLocalHandoffs {
		t.Fatalf("%d hand-offs in a row, want %d", claimed, maxLocalHandoffs)
	}
	// After the release that the bound forced, an acquisition made by a
	// try is handed over again.
	w.wait()
	got, g := n.claim("k", 0)
	if got != w {
		t.Fatalf("claim after the forced release = %v, want the waiter", got)
	}
	close(g.done)
	w.stopWaiting()
}

func TestClaimSkipsWaitersThatCannotTakeOver(t *testing.T) {
	_, pools := newFakeSubNodes(3)
	for _, m := range []*Mutex{
		{config: config{name: "k", fence: fencing{on: true}}},
		{config: config{name: "k", guard: restartGuard{on: true}}},
		{config: config{name: "k"}, configErr: ErrInvalidConfig},
	} {
		n := newNotifier(pools)
		w := n.watch(m)
		w.wait()
		if got, _ := n.claim("k", 0); got != nil {
			t.Errorf("claim handed the lock to a waiter with fencing %v, guard %v, config error %v",
				m.fence.on, m.guard.on, m.configErr)
		}
		w.stopWaiting()
		w.close()
	}
}

// TestTurnTriesDoNotCount gives a waiter turns (by hand) while another
// Redsync keeps the lock: its tries brought forward fail, and do not use
// up WithTries.
func TestTurnTriesDoNotCount(t *testing.T) {
	c := newFakeCluster(3)
	pools := c.subPools()
	other := New(c.pools()...).NewMutex("k")
	other.now = c.clock.Now
	if err := other.Lock(); err != nil {
		t.Fatal(err)
	}
	waiter := New(pools...).NewMutex("k", WithTries(2), WithRetryDelay(time.Hour))
	waiter.now = c.clock.Now
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- waiter.LockContext(ctx) }()
	subNodes := listenersOf(pools)
	subscribedEverywhere(t, subNodes)
	w := queuedWaiter(t, waiter)
	// The first try, and the one that joins the queue.
	eventually(t, "the waiter in every node's queue", func() bool {
		for _, n := range c.nodes {
			if !slices.Contains(n.queued("k"), w.member) {
				return false
			}
		}
		return true
	})
	for round := range 4 {
		before := c.nodes[0].tries()
		for _, s := range subNodes {
			s.listener().receive(turnMsg(waiter.notify, "turn", w.member, fmt.Sprintf("release-%d", round)))
		}
		eventually(t, "an extra try", func() bool { return c.nodes[0].tries() > before })
	}
	select {
	case err := <-done:
		t.Fatalf("Lock() = %v after 4 tries brought forward by turns, want it still waiting (WithTries(2), the second due in an hour)", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("LockContext() = %v, want context.Canceled", err)
	}
	// The cancelled waiter withdraws from every queue.
	eventually(t, "the waiter withdrawn", func() bool {
		for _, n := range c.nodes {
			if len(n.queued("k")) != 0 {
				return false
			}
		}
		return true
	})
	other.Unlock()
}

// TestLocalHandOffFreshValue hands a lock over between Mutexes of one
// Redsync: the waiter gets a value of its own by the transfer round, and the
// holder's Mutex, whose value no node holds any more, sends nothing with it.
// Another Mutex given the old value (WithValue) cannot release the new
// holder's lock.
func TestLocalHandOffFreshValue(t *testing.T) {
	c := newFakeCluster(5)
	holderObs, waiterObs := newRecordingObserver(), newRecordingObserver()
	holder, waiter, _, done := handOffScene(t, c, context.Background(),
		[]Option{WithObserver(holderObs)}, []Option{WithObserver(waiterObs)})
	value := holder.Value()
	sent := c.calls()

	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("holder Unlock() = %v, %v; want true, nil", ok, err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("waiter Lock() = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter was not handed the lock")
	}
	if got := c.calls() - sent; got < 3 {
		t.Errorf("the hand-off sent %d commands, want a transfer round on a quorum at least", got)
	}
	if got := waiter.Value(); got == value || got == "" {
		t.Fatalf("waiter Value() = %q, want a fresh value (the holder's was %q)", got, value)
	}
	if got := holder.Value(); got != value {
		t.Errorf("holder Value() after Unlock = %q, want the released %q", got, value)
	}
	if rel := holderObs.releases[0]; !rel.HandedOver || rel.Err != nil {
		t.Errorf("holder's ReleaseEvent: HandedOver %v, Err %v; want true, nil", rel.HandedOver, rel.Err)
	}
	if acq := waiterObs.acquires[0]; !acq.HandedOver || acq.Err != nil || acq.Value != waiter.Value() {
		t.Errorf("waiter's AcquireEvent: HandedOver %v, Err %v, Value %q; want true, nil, the waiter's value", acq.HandedOver, acq.Err, acq.Value)
	}
	eventually(t, "every node holds the waiter's value", func() bool { return c.holders("k", waiter.Value()) == 5 })

	// The holder's Mutex sends nothing with the value it released.
	sent = c.calls()
	if ok, err := holder.Unlock(); ok || !errors.Is(err, ErrLockAlreadyExpired) {
		t.Errorf("holder's second Unlock() = %v, %v; want false, ErrLockAlreadyExpired", ok, err)
	}
	if ok, err := holder.Extend(); ok || !errors.Is(err, ErrExtendFailed) || !errors.Is(err, ErrLockAlreadyExpired) {
		t.Errorf("holder's Extend() after the hand-off = %v, %v; want false, ErrExtendFailed and ErrLockAlreadyExpired", ok, err)
	}
	if ok, err := holder.Valid(); ok || err != nil {
		t.Errorf("holder's Valid() after the hand-off = %v, %v; want false, nil", ok, err)
	}
	if got := c.calls() - sent; got != 0 {
		t.Errorf("the old holder's calls sent %d commands, want none", got)
	}
	// The released value is dead: a Mutex given it cannot touch the lock.
	stray := New(c.pools()...).NewMutex("k", WithValue(value))
	if ok, _ := stray.Unlock(); ok {
		t.Error("Unlock() with the released value succeeded")
	}
	if got := c.holders("k", waiter.Value()); got != 5 {
		t.Fatalf("%d of 5 nodes hold the waiter's lock after the stray Unlock, want 5", got)
	}

	unlockBothAgain(t, c, holder, waiter)
}

// TestLocalHandOffMaxHold hands over an acquisition made 300 ms earlier:
// the waiter's WithMaxHold counts from the hand-off.
func TestLocalHandOffMaxHold(t *testing.T) {
	c := newFakeCluster(3)
	holder, waiter, _, done := handOffScene(t, c, context.Background(), nil,
		[]Option{WithAutoExtend(time.Second), WithMaxHold(time.Second)})
	c.clock.Advance(300 * time.Millisecond)
	handedAt := c.clock.Now()
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("holder Unlock() = %v, %v", ok, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("waiter Lock() = %v", err)
	}
	waiter.mu.Lock()
	limit := waiter.lease.limit
	waiter.mu.Unlock()
	if want := handedAt.Add(time.Second); !limit.Equal(want) {
		t.Errorf("the waiter's hold ends at %v, want %v: a second after the hand-off", limit.Sub(handedAt), time.Second)
	}
	if ok, err := waiter.Unlock(); !ok || err != nil {
		t.Fatalf("waiter Unlock() = %v, %v", ok, err)
	}
}
