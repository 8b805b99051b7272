package redsync

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redlock/redsync/redis"
)

// Passing an acquisition on with no round (passOn in transfer.go).

// passOnScene locks "k" with a holder over c's nodes, which cannot be
// listened to (so the waiter is polled, with no entry in the nodes'
// queues), and starts a waiter of the same Redsync in Lock, with a retry
// delay of an hour; both use c's clock. It returns once the waiter waits
// for a hand-off, with the holder's value as the nodes hold it (read from
// a node: Value would show it).
func passOnScene(t *testing.T, c *fakeCluster, holderOpts, waiterOpts []Option) (holder, waiter *Mutex, value string, done chan error) {
	t.Helper()
	rs := New(c.pools()...)
	holder = rs.NewMutex("k", holderOpts...)
	holder.now = c.clock.Now
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	waiter = rs.NewMutex("k", append([]Option{WithRetryDelay(time.Hour)}, waiterOpts...)...)
	waiter.now = c.clock.Now
	done = make(chan error, 1)
	go func() { done <- waiter.Lock() }()
	queuedWaiter(t, waiter)
	value, ok := c.nodes[0].value("k")
	if !ok {
		t.Fatal("node 0 holds no key after the holder's Lock")
	}
	return holder, waiter, value, done
}

// awaitLock returns the result of a Lock call started in a goroutine.
func awaitLock(t *testing.T, done chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter's Lock did not return")
		return nil
	}
}

// unlockPassesOn unlocks holder and checks that the waiter's Lock (done)
// got the lock with no command sent to c's nodes.
func unlockPassesOn(t *testing.T, c *fakeCluster, holder *Mutex, done chan error) {
	t.Helper()
	sent := c.calls()
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("holder Unlock() = %v, %v; want true, nil", ok, err)
	}
	if err := awaitLock(t, done); err != nil {
		t.Fatalf("waiter Lock() = %v", err)
	}
	if got := c.calls() - sent; got != 0 {
		t.Fatalf("the hand-off sent %d commands, want none (passed on)", got)
	}
}

// unlockBothAgain unlocks waiter, the holder now, checks that no node
// keeps the key, and that holder, whose lock went to waiter, locks and
// unlocks again as usual.
func unlockBothAgain(t *testing.T, c *fakeCluster, holder, waiter *Mutex) {
	t.Helper()
	if ok, err := waiter.Unlock(); !ok || err != nil {
		t.Fatalf("waiter Unlock() = %v, %v", ok, err)
	}
	if got := c.keys("k"); got != 0 {
		t.Errorf("%d nodes hold the key after the waiter's Unlock", got)
	}
	if err := holder.Lock(); err != nil {
		t.Fatalf("holder Lock() after its lock went to the waiter: %v", err)
	}
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Errorf("holder Unlock() of its new acquisition = %v, %v", ok, err)
	}
}

func TestPassOnFakes(t *testing.T) {
	c := newFakeCluster(5)
	holder, waiter, value, done := passOnScene(t, c, nil, nil)
	c.clock.Advance(100 * time.Millisecond)
	until := holder.Until()
	unlockPassesOn(t, c, holder, done)
	sent := c.calls()
	if got := waiter.Value(); got != value {
		t.Fatalf("waiter Value() = %q, want the acquisition's %q", got, value)
	}
	// The validity of the holder's round, which set the keys: the same
	// expiry and drift give the same Until.
	if got := waiter.Until(); !got.Equal(until) {
		t.Errorf("waiter Until() = %v, want the holder's %v", got, until)
	}
	// The old Mutex has no value left to act with, and sends nothing.
	if got := holder.Value(); got != "" {
		t.Errorf("holder Value() after passing on = %q, want empty: the waiter holds that value", got)
	}
	if ok, err := holder.Unlock(); ok || !errors.Is(err, ErrLockAlreadyExpired) {
		t.Errorf("holder's second Unlock() = %v, %v; want false, ErrLockAlreadyExpired", ok, err)
	}
	if ok, err := holder.Extend(); ok || !errors.Is(err, ErrExtendFailed) {
		t.Errorf("holder's Extend() = %v, %v; want false, ErrExtendFailed", ok, err)
	}
	if ok, err := holder.Valid(); ok || err != nil {
		t.Errorf("holder's Valid() = %v, %v; want false, nil", ok, err)
	}
	if got := c.calls() - sent; got != 0 {
		t.Errorf("the old holder's calls sent %d commands, want none", got)
	}
	if got := c.holders("k", value); got != 5 {
		t.Fatalf("%d of 5 nodes hold the waiter's value, want 5", got)
	}
	if ok, err := waiter.Extend(); !ok || err != nil {
		t.Fatalf("waiter Extend() = %v, %v", ok, err)
	}
	unlockBothAgain(t, c, holder, waiter)
}

