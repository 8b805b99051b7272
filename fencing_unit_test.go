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
)

// slowPath sets the counter of name to 5 on every node, so that a Mutex
// that has not seen it yet proposes a token that is too low and needs the
// second round (token 6).
func (c *fakeCluster) slowPath(name string) {
	for _, n := range c.nodes {
		n.set(fenceCounter(name), "5")
	}
}

func TestFencingTokenLifecycle(t *testing.T) {
	c := newFakeCluster(3)
	plain := c.mutex("k", WithTries(1))
	if err := plain.Lock(); err != nil {
		t.Fatalf("Lock() = %v", err)
	}
	if got := plain.FencingToken(); got != 0 {
		t.Errorf("FencingToken() without WithFencing = %d, want 0", got)
	}
	if got := c.nodes[0].ran(); !slices.Equal(got, []string{"acquire"}) {
		t.Errorf("node 0 ran %v without fencing, want [acquire]", got)
	}
	if _, err := plain.Unlock(); err != nil {
		t.Fatalf("Unlock() = %v", err)
	}

	m := c.fencedMutex("k", c.pools())
	if got := m.FencingToken(); got != 0 {
		t.Errorf("FencingToken() before Lock = %d, want 0", got)
	}
	for want := uint64(1); want <= 3; want++ {
		if err := m.Lock(); err != nil {
			t.Fatalf("Lock() = %v", err)
		}
		if got := m.FencingToken(); got != want {
			t.Errorf("FencingToken() after Lock number %d = %d, want %d", want, got, want)
		}
		for i, n := range c.nodes {
			if got := n.counter("k"); got != want {
				t.Errorf("node %d: counter %d, want %d", i, got, want)
			}
		}
		if _, err := m.Unlock(); err != nil {
			t.Fatalf("Unlock() = %v", err)
		}
		if got := m.FencingToken(); got != 0 {
			t.Errorf("FencingToken() after Unlock = %d, want 0", got)
		}
	}
	// The same Mutex, locking again, proposed the right token each time:
	// no second round.
	if got, want := c.nodes[0].ran()[2:], []string{"fence-acquire", "release", "fence-acquire", "release", "fence-acquire", "release"}; !slices.Equal(got, want) {
		t.Errorf("node 0 ran %v for three fenced Lock and Unlock, want %v", got, want)
	}

	adopted := c.fencedMutex("k", c.pools(), WithValue(m.Value()))
	if got := adopted.FencingToken(); got != 0 {
		t.Errorf("FencingToken() of a Mutex made WithValue = %d, want 0", got)
	}
}

// TestFencingTokenAfterFailedUnlock checks that an Unlock that fails on
// node errors, and so gives the acquisition back, gives its token back
// too, and that the next Unlock clears it.
func TestFencingTokenAfterFailedUnlock(t *testing.T) {
	c := newFakeCluster(3)
	failing := true
	m := c.fencedMutex("k", c.faultPools(func(node int, cmd string) fault {
		if cmd == "release" && node < 2 && failing {
			return faultBefore
		}
		return faultNone
	}))
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v", err)
	}
	token := m.FencingToken()
	if ok, err := m.Unlock(); ok || err == nil || errors.Is(err, ErrLockAlreadyExpired) {
		t.Fatalf("Unlock() with 2 of 3 nodes failing = %v, %v; want false and a node error", ok, err)
	}
	if got := m.FencingToken(); got != token {
		t.Errorf("FencingToken() after an Unlock that failed on node errors = %d, want %d", got, token)
	}
	failing = false
	if ok, err := m.Unlock(); !ok || err != nil {
		t.Fatalf("second Unlock() = %v, %v; want true, nil", ok, err)
	}
	if got := m.FencingToken(); got != 0 {
		t.Errorf("FencingToken() after Unlock = %d, want 0", got)
	}
}

