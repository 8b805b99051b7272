package redsync

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/goredis"
)

// Tests from a review that tried to break the fencing guarantees of
// docs/FENCING.md after issue #11's fixes, and found none broken: they
// stay as checks of those guarantees under concurrency, late commands,
// keys vanishing early, the top of uint64 and cancellation between the
// two rounds.

// breakerHold is one acquisition that held the lock (Lock returned nil).
type breakerHold struct {
	client      int
	token       uint64
	start, done int64 // global sequence numbers: before Lock was called, after it returned
}

// TestFencingReviewConcurrentChaos runs real goroutines (no model) over fake nodes:
// several clients (some sharing a Redsync, so the fast path runs, some with
// their own, so the fencing round runs), fail-fast on or off, every command
// delayed at random (so fail-fast rounds leave late commands landing after
// their call returned), commands failing before or after they run, lock keys
// vanishing early on random nodes, holders walking away without Unlock.
// It checks guarantees 1 and 2 of docs/FENCING.md, which must hold whatever
// the lock keys do: no two holders share a token, and a holder whose Lock
// began after another's Lock returned has the greater token. It also checks
// every counter never goes down and that GuardedSet never accepts a token
// below one it accepted before.
func TestFencingReviewConcurrentChaos(t *testing.T) {
	for _, cfg := range []struct {
		name     string
		nodes    int
		failFast bool
	}{
		{"n3-failfast", 3, true},
		{"n3", 3, false},
		{"n5-failfast", 5, true},
	} {
		t.Run(cfg.name, func(t *testing.T) {
			breakerChaos(t, cfg.nodes, cfg.failFast, 1500*time.Millisecond)
		})
	}
}

func breakerChaos(t *testing.T, nodes int, failFast bool, dur time.Duration) {
	c := newFakeCluster(nodes)
	var seq atomic.Int64
	var stop atomic.Bool
	hook := func(node int, cmd string) fault {
		r := rand.IntN(100)
		if r < 30 {
			time.Sleep(time.Duration(rand.IntN(400)) * time.Microsecond)
		}
		switch {
		case r%17 == 0:
			return faultBefore
		case r%19 == 0:
			return faultAfter
		}
		return faultNone
	}
	shared := New(c.faultPools(hook)...)
	resource := newFakeNode(nil)

	var (
		mu    sync.Mutex
		holds []breakerHold
		fails []string
	)
	fail := func(s string) {
		mu.Lock()
		fails = append(fails, s)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	const clients = 4
	for i := range clients {
		var rs *Redsync
		if i < 2 {
			rs = shared
		} else {
			rs = New(c.faultPools(hook)...)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				m := rs.NewMutex("k", WithFencing(), WithTries(1), WithRetryDelay(0), WithReleaseNotification(false),
					WithFailFast(failFast), WithExpiry(time.Hour))
				m.now = c.clock.Now
				start := seq.Add(1)
				err := m.Lock()
				done := seq.Add(1)
				if err != nil {
					continue
				}
				tok := m.FencingToken()
				if tok == 0 {
					fail("Lock() = nil with FencingToken() 0")
					continue
				}
				mu.Lock()
				holds = append(holds, breakerHold{client: i, token: tok, start: start, done: done})
				mu.Unlock()
				_ = GuardedSet(context.Background(), resource, "doc", strconv.Itoa(i), tok)
				if rand.IntN(5) > 0 {
					_, _ = m.Unlock()
				}
			}
		}()
	}
	// Chaos: lock keys vanish early; counters are watched (never lowered).
	wg.Add(1)
	go func() {
		defer wg.Done()
		last := make([]uint64, nodes)
		for !stop.Load() {
			n := rand.IntN(nodes)
			if rand.IntN(2) == 0 {
				c.nodes[n].mu.Lock()
				delete(c.nodes[n].keys, "k")
				c.nodes[n].mu.Unlock()
			}
			for j, node := range c.nodes {
				if got := node.counter("k"); got < last[j] {
					fail("counter went down on node " + strconv.Itoa(j))
				} else {
					last[j] = got
				}
			}
			time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
		}
	}()
	time.Sleep(dur)
	stop.Store(true)
	wg.Wait()

	if len(fails) > 0 {
		t.Fatalf("failures: %v", fails[:min(5, len(fails))])
	}
	if len(holds) < 20 {
		t.Fatalf("only %d acquisitions: the chaos is too hard", len(holds))
	}
	// Guarantee 1: no two holders have the same token.
	byToken := map[uint64]breakerHold{}
	for _, h := range holds {
		if o, dup := byToken[h.token]; dup {
			t.Errorf("guarantee 1 broken: clients %d and %d both held token %d", o.client, h.client, h.token)
		}
		byToken[h.token] = h
	}
	// Guarantee 2: a try begun after another's Lock returned has the greater token.
	for _, a := range holds {
		for _, b := range holds {
			if b.start > a.done && b.token <= a.token {
				t.Errorf("guarantee 2 broken: client %d's Lock returned (seq %d) with token %d, client %d's began later (seq %d) and got token %d",
					a.client, a.done, a.token, b.client, b.start, b.token)
			}
		}
	}
	t.Logf("%d acquisitions, tokens up to %d", len(holds), c.nodes[0].counter("k"))
}

