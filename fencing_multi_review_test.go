package redsync

import (
	"testing"
	"time"
)

// Review of 8ea685f: patience (quorum.go) and fencing of sets (scripts.go,
// multi.go), with fakes.

// patienceSetup locks "k" over three pipelining fake nodes, then makes
// nodes 0 and 1 have no connection to spare (their commands are served by
// goroutines, as a busy pool's) and block until hold0 and hold1 close.
func patienceSetup(t *testing.T, opts ...Option) (*Mutex, []*fakePipeNode, chan struct{}, chan struct{}) {
	t.Helper()
	c, nodes, pools := pipeNodes(3)
	// Per-node timeout 60 ms; validity about 1.5 s.
	m := New(pools...).NewMutex("k", append([]Option{WithExpiry(1500 * time.Millisecond), WithTimeoutFactor(0.04)}, opts...)...)
	m.now = c.clock.Now
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v", err)
	}
	hold0, hold1 := make(chan struct{}), make(chan struct{})
	for i, h := range []chan struct{}{hold0, hold1} {
		nodes[i].mu.Lock()
		nodes[i].noIdle, nodes[i].block = true, h
		nodes[i].mu.Unlock()
	}
	return m, nodes, hold0, hold1
}

// servedAfter reports whether node n served a command after we let its
// blocked command go: it did only if the command was still in flight,
// that is, if the round had not waited for it until its context ended.
func servedAfter(t *testing.T, n *fakePipeNode, before int, hold chan struct{}) bool {
	t.Helper()
	close(hold)
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if len(n.servedCommands()) > before {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

// TestReviewPipelinedPatienceStopsAtQuorum: over pipelining pools, a round
// with patience (Unlock, Extend) must return once a quorum decided it,
// also when the deciding reply came from a node served by a goroutine
// after the per-node timeout: "a round continues only while the quorum
// outcome is undecided". broadcastPipelined's spill loop does not check
// the outcome after its patient stage, so it waits for every spilled node
// until the end of the validity, while broadcast returns at once.
func TestReviewPipelinedPatienceStopsAtQuorum(t *testing.T) {
	for _, call := range []string{"Unlock", "Extend"} {
		t.Run(call, func(t *testing.T) {
			m, nodes, hold0, hold1 := patienceSetup(t)
			served1 := len(nodes[1].servedCommands())
			// Node 0 answers well after the per-node timeout (60 ms):
			// with node 2, a quorum. Node 1 stays busy.
			timer := time.AfterFunc(300*time.Millisecond, func() { close(hold0) })
			defer timer.Stop()
			var ok bool
			var err error
			if call == "Unlock" {
				ok, err = m.Unlock()
			} else {
				ok, err = m.Extend()
			}
			if !ok || err != nil {
				t.Fatalf("%s() = %v, %v, want true, nil", call, ok, err)
			}
			// Had the round returned at the quorum, node 1's command
			// would still be waiting for its pool, and run now.
			if !servedAfter(t, nodes[1], served1, hold1) {
				t.Error(call + " over pipelining pools waited for the busy node 1 until the end of the validity (its command was cancelled), though nodes 0 and 2 had decided the round")
			}
		})
	}
}

// TestReviewPipelinedFailFastSpilled: with WithFailFast, a round decided
// before the per-node timeout by a node served by a goroutine returns
// then, not after the other spilled nodes (WithFailFast semantics before
// the per-node timeout). Before 8ea685f the spill loop waited until the
// per-node timeout; with patience it waits until the end of the validity.
func TestReviewPipelinedFailFastSpilled(t *testing.T) {
	m, nodes, hold0, hold1 := patienceSetup(t, WithFailFast(true))
	served1 := len(nodes[1].servedCommands())
	close(hold0) // node 0 answers at once, node 2 too: a quorum
	ok, err := m.Unlock()
	if !ok || err != nil {
		t.Fatalf("Unlock() = %v, %v, want true, nil", ok, err)
	}
	if !servedAfter(t, nodes[1], served1, hold1) {
		t.Error("WithFailFast Unlock over pipelining pools waited for the busy spilled node 1 until the end of the validity, though nodes 0 and 2 had released before the per-node timeout")
	}
}

// TestReviewBroadcastPatienceStopsAtQuorum is the control over pools that
// do not pipeline (broadcast): the round returns at the quorum reached
// after the per-node timeout, and the busy node's command is still in
// flight then.
func TestReviewBroadcastPatienceStopsAtQuorum(t *testing.T) {
	c := newFakeCluster(3)
	m := c.mutex("k", WithExpiry(3*time.Second), WithTimeoutFactor(0.02))
	m.now = c.clock.Now
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v", err)
	}
	hold0, hold1 := make(chan struct{}), make(chan struct{})
	for i, h := range []chan struct{}{hold0, hold1} {
		c.nodes[i].mu.Lock()
		c.nodes[i].block = h
		c.nodes[i].mu.Unlock()
	}
	served1 := len(c.nodes[1].servedCommands())
	timer := time.AfterFunc(300*time.Millisecond, func() { close(hold0) })
	defer timer.Stop()
	if ok, err := m.Unlock(); !ok || err != nil {
		t.Fatalf("Unlock() = %v, %v, want true, nil", ok, err)
	}
	if !servedAfter(t, &fakePipeNode{fakeNode: c.nodes[1]}, served1, hold1) {
		t.Errorf("Unlock() waited for the busy node 1 until its command was cancelled, want a return at the quorum")
	}
}

// TestReviewMultiScriptKeysOneSlot: every key of every script call of a
// set (lock keys, the restart guard's marker, the fencing counters), for
// each combination of guard and fencing, hashes to the names' common slot,
// and the key count matches what the script reads (lock keys, [marker],
// [counters]); the arguments are value, TTL, [guard span], [token].
func TestReviewMultiScriptKeysOneSlot(t *testing.T) {
	names := []string{"{order:42}:stock", "{order:42}:payment", "{order:42}:x"}
	for _, guard := range []bool{false, true} {
		for _, fence := range []bool{false, true} {
			c := newFakeCluster(3)
			var opts []Option
			if guard {
				opts = append(opts, WithRestartGuard(time.Minute))
			}
			if fence {
				opts = append(opts, WithFencing())
			}
			m := New(c.pools()...).NewMultiMutex(names, opts...)
			if m.configErr != nil {
				t.Fatalf("guard %v fence %v: %v", guard, fence, m.configErr)
			}
			call, _ := m.acquireCall("v")
			ka := call.KeysAndArgs()
			nk, ok := ka[0].(int)
			if !ok {
				t.Fatalf("guard %v fence %v: first argument %#v, want the key count", guard, fence, ka[0])
			}
			want := len(names) + b2i(guard) + len(names)*b2i(fence)
			if nk != want {
				t.Errorf("guard %v fence %v: key count %d, want %d", guard, fence, nk, want)
			}
			keys, args := ka[1:1+nk], ka[1+nk:]
			slot := keySlot(names[0])
			for _, k := range keys {
				if s := keySlot(k.(string)); s != slot {
					t.Errorf("guard %v fence %v: key %q in slot %d, want %d", guard, fence, k, s, slot)
				}
			}
			if wantArgs := 2 + b2i(guard) + b2i(fence); len(args) != wantArgs {
				t.Errorf("guard %v fence %v: %d arguments %v, want %d", guard, fence, len(args), args, wantArgs)
			}
			if fence {
				for i, name := range names {
					if got := keys[len(names)+b2i(guard)+i]; got != fenceCounter(name) {
						t.Errorf("guard %v: counter key #%d = %v, want %v", guard, i, got, fenceCounter(name))
					}
				}
			}
			if guard && keys[len(names)] != guardMarker(names[0]) {
				t.Errorf("fence %v: marker key = %v, want %v", fence, keys[len(names)], guardMarker(names[0]))
			}
		}
	}
}
