package redsync

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/go-redlock/redsync/redis"
)

// TestFencingMonotonicProperty drives several fenced clients over fake
// nodes through random interleavings and checks the guarantees of
// docs/FENCING.md on every pair of successful tries (see checkTokens):
// no two share a token; on a node that both had confirm their tokens, the
// one confirmed later is the greater (so a try that began after the other
// returned has the greater token); and while no lock key has vanished
// early, tokens grow in the order in which the TryLock calls returned. It
// also checks the rule these rest on (see checkRaised): every node counted
// for a token raised its counter to it.
//
// The actions, drawn by rapid: a client tries the lock or unlocks; a held
// command lands, or is lost on its way; a holder walks away; a node's lock
// key vanishes at any moment, even under its holder (expiry, eviction, a
// clock jump); a node restarts. Each command of a call may fail before it
// runs on its node or after (its reply lost), and may be held back, in
// one of two ways. A slow command keeps its round waiting until it lands
// (a try paused between its rounds is one whose fencing round is slow on
// every node). A late command's reply misses the per-node timeout: the
// round counts the node as failed and goes on, and the command lands at a
// later step, after other clients' actions, if it is not lost. That is
// also what WithFailFast does to the slower nodes' commands, which is how
// this test covers it without depending on the order in which the rounds'
// goroutines report: every round here waits for all its nodes, so that a
// run is a sequence of steps that rapid can replay and shrink.
//
// In scenarios with persistence a restart loses nothing. Without it, a
// restart loses the node's keys and counters, the known hole of fencing
// (see TestFencingLostCounter), so tries that return after the first such
// restart are not checked.
func TestFencingMonotonicProperty(t *testing.T) {
	var stats propStats
	run := func(rt *rapid.T) {
		p := newFencingProp(rt, &stats)
		defer p.stop()
		actions := map[string]func(*rapid.T) bool{
			"lock":    p.lock,
			"land":    p.land,
			"lose":    p.lose,
			"unlock":  p.unlock,
			"abandon": p.abandon,
			"vanish":  p.vanish,
			"restart": p.restart,
		}
		pick := rapid.SampledFrom(p.mix.actions)
		// A mix may leave nothing to do (every client holding, and no
		// weight on unlock or abandon): give up after many idle draws.
		steps := rapid.IntRange(100, 150).Draw(rt, "steps")
		for idle := 0; steps > 0 && idle < 1000; {
			if actions[pick.Draw(rt, "action")](rt) {
				p.settle()
				steps, idle = steps-1, 0
			} else {
				idle++
			}
		}
	}
	// Several batches of rapid's checks (100 by default, -rapid.checks):
	// the deepest interleavings the model can reach, such as the one of
	// issue #11 (item 6), come up about once in 150 cases.
	for batch := range propBatches {
		t.Run(fmt.Sprint("batch=", batch), func(t *testing.T) { rapid.Check(t, run) })
	}
	t.Logf("%d tries, %d acquisitions, %d pairs checked (%d in return order), %d commands landed after their call returned; %d restarts lost counters, after which %d pairs broke (the known hole)",
		stats.tries.Load(), stats.acquired.Load(), stats.pairs.Load(), stats.ordered.Load(), stats.late.Load(), stats.wipes.Load(), stats.broken.Load())
	if stats.pairs.Load() == 0 || stats.ordered.Load() == 0 || stats.late.Load() == 0 {
		t.Errorf("no pair of holders was checked, none in return order, or no command landed late: the test checks nothing")
	}
}

// propBatches is how many times TestFencingMonotonicProperty runs rapid's
// checks.
const propBatches = 4

// propStats counts what the property test exercised, over all its runs.
type propStats struct {
	tries, acquired, pairs, ordered, late, wipes atomic.Int64
	broken                                       atomic.Int64 // pairs failing the check after a restart lost counters
}

// The commands of the clients' calls, in the order of the rounds that
// send them.
var propCommands = [...]string{"fence-acquire", "fence-advance", "release"}

