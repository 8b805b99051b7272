package redsync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/go-redlock/redsync/redis"
)

// ttlNode is an in-memory node whose keys expire on a fake clock, and
// which can be down (every command fails). It runs the logic of the
// acquire, release and extend scripts.
type ttlNode struct {
	clock *fakeClock

	mu   sync.Mutex
	keys map[string]ttlEntry
	down bool
}

type ttlEntry struct {
	value   string
	expires time.Time
}

var errTTLNodeDown = errors.New("fake: connection refused")

func newTTLNode(clock *fakeClock) *ttlNode {
	return &ttlNode{clock: clock, keys: map[string]ttlEntry{}}
}

func (n *ttlNode) Get(context.Context) (redis.Conn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.down {
		return nil, errTTLNodeDown
	}
	return ttlConn{n}, nil
}

func (n *ttlNode) setDown(down bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.down = down
}

// wipe forgets every key, as a restart without persistence does.
func (n *ttlNode) wipe() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.keys)
}

// current returns the value of key, or "" when it is missing or expired.
// The caller holds n.mu.
func (n *ttlNode) current(key string) string {
	e, ok := n.keys[key]
	if !ok {
		return ""
	}
	if !n.clock.Now().Before(e.expires) {
		delete(n.keys, key)
		return ""
	}
	return e.value
}

type ttlConn struct{ n *ttlNode }

func (c ttlConn) Get(name string) (string, error) {
	c.n.mu.Lock()
	defer c.n.mu.Unlock()
	return c.n.current(name), nil
}

func (ttlConn) Set(string, string) (bool, error)                  { return false, errUnsupported }
func (ttlConn) SetNX(string, string, time.Duration) (bool, error) { return false, errUnsupported }
func (ttlConn) PTTL(string) (time.Duration, error)                { return 0, errUnsupported }
func (ttlConn) ScriptLoad(*redis.Script) error                    { return errUnsupported }
func (ttlConn) Close() error                                      { return nil }

func (c ttlConn) Eval(script *redis.Script, keysAndArgs ...any) (any, error) {
	n := c.n
	keysAndArgs = withoutQueueKeys(script, keysAndArgs)
	key, value := keysAndArgs[0].(string), keysAndArgs[1].(string)
	n.mu.Lock()
	defer n.mu.Unlock()
	current := n.current(key)
	expiry := func(arg any) time.Time {
		ms, _ := strconv.ParseInt(arg.(string), 10, 64)
		return n.clock.Now().Add(time.Duration(ms) * time.Millisecond)
	}
	switch script {
	case acquireScript:
		if current != "" && current != value {
			return fakeHolder(current), nil
		}
		n.keys[key] = ttlEntry{value: value, expires: expiry(keysAndArgs[2])}
		return replyDone, nil
	case releaseScript, releaseNotifyScript:
		switch current {
		case "":
			return replyMissing, nil
		case value:
			delete(n.keys, key)
			return replyDone, nil
		}
		return replyTaken, nil
	case extendScript:
		switch {
		case current == value || current == "" && keysAndArgs[3] == "1":
			n.keys[key] = ttlEntry{value: value, expires: expiry(keysAndArgs[2])}
			return replyDone, nil
		case current == "":
			return replyMissing, nil
		}
		return replyTaken, nil
	}
	return nil, errUnsupported
}

// permitGauge checks the bound of a semaphore at each grant: the permits
// valid at that instant are at most bound, and hold different slots. A
// permit is valid from its grant to the earlier of its Until and the call
// of its Release, whatever the Release's outcome: a Release that failed
// may have deleted the key on some nodes, so that another client can take
// the slot, though the Permit's Until has not passed. An Extend that
// succeeds after that makes it valid again, from the Extend.
type permitGauge struct {
	bound int
	live  []*gaugedPermit
	most  int // the most permits valid at a grant
}

type gaugedPermit struct {
	p     *Permit
	until time.Time
	ended bool // Release was called
	taken bool // a Release took the acquisition: another one must fail
}

// grant counts p, granted at now, and returns an error when the bound is
// broken.
func (g *permitGauge) grant(p *Permit, now time.Time) (*gaugedPermit, error) {
	gp := &gaugedPermit{p: p, until: p.Until()}
	g.live = append(g.live, gp)
	return gp, g.check(now)
}

