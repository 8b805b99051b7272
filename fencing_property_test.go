package redsync

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/go-redlock/redsync/redis"
)

// TestFencingMonotonicProperty drives several fenced clients over fake
// nodes through random interleavings and checks that the tokens of
// successive holders strictly increase: of two successful tries, the one
// that started later has the greater token, even when the other one was
// still in its second round (see checkSuccessor).
//
// The actions, drawn by rapid: a client tries the lock, either at once or
// paused between its two rounds (the second round then goes on node by
// node, interleaved with the other actions); any command of a try (first
// round, second round, release) may fail before it runs on a node or after
// (its reply lost); a holder unlocks or walks away; a node's lock key
// expires at any moment (the worst case for a lease lock); a node restarts.
// In scenarios with persistence a restart loses nothing. Without it, a
// restart loses the node's keys and counters, the known hole of fencing
// (see TestFencingLostCounter), so pairs of holders after the first such
// restart are not checked.
func TestFencingMonotonicProperty(t *testing.T) {
	var stats propStats
	rapid.Check(t, func(rt *rapid.T) {
		p := newFencingProp(rt, &stats)
		defer p.stop()
		actions := map[string]func(*rapid.T) bool{
			"lock":    p.lock,
			"resume":  p.resume,
			"unlock":  p.unlock,
			"abandon": p.abandon,
			"expire":  p.expire,
			"restart": p.restart,
		}
		// Names repeated by weight: tries and their second rounds are
		// what the test is about; restarts are rare.
		weighted := rapid.SampledFrom([]string{
			"lock", "lock", "lock", "lock", "resume", "resume", "resume", "resume",
			"unlock", "unlock", "unlock", "abandon", "expire", "expire", "expire", "restart",
		})
		for steps := rapid.IntRange(1, 150).Draw(rt, "steps"); steps > 0; {
			if actions[weighted.Draw(rt, "action")](rt) {
				steps--
			}
		}
	})
	t.Logf("%d tries, %d acquisitions, %d pairs of successive holders checked; %d restarts lost counters, after which %d pairs broke (the known hole)",
		stats.tries.Load(), stats.acquired.Load(), stats.pairs.Load(), stats.wipes.Load(), stats.broken.Load())
	if stats.pairs.Load() == 0 {
		t.Errorf("no pair of successive holders was checked: the test checks nothing")
	}
}

// propStats counts what the property test exercised, over all its runs.
type propStats struct {
	tries, acquired, pairs, wipes atomic.Int64
	broken                        atomic.Int64 // pairs not increasing after a restart lost counters
}

// fencingProp is the state of one run of the property test.
type fencingProp struct {
	t           *rapid.T
	stats       *propStats
	cluster     *fakeCluster
	clients     []*propClient
	persistence bool
	now         int      // logical time, one step per action
	wiped       int      // time of the first restart that lost data; 0 if none
	held        []propAt // successful acquisitions, in the order they returned
}

// propAt is one successful acquisition: when its Lock started and returned,
// and its token.
type propAt struct {
	client     int
	start, end int
	token      uint64
}

// propClient is one client: a Mutex over its own views of the nodes.
type propClient struct {
	id int
	m  *Mutex

	// Set by the test goroutine while the client is idle, read by the
	// goroutines of its tries.
	plan  map[string][]fault // per command name, the fault on each node
	gated bool               // hold the second round at gates

	gates    []chan struct{} // per node: closed to let the second round through
	opened   []bool
	arrived  chan int   // a node's second-round command reached its gate
	finished chan int   // a node's gated command is over
	done     chan error // the result of a gated try

	running bool // a gated try is in progress
	holding bool // the last try succeeded and was neither unlocked nor abandoned
	start   int
}