// TestPassOnWaiterDrift passes on to a waiter with a larger drift factor:
// its Until is the holder's round's start plus its own expiry less its
// own drift.
func TestPassOnWaiterDrift(t *testing.T) {
	c := newFakeCluster(3)
	holder, waiter, _, done := passOnScene(t, c, nil, []Option{WithDriftFactor(0.04)})
	start := holder.Until().Add(-holder.validFor())
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("holder Unlock() = %v, %v", ok, err)
	}
	if err := awaitLock(t, done); err != nil {
		t.Fatalf("waiter Lock() = %v", err)
	}
	if want := start.Add(8*time.Second - 322*time.Millisecond); !waiter.Until().Equal(want) {
		t.Errorf("waiter Until() = %v after the round's start, want %v", waiter.Until().Sub(start), want.Sub(start))
	}
	if holder.Value() != "" {
		t.Errorf("the lock was not passed on")
	}
	waiter.Unlock()
}

// TestPassOnRefused checks each thing that makes the hand-off a round: the
// waiter gets a fresh value, which every node holds, and the old holder's
// value is dead.
func TestPassOnRefused(t *testing.T) {
	genValue := func() (string, error) { return fmt.Sprintf("own-%d", rand.Int64()), nil }
	for _, tc := range []struct {
		name               string
		holderOpts, wOpts  []Option
		before             func(t *testing.T, c *fakeCluster, holder *Mutex, value string) (cleanup func())
		holderKeepsItsCopy bool // Value was read: it keeps returning the released value
	}{
		{name: "holder's Value read", holderKeepsItsCopy: true, before: func(t *testing.T, c *fakeCluster, holder *Mutex, value string) func() {
			if holder.Value() != value {
				t.Fatal("holder Value() is not the nodes' value")
			}
			return nil
		}},
		{name: "holder has an observer", holderOpts: []Option{WithObserver(newRecordingObserver())}},
		{name: "waiter has an observer", wOpts: []Option{WithObserver(newRecordingObserver())}},
		{name: "holder's WithGenValueFunc", holderOpts: []Option{WithGenValueFunc(genValue)}},
		{name: "waiter's WithGenValueFunc", wOpts: []Option{WithGenValueFunc(genValue)}},
		{name: "waiter's expiry differs", wOpts: []Option{WithExpiry(5 * time.Second)}},
		{name: "validity too short", before: func(t *testing.T, c *fakeCluster, holder *Mutex, value string) func() {
			// 8s expiry: a round with the whole 400 ms per-node timeout
			// would leave more.
			c.clock.Advance(401 * time.Millisecond)
			return nil
		}},
		{name: "an Extend failed", before: func(t *testing.T, c *fakeCluster, holder *Mutex, value string) func() {
			for _, n := range c.nodes[:2] {
				n.setErr(errors.New("node down"))
			}
			if ok, _ := holder.Extend(); ok {
				t.Fatal("Extend() succeeded with 2 of 3 nodes failing")
			}
			for _, n := range c.nodes[:2] {
				n.setErr(nil)
			}
			return nil
		}},
		{name: "Valid found the key missing", before: func(t *testing.T, c *fakeCluster, holder *Mutex, value string) func() {
			for _, n := range c.nodes[:2] {
				n.mu.Lock()
				delete(n.keys, "k")
				n.mu.Unlock()
			}
			if ok, _ := holder.Valid(); ok {
				t.Fatal("Valid() = true with the key on 1 of 3 nodes")
			}
			for _, n := range c.nodes[:2] {
				n.set("k", value)
			}
			return nil
		}},
		{name: "an Extend in flight", before: func(t *testing.T, c *fakeCluster, holder *Mutex, value string) func() {
			n := c.nodes[2]
			n.mu.Lock()
			n.block, n.slow = make(chan struct{}), "extend"
			n.mu.Unlock()
			extended := make(chan struct{})
			go func() { holder.Extend(); close(extended) }()
			eventually(t, "the Extend reached node 2", func() bool {
				for _, s := range n.ran() {
					if s == "extend" {
						return true
					}
				}
				return false
			})
			return func() {
				n.mu.Lock()
				close(n.block)
				n.block = nil
				n.mu.Unlock()
				<-extended
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newFakeCluster(3)
			holder, waiter, value, done := passOnScene(t, c, tc.holderOpts, tc.wOpts)
			if tc.before != nil {
				if cleanup := tc.before(t, c, holder, value); cleanup != nil {
					defer cleanup()
				}
			}
			sent := c.calls()
			if ok, err := holder.Unlock(); !ok || err != nil {
				t.Fatalf("holder Unlock() = %v, %v; want true, nil", ok, err)
			}
			if err := awaitLock(t, done); err != nil {
				t.Fatalf("waiter Lock() = %v", err)
			}
			if got := c.calls() - sent; got < 2 {
				t.Errorf("the hand-off sent %d commands, want a round on a quorum", got)
			}
			got := waiter.Value()
			if got == value || got == "" {
				t.Fatalf("waiter Value() = %q, want a fresh value (the holder's was %q)", got, value)
			}
			if want := map[bool]string{true: value, false: ""}[tc.holderKeepsItsCopy]; tc.holderKeepsItsCopy && holder.Value() != want {
				t.Errorf("holder Value() = %q, want the released %q", holder.Value(), want)
			}
			// The round returns at a quorum; the last node follows.
			eventually(t, "every node holds the waiter's value", func() bool { return c.holders("k", got) == 3 })
			if ok, err := waiter.Unlock(); !ok || err != nil {
				t.Errorf("waiter Unlock() = %v, %v", ok, err)
			}
		})
	}
}

// TestPassOnGivenValueIsRound: an Unlock of a Mutex given the value with
// WithValue (acquired elsewhere) hands over with a round: that value was
// known outside the library.
func TestPassOnGivenValueIsRound(t *testing.T) {
	c := newFakeCluster(3)
	rs := New(c.pools()...)
	holder := rs.NewMutex("k")
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	value, _ := c.nodes[0].value("k")
	waiter := rs.NewMutex("k", WithRetryDelay(time.Hour))
	done := make(chan error, 1)
	go func() { done <- waiter.Lock() }()
	queuedWaiter(t, waiter)
	given := rs.NewMutex("k", WithValue(value))
	sent := c.calls()
	if ok, err := given.Unlock(); !ok || err != nil {
		t.Fatalf("Unlock() with the given value = %v, %v", ok, err)
	}
	if err := awaitLock(t, done); err != nil {
		t.Fatalf("waiter Lock() = %v", err)
	}
	if got := c.calls() - sent; got < 2 {
		t.Errorf("the hand-off sent %d commands, want a round", got)
	}
	if got := waiter.Value(); got == value {
		t.Fatalf("the given value %q was passed on", value)
	}
	waiter.Unlock()
}

// TestPassOnChainAndBound passes one acquisition on from waiter to waiter:
// each hand-off sends nothing, and the bound of maxLocalHandoffs in a row
// still ends the run with a release.
func TestPassOnChainAndBound(t *testing.T) {
	c := newFakeCluster(3)
	rs := New(c.pools()...)
	first := rs.NewMutex("k")
	first.now = c.clock.Now
	if err := first.Lock(); err != nil {
		t.Fatal(err)
	}
	value, _ := c.nodes[0].value("k")
	holder := first
	passed := 0
	for i := range maxLocalHandoffs + 1 {
		m := rs.NewMutex("k", WithRetryDelay(time.Hour))
		m.now = c.clock.Now
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- m.LockContext(ctx) }()
		queuedWaiter(t, m)
		sent := c.calls()
		if ok, err := holder.Unlock(); !ok || err != nil {
			t.Fatalf("hand-off %d: Unlock() = %v, %v", i, ok, err)
		}
		if i == maxLocalHandoffs {
			// The acquisition came by 16 hand-offs: released, and the
			// waiter is polled (an hour), so it still waits.
			select {
			case err := <-done:
				t.Fatalf("hand-off %d: the waiter's Lock returned %v; want it still waiting after the release", i, err)
			case <-time.After(50 * time.Millisecond):
			}
			if got := c.keys("k"); got != 0 {
				t.Fatalf("after %d hand-offs the Unlock left the key on %d nodes, want a release", i, got)
			}
			cancel()
			if err := awaitLock(t, done); !errors.Is(err, context.Canceled) {
				t.Fatalf("the last waiter's LockContext() = %v, want context.Canceled", err)
			}
			break
		}
		if err := awaitLock(t, done); err != nil {
			t.Fatalf("hand-off %d: Lock() = %v", i, err)
		}
		if c.calls() == sent {
			passed++
		}
		holder = m
	}
	if passed != maxLocalHandoffs {
		t.Errorf("%d of %d hand-offs sent nothing, want all", passed, maxLocalHandoffs)
	}
	if got := c.holders("k", value); got != 0 {
		t.Errorf("%d nodes hold the first value after the release", got)
	}
}