// check returns an error when the permits valid at now break the bound.
func (g *permitGauge) check(now time.Time) error {
	var keys []string
	for _, q := range g.live {
		if !q.ended && q.until.After(now) {
			keys = append(keys, q.p.Key())
		}
	}
	g.most = max(g.most, len(keys))
	slices.Sort(keys)
	switch {
	case len(keys) > g.bound:
		return fmt.Errorf("%d permits valid at once, more than %d: %v", len(keys), g.bound, keys)
	case len(slices.Compact(keys)) < len(keys):
		return fmt.Errorf("a slot held twice at once: %v", keys)
	}
	return nil
}

// semProp is the state of one run of TestSemaphoreBoundProperty.
type semProp struct {
	clock   *fakeClock
	nodes   []*ttlNode
	sems    []*Semaphore // one per client, each over a Redsync of its own
	expiry  time.Duration
	gauge   permitGauge
	permits []*gaugedPermit
	stats   *semPropStats
}

// semPropStats counts what the property test exercised, over all runs.
type semPropStats struct {
	grants, crowded, full, reused, degraded, doubleRelease atomic.Int64
}

// TestSemaphoreBoundProperty drives several clients of one semaphore over
// fake nodes whose keys expire on a fake clock, through random
// interleavings of acquisitions, releases (also repeated), extensions,
// the passing of time (expiring permits) and nodes going down and coming
// back with their keys (a crash with persistence, or a partition), and
// checks at every grant that the permits valid at that instant are at
// most the bound and hold different slots. The clients may disagree on
// the number of permits: the bound is then the largest. Time passes only
// when the test says so, so that rapid can replay and shrink a run.
func TestSemaphoreBoundProperty(t *testing.T) {
	var stats semPropStats
	rapid.Check(t, func(rt *rapid.T) {
		p := newSemProp(rt, &stats)
		actions := map[string]func(*rapid.T){
			"acquire": p.acquire,
			"release": p.release,
			"extend":  p.extend,
			"sleep":   p.sleep,
			"node":    p.toggleNode,
		}
		names := []string{"acquire", "acquire", "acquire", "release", "extend", "sleep", "sleep", "node"}
		for range rapid.IntRange(10, 60).Draw(rt, "steps") {
			actions[rapid.SampledFrom(names).Draw(rt, "action")](rt)
		}
	})
	t.Logf("%d grants: %d with the bound reached (at least 2), %d of a slot whose holder let it expire, %d with a node down; %d sweeps found every permit held; %d second releases",
		stats.grants.Load(), stats.crowded.Load(), stats.reused.Load(), stats.degraded.Load(), stats.full.Load(), stats.doubleRelease.Load())
	if stats.crowded.Load() == 0 || stats.reused.Load() == 0 || stats.degraded.Load() == 0 || stats.full.Load() == 0 {
		t.Errorf("no grant reached a bound of 2 or more, reused an expired slot, or came with a node down, or no sweep found the semaphore full: the test checks too little")
	}
}

func newSemProp(t *rapid.T, stats *semPropStats) *semProp {
	p := &semProp{clock: newFakeClock(), stats: stats}
	n := rapid.SampledFrom([]int{3, 5}).Draw(t, "nodes")
	pools := make([]redis.Pool, n)
	for i := range pools {
		node := newTTLNode(p.clock)
		p.nodes = append(p.nodes, node)
		pools[i] = node
	}
	// The per-node timeout is real time: half the expiry leaves the fake
	// nodes all the time they need, however loaded the machine, so that
	// a run depends on its draws alone.
	p.expiry = time.Duration(rapid.IntRange(1, 30).Draw(t, "expiry (s)")) * time.Second
	low := rapid.IntRange(1, 3).Draw(t, "fewest permits")
	high := rapid.IntRange(low, 3).Draw(t, "most permits")
	p.gauge.bound = high
	for c := range rapid.IntRange(1, 3).Draw(t, "clients") {
		permits := high
		if c > 0 {
			permits = rapid.IntRange(low, high).Draw(t, "permits")
		}
		opts := []Option{WithExpiry(p.expiry), WithTimeoutFactor(0.5), WithRetryDelay(0), WithTries(rapid.IntRange(1, 3).Draw(t, "tries"))}
		if rapid.Bool().Draw(t, "set NX on extend") {
			opts = append(opts, WithSetNXOnExtend())
		}
		s := New(pools...).NewSemaphore("sem", permits, opts...)
		s.now = p.clock.Now
		p.sems = append(p.sems, s)
	}
	return p
}