func newFencingProp(t *rapid.T, stats *propStats) *fencingProp {
	nodes := rapid.SampledFrom([]int{3, 5}).Draw(t, "nodes")
	clients := rapid.IntRange(2, 4).Draw(t, "clients")
	p := &fencingProp{
		t:           t,
		stats:       stats,
		cluster:     newFakeCluster(nodes),
		persistence: rapid.IntRange(0, 3).Draw(t, "persistence") > 0,
	}
	for id := range clients {
		cl := &propClient{id: id}
		pools := make([]redis.Pool, nodes)
		for node := range pools {
			pools[node] = &propPool{node: p.cluster.nodes[node], index: node, client: cl}
		}
		// An hour of expiry makes the per-node timeouts (real time) far
		// longer than any gate is held; the validity runs on the fake
		// clock, which does not move.
		cl.m = p.cluster.fencedMutex("k", pools, WithExpiry(time.Hour))
		p.clients = append(p.clients, cl)
	}
	// Clients of one process share a Redsync, and with it the hints of
	// the fast path; the views of the nodes stay per client.
	if rapid.Bool().Draw(t, "one Redsync") {
		for _, cl := range p.clients {
			cl.m.fence.hints = p.clients[0].m.fence.hints
		}
	}
	return p
}

// drawPlan draws the faults of one try or release.
func (p *fencingProp) drawPlan(cmds ...string) map[string][]fault {
	// Mostly healthy nodes, so that a good share of tries succeed.
	faults := rapid.SampledFrom([]fault{faultNone, faultNone, faultNone, faultNone, faultNone, faultNone, faultNone, faultNone, faultBefore, faultAfter})
	plan := map[string][]fault{}
	for _, cmd := range cmds {
		plan[cmd] = rapid.SliceOfN(faults, len(p.cluster.nodes), len(p.cluster.nodes)).Draw(p.t, cmd)
	}
	return plan
}

// pick draws a client for which ok holds; nil when there is none.
func (p *fencingProp) pick(what string, ok func(*propClient) bool) *propClient {
	var eligible []int
	for i, cl := range p.clients {
		if ok(cl) {
			eligible = append(eligible, i)
		}
	}
	if len(eligible) == 0 {
		return nil
	}
	return p.clients[rapid.SampledFrom(eligible).Draw(p.t, what)]
}

// Each action reports whether it applied; an action with nothing to act
// on (no idle client, say) does nothing and reports false.

// lock makes an idle client try the lock, at once or paused between the
// rounds.
func (p *fencingProp) lock(t *rapid.T) bool {
	cl := p.pick("lock", func(cl *propClient) bool { return !cl.running && !cl.holding })
	if cl == nil {
		return false
	}
	p.now++
	cl.plan = p.drawPlan("fence-acquire", "fence-advance", "release")
	cl.gated = rapid.Bool().Draw(t, "paused between the rounds")
	cl.start = p.now
	p.stats.tries.Add(1)
	if !cl.gated {
		p.finish(cl, cl.m.TryLock())
		return true
	}
	n := len(p.cluster.nodes)
	cl.gates, cl.opened = make([]chan struct{}, n), make([]bool, n)
	for i := range cl.gates {
		cl.gates[i] = make(chan struct{})
	}
	cl.arrived, cl.finished, cl.done = make(chan int, n), make(chan int, n), make(chan error, 1)
	cl.running = true
	go func() { cl.done <- cl.m.TryLock() }()
	// Wait for the end of the first round: the second one reaches every
	// gate, or, when the first round failed, the try ends.
	for range n {
		select {
		case <-cl.arrived:
		case err := <-cl.done:
			cl.running = false
			p.finish(cl, err)
			return true
		}
	}
	return true
}

// resume lets a paused client's second round through on one node and
// waits for that command; after the last node, it waits for the try.
func (p *fencingProp) resume(t *rapid.T) bool {
	cl := p.pick("resume", func(cl *propClient) bool { return cl.running })
	if cl == nil {
		return false
	}
	p.now++
	var closed []int
	for node, open := range cl.opened {
		if !open {
			closed = append(closed, node)
		}
	}
	node := rapid.SampledFrom(closed).Draw(t, "node")
	cl.opened[node] = true
	close(cl.gates[node])
	<-cl.finished
	if len(closed) == 1 {
		cl.running = false
		p.finish(cl, <-cl.done)
	}
	return true
}