// TestPassOnRaceStress interleaves, around an Unlock that may pass the
// lock on, a second Unlock, Extend and Value on the holder and the
// cancellation of waiters, in random order, on fake nodes that cannot be
// listened to (the waiters have no entries, so most hand-offs pass on). At
// most one waiter holds the lock, the nodes hold its value or nothing,
// and a value that the old holder's Value returned is never the new
// holder's: what was shown is dead after Unlock.
func TestPassOnRaceStress(t *testing.T) {
	var passedOn atomic.Int32
	for run := range 300 {
		c := newFakeCluster(3)
		rs := New(c.pools()...)
		holder := rs.NewMutex("k")
		if err := holder.Lock(); err != nil {
			t.Fatal(err)
		}
		value, _ := c.nodes[0].value("k")
		const n = 3
		waiters := make([]*Mutex, n)
		cancels := make([]context.CancelFunc, n)
		results := make(chan raceResult, n)
		for i := range n {
			waiters[i] = rs.NewMutex("k", WithRetryDelay(time.Hour), WithTries(2))
			ctx, cancel := context.WithCancel(context.Background())
			cancels[i] = cancel
			go func() { results <- raceResult{i, waiters[i].LockContext(ctx)} }()
			queuedWaiters(t, waiters[i], i+1)
		}
		var mu sync.Mutex
		var shown []string
		actions := []func(){
			func() { holder.Unlock() },
			func() { holder.Unlock() },
			func() { holder.Extend() },
			func() { cancels[rand.N(n)]() },
			func() { cancels[rand.N(n)]() },
		}
		if rand.N(2) == 0 {
			actions = append(actions, func() {
				v := holder.Value()
				mu.Lock()
				shown = append(shown, v)
				mu.Unlock()
			})
		}
		rand.Shuffle(len(actions), func(i, j int) { actions[i], actions[j] = actions[j], actions[i] })
		var wg sync.WaitGroup
		for _, act := range actions {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if rand.N(2) == 0 {
					time.Sleep(time.Duration(rand.N(200)) * time.Microsecond)
				}
				act()
			}()
		}
		wg.Wait()
		// End every waiter that is still waiting.
		var held []int
		for k := range n {
			if k == 0 {
				// Give a grant that is on its way time to land.
				time.Sleep(time.Millisecond)
				for _, cancel := range cancels {
					cancel()
				}
			}
			r := <-results
			if r.err == nil {
				held = append(held, r.i)
			} else if !errors.Is(r.err, context.Canceled) {
				t.Fatalf("run %d: waiter %d: LockContext() = %v", run, r.i, r.err)
			}
		}
		switch len(held) {
		case 0:
			if got := c.keys("k"); got != 0 {
				t.Fatalf("run %d: no waiter holds the lock, yet %d nodes hold the key", run, got)
			}
		case 1:
			w := waiters[held[0]]
			got := w.Value()
			if c.holders("k", got) < 2 {
				t.Fatalf("run %d: waiter %d holds the lock, but a quorum does not hold its value %q", run, held[0], got)
			}
			for _, v := range shown {
				if v != "" && v == got {
					t.Fatalf("run %d: the old holder's Value() returned %q, which the new holder now holds", run, v)
				}
			}
			if got == value {
				passedOn.Add(1)
			}
			if ok, err := w.Unlock(); !ok || err != nil {
				t.Fatalf("run %d: the new holder's Unlock() = %v, %v", run, ok, err)
			}
		default:
			t.Fatalf("run %d: waiters %v all hold the lock", run, held)
		}
		if got := c.keys("k"); got != 0 {
			t.Fatalf("run %d: %d nodes hold the key after every holder unlocked", run, got)
		}
		if got := holder.Value(); got != "" && got != value {
			t.Fatalf("run %d: holder Value() = %q, want the released value or empty", run, got)
		}
	}
	if passedOn.Load() == 0 {
		t.Error("no run passed the lock on: the test proved nothing about passing on")
	}
	t.Logf("%d of 300 runs passed the acquisition on", passedOn.Load())
}