func (p *semProp) acquire(t *rapid.T) {
	s := rapid.SampledFrom(p.sems).Draw(t, "client")
	permit, err := s.Acquire(context.Background())
	if err != nil {
		if !errors.Is(err, ErrFailed) {
			t.Fatalf("Acquire() = %v, want ErrFailed", err)
		}
		if err.(*sweepError).taken == s.permits {
			p.stats.full.Add(1)
		}
		return
	}
	now := p.clock.Now()
	gp, err := p.gauge.grant(permit, now)
	if err != nil {
		t.Fatalf("at the grant of %s: %v\n%s", permit.Key(), err, p.describe())
	}
	p.permits = append(p.permits, gp)
	p.stats.grants.Add(1)
	valid := 0
	for _, q := range p.permits {
		if !q.ended && q.until.After(now) {
			valid++
			continue
		}
		if q != gp && !q.ended && q.p.Key() == permit.Key() {
			p.stats.reused.Add(1)
		}
	}
	if valid >= 2 && valid == p.gauge.bound {
		p.stats.crowded.Add(1)
	}
	for _, n := range p.nodes {
		n.mu.Lock()
		down := n.down
		n.mu.Unlock()
		if down {
			p.stats.degraded.Add(1)
			break
		}
	}
}

func (p *semProp) release(t *rapid.T) {
	if len(p.permits) == 0 {
		return
	}
	gp := rapid.SampledFrom(p.permits).Draw(t, "permit")
	gp.ended = true
	ok, err := gp.p.Release(context.Background())
	if gp.taken {
		p.stats.doubleRelease.Add(1)
		if ok || !errors.Is(err, ErrLockAlreadyExpired) {
			t.Fatalf("second Release() = %v, %v; want false, ErrLockAlreadyExpired", ok, err)
		}
	}
	// A Release that failed on node errors leaves the acquisition to the
	// Permit: it may be released, or extended, again.
	gp.taken = gp.taken || ok || errors.Is(err, ErrLockAlreadyExpired)
}

func (p *semProp) extend(t *rapid.T) {
	if len(p.permits) == 0 {
		return
	}
	gp := rapid.SampledFrom(p.permits).Draw(t, "permit")
	ok, err := gp.p.Extend(context.Background())
	switch {
	case ok && gp.taken:
		t.Fatalf("Extend() of a released permit = true, want false")
	case ok:
		gp.until, gp.ended = gp.p.Until(), false
		if err := p.gauge.check(p.clock.Now()); err != nil {
			t.Fatalf("after the extension of %s: %v\n%s", gp.p.Key(), err, p.describe())
		}
	case !errors.Is(err, ErrExtendFailed):
		t.Fatalf("Extend() = false, %v; want ErrExtendFailed", err)
	}
}

func (p *semProp) sleep(t *rapid.T) {
	ms := rapid.IntRange(0, int(p.expiry.Milliseconds()*3/2)).Draw(t, "sleep (ms)")
	p.clock.Advance(time.Duration(ms) * time.Millisecond)
}

func (p *semProp) toggleNode(t *rapid.T) {
	n := rapid.SampledFrom(p.nodes).Draw(t, "node")
	n.mu.Lock()
	down := n.down
	n.mu.Unlock()
	n.setDown(!down)
}

// TestSemaphoreGaugeCanary shows that the check of the property test
// fails when safety is broken: nodes that forget their keys (a restart
// without persistence, the known unsafe case of Redlock) let a second
// client take a permit that the first still holds.
func TestSemaphoreGaugeCanary(t *testing.T) {
	clock := newFakeClock()
	nodes := []*ttlNode{newTTLNode(clock), newTTLNode(clock), newTTLNode(clock)}
	pools := []redis.Pool{nodes[0], nodes[1], nodes[2]}
	gauge := permitGauge{bound: 2}
	var sems []*Semaphore
	for range 3 {
		s := New(pools...).NewSemaphore("sem", 2, WithTimeoutFactor(0.5))
		s.now = clock.Now
		sems = append(sems, s)
	}
	for i, s := range sems[:2] {
		p, err := s.TryAcquire(context.Background())
		if err != nil {
			t.Fatalf("client %d: TryAcquire() = %v, want nil", i, err)
		}
		if _, err := gauge.grant(p, clock.Now()); err != nil {
			t.Fatalf("client %d: %v, want no violation yet", i, err)
		}
	}
	if _, err := sems[2].TryAcquire(context.Background()); !errors.Is(err, ErrFailed) {
		t.Fatalf("third TryAcquire() = %v, want ErrFailed", err)
	}
	nodes[0].wipe()
	nodes[1].wipe()
	p, err := sems[2].TryAcquire(context.Background())
	if err != nil {
		t.Fatalf("TryAcquire() after a majority forgot the permits = %v, want nil", err)
	}
	if _, err := gauge.grant(p, clock.Now()); err == nil {
		t.Errorf("the gauge saw no violation with 3 permits of 2 valid at once")
	}
}