// TestFencingFastPath checks when a try needs the second round: only when
// some node reports a counter at or above the token the Mutex proposed,
// that is, when another Mutex locked since this one last did.
func TestFencingFastPath(t *testing.T) {
	c := newFakeCluster(3)
	a := c.fencedMutex("k", c.pools())
	b := c.fencedMutex("k", c.pools())
	steps := []struct {
		m      *Mutex
		name   string
		token  uint64
		rounds int
	}{
		{a, "a", 1, 1}, // fresh nodes: a proposes 1
		{a, "a", 2, 1},
		{b, "b", 3, 2}, // b proposes 1 and reads 2
		{b, "b", 4, 1},
		{a, "a", 5, 2}, // a proposes 3 and reads 4
		{a, "a", 6, 1},
	}
	for i, st := range steps {
		before := len(c.nodes[0].ran())
		if err := st.m.Lock(); err != nil {
			t.Fatalf("step %d: %s.Lock() = %v", i, st.name, err)
		}
		if got := st.m.FencingToken(); got != st.token {
			t.Errorf("step %d: %s.FencingToken() = %d, want %d", i, st.name, got, st.token)
		}
		if got := len(c.nodes[0].ran()) - before; got != st.rounds {
			t.Errorf("step %d: %s.Lock() sent %d commands to node 0 (%v), want %d", i, st.name, got, c.nodes[0].ran()[before:], st.rounds)
		}
		for j, n := range c.nodes {
			if got := n.counter("k"); got != st.token {
				t.Errorf("step %d: node %d: counter %d, want %d", i, j, got, st.token)
			}
		}
		if _, err := st.m.Unlock(); err != nil {
			t.Fatalf("step %d: %s.Unlock() = %v", i, st.name, err)
		}
	}

	// The mutexes of one Redsync share what they have seen: a Mutex made
	// for a single Lock (as Do does) takes the fast path too.
	rs := New(c.pools()...)
	for i, want := range []uint64{7, 8} {
		m := rs.NewMutex("k", WithFencing(), WithTries(1))
		before := len(c.nodes[0].ran())
		if err := m.Lock(); err != nil {
			t.Fatalf("Lock() of Mutex %d of one Redsync = %v", i, err)
		}
		if got := m.FencingToken(); got != want {
			t.Errorf("FencingToken() of Mutex %d of one Redsync = %d, want %d", i, got, want)
		}
		if got, rounds := len(c.nodes[0].ran())-before, []int{2, 1}[i]; got != rounds {
			t.Errorf("Mutex %d of one Redsync sent %d commands to node 0, want %d", i, got, rounds)
		}
		if _, err := m.Unlock(); err != nil {
			t.Fatalf("Unlock() = %v", err)
		}
	}

	// A node that did not grant the lock but reports a higher counter sends
	// the try to the second round too.
	c.nodes[0].set("k", "other")
	c.nodes[0].set(fenceCounter("k"), "9")
	if err := a.Lock(); err != nil {
		t.Fatalf("a.Lock() = %v", err)
	}
	if got := a.FencingToken(); got != 10 {
		t.Errorf("a.FencingToken() with a counter of 9 on a taken node = %d, want 10", got)
	}
}

func TestFenceHints(t *testing.T) {
	var h fenceHints
	if got := h.get("a"); got != 0 {
		t.Errorf("get(a) on empty hints = %d, want 0", got)
	}
	h.see("a", 5)
	h.see("a", 3) // never lowers
	if got := h.get("a"); got != 5 {
		t.Errorf("get(a) = %d, want 5", got)
	}
	// Find a name that shares a's slot: it replaces a, and a is unknown.
	other := ""
	for i := 0; other == ""; i++ {
		if name := fmt.Sprint("n", i); h.slot(name) == h.slot("a") {
			other = name
		}
	}
	h.see(other, 9)
	if got, got2 := h.get("a"), h.get(other); got != 0 || got2 != 9 {
		t.Errorf("after see(%s, 9) in a's slot: get(a) = %d, get(%s) = %d; want 0, 9", other, got, other, got2)
	}

	// Concurrent sees keep the highest.
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range uint64(1000) {
				h.see("b", n*8+uint64(g))
			}
		}()
	}
	wg.Wait()
	if got := h.get("b"); got != 999*8+7 {
		t.Errorf("get(b) after concurrent sees = %d, want %d", got, 999*8+7)
	}
}

// TestFencingTokenIsMaxPlusOne sets different counters on the nodes: the
// token is one more than the highest, and every node that holds the lock
// is raised to it.
func TestFencingTokenIsMaxPlusOne(t *testing.T) {
	c := newFakeCluster(5)
	for i, v := range []string{"3", "7", "", "0", "5"} {
		if v != "" {
			c.nodes[i].set(fenceCounter("k"), v)
		}
	}
	c.nodes[1].set("k", "other") // the node with the highest counter is taken
	m := c.fencedMutex("k", c.pools())
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v", err)
	}
	if got := m.FencingToken(); got != 8 {
		t.Errorf("FencingToken() = %d, want 8", got)
	}
	for i, want := range []uint64{8, 7, 8, 8, 8} {
		if got := c.nodes[i].counter("k"); got != want {
			t.Errorf("node %d: counter %d, want %d", i, got, want)
		}
	}
}

