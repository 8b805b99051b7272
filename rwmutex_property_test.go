package redsync

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// TestRWMutexExclusionProperty drives RWMutexes of one name over three
// fake nodes through random interleavings of TryRLock, RLock, TryLock,
// Lock, RUnlock, Unlock, RExtend and Extend, with the clock moving on
// (shares, writers and marks expire; often to just before or after the
// end of a holder's validity), nodes failing before or after they
// run a command (a lost reply), slow nodes (a round that outlives the
// validity), and clients that walk away holding what they hold. After
// every step it checks the promise of an RWMutex: a writer's window
// overlaps no other holder's. A window runs from the return of the call
// that acquired the lock to its validity's end (Until, moved by
// extensions) or the call that released it, whichever comes first. It
// also checks that a Lock or TryLock that failed with every node up left
// no waiting-writer mark of its RWMutex.
func TestRWMutexExclusionProperty(t *testing.T) {
	var stats rwPropStats
	rapid.Check(t, func(rt *rapid.T) {
		p := newRWProp(rt, &stats)
		actions := map[string]func(){
			"rlock":   p.rlock,
			"lock":    p.lock,
			"runlock": p.runlock,
			"unlock":  p.unlock,
			"rextend": p.rextend,
			"extend":  p.extend,
			"advance": p.advance,
			"edge":    p.edge,
			"fault":   p.fault,
			"slow":    p.slow,
			"crash":   p.crash,
		}
		names := slices.Sorted(maps.Keys(actions))
		// Acquisitions come more often than the rest, so that holders
		// pile up.
		names = append(names, "rlock", "rlock", "lock")
		pick := rapid.SampledFrom(names)
		for range rapid.IntRange(10, 50).Draw(rt, "steps") {
			actions[pick.Draw(rt, "action")]()
			p.check()
		}
	})
	t.Logf("%d write and %d read acquisitions; %d pairs of readers held together", stats.writes, stats.reads, stats.shared)
	// Canaries: a run that never took the write lock, or never let two
	// readers in together, checked nothing.
	if stats.writes == 0 || stats.shared == 0 {
		t.Errorf("the runs made %d write acquisitions and %d pairs of readers held together; want some of each", stats.writes, stats.shared)
	}
}

// rwPropStats counts what the runs of the property did.
type rwPropStats struct {
	writes, reads, shared int
}

type rwProp struct {
	t       *rapid.T
	stats   *rwPropStats
	c       *rwCluster
	clients []*RWMutex
	holds   []*rwHold
}

// rwHold is one acquisition, write or read, and its window.
type rwHold struct {
	write  bool
	client int
	m      *Mutex // the writer, or the reader Mutex of the share
	value  string
	from   time.Time // the acquiring call returned
	until  time.Time // the validity's end, while m holds value
	end    time.Time // the first release call; zero before
	shared bool      // counted in stats.shared
}

const rwPropExpiry = time.Second

func newRWProp(t *rapid.T, stats *rwPropStats) *rwProp {
	p := &rwProp{t: t, stats: stats, c: newRWCluster(3)}
	for range rapid.IntRange(2, 3).Draw(t, "clients") {
		p.clients = append(p.clients, p.newClient())
	}
	return p
}

func (p *rwProp) newClient() *RWMutex {
	return p.c.rwmutex("doc", WithExpiry(rwPropExpiry), WithTries(3))
}

func (p *rwProp) client() (int, *RWMutex) {
	i := rapid.IntRange(0, len(p.clients)-1).Draw(p.t, "client")
	return i, p.clients[i]
}

// allUp reports whether every node runs its commands and answers.
func (p *rwProp) allUp() bool {
	for _, n := range p.c.nodes {
		n.mu.Lock()
		f := n.fault
		n.mu.Unlock()
		if f != rwUp {
			return false
		}
	}
	return true
}

func (p *rwProp) rlock() {
	i, rw := p.client()
	var err error
	if rapid.Bool().Draw(p.t, "once") {
		err = rw.TryRLock()
	} else {
		err = rw.RLock()
	}
	if err != nil {
		return
	}
	rw.mu.Lock()
	m := rw.shares[len(rw.shares)-1]
	rw.mu.Unlock()
	p.stats.reads++
	p.holds = append(p.holds, &rwHold{client: i, m: m, value: m.Value(), from: p.c.clock.Now(), until: m.Until()})
}

func (p *rwProp) lock() {
	i, rw := p.client()
	up := p.allUp()
	var err error
	if rapid.Bool().Draw(p.t, "once") {
		err = rw.TryLock()
	} else {
		err = rw.Lock()
	}
	if err != nil {
		if up {
			p.checkWithdrawn(rw)
		}
		return
	}
	p.stats.writes++
	p.holds = append(p.holds, &rwHold{write: true, client: i, m: rw.w, value: rw.w.Value(), from: p.c.clock.Now(), until: rw.w.Until()})
}