// finish records the outcome of a try and checks the new token against
// every earlier holder (see checkSuccessor).
func (p *fencingProp) finish(cl *propClient, err error) {
	if err != nil {
		return
	}
	cl.holding = true
	at := propAt{client: cl.id, start: cl.start, end: p.now, token: cl.m.FencingToken()}
	p.stats.acquired.Add(1)
	if at.token == 0 {
		p.t.Fatalf("client %d: FencingToken() = 0 after a successful TryLock", cl.id)
	}
	pairs, violation := checkSuccessor(p.held, at, p.wiped)
	p.stats.pairs.Add(int64(pairs))
	if violation != "" {
		p.t.Fatal(violation)
	}
	if p.wiped != 0 {
		if _, lost := checkSuccessor(p.held, at, 0); lost != "" {
			p.stats.broken.Add(1)
		}
	}
	p.held = append(p.held, at)
}

// checkSuccessor checks the token of the acquisition at against the
// earlier ones in held: every one whose Lock started before at's must have
// a smaller token. Pairs in which at started after wiped (the first
// restart that lost counters, when not 0) are not checked. It returns the
// number of pairs checked and a description of the first violation.
//
// Ordering by the start, not by the end of the earlier Lock, is the
// stronger check, and it holds because the first round of a try runs
// before the test's next action: an earlier holder A wrote its token on a
// quorum while its key was on each of those nodes, and that key was set in
// A's first round, so a later first round that took one of those nodes
// came after A's write there.
func checkSuccessor(held []propAt, at propAt, wiped int) (pairs int, violation string) {
	if wiped != 0 && at.start > wiped {
		return 0, ""
	}
	for _, prev := range held {
		if prev.start >= at.start {
			continue
		}
		pairs++
		if at.token <= prev.token && violation == "" {
			violation = fmt.Sprintf("client %d locked at %d-%d with token %d, client %d at %d-%d with token %d; want the later start to have the greater token",
				prev.client, prev.start, prev.end, prev.token, at.client, at.start, at.end, at.token)
		}
	}
	for _, prev := range held {
		if prev.start <= at.start || (wiped != 0 && prev.start > wiped) {
			continue
		}
		pairs++
		if prev.token <= at.token && violation == "" {
			violation = fmt.Sprintf("client %d locked at %d-%d with token %d, client %d at %d-%d with token %d; want the later start to have the greater token",
				at.client, at.start, at.end, at.token, prev.client, prev.start, prev.end, prev.token)
		}
	}
	return pairs, violation
}

// unlock makes a holder unlock; the release may fail on some nodes.
func (p *fencingProp) unlock(t *rapid.T) bool {
	cl := p.pick("unlock", func(cl *propClient) bool { return cl.holding })
	if cl == nil {
		return false
	}
	p.now++
	cl.plan = p.drawPlan("release")
	cl.gated = false
	cl.holding = false
	// Errors are fine: the key then stays until it expires.
	_, _ = cl.m.Unlock()
	if got := cl.m.FencingToken(); got != 0 {
		t.Fatalf("client %d: FencingToken() after Unlock = %d, want 0", cl.id, got)
	}
	return true
}

// abandon makes a holder walk away without unlocking, as a holder that
// crashed or paused: its keys stay until they expire.
func (p *fencingProp) abandon(*rapid.T) bool {
	cl := p.pick("abandon", func(cl *propClient) bool { return cl.holding })
	if cl == nil {
		return false
	}
	p.now++
	cl.holding = false
	return true
}

// expire removes the lock key from one node, or from all, as its TTL
// would, at any moment: even under a holder that believes it still holds
// the lock.
func (p *fencingProp) expire(t *rapid.T) bool {
	p.now++
	nodes := p.cluster.nodes
	if !rapid.Bool().Draw(t, "on every node") {
		node := rapid.IntRange(0, len(nodes)-1).Draw(t, "node")
		nodes = nodes[node : node+1]
	}
	for _, n := range nodes {
		n.mu.Lock()
		delete(n.keys, "k")
		n.mu.Unlock()
	}
	return true
}