// TestFencingRoundFailure fails the second round on some of 5 nodes in
// different ways: with 3 failures the try fails, names the nodes and is
// undone, with 2 it succeeds.
func TestFencingRoundFailure(t *testing.T) {
	tests := []struct {
		name  string
		fault func(n *fakeNode) fault // run before fence-advance on a failing node
		text  string                  // in the error
		match error                   // matched by the error, when not nil
	}{
		{"error", func(*fakeNode) fault { return faultBefore }, "injected fault", errFault},
		{"reply lost", func(*fakeNode) fault { return faultAfter }, "injected fault", errFault},
		{"key expired", func(n *fakeNode) fault {
			n.mu.Lock()
			delete(n.keys, "k")
			n.mu.Unlock()
			return faultNone
		}, "LOCKGONE", nil},
		{"key taken", func(n *fakeNode) fault {
			n.set("k", "other")
			return faultNone
		}, "lock already taken", nil},
	}
	for _, tt := range tests {
		for _, failing := range []int{2, 3} {
			t.Run(fmt.Sprintf("%s/failing=%d", tt.name, failing), func(t *testing.T) {
				c := newFakeCluster(5)
				c.slowPath("k")
				m := c.fencedMutex("k", c.faultPools(func(node int, cmd string) fault {
					if cmd == "fence-advance" && node < failing {
						return tt.fault(c.nodes[node])
					}
					return faultNone
				}))
				err := m.Lock()
				if failing == 2 {
					if err != nil {
						t.Fatalf("Lock() with 2 of 5 nodes failing the fencing round = %v, want nil", err)
					}
					if got := m.FencingToken(); got != 6 {
						t.Errorf("FencingToken() = %d, want 6", got)
					}
					return
				}
				if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "fencing round") || !strings.Contains(err.Error(), tt.text) {
					t.Fatalf("Lock() = %v, want ErrFailed, the fencing round and %q in the text", err, tt.text)
				}
				if tt.match != nil && !errors.Is(err, tt.match) {
					t.Errorf("Lock() = %v, want it to match %v", err, tt.match)
				}
				for node := range failing {
					if !strings.Contains(err.Error(), fmt.Sprintf("node #%d", node)) {
						t.Errorf("Lock() = %q, want node #%d named", err, node)
					}
				}
				if got := m.FencingToken(); got != 0 {
					t.Errorf("FencingToken() after a failed Lock = %d, want 0", got)
				}
				if got := c.keys("k") - c.holders("k", "other"); got != 0 {
					t.Errorf("nodes holding our value after a failed Lock = %d, want 0", got)
				}
				if got := c.nodes[4].counter("k"); got != 6 {
					t.Errorf("node 4: counter %d, want 6 (written, and never undone)", got)
				}
			})
		}
	}
}