// How a command goes to its node.
const (
	propNow  = iota // at once
	propSlow        // held back, and its round waits for it
	propLate        // held back; its round gets a timeout at once
)

// errPropLate is what the round gets for a late command.
var errPropLate = fmt.Errorf("fake: no reply within the per-node timeout: %w", context.DeadlineExceeded)

// propMix is what one run of the property test is made of, drawn once per
// run (swarm testing): each run weighs the actions, the faults and the
// ways of the commands to their nodes differently, so that some runs
// dwell on interleavings that one even mix would hardly ever reach.
type propMix struct {
	actions []string // the actions, each repeated by its weight
	faults  []fault  // drawn from for every command
	modes   []int    // drawn from for every command of a try's rounds
	pause   int      // out of 4: how often a try pauses between its rounds
	prompt  int      // out of 4: how often a call has no fault and holds nothing back
	brief   bool     // a holder unlocks as soon as its try returns
}

// drawMix draws the mix of a run.
func drawMix(t *rapid.T) propMix {
	var mix propMix
	for _, a := range []struct {
		name     string
		min, max int
	}{{"lock", 1, 4}, {"land", 1, 4}, {"lose", 0, 2}, {"unlock", 0, 4}, {"abandon", 0, 2}, {"vanish", 0, 4}, {"restart", 0, 1}} {
		for range rapid.IntRange(a.min, a.max).Draw(t, "weight of "+a.name) {
			mix.actions = append(mix.actions, a.name)
		}
	}
	mix.faults = []fault{faultNone, faultNone, faultNone, faultNone, faultNone, faultNone, faultNone, faultNone}
	for range rapid.IntRange(0, 2).Draw(t, "faults") {
		mix.faults = append(mix.faults, faultBefore, faultAfter)
	}
	mix.modes = []int{propNow, propNow, propNow, propNow}
	for range rapid.IntRange(0, 3).Draw(t, "late commands") {
		mix.modes = append(mix.modes, propLate)
	}
	for range rapid.IntRange(0, 2).Draw(t, "slow commands") {
		mix.modes = append(mix.modes, propSlow)
	}
	mix.pause = rapid.IntRange(0, 4).Draw(t, "pauses")
	mix.prompt = rapid.IntRange(0, 3).Draw(t, "prompt calls")
	mix.brief = rapid.IntRange(0, 3).Draw(t, "brief holds") > 0
	return mix
}

// fencingProp is the state of one run of the property test. Its fields
// are used by the test goroutine only; the goroutines of the clients'
// calls and of their commands report through events.
type fencingProp struct {
	t           *rapid.T
	stats       *propStats
	cluster     *fakeCluster
	clients     []*propClient
	persistence bool
	mix         propMix
	events      chan propEvent
	now         int         // logical time, one step per action
	wiped       int         // time of the first restart that lost data; 0 if none
	vanished    int         // time a lock key first vanished early; 0 if never
	held        []propAt    // successful acquisitions, in the order they returned
	calls       []*propCall // calls not over, or with a command held back
	landing     int         // held commands let go that have not reported back
	stopping    bool        // stop lets everything go: nothing is checked
}

// propAt is one successful acquisition: when its TryLock started and
// returned, when each node counted for its token confirmed it, and its
// token.
type propAt struct {
	client     int
	start, end int
	confirmed  map[int]int // node: time
	token      uint64
}

// propClient is one client: a Mutex over its own views of the nodes.
type propClient struct {
	id int
	m  *Mutex
	// current is the call whose commands the client sends. The test
	// goroutine sets it only when every command of the client's earlier
	// calls has reached its view of the node (see settle); the commands
	// read it there.
	current *propCall
	running bool   // a TryLock or Unlock is in progress
	holding bool   // the last try succeeded and was neither unlocked nor abandoned
	token   uint64 // the token of the last successful try
}