// TestFencingReviewTopOfUint64 drives the counters to the top of uint64: the last
// token, 2^64-1, is issued once; after it every try fails as exhausted,
// leaves no key behind and lowers no counter (a proposal that wrapped to 0
// must not take the fast path), and GuardedSet orders the top tokens.
func TestFencingReviewTopOfUint64(t *testing.T) {
	c := newFakeCluster(3)
	for _, n := range c.nodes {
		n.set(fenceCounter("k"), strconv.FormatUint(math.MaxUint64-2, 10))
	}
	rs := New(c.pools()...)
	other := New(c.pools()...)
	mk := func(rs *Redsync) *Mutex {
		m := rs.NewMutex("k", WithFencing(), WithTries(1), WithReleaseNotification(false))
		m.now = c.clock.Now
		return m
	}
	var tokens []uint64
	for _, r := range []*Redsync{rs, other} {
		m := mk(r)
		if err := m.Lock(); err != nil {
			t.Fatalf("Lock() = %v", err)
		}
		tokens = append(tokens, m.FencingToken())
		if _, err := m.Unlock(); err != nil {
			t.Fatal(err)
		}
	}
	if tokens[0] != math.MaxUint64-1 || tokens[1] != math.MaxUint64 {
		t.Fatalf("tokens = %v, want [2^64-2 2^64-1]", tokens)
	}
	for i, r := range []*Redsync{rs, other, rs, New(c.pools()...)} {
		m := mk(r)
		err := m.Lock()
		if err == nil {
			t.Fatalf("Lock() number %d after the last token = nil with token %d; want exhausted", i, m.FencingToken())
		}
		if !strings.Contains(err.Error(), "exhausted") {
			t.Errorf("Lock() = %v, want exhausted", err)
		}
		if m.FencingToken() != 0 {
			t.Errorf("FencingToken() after a failed Lock = %d", m.FencingToken())
		}
		if got := c.keys("k"); got != 0 {
			t.Errorf("lock keys left after an exhausted try: %d", got)
		}
	}
	for j, n := range c.nodes {
		if got := n.counter("k"); got != math.MaxUint64 {
			t.Errorf("node %d counter = %d, want 2^64-1", j, got)
		}
	}
	res := newFakeNode(nil)
	ctx := context.Background()
	if err := GuardedSet(ctx, res, "doc", "new", math.MaxUint64); err != nil {
		t.Fatal(err)
	}
	if err := GuardedSet(ctx, res, "doc", "old", math.MaxUint64-1); !errors.Is(err, ErrStaleToken) {
		t.Errorf("GuardedSet with 2^64-2 after 2^64-1 = %v, want ErrStaleToken", err)
	}
}

// TestFencingReviewCtxCancelRaceBetweenRounds cancels the context as the fencing
// round starts, while the nodes still run its commands: whichever way the
// race goes, a Lock that returns nil must hold a token that a quorum raised
// its counter to under our key, and a Lock that fails must leave no key
// and report no token.
func TestFencingReviewCtxCancelRaceBetweenRounds(t *testing.T) {
	for i := range 200 {
		c := newFakeCluster(3)
		c.slowPath("k")
		ctx, cancel := context.WithCancel(context.Background())
		m := c.fencedMutex("k", c.faultPools(func(node int, cmd string) fault {
			if cmd == "fence-advance" && node == i%3 {
				cancel()
			}
			return faultNone
		}))
		err := m.LockContext(ctx)
		cancel()
		if err == nil {
			tok := m.FencingToken()
			confirmed := 0
			for _, n := range c.nodes {
				if v, ok := n.value("k"); ok && v == m.Value() && n.counter("k") == tok {
					confirmed++
				}
			}
			if tok != 6 || confirmed < 2 {
				t.Fatalf("run %d: Lock() = nil with token %d confirmed on %d nodes; want 6 on at least 2", i, tok, confirmed)
			}
			continue
		}
		if m.FencingToken() != 0 || c.keys("k") != 0 {
			t.Fatalf("run %d: failed Lock() (%v) left token %d and %d keys", i, err, m.FencingToken(), c.keys("k"))
		}
	}
}