// TestFencingLateGrantSharesNoToken replays the interleaving of issue #11
// (item 6) on 3 fake nodes whose counters are at 7. A (fail-fast, a
// Redsync of its own) wins nodes 0 and 1 in its acquire round while its
// command to node 2 is still on the way, and needs the fencing round
// (token 8). Before that round, A's key on node 1 vanishes early (eviction,
// a clock jump); B, of another Redsync, wins nodes 1 and 2, reads 7, takes
// token 8 and unlocks; then A's late command lands on node 2. A's fencing
// round finds its key on nodes 0 and 2, but only on node 0 is the counter
// below 8: node 2's is already at B's 8. Counting node 2 gave A the token
// B had held (and B's delayed GuardedSet with 8 overwrote A's write); a
// node counts only where the round raised the counter, so A's try fails
// and is undone, and A's next one takes 9.
func TestFencingLateGrantSharesNoToken(t *testing.T) {
	c := newFakeCluster(3)
	for _, n := range c.nodes {
		n.set(fenceCounter("k"), "7")
	}
	var (
		gate              = make(chan struct{}) // holds A's acquire command to node 2
		openGate, landing sync.Once
		landed            = make(chan struct{}) // closed once that command has run
		interlude         sync.Once
		bLock, bUnlock    error
		bToken            uint64
	)
	t.Cleanup(func() { openGate.Do(func() { close(gate) }) })
	pools := c.lateFaultPools(func(node int, cmd string) fault {
		switch {
		case cmd == "fence-acquire" && node == 2:
			<-gate
		case cmd == "fence-advance":
			// The first of A's fencing commands plays the rest of the
			// scenario; the others wait for it here.
			interlude.Do(func() {
				c.nodes[1].mu.Lock()
				delete(c.nodes[1].keys, "k")
				c.nodes[1].mu.Unlock()
				b := c.fencedMutex("k", c.pools())
				if bLock = b.Lock(); bLock == nil {
					bToken = b.FencingToken()
					_, bUnlock = b.Unlock()
				}
				openGate.Do(func() { close(gate) })
				<-landed
			})
		}
		return faultNone
	}, func(node int, cmd string) {
		if cmd == "fence-acquire" && node == 2 {
			landing.Do(func() { close(landed) })
		}
	})
	a := c.fencedMutex("k", pools, WithFailFast(true), WithExpiry(time.Hour))

	err := a.Lock()
	if bLock != nil || bUnlock != nil || bToken != 8 {
		t.Fatalf("B: Lock() = %v, FencingToken() = %d, Unlock() = %v; want nil, 8, nil", bLock, bToken, bUnlock)
	}
	if err == nil {
		t.Errorf("A: Lock() = nil with token %d, after B held token 8; want the try to fail: node 2's counter was at 8 already, so only node 0 confirmed", a.FencingToken())
	} else {
		if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "fencing round") || !strings.Contains(err.Error(), "node #2") {
			t.Errorf("A: Lock() = %v, want ErrFailed from the fencing round, naming node #2", err)
		}
		if got := a.FencingToken(); got != 0 {
			t.Errorf("A: FencingToken() after a failed Lock = %d, want 0", got)
		}
		if got := c.keys("k"); got != 0 {
			t.Errorf("nodes with a lock key after A's failed try = %d, want 0 (undone)", got)
		}
		if err := a.Lock(); err != nil {
			t.Fatalf("A: second Lock() = %v", err)
		}
	}
	aToken := a.FencingToken()
	if aToken <= bToken {
		t.Errorf("A's token = %d, B's = %d; want A's greater: B's hold ended before A's Lock returned", aToken, bToken)
	}

	// B's write, delayed past A's, must not overwrite it.
	resource := newFakeNode(c.clock)
	ctx := context.Background()
	if err := GuardedSet(ctx, resource, "doc", "A", aToken); err != nil {
		t.Fatalf("GuardedSet() by A with token %d = %v", aToken, err)
	}
	if err := GuardedSet(ctx, resource, "doc", "B", bToken); !errors.Is(err, ErrStaleToken) {
		t.Errorf("B's late GuardedSet() with token %d after A's with %d = %v, want ErrStaleToken", bToken, aToken, err)
	}
	if v, _ := resource.value("doc\x00value"); v != "A" {
		t.Errorf("resource value = %q, want A's", v)
	}
}

// TestFencingRefusesSetNXOnExtend checks that WithFencing and
// WithSetNXOnExtend, in either order, make an invalid configuration, as
// Lock, Extend, Unlock and Do report before sending anything. The harm it
// prevents (issue #11, item 7), played out when the configuration is
// accepted: A takes token 1 and pauses, its keys expire, B takes token 2
// and unlocks, and A's Extend re-creates the keys: A holds the lock again,
// after B, with the older token.
func TestFencingRefusesSetNXOnExtend(t *testing.T) {
	orders := []struct {
		name string
		opts []Option
	}{
		{"fencing first", []Option{WithFencing(), WithSetNXOnExtend()}},
		{"set-NX first", []Option{WithSetNXOnExtend(), WithFencing()}},
	}
	for _, order := range orders {
		t.Run(order.name, func(t *testing.T) {
			c := newFakeCluster(3)
			opts := append([]Option{WithTries(1), WithReleaseNotification(false)}, order.opts...)
			a := New(c.pools()...).NewMutex("k", opts...)
			err := a.Lock()
			if err == nil {
				aToken := a.FencingToken()
				for _, n := range c.nodes {
					n.mu.Lock()
					delete(n.keys, "k")
					n.mu.Unlock()
				}
				b := c.fencedMutex("k", c.pools())
				if err := b.Lock(); err != nil {
					t.Fatalf("B: Lock() = %v", err)
				}
				bToken := b.FencingToken()
				if _, err := b.Unlock(); err != nil {
					t.Fatalf("B: Unlock() = %v", err)
				}
				if ok, err := a.Extend(); ok {
					t.Fatalf("A: Lock() = nil (token %d); after its keys expired and B held token %d, Extend() = true, %v: A holds the lock again with the older token. Want ErrInvalidConfig from Lock", aToken, bToken, err)
				}
				t.Fatalf("A: Lock() = nil, want ErrInvalidConfig")
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "WithFencing") || !strings.Contains(err.Error(), "WithSetNXOnExtend") {
				t.Errorf("Lock() = %v, want ErrInvalidConfig naming WithFencing and WithSetNXOnExtend", err)
			}
			if _, err := a.Extend(); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("Extend() = %v, want ErrInvalidConfig", err)
			}
			if _, err := a.Unlock(); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("Unlock() = %v, want ErrInvalidConfig", err)
			}
			err = New(c.pools()...).Do(context.Background(), "k", func(context.Context) error {
				t.Error("Do ran its function with an invalid configuration")
				return nil
			}, opts...)
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("Do() = %v, want ErrInvalidConfig", err)
			}
			if n := c.calls(); n != 0 {
				t.Errorf("%d commands sent with an invalid configuration, want 0", n)
			}
		})
	}
}