// TestPassOnCarriesHolderEntries passes on an acquisition made by a queue
// try that left the waiter's entry where it failed (set up by hand on one
// node): the entry goes with the acquisition, and the new holder's release
// takes it out, as the old holder's would have.
func TestPassOnCarriesHolderEntries(t *testing.T) {
	c := newFakeCluster(3)
	holder, waiter, value, done := passOnScene(t, c, nil, nil)
	const member, ticket = "elsewhere:1", "7"
	n := c.nodes[2]
	n.mu.Lock()
	if n.queues == nil {
		n.queues = map[string][]fakeEntry{}
	}
	n.queues["k"] = append(n.queues["k"], fakeEntry{member: member, ticket: 7, until: c.clock.Now().Add(time.Hour)})
	n.mu.Unlock()
	holder.mu.Lock()
	calls := holder.acq.calls
	calls.queue = &queueTry{member: member, ticket: ticket}
	calls.release = redis.NewScriptCall(releaseNotifyScript, holder.keyArg, holder.queueKeyArg, calls.value, member, ticket)
	holder.mu.Unlock()

	unlockPassesOn(t, c, holder, done)
	if got := n.queued("k"); len(got) != 1 {
		t.Fatalf("node 2's queue %v after passing on, want the entry still there (nothing was sent)", got)
	}
	// The new holder's release and a transfer round name the entry.
	waiter.mu.Lock()
	m, tk := waiter.acq.calls.entry()
	args := waiter.acq.calls.release.KeysAndArgs()
	waiter.mu.Unlock()
	if m != member || tk != ticket || !slices.Contains(args, any(member)) {
		t.Fatalf("the passed-on acquisition's entry is %q %q, its release %v; want %q %q, named in the release", m, tk, args, member, ticket)
	}
	if ok, err := waiter.Unlock(); !ok || err != nil {
		t.Fatalf("waiter Unlock() = %v, %v", ok, err)
	}
	if got := n.queued("k"); len(got) != 0 {
		t.Errorf("node 2's queue %v after the new holder's release, want the carried entry gone", got)
	}
	if got := c.holders("k", value); got != 0 {
		t.Errorf("%d nodes hold the value after the release", got)
	}
}

// freeSince returns when the last note of key (or of every name) was
// taken, or the zero time (for the review tests).
func (n *notifier) freeSince(key string) time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	at := n.freeSeen[key].at
	if n.freeAll.at.After(at) {
		at = n.freeAll.at
	}
	return at
}