// propCall is one TryLock or Unlock of a client: its plan, and what the
// test has seen of its commands.
type propCall struct {
	client *propClient
	unlock bool
	start  int
	plan   map[string][]fault // per command, the fault on each node
	mode   map[string][]int   // per command, how it goes to each node
	gates  map[string][]chan struct{}
	rounds map[string]*propRound
	over   bool // the call returned
}

// confirmed returns, for a successful try, when each node counted for its
// token confirmed it: the nodes that answered done in its fencing round,
// or in its acquire round when it had none (the fast path).
func (c *propCall) confirmed() map[int]int {
	r := c.rounds["fence-advance"]
	if r.sent == 0 {
		r = c.rounds["fence-acquire"]
	}
	return r.done
}

// propRound is what the test has seen of one round of a call.
type propRound struct {
	sent, answered int               // commands that reached the node's view; replies the round got
	held           []bool            // per node: a slow or late command waits to be let go
	done           map[int]int       // node: when its reply came, if it counts as done
	counters       map[int][2]uint64 // node: its counter before and after the command, if it ran
}

// propEvent is a report from a client's goroutine: a command reached the
// node's view (sent), the round got its reply (answered; done when it
// counts as done in the round, see tally; with the node's fencing counter
// before and after the command), a late command ended (landed), or the
// call returned (with its result, and the Mutex's token then).
type propEvent struct {
	call     *propCall
	kind     int
	cmd      string
	node     int
	done     bool
	counters [2]uint64
	ok       bool
	err      error
	token    uint64
}

const (
	propSent = iota
	propAnswered
	propLanded
	propReturned
)

func newFencingProp(t *rapid.T, stats *propStats) *fencingProp {
	nodes := rapid.SampledFrom([]int{3, 3, 3, 5}).Draw(t, "nodes")
	clients := rapid.SampledFrom([]int{2, 2, 3}).Draw(t, "clients")
	p := &fencingProp{
		t:           t,
		stats:       stats,
		cluster:     newFakeCluster(nodes),
		persistence: rapid.IntRange(0, 7).Draw(t, "persistence") > 0,
		mix:         drawMix(t),
		events:      make(chan propEvent, 64),
	}
	for id := range clients {
		cl := &propClient{id: id}
		pools := make([]redis.Pool, nodes)
		for node := range pools {
			pools[node] = &propPool{node: p.cluster.nodes[node], index: node, client: cl, events: p.events}
		}
		// An hour of expiry makes the per-node timeouts (real time) far
		// longer than any command is held back; the validity runs on the
		// fake clock, which does not move.
		cl.m = p.cluster.fencedMutex("k", pools, WithExpiry(time.Hour))
		p.clients = append(p.clients, cl)
	}
	// Clients of one process share a Redsync, and with it the hints of
	// the fast path; the views of the nodes stay per client.
	if rapid.IntRange(0, 3).Draw(t, "one Redsync") == 0 {
		for _, cl := range p.clients {
			cl.m.fence.hints = p.clients[0].m.fence.hints
		}
	}
	return p
}