// TestCountingAtMajorityIsUnsafe checks the arithmetic that rules out a
// semaphore that counts its holders on each node: with N nodes, each
// granting at most P holders, and a holder counted when Q nodes granted
// it, P+1 holders are possible exactly when (P+1)Q <= PN. So counting is
// safe only with Q > PN/(P+1), more than a majority when P >= 2 (N = 5:
// Q = 4 for P = 2 and 3, Q = 5 from P = 4: five holders of four permits
// can each have the four nodes but one of their own). A search over every
// way to grant P+1 holders Q nodes each finds a way exactly then.
func TestCountingAtMajorityIsUnsafe(t *testing.T) {
	for n := 1; n <= 5; n++ {
		for p := 1; p <= 4; p++ {
			for q := n/2 + 1; q <= n; q++ {
				want := (p+1)*q <= p*n
				if got := overbooked(n, p, q); got != want {
					t.Errorf("N=%d, P=%d, Q=%d: %d holders possible = %t, want %t", n, p, q, p+1, got, want)
				}
			}
		}
	}
	// The examples: N = 5, P = 2, holders on {1,2,3}, {3,4,5} and
	// {1,2,4,5} (REDLOCK.md); N = 5, P = 4, Q = 4, holder i on every node
	// but i.
	examples := []struct {
		permits int
		holders [][]int
	}{
		{2, [][]int{{1, 2, 3}, {3, 4, 5}, {1, 2, 4, 5}}},
		{4, [][]int{{2, 3, 4, 5}, {1, 3, 4, 5}, {1, 2, 4, 5}, {1, 2, 3, 5}, {1, 2, 3, 4}}},
	}
	for _, ex := range examples {
		count := make([]int, 6)
		for _, holder := range ex.holders {
			for _, node := range holder {
				count[node]++
			}
		}
		if len(ex.holders) != ex.permits+1 || slices.Max(count) > ex.permits {
			t.Errorf("%d holders of %d permits count %v holders per node, want at most %d", len(ex.holders), ex.permits, count[1:], ex.permits)
		}
	}
}

// overbooked reports whether p+1 holders can each be granted by q of n
// nodes while no node grants more than p: it tries every choice of p+1
// sets of q nodes (with repetition), as bit masks.
func overbooked(n, p, q int) bool {
	var sets []int
	for mask := range 1 << n {
		if popcount(mask) == q {
			sets = append(sets, mask)
		}
	}
	count := make([]int, n)
	var try func(holder, from int) bool
	try = func(holder, from int) bool {
		if holder == p+1 {
			return true
		}
		for i := from; i < len(sets); i++ {
			ok := true
			for node := range n {
				if sets[i]&(1<<node) != 0 {
					count[node]++
					ok = ok && count[node] <= p
				}
			}
			if ok && try(holder+1, i) {
				return true
			}
			for node := range n {
				if sets[i]&(1<<node) != 0 {
					count[node]--
				}
			}
		}
		return false
	}
	return try(0, 0)
}

func popcount(x int) int {
	c := 0
	for ; x != 0; x &= x - 1 {
		c++
	}
	return c
}

// describe tells the permits and the nodes' keys, for a failure.
func (p *semProp) describe() string {
	now := p.clock.Now()
	var b strings.Builder
	for _, q := range p.permits {
		fmt.Fprintf(&b, "permit %s %s until %+v ended %t taken %t\n", q.p.Key(), q.p.Value(), q.until.Sub(now), q.ended, q.taken)
	}
	for i, n := range p.nodes {
		n.mu.Lock()
		fmt.Fprintf(&b, "node %d down %t:", i, n.down)
		for k, e := range n.keys {
			fmt.Fprintf(&b, " %s=%s(%v)", k, e.value, e.expires.Sub(now))
		}
		n.mu.Unlock()
		b.WriteString("\n")
	}
	return b.String()
}