// TestFencingValidityCountsBothRounds makes each round take 60% of the
// expiry: either would fit in the validity, both do not.
func TestFencingValidityCountsBothRounds(t *testing.T) {
	for _, slow := range [][]string{{"fence-acquire"}, {"fence-advance"}, {"fence-acquire", "fence-advance"}} {
		t.Run(strings.Join(slow, "+"), func(t *testing.T) {
			c := newFakeCluster(3)
			c.slowPath("k")
			m := c.fencedMutex("k", c.faultPools(func(node int, cmd string) fault {
				if node == 0 && slices.Contains(slow, cmd) {
					c.clock.Advance(DefaultExpiry * 6 / 10)
				}
				return faultNone
			}))
			start := c.clock.Now()
			err := m.Lock()
			if len(slow) == 1 {
				if err != nil {
					t.Fatalf("Lock() with one slow round = %v, want nil", err)
				}
				if want := start.Add(DefaultExpiry - m.drift()); !m.Until().Equal(want) {
					t.Errorf("Until() = %v, want %v (from the start of the first round)", m.Until(), want)
				}
				return
			}
			if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "after the validity ran out") {
				t.Fatalf("Lock() with both rounds slow = %v, want ErrFailed saying the validity ran out", err)
			}
			if got := c.keys("k"); got != 0 {
				t.Errorf("nodes with the key after a failed Lock = %d, want 0", got)
			}
		})
	}
}

// TestFencingFirstRoundErrors checks that a fenced try whose first round
// fails reports it as an unfenced one does.
func TestFencingFirstRoundErrors(t *testing.T) {
	c := newFakeCluster(3)
	c.nodes[0].set("k", "other")
	c.nodes[1].set("k", "other")
	m := c.fencedMutex("k", c.pools())
	err := m.Lock()
	var taken *ErrTaken
	if !errors.As(err, &taken) || !slices.Equal(sortedCopy(taken.Nodes), []int{0, 1}) {
		t.Fatalf("Lock() = %v, want *ErrTaken naming nodes 0 and 1", err)
	}
	if got := c.nodes[2].ran(); slices.Contains(got, "fence-advance") {
		t.Errorf("node 2 ran %v; the fencing round must not run when the first round failed", got)
	}

	c = newFakeCluster(3)
	c.nodes[1].set(fenceCounter("k"), "x")
	c.nodes[2].set(fenceCounter("k"), "01")
	err = c.fencedMutex("k", c.pools()).Lock()
	var re *RedisError
	if !errors.Is(err, ErrFailed) || !errors.As(err, &re) || !strings.Contains(err.Error(), "not a token") {
		t.Fatalf("Lock() with bad counters = %v, want ErrFailed and a *RedisError saying a counter is not a token", err)
	}
}