// checkWithdrawn fails when a node holds rw's waiting-writer mark.
func (p *rwProp) checkWithdrawn(rw *RWMutex) {
	args := rw.withdraw.KeysAndArgs()
	waiting, intent := args[0].(string), args[1].(string)
	for i, n := range p.c.nodes {
		if n.get(waiting) == intent {
			p.t.Fatalf("node %d holds the waiting-writer mark of an RWMutex whose Lock gave up", i)
		}
	}
}

// released marks the hold of m's acquisition of value released now,
// unless it was already.
func (p *rwProp) released(m *Mutex, value string) {
	for _, h := range p.holds {
		if h.m == m && h.value == value && h.end.IsZero() {
			h.end = p.c.clock.Now()
		}
	}
}

func (p *rwProp) runlock() {
	_, rw := p.client()
	rw.mu.Lock()
	var m *Mutex
	if len(rw.shares) > 0 {
		m = rw.shares[len(rw.shares)-1]
	}
	rw.mu.Unlock()
	if m != nil {
		p.released(m, m.Value())
	}
	rw.RUnlock()
}

func (p *rwProp) unlock() {
	_, rw := p.client()
	p.released(rw.w, rw.w.Value())
	rw.Unlock()
}

func (p *rwProp) rextend() {
	_, rw := p.client()
	rw.RExtend()
}

func (p *rwProp) extend() {
	_, rw := p.client()
	rw.Extend()
}

func (p *rwProp) advance() {
	ms := rapid.Int64Range(0, 3*rwPropExpiry.Milliseconds()/2).Draw(p.t, "advance ms")
	p.c.clock.Advance(time.Duration(ms) * time.Millisecond)
}

// edge moves the clock to a few ms before or after the end of a held
// window, where a node's entry and its holder's validity end close
// together.
func (p *rwProp) edge() {
	var open []*rwHold
	now := p.c.clock.Now()
	for _, h := range p.holds {
		if h.end.IsZero() && h.windowEnd().After(now) {
			open = append(open, h)
		}
	}
	if len(open) == 0 {
		return
	}
	h := open[rapid.IntRange(0, len(open)-1).Draw(p.t, "hold")]
	ms := rapid.Int64Range(-10, 10).Draw(p.t, "edge ms")
	if to := h.windowEnd().Add(time.Duration(ms) * time.Millisecond); to.After(now) {
		p.c.clock.Advance(to.Sub(now))
	}
}

func (p *rwProp) fault() {
	n := p.c.nodes[rapid.IntRange(0, len(p.c.nodes)-1).Draw(p.t, "node")]
	n.setFault(rapid.SampledFrom([]rwFault{rwUp, rwUp, rwDown, rwLossy}).Draw(p.t, "fault"))
}

func (p *rwProp) slow() {
	n := p.c.nodes[rapid.IntRange(0, len(p.c.nodes)-1).Draw(p.t, "node")]
	ms := rapid.SampledFrom([]int64{0, 0, 10, 200, 400}).Draw(p.t, "latency ms")
	n.mu.Lock()
	n.latency = time.Duration(ms) * time.Millisecond
	n.mu.Unlock()
}

// crash replaces a client with a new RWMutex: what the old one held stays
// on the nodes until it expires.
func (p *rwProp) crash() {
	i, _ := p.client()
	p.clients[i] = p.newClient()
}

// check fails when a writer's window overlaps another holder's.
func (p *rwProp) check() {
	for _, h := range p.holds {
		if h.m.Value() == h.value {
			h.until = h.m.Until()
		}
	}
	for i, a := range p.holds {
		for _, b := range p.holds[i+1:] {
			if !overlap(a, b) {
				continue
			}
			if a.write || b.write {
				p.t.Fatalf("%v overlaps %v", a, b)
			}
			if !a.shared {
				a.shared = true
				p.stats.shared++
			}
		}
	}
}

// windowEnd is the end of h's window: its validity's end or its release,
// whichever comes first.
func (h *rwHold) windowEnd() time.Time {
	if !h.end.IsZero() && h.end.Before(h.until) {
		return h.end
	}
	return h.until
}

func overlap(a, b *rwHold) bool {
	return a.from.Before(b.windowEnd()) && b.from.Before(a.windowEnd())
}

func (h *rwHold) String() string {
	kind := "reader"
	if h.write {
		kind = "writer"
	}
	return fmt.Sprintf("%s of client %d [%v, %v)", kind, h.client, h.from.Format(time.TimeOnly+".000"), h.windowEnd().Format(time.TimeOnly+".000"))
}