// TestFencingReviewFailedFenceRoundThenRetry: a try whose fencing round fails
// raises counters on a minority (the nodes that confirmed) and is undone;
// its acquire command to the third node lands late, after the undo,
// leaving an orphan key and a raised counter. Another client then locks on
// the other two nodes, and the first client's next try follows: tokens
// must differ and grow in order, and Extend/Unlock after the failed try
// must not act on it.
func TestFencingReviewFailedFenceRoundThenRetry(t *testing.T) {
	c := newFakeCluster(3)
	c.slowPath("k") // counters at 5
	gate := make(chan struct{})
	var once sync.Once
	landed := make(chan struct{})
	var landOnce sync.Once
	var first atomic.Bool
	first.Store(true)
	pools := c.lateFaultPools(func(node int, cmd string) fault {
		switch {
		case cmd == "fence-acquire" && node == 2 && first.Load():
			<-gate
		case cmd == "fence-advance" && node == 1 && first.Load():
			return faultBefore // the fencing round reaches only node 0
		}
		return faultNone
	}, func(node int, cmd string) {
		if cmd == "fence-acquire" && node == 2 {
			landOnce.Do(func() { close(landed) })
		}
	})
	defer once.Do(func() { close(gate) })
	a := c.fencedMutex("k", pools, WithFailFast(true))
	if err := a.Lock(); err == nil {
		t.Fatalf("A's first Lock() = nil with token %d, want the fencing round to fail", a.FencingToken())
	}
	first.Store(false)
	if ok, err := a.Extend(); ok || !errors.Is(err, ErrNotLocked) {
		t.Errorf("Extend() after a failed first Lock = %v, %v; want ErrNotLocked", ok, err)
	}
	if ok, err := a.Unlock(); ok || !errors.Is(err, ErrNotLocked) {
		t.Errorf("Unlock() after a failed first Lock = %v, %v; want ErrNotLocked", ok, err)
	}
	once.Do(func() { close(gate) })
	<-landed // orphan key of A's failed try on node 2

	b := c.fencedMutex("k", c.pools())
	// Node 2 holds A's orphan; B needs nodes 0 and 1.
	if err := b.Lock(); err != nil {
		t.Fatalf("B.Lock() = %v", err)
	}
	bt := b.FencingToken()
	if _, err := b.Unlock(); err != nil {
		t.Fatal(err)
	}
	c.nodes[2].mu.Lock()
	delete(c.nodes[2].keys, "k") // the orphan expires
	c.nodes[2].mu.Unlock()
	if err := a.Lock(); err != nil {
		t.Fatalf("A's second Lock() = %v", err)
	}
	at := a.FencingToken()
	if bt <= 6 || at <= bt {
		t.Errorf("tokens: B %d, then A %d; want B above A's failed 6 (node 0 holds it) and A above B", bt, at)
	}
}

// TestFencingReviewNoHandoffForFencedMutexes (real servers, release
// notifications on): a fenced Mutex waiting in Lock while another fenced
// Mutex of the same Redsync unlocks must acquire through a fenced try of
// its own (a quorum of counters at its token), never by a local hand-off
// that would reuse no counter. Checked both ways with an unfenced Mutex of
// the same name and Redsync.
func TestFencingReviewNoHandoffForFencedMutexes(t *testing.T) {
	servers := redistest.StartN(t, 3)
	pools := make([]redis.Pool, len(servers))
	clients := make([]*goredislib.Client, len(servers))
	for i, s := range servers {
		clients[i] = goredislib.NewClient(&goredislib.Options{Addr: s.Addr(), MaxRetries: -1, ContextTimeoutEnabled: true})
		t.Cleanup(func() { _ = clients[i].Close() })
		pools[i] = goredis.NewPool(clients[i])
	}
	rs := New(pools...)
	name := "breaker:handoff"
	counterAt := func(tok uint64) int {
		n := 0
		for _, cl := range clients {
			if v, err := cl.Get(context.Background(), fenceCounter(name)).Result(); err == nil && v == strconv.FormatUint(tok, 10) {
				n++
			}
		}
		return n
	}
	for _, holderFenced := range []bool{true, false} {
		opts := []Option{WithExpiry(2 * time.Second), WithTries(200), WithRetryDelay(20 * time.Millisecond)}
		hopts := opts
		if holderFenced {
			hopts = append(hopts, WithFencing())
		}
		holder := rs.NewMutex(name, hopts...)
		if err := holder.Lock(); err != nil {
			t.Fatal(err)
		}
		htok := holder.FencingToken()
		waiter := rs.NewMutex(name, append(opts, WithFencing())...)
		errc := make(chan error, 1)
		go func() { errc <- waiter.Lock() }()
		time.Sleep(150 * time.Millisecond) // the waiter waits, subscribed
		if _, err := holder.Unlock(); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; err != nil {
			t.Fatalf("waiter Lock() = %v", err)
		}
		wt := waiter.FencingToken()
		if wt == 0 || wt <= htok || counterAt(wt) < 2 {
			t.Errorf("holder fenced=%v: waiter token %d (holder's %d) on %d counters; want a fresh token on a quorum", holderFenced, wt, htok, counterAt(wt))
		}
		if _, err := waiter.Unlock(); err != nil {
			t.Fatal(err)
		}
	}
}