// TestFencingCounterSlot checks that the counter hashes to the lock key's
// cluster slot and is distinct per lock name.
func TestFencingCounterSlot(t *testing.T) {
	keys := []string{"lock", "orders:42", "{user1}:lock", "{user1}:other", "a}b", "}{", "a{}b", "{", "x{y}z", "日本", "\x00\xff{"}
	seen := map[string]bool{}
	for _, key := range keys {
		counter := fenceCounter(key)
		if !strings.HasPrefix(counter, fenceCounterPrefix+"{") || !strings.HasSuffix(counter, "}:"+key) {
			t.Errorf("fenceCounter(%q) = %q, want %s{TAG}:%s", key, counter, fenceCounterPrefix, key)
		}
		if got, want := keySlot(counter), keySlot(key); got != want {
			t.Errorf("keySlot(fenceCounter(%q)) = %d, want %d (the key's slot)", key, got, want)
		}
		if seen[counter] {
			t.Errorf("fenceCounter(%q) = %q, already used by another key", key, counter)
		}
		seen[counter] = true
	}
}

// TestFencingIncrCounterexample replays the counterexample of
// docs/FENCING.md: on 5 nodes, holders A, B and C win quorums {0,1,2},
// {2,3,4} and {0,1,3} (the other nodes being down). One INCR per node in
// the acquire round, taking the highest result, gives 1, 2, 2; the two
// rounds give 1, 2, 3.
func TestFencingIncrCounterexample(t *testing.T) {
	quorums := [][]int{{0, 1, 2}, {2, 3, 4}, {0, 1, 3}}

	var counters [5]uint64
	var incr []uint64
	for _, q := range quorums {
		highest := uint64(0)
		for _, node := range q {
			counters[node]++
			highest = max(highest, counters[node])
		}
		incr = append(incr, highest)
	}
	if want := []uint64{1, 2, 2}; !slices.Equal(incr, want) {
		t.Fatalf("tokens of one INCR per node = %v, want %v", incr, want)
	}

	c := newFakeCluster(5)
	var up []int
	pools := c.faultPools(func(node int, cmd string) fault {
		if !slices.Contains(up, node) {
			return faultBefore
		}
		return faultNone
	})
	var tokens []uint64
	for _, q := range quorums {
		up = q
		m := c.fencedMutex("k", pools)
		if err := m.Lock(); err != nil {
			t.Fatalf("Lock() on nodes %v = %v", q, err)
		}
		tokens = append(tokens, m.FencingToken())
		if _, err := m.Unlock(); err != nil {
			t.Fatalf("Unlock() = %v", err)
		}
	}
	if want := []uint64{1, 2, 3}; !slices.Equal(tokens, want) {
		t.Errorf("tokens of the two rounds = %v, want %v", tokens, want)
	}
}

// TestFencingLostCounter is the known hole: a node that loses its counters
// (a restart without persistence) can make a later token repeat an
// earlier one. On 3 nodes, A writes token 1 on nodes 0 and 1 (node 2 is
// down); node 0 restarts empty; B wins nodes 0 and 2 (node 1 is down) and
// reads no counter of 1.
func TestFencingLostCounter(t *testing.T) {
	c := newFakeCluster(3)
	var down int
	pools := c.faultPools(func(node int, cmd string) fault {
		if node == down {
			return faultBefore
		}
		return faultNone
	})
	down = 2
	a := c.fencedMutex("k", pools)
	if err := a.Lock(); err != nil {
		t.Fatalf("Lock() by A = %v", err)
	}
	first := a.FencingToken()
	if _, err := a.Unlock(); err != nil {
		t.Fatalf("Unlock() by A = %v", err)
	}
	c.nodes[0].wipe()
	down = 1
	b := c.fencedMutex("k", pools)
	if err := b.Lock(); err != nil {
		t.Fatalf("Lock() by B = %v", err)
	}
	if second := b.FencingToken(); second > first {
		t.Errorf("B's token = %d, A's = %d; want B's not above A's: the hole this test documents has changed", second, first)
	}
}