// restart restarts a node: with persistence it loses nothing; without, it
// comes back empty.
func (p *fencingProp) restart(t *rapid.T) bool {
	p.now++
	node := rapid.IntRange(0, len(p.cluster.nodes)-1).Draw(t, "node")
	if p.persistence {
		return true
	}
	p.cluster.nodes[node].wipe()
	p.stats.wipes.Add(1)
	if p.wiped == 0 {
		p.wiped = p.now
	}
	return true
}

// stop lets every paused try finish, so that no goroutine outlives the run.
func (p *fencingProp) stop() {
	for _, cl := range p.clients {
		if !cl.running {
			continue
		}
		for node, open := range cl.opened {
			if !open {
				close(cl.gates[node])
			}
		}
		<-cl.done
		cl.running = false
	}
}

// propPool is a client's view of one fake node: it applies the client's
// fault plan and holds the second round at the client's gates.
type propPool struct {
	node   *fakeNode
	index  int
	client *propClient
}

func (p *propPool) Get(ctx context.Context) (redis.Conn, error) {
	conn, err := p.node.Get(ctx)
	if err != nil {
		return nil, err
	}
	return &propConn{Conn: conn, pool: p}, nil
}

type propConn struct {
	redis.Conn
	pool *propPool
}

func (c *propConn) Eval(script *redis.Script, keysAndArgs ...any) (any, error) {
	cl, node := c.pool.client, c.pool.index
	cmd := scriptName(script)
	if cmd == "fence-advance" && cl.gated {
		cl.arrived <- node
		<-cl.gates[node]
		defer func() { cl.finished <- node }()
	}
	f := faultNone
	if faults, ok := cl.plan[cmd]; ok {
		f = faults[node]
	}
	switch f {
	case faultBefore:
		return nil, errFault
	case faultAfter:
		if _, err := c.Conn.Eval(script, keysAndArgs...); err != nil {
			return nil, err
		}
		return nil, errFault
	}
	return c.Conn.Eval(script, keysAndArgs...)
}

// TestFencingPropertyChecker makes sure the property test's check fails on
// the tokens 1, 2, 2 of one INCR per node (see
// TestFencingIncrCounterexample), and skips only what it should: a checker
// that cannot fail proves nothing.
func TestFencingPropertyChecker(t *testing.T) {
	history := []propAt{{client: 0, start: 1, end: 1, token: 1}, {client: 1, start: 4, end: 5, token: 3}}
	tests := []struct {
		name      string
		at        propAt
		wiped     int
		pairs     int
		violation bool
	}{
		{"INCR's repeated token", propAt{client: 2, start: 6, end: 6, token: 3}, 0, 2, true},
		{"increasing", propAt{client: 2, start: 6, end: 6, token: 4}, 0, 2, false},
		{"below the first", propAt{client: 2, start: 6, end: 6, token: 1}, 0, 2, true},
		{"started between, returned after", propAt{client: 2, start: 2, end: 7, token: 2}, 0, 2, false},
		{"started between, token of the later start", propAt{client: 2, start: 2, end: 7, token: 3}, 0, 2, true},
		{"started first, returned last", propAt{client: 2, start: 0, end: 7, token: 1}, 0, 2, true},
		{"started first, the later start after a lost counter", propAt{client: 2, start: 2, end: 7, token: 3}, 3, 1, false},
		{"after a lost counter", propAt{client: 2, start: 6, end: 6, token: 1}, 5, 0, false},
		{"before a lost counter", propAt{client: 2, start: 6, end: 6, token: 3}, 6, 2, true},
	}
	for _, tt := range tests {
		pairs, violation := checkSuccessor(history, tt.at, tt.wiped)
		if pairs != tt.pairs || (violation != "") != tt.violation {
			t.Errorf("%s: checkSuccessor() = %d, %q; want %d pairs, violation %v", tt.name, pairs, violation, tt.pairs, tt.violation)
		}
	}
}