// newCall draws the plan of a call of cl: the fault and the way to the
// node of every command.
func (p *fencingProp) newCall(cl *propClient, unlock bool) *propCall {
	n := len(p.cluster.nodes)
	c := &propCall{client: cl, unlock: unlock, start: p.now, plan: map[string][]fault{}, mode: map[string][]int{},
		gates: map[string][]chan struct{}{}, rounds: map[string]*propRound{}}
	faults, modes := rapid.SampledFrom(p.mix.faults), rapid.SampledFrom(p.mix.modes)
	prompt := rapid.IntRange(1, 4).Draw(p.t, "prompt") <= p.mix.prompt
	if prompt {
		faults, modes = rapid.Just(faultNone), rapid.Just(propNow)
	}
	for _, cmd := range propCommands {
		c.plan[cmd] = rapid.SliceOfN(faults, n, n).Draw(p.t, cmd)
		c.gates[cmd] = make([]chan struct{}, n)
		for node := range n {
			c.gates[cmd][node] = make(chan struct{})
		}
		c.rounds[cmd] = &propRound{held: make([]bool, n), done: map[int]int{}, counters: map[int][2]uint64{}}
		// An undo or an unlock may be held back too, but never keeps its
		// call waiting.
		c.mode[cmd] = rapid.SliceOfN(modes, n, n).Draw(p.t, cmd+" modes")
		if cmd == "release" {
			for node, m := range c.mode[cmd] {
				if m == propSlow {
					c.mode[cmd][node] = propLate
				}
			}
		}
	}
	// A try may pause between its rounds: its fencing round is slow on
	// every node.
	if !unlock && !prompt && rapid.IntRange(1, 4).Draw(p.t, "pause") <= p.mix.pause {
		for node := range n {
			c.mode["fence-advance"][node] = propSlow
		}
	}
	return c
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
// on (no idle client, say) does nothing and reports false. After each
// action that applied, settle waits until nothing moves without the next
// action.

// call starts a TryLock or an Unlock of cl in a goroutine of its own.
func (p *fencingProp) call(cl *propClient, unlock bool) {
	c := p.newCall(cl, unlock)
	cl.current, cl.running = c, true
	p.calls = append(p.calls, c)
	go func() {
		var (
			ok  bool
			err error
		)
		if unlock {
			ok, err = cl.m.Unlock()
		} else {
			err = cl.m.TryLock()
		}
		p.events <- propEvent{call: c, kind: propReturned, ok: ok, err: err, token: cl.m.FencingToken()}
	}()
}

// lock makes an idle client try the lock.
func (p *fencingProp) lock(*rapid.T) bool {
	cl := p.pick("lock", func(cl *propClient) bool { return !cl.running && !cl.holding })
	if cl == nil {
		return false
	}
	p.now++
	p.stats.tries.Add(1)
	p.call(cl, false)
	return true
}

// unlock makes a holder unlock.
func (p *fencingProp) unlock(*rapid.T) bool {
	cl := p.pick("unlock", func(cl *propClient) bool { return cl.holding })
	if cl == nil {
		return false
	}
	p.now++
	cl.holding = false
	p.call(cl, true)
	return true
}

// abandon makes a holder walk away without unlocking, as a holder that
// crashed or paused: its keys stay until they vanish.
func (p *fencingProp) abandon(*rapid.T) bool {
	cl := p.pick("abandon", func(cl *propClient) bool { return cl.holding })
	if cl == nil {
		return false
	}
	p.now++
	cl.holding = false
	return true
}

// land lets one held command go to its node: a slow one, whose round
// waits for it, or a late one, whose call may have returned long ago.
func (p *fencingProp) land(t *rapid.T) bool {
	return p.letGo(t, false)
}

// lose makes one held command fail before it reaches its node, as a
// dropped connection does.
func (p *fencingProp) lose(t *rapid.T) bool {
	return p.letGo(t, true)
}

// letGo lets go one held command, drawn from a call drawn among those
// that hold some back (half the time among those still in progress, when
// there are: late commands of calls long over pile up, and would
// otherwise keep the calls in progress waiting); lost makes the command
// fail without running.
func (p *fencingProp) letGo(t *rapid.T, lost bool) bool {
	var calls, waiting []*propCall
	for _, c := range p.calls {
		if c.holding() {
			calls = append(calls, c)
			if !c.over {
				waiting = append(waiting, c)
			}
		}
	}
	if len(calls) == 0 {
		return false
	}
	p.now++
	if len(waiting) > 0 && rapid.Bool().Draw(t, "a call in progress") {
		calls = waiting
	}
	c := calls[rapid.IntRange(0, len(calls)-1).Draw(t, "call")]
	type held struct {
		cmd  string
		node int
	}
	var cmds []held
	for _, cmd := range propCommands {
		for node, h := range c.rounds[cmd].held {
			if h {
				cmds = append(cmds, held{cmd, node})
			}
		}
	}
	// Half the time the call's oldest held command goes first, as a
	// connection delivers its commands in order.
	h := cmds[0]
	if rapid.Bool().Draw(t, "any held command") {
		h = cmds[rapid.IntRange(0, len(cmds)-1).Draw(t, "held command")]
	}
	c.rounds[h.cmd].held[h.node] = false
	if lost {
		c.plan[h.cmd][h.node] = faultBefore
	} else if c.over {
		p.stats.late.Add(1)
	}
	p.landing++
	close(c.gates[h.cmd][h.node])
	return true
}

// vanish removes the lock key from one node that has one, or from all,
// before its TTL (an hour, on a clock that does not move): eviction, a
// forward clock jump, or the expiry of a holder that ran past its
// validity. It may come at any moment, even under a holder that believes
// it still holds the lock.
func (p *fencingProp) vanish(t *rapid.T) bool {
	var keyed []*fakeNode
	for _, n := range p.cluster.nodes {
		if _, ok := n.value("k"); ok {
			keyed = append(keyed, n)
		}
	}
	if len(keyed) == 0 {
		return false
	}
	p.now++
	if p.vanished == 0 {
		p.vanished = p.now
	}
	if rapid.IntRange(0, 7).Draw(t, "on every node") > 0 {
		keyed = keyed[rapid.IntRange(0, len(keyed)-1).Draw(t, "node"):][:1]
	}
	for _, n := range keyed {
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

// settle takes the clients' reports until nothing moves without the next
// action: every call has returned or waits for a slow command, every
// command sent has reached its node's view, and the commands let go have
// reported back. Only one call moves in each step, and every round waits
// for all its nodes, so what the nodes see does not depend on the order
// of the reports.
func (p *fencingProp) settle() {
	for {
		// Reports already sent come first: a call that has returned sent
		// the reports of its rounds' commands before. (One call of apply,
		// so that a failure has the same traceback however the reports
		// come in: rapid compares them.)
		var e propEvent
		select {
		case e = <-p.events:
		default:
			if p.landing == 0 && !slices.ContainsFunc(p.calls, p.moving) {
				// Forget the calls that are over and hold nothing back.
				p.calls = slices.DeleteFunc(p.calls, func(c *propCall) bool { return c.over && !c.holding() })
				return
			}
			e = <-p.events
		}
		p.apply(e)
	}
}

// holding reports whether a command of the call is held back.
func (c *propCall) holding() bool {
	for _, r := range c.rounds {
		if slices.Contains(r.held, true) {
			return true
		}
	}
	return false
}

// moving reports whether the call goes on without the test: a command of
// a round that has begun has not reached its node's view yet, or the call
// has not returned and is not waiting for a slow command.
func (p *fencingProp) moving(c *propCall) bool {
	n := len(p.cluster.nodes)
	last := ""
	for _, cmd := range propCommands {
		if r := c.rounds[cmd]; r.sent > 0 {
			if r.sent < n {
				return true
			}
			last = cmd
		}
	}
	if c.over {
		return false
	}
	if last == "" {
		return true
	}
	r, slow := c.rounds[last], 0
	for node, h := range r.held {
		if h && c.mode[last][node] == propSlow {
			slow++
		}
	}
	// Waiting: every other command of the round has answered.
	return slow == 0 || r.answered+slow < n
}

// apply records one report of a client's goroutine.
func (p *fencingProp) apply(e propEvent) {
	c := e.call
	switch e.kind {
	case propSent:
		r := c.rounds[e.cmd]
		r.sent++
		r.held[e.node] = c.mode[e.cmd][e.node] != propNow
	case propAnswered:
		r := c.rounds[e.cmd]
		r.answered++
		if e.done {
			r.done[e.node] = p.now
		}
		r.counters[e.node] = e.counters
		if c.mode[e.cmd][e.node] == propSlow {
			p.landing--
		}
	case propLanded:
		p.landing--
	case propReturned:
		c.over, c.client.running = true, false
		// An Unlock that released on no quorum for node errors gives the
		// acquisition back, to be unlocked again; its key stays until it
		// vanishes otherwise.
		givenBack := c.unlock && !e.ok && !errors.Is(e.err, ErrLockAlreadyExpired)
		switch {
		case p.stopping:
		case givenBack && e.token != c.client.token:
			p.t.Fatalf("client %d: FencingToken() after an Unlock that gave the acquisition back (%v) = %d, want %d", c.client.id, e.err, e.token, c.client.token)
		case givenBack:
			c.client.holding = true
		case c.unlock && e.token != 0:
			p.t.Fatalf("client %d: FencingToken() after Unlock = %d, want 0", c.client.id, e.token)
		case !c.unlock && e.err == nil:
			p.acquired(c, e.token)
			if p.mix.brief {
				c.client.holding = false
				p.call(c.client, true)
			}
		}
	}
}

// acquired records a successful try and checks its token against every
// earlier holder (see checkTokens).
func (p *fencingProp) acquired(c *propCall, token uint64) {
	cl := c.client
	cl.holding, cl.token = true, token
	at := propAt{client: cl.id, start: c.start, end: p.now, confirmed: c.confirmed(), token: token}
	p.stats.acquired.Add(1)
	if at.token == 0 {
		p.t.Fatalf("client %d: FencingToken() = 0 after a successful TryLock", cl.id)
	}
	if p.wiped == 0 {
		if violation := checkRaised(c, token); violation != "" {
			p.t.Fatalf("client %d locked at %d-%d with token %d: %s", cl.id, at.start, at.end, token, violation)
		}
	}
	ordered := p.vanished == 0
	if p.wiped == 0 {
		pairs, violation := checkTokens(p.held, at, ordered)
		p.stats.pairs.Add(int64(pairs))
		if ordered {
			p.stats.ordered.Add(int64(pairs))
		}
		if violation != "" {
			p.t.Fatal(violation)
		}
	} else if _, violation := checkTokens(p.held, at, ordered); violation != "" {
		p.stats.broken.Add(1)
	}
	p.held = append(p.held, at)
}

// checkRaised checks that every node counted for the token of the
// successful try c raised its counter from below the token to it: the
// rule that the guarantees rest on (see fencing.go). It returns a
// description of the first violation.
func checkRaised(c *propCall, token uint64) string {
	r := c.rounds["fence-advance"]
	if r.sent == 0 {
		r = c.rounds["fence-acquire"]
	}
	for _, node := range slices.Sorted(maps.Keys(r.done)) {
		if cs := r.counters[node]; cs[0] >= token || cs[1] != token {
			return fmt.Sprintf("node %d counted for it, its counter %d before and %d after", node, cs[0], cs[1])
		}
	}
	return ""
}

// checkTokens checks the token of the acquisition at against the earlier
// ones in held (those whose TryLock returned before at's): at's token
// must differ from each; on a node that confirmed both tokens, the one
// confirmed later must be the greater; with ordered (no lock key has
// vanished early), at's token must be greater than every earlier one. It
// returns the number of pairs checked and a description of the first
// violation.
func checkTokens(held []propAt, at propAt, ordered bool) (pairs int, violation string) {
	for _, prev := range held {
		pairs++
		broken := ""
		switch {
		case at.token == prev.token:
			broken = "the same token"
		case at.token < prev.token && ordered:
			broken = "a smaller token for the later return, while no lock key had vanished early"
		}
		for _, node := range slices.Sorted(maps.Keys(at.confirmed)) {
			when := at.confirmed[node]
			before, ok := prev.confirmed[node]
			switch {
			case broken != "" || !ok:
			case before < when && at.token < prev.token:
				broken = fmt.Sprintf("node %d confirmed the smaller token later", node)
			case when < before && at.token > prev.token:
				broken = fmt.Sprintf("node %d confirmed the greater token first", node)
			}
		}
		if broken != "" && violation == "" {
			violation = fmt.Sprintf("client %d locked at %d-%d (confirmed %v) with token %d, client %d at %d-%d (confirmed %v) with token %d: %s",
				prev.client, prev.start, prev.end, prev.confirmed, prev.token, at.client, at.start, at.end, at.confirmed, at.token, broken)
		}
	}
	return pairs, violation
}

// stop lets every held command go and waits for every call and command,
// so that no goroutine outlives the run; nothing is checked any more.
func (p *fencingProp) stop() {
	p.stopping = true
	for {
		for _, c := range p.calls {
			for _, cmd := range propCommands {
				for node, h := range c.rounds[cmd].held {
					if h {
						c.rounds[cmd].held[node] = false
						p.landing++
						close(c.gates[cmd][node])
					}
				}
			}
		}
		if p.landing == 0 && !slices.ContainsFunc(p.calls, func(c *propCall) bool { return !c.over || p.moving(c) }) {
			return
		}
		p.apply(<-p.events)
	}
}

// propPool is a client's view of one fake node: it sends each command as
// the plan of the client's current call says, and reports to the test.
type propPool struct {
	node   *fakeNode
	index  int
	client *propClient
	events chan<- propEvent
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
	call, node := c.pool.client.current, c.pool.index
	cmd := scriptName(script)
	if !slices.Contains(propCommands[:], cmd) {
		return nil, fmt.Errorf("fake: the property test does not expect %s", cmd)
	}
	events := c.pool.events
	events <- propEvent{call: call, kind: propSent, cmd: cmd, node: node}
	switch call.mode[cmd][node] {
	case propSlow:
		<-call.gates[cmd][node]
	case propLate:
		go func() {
			<-call.gates[cmd][node]
			_, _ = c.run(call.plan[cmd][node], script, keysAndArgs)
			events <- propEvent{call: call, kind: propLanded, cmd: cmd, node: node}
		}()
		events <- propEvent{call: call, kind: propAnswered, cmd: cmd, node: node, err: errPropLate}
		return nil, errPropLate
	}
	// No other command runs on the node meanwhile (see settle): the
	// counters read around this one are its own doing.
	before := c.pool.node.counter("k")
	reply, err := c.run(call.plan[cmd][node], script, keysAndArgs)
	counters := [2]uint64{before, c.pool.node.counter("k")}
	events <- propEvent{call: call, kind: propAnswered, cmd: cmd, node: node, done: err == nil && countsDone(reply), counters: counters, err: err}
	return reply, err
}

// countsDone reports whether a reply counts as done in its round (see
// tally): status 1, alone or first of the fenced acquire script's pair.
func countsDone(reply any) bool {
	if pair, ok := reply.([]any); ok && len(pair) > 0 {
		reply = pair[0]
	}
	return reply == replyDone
}

// run runs the script on the node, failing it as f says.
func (c *propConn) run(f fault, script *redis.Script, keysAndArgs []any) (any, error) {
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
// a repeated token, such as the 1, 2, 2 of one INCR per node (see
// TestFencingIncrCounterexample) or the one of issue #11, and on tokens
// out of order, and lets through only the orders that docs/FENCING.md
// allows once lock keys vanish early: a checker that cannot fail proves
// nothing.
func TestFencingPropertyChecker(t *testing.T) {
	// On 3 nodes: A confirmed 2 on nodes 0 and 1 at time 1, B 5 on nodes
	// 1 and 2 at times 5 and 8.
	history := []propAt{
		{client: 0, start: 1, end: 1, confirmed: map[int]int{0: 1, 1: 1}, token: 2},
		{client: 1, start: 4, end: 8, confirmed: map[int]int{1: 5, 2: 8}, token: 5},
	}
	tests := []struct {
		name      string
		at        propAt
		ordered   bool
		violation bool
	}{
		{"the same token", propAt{client: 2, start: 9, end: 9, confirmed: map[int]int{0: 9, 2: 9}, token: 5}, false, true},
		{"the same token, overlapping", propAt{client: 2, start: 0, end: 9, confirmed: map[int]int{0: 0, 2: 9}, token: 2}, false, true},
		{"increasing", propAt{client: 2, start: 9, end: 9, confirmed: map[int]int{0: 9, 2: 9}, token: 6}, false, false},
		{"increasing, ordered", propAt{client: 2, start: 9, end: 9, confirmed: map[int]int{0: 9, 2: 9}, token: 6}, true, false},
		{"below one that returned before it began", propAt{client: 2, start: 9, end: 9, confirmed: map[int]int{0: 9, 2: 9}, token: 3}, false, true},
		{"confirmed later on a node, smaller", propAt{client: 2, start: 2, end: 10, confirmed: map[int]int{0: 3, 2: 10}, token: 3}, false, true},
		{"confirmed earlier on every shared node, smaller", propAt{client: 2, start: 2, end: 10, confirmed: map[int]int{0: 3, 1: 3}, token: 3}, false, false},
		{"confirmed earlier on every shared node, smaller, ordered", propAt{client: 2, start: 2, end: 10, confirmed: map[int]int{0: 3, 1: 3}, token: 3}, true, true},
		{"confirmed earlier on a node, greater", propAt{client: 2, start: 0, end: 10, confirmed: map[int]int{0: 10, 2: 4}, token: 6}, false, true},
		{"began first, below both", propAt{client: 2, start: 0, end: 10, confirmed: map[int]int{0: 0, 2: 0}, token: 1}, false, false},
		{"began first, below both, ordered", propAt{client: 2, start: 0, end: 10, confirmed: map[int]int{0: 0, 2: 0}, token: 1}, true, true},
	}
	for _, tt := range tests {
		pairs, violation := checkTokens(history, tt.at, tt.ordered)
		if pairs != len(history) || (violation != "") != tt.violation {
			t.Errorf("%s: checkTokens() = %d, %q; want %d pairs, violation %v", tt.name, pairs, violation, len(history), tt.violation)
		}
	}
}

// TestFencingRaisedChecker makes sure checkRaised fails on a node counted
// for a token that it did not raise its counter to, as fence_advance.lua
// counted one before issue #11 (item 6).
func TestFencingRaisedChecker(t *testing.T) {
	tests := []struct {
		name      string
		advance   bool              // the try had a fencing round
		counters  map[int][2]uint64 // the nodes that answered done: counter before and after
		token     uint64
		violation bool
	}{
		{"fast path", false, map[int][2]uint64{0: {1, 3}, 1: {0, 3}}, 3, false},
		{"fencing round", true, map[int][2]uint64{0: {5, 6}, 2: {4, 6}}, 6, false},
		{"counter already at the token", true, map[int][2]uint64{0: {5, 6}, 2: {6, 6}}, 6, true},
		{"counter above the token", true, map[int][2]uint64{0: {5, 6}, 2: {7, 7}}, 6, true},
		{"raised past the token", false, map[int][2]uint64{0: {2, 4}, 1: {2, 3}}, 3, true},
	}
	for _, tt := range tests {
		c := &propCall{rounds: map[string]*propRound{}}
		for _, cmd := range propCommands {
			c.rounds[cmd] = &propRound{done: map[int]int{}, counters: map[int][2]uint64{}}
		}
		r := c.rounds["fence-acquire"]
		if tt.advance {
			r = c.rounds["fence-advance"]
		}
		r.sent = len(tt.counters)
		for node, cs := range tt.counters {
			r.done[node], r.counters[node] = 1, cs
		}
		if got := checkRaised(c, tt.token); (got != "") != tt.violation {
			t.Errorf("%s: checkRaised() = %q, want violation %v", tt.name, got, tt.violation)
		}
	}
}