func TestGuardedSetFake(t *testing.T) {
	c := newFakeCluster(1)
	pool := c.nodes[0]
	ctx := context.Background()
	if err := GuardedSet(ctx, pool, "doc", "v0", 0); err == nil || !strings.Contains(err.Error(), "token 0") {
		t.Errorf("GuardedSet(token 0) = %v, want an error about token 0", err)
	}
	if n := c.calls(); n != 0 {
		t.Errorf("GuardedSet(token 0) sent %d commands, want 0", n)
	}
	steps := []struct {
		value string
		token uint64
		stale bool
	}{
		{"v5", 5, false},
		{"v5 again", 5, false},
		{"v4", 4, true},
		{"v9", 9, false},
		{"v6", 6, true},
	}
	for _, s := range steps {
		err := GuardedSet(ctx, pool, "doc", s.value, s.token)
		if s.stale {
			var se *StaleTokenError
			if !errors.Is(err, ErrStaleToken) || !errors.As(err, &se) || se.Offered != s.token || se.Stored < s.token || se.Key != "doc" {
				t.Errorf("GuardedSet(%q, %d) = %v, want a *StaleTokenError", s.value, s.token, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("GuardedSet(%q, %d) = %v, want nil", s.value, s.token, err)
		}
	}
	if v, _ := pool.value("doc\x00value"); v != "v9" {
		t.Errorf("value = %q, want v9", v)
	}

	boom := errors.New("boom")
	pool.setErr(boom)
	if err := GuardedSet(ctx, pool, "doc", "v10", 10); !errors.Is(err, boom) || !strings.Contains(err.Error(), `"doc"`) {
		t.Errorf("GuardedSet() on a failing node = %v, want the node's error naming the key", err)
	}
}

func TestStaleTokenError(t *testing.T) {
	var err error = &StaleTokenError{Key: "doc", Stored: 9, Offered: 4}
	if !errors.Is(err, ErrStaleToken) || errors.Is(err, ErrFailed) {
		t.Errorf("errors.Is(%v, ErrStaleToken) = false or matches ErrFailed", err)
	}
	if got, want := err.Error(), `redsync: stale fencing token for "doc": offered 4, the resource holds 9`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if wrapped := fmt.Errorf("writing: %w", err); !errors.Is(wrapped, ErrStaleToken) {
		t.Errorf("a wrapped StaleTokenError does not match ErrStaleToken")
	}
}

// TestFencingReplyParsing checks the parsing of the scripts' replies, as
// each driver returns them.
func TestFencingReplyParsing(t *testing.T) {
	tests := []struct {
		reply   any
		status  int64
		token   uint64
		wantErr bool
	}{
		{[]any{int64(1), "42"}, 1, 42, false},                                  // go-redis, rueidis
		{[]any{int64(0), []byte("18446744073709551615")}, 0, 1<<64 - 1, false}, // redigo
		{[]any{int64(1), int64(3)}, 1, 3, false},
		{[]any{int64(1), "18446744073709551616"}, 0, 0, true},
		{[]any{int64(1), "-1"}, 0, 0, true},
		{[]any{int64(1), int64(-1)}, 0, 0, true},
		{[]any{"1", "1"}, 0, 0, true},
		{[]any{int64(1)}, 0, 0, true},
		{int64(1), 0, 0, true},
		{nil, 0, 0, true},
	}
	for _, tt := range tests {
		status, token, err := parseFenceReply(tt.reply, "test")
		if (err != nil) != tt.wantErr || status != tt.status || token != tt.token {
			t.Errorf("parseFenceReply(%#v) = %d, %d, %v; want %d, %d, error %v", tt.reply, status, token, err, tt.status, tt.token, tt.wantErr)
		}
	}
}

// TestFencingExhausted checks the end of the counter.
func TestFencingExhausted(t *testing.T) {
	c := newFakeCluster(1)
	c.nodes[0].set(fenceCounter("k"), "18446744073709551615")
	err := c.fencedMutex("k", c.pools()).Lock()
	if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "exhausted") {
		t.Fatalf("Lock() = %v, want ErrFailed saying the counter is exhausted", err)
	}
	if got := c.keys("k"); got != 0 {
		t.Errorf("nodes with the key = %d, want 0", got)
	}
}

// TestFencingContextCancelled checks that a fenced try cut short by its
// context in the second round is undone and reported like any other.
func TestFencingContextCancelled(t *testing.T) {
	c := newFakeCluster(3)
	c.slowPath("k")
	ctx, cancel := context.WithCancel(context.Background())
	m := c.fencedMutex("k", c.faultPools(func(node int, cmd string) fault {
		if cmd == "fence-advance" {
			cancel()
			time.Sleep(time.Millisecond)
		}
		return faultNone
	}))
	err := m.LockContext(ctx)
	if !errors.Is(err, ErrFailed) || !errors.Is(err, context.Canceled) {
		t.Fatalf("LockContext() = %v, want ErrFailed and context.Canceled", err)
	}
	if got := c.keys("k"); got != 0 {
		t.Errorf("nodes with the key = %d, want 0", got)
	}
}
