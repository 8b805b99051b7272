package redsync

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redlock/redsync/redis"
)

// fakePipeNode is a fake node that can pipeline: SendScript runs the
// script at once on the fake node and Receive hands its reply over, unless
// the node has no idle connection (noIdle) or stalls (see stalledReply).
type fakePipeNode struct {
	*fakeNode
	noIdle bool
	stall  bool
	sent   atomic.Int32 // scripts sent by SendScript
	direct atomic.Int32 // scripts run through Get, on a goroutine

	// release, when not nil, ends the stalled replies when it is closed,
	// even before their deadline.
	release chan struct{}

	stallMu   sync.Mutex
	deadlines []time.Time // of the stalled replies' Receive calls
}

// stalledDeadlines returns the deadlines the stalled replies were given.
func (f *fakePipeNode) stalledDeadlines() []time.Time {
	f.stallMu.Lock()
	defer f.stallMu.Unlock()
	return slices.Clone(f.deadlines)
}

func (f *fakePipeNode) Get(ctx context.Context) (redis.Conn, error) {
	f.direct.Add(1)
	return f.fakeNode.Get(ctx)
}

func (f *fakePipeNode) SendScript(ctx context.Context, call *redis.ScriptCall) (redis.PendingReply, bool, error) {
	if f.noIdle {
		return nil, false, nil
	}
	f.sent.Add(1)
	if f.stall {
		return stalledReply{f}, true, nil
	}
	conn, _ := f.fakeNode.Get(ctx)
	reply, err := conn.Eval(call.Script(), call.KeysAndArgs()...)
	return readyReply{reply, err}, true, nil
}

// SendCommand understands SET key value NX PX ttl only.
func (f *fakePipeNode) SendCommand(ctx context.Context, args ...any) (redis.PendingReply, bool, error) {
	if f.noIdle {
		return nil, false, nil
	}
	f.sent.Add(1)
	if f.stall {
		return stalledReply{f}, true, nil
	}
	if err := f.enter(ctx, "setnx"); err != nil {
		return readyReply{nil, err}, true, nil
	}
	key, value := args[1].(string), args[2].(string)
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, taken := f.keys[key]; taken {
		return readyReply{nil, nil}, true, nil
	}
	f.keys[key] = value
	return readyReply{"OK", nil}, true, nil
}

type readyReply struct {
	reply any
	err   error
}

func (r readyReply) Receive(time.Time) (any, error) { return r.reply, r.err }

// stalledReply is the reply of a node that does not answer: Receive
// records its deadline and fails as a read timeout does, when the deadline
// passes or the node's release channel is closed.
type stalledReply struct{ node *fakePipeNode }

func (r stalledReply) Receive(deadline time.Time) (any, error) {
	r.node.stallMu.Lock()
	r.node.deadlines = append(r.node.deadlines, deadline)
	r.node.stallMu.Unlock()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-r.node.release: // never, when nil
	}
	return nil, errors.New("read tcp: i/o timeout")
}

func pipeNodes(n int) (*fakeCluster, []*fakePipeNode, []redis.Pool) {
	c := newFakeCluster(n)
	nodes := make([]*fakePipeNode, n)
	pools := make([]redis.Pool, n)
	for i, fn := range c.nodes {
		nodes[i] = &fakePipeNode{fakeNode: fn}
		pools[i] = nodes[i]
	}
	return c, nodes, pools
}

func TestPipelinedRounds(t *testing.T) {
	c, nodes, pools := pipeNodes(5)
	nodes[3].noIdle = true // served by a goroutine, through Get
	m := New(pools...).NewMutex("k")
	m.now = c.clock.Now
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v", err)
	}
	if got := c.holders("k", m.Value()); got != 5 {
		t.Errorf("%d of 5 nodes hold the lock", got)
	}
	if ok, err := m.Unlock(); !ok || err != nil {
		t.Fatalf("Unlock() = %v, %v", ok, err)
	}
	for i, n := range nodes {
		sent, direct := n.sent.Load(), n.direct.Load()
		if i == 3 && (sent != 0 || direct != 2) || i != 3 && (sent != 2 || direct != 0) {
			t.Errorf("node %d: %d scripts pipelined, %d through Get; want 2 and 0 (node 3: 0 and 2)", i, sent, direct)
		}
	}
	if got := c.keys("k"); got != 0 {
		t.Errorf("%d nodes still hold the key", got)
	}
}

func TestPipelinedStall(t *testing.T) {
	c, nodes, pools := pipeNodes(5)
	nodes[0].stall, nodes[1].stall = true, true
	m := New(pools...).NewMutex("k", WithExpiry(time.Second)) // per-node timeout 50ms
	m.now = c.clock.Now
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() with 2 of 5 nodes stalled = %v", err)
	}
	m.Unlock()
	for _, n := range nodes {
		n.stallMu.Lock()
		n.deadlines = nil
		n.stallMu.Unlock()
	}
	nodes[2].stall = true
	start := time.Now()
	err := m.TryLock()
	end := time.Now()
	if err == nil || !strings.Contains(err.Error(), "node #0: no reply within the per-node timeout of 50ms") {
		t.Fatalf("TryLock() with 3 of 5 nodes stalled = %v, want the per-node timeout named for node 0", err)
	}
	// The try and its undo are each bounded by one per-node timeout: every
	// stalled reply was awaited until 50 ms after the start of its round,
	// which began within the call. (How long the call took depends on the
	// machine's load, and is not checked.)
	const timeout = 50 * time.Millisecond
	for i, n := range nodes[:3] {
		deadlines := n.stalledDeadlines()
		if len(deadlines) != 2 {
			t.Errorf("node %d: %d stalled replies awaited, want 2 (the try and its undo)", i, len(deadlines))
		}
		for _, d := range deadlines {
			if roundStart := d.Add(-timeout); roundStart.Before(start) || roundStart.After(end) {
				t.Errorf("node %d: a reply awaited until %v, want %v after a round start within the call (%v to %v)",
					i, d.Format("15:04:05.000"), timeout, start.Format("15:04:05.000"), end.Format("15:04:05.000"))
			}
		}
	}
	if got := c.keys("k"); got != 0 {
		t.Errorf("%d nodes hold the key after the failed try was undone", got)
	}
}

// TestPipelinedSetNX: a pipelined acquire sends SET NX, and the acquire
// script only to the nodes where the key was there, to tell whose it is.
func TestPipelinedSetNX(t *testing.T) {
	c, nodes, pools := pipeNodes(5)
	nodes[0].set("k", "other")
	nodes[1].set("k", "other")
	m := New(pools...).NewMutex("k", WithTries(1))
	m.now = c.clock.Now
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() with the key taken on 2 of 5 nodes = %v", err)
	}
	for i, n := range nodes {
		want := []string{"setnx"}
		if i < 2 {
			want = []string{"setnx", "acquire"}
		}
		if got := n.ran(); !slices.Equal(got, want) {
			t.Errorf("node %d ran %v, want %v", i, got, want)
		}
	}
	if got := c.holders("k", m.Value()); got != 3 {
		t.Errorf("%d nodes hold the lock, want 3", got)
	}
	m.Unlock()

	// The key taken on 3 of 5: ErrTaken naming them.
	for _, n := range nodes[:3] {
		n.set("k", "other")
	}
	var taken *ErrTaken
	if err := m.Lock(); !errors.As(err, &taken) || !slices.Equal(taken.Nodes, []int{0, 1, 2}) {
		t.Fatalf("Lock() with the key taken on 3 of 5 nodes = %v, want *ErrTaken of nodes 0, 1, 2", err)
	}
}

// TestPipelinedFailFast: with failFast, a pipelined round returns once the
// replies read so far decide it; the replies of slower nodes are read in
// the background, and op.settled is closed after them.
func TestPipelinedFailFast(t *testing.T) {
	c, nodes, pools := pipeNodes(5)
	m := New(pools...).NewMutex("k")
	m.now = c.clock.Now
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v", err)
	}
	_, calls, err := m.current()
	if err != nil {
		t.Fatal(err)
	}
	// The stalled nodes answer only once released (or after a minute):
	// a round that returns with 3 replies before that returned at the
	// quorum, whatever the machine's load.
	release := make(chan struct{})
	nodes[3].stall, nodes[4].stall = true, true
	nodes[3].release, nodes[4].release = release, release
	var settled chan struct{}
	tl := m.nodes.broadcast(context.Background(), time.Minute, true, nodeOp{call: &calls.release, settled: &settled})
	if tl.done != 3 || tl.replied != 3 {
		t.Errorf("tally: %d done of %d replies, want 3 of 3: the round did not return at the quorum", tl.done, tl.replied)
	}
	if settled == nil {
		t.Fatal("the round returned before 2 nodes answered, and gave no channel to wait for them")
	}
	select {
	case <-settled:
		t.Error("settled closed while 2 nodes had not answered")
	default:
	}
	close(release)
	select {
	case <-settled:
	case <-time.After(5 * time.Second):
		t.Fatal("settled not closed 5s after the stalled nodes answered")
	}
	nodes[3].release, nodes[4].release = nil, nil
	// The stalled nodes never ran the release.
	if got := c.holders("k", m.Value()); got != 2 {
		t.Errorf("%d nodes still hold the key, want the 2 stalled ones", got)
	}
	for _, n := range nodes[3:] {
		n.mu.Lock()
		delete(n.keys, "k")
		n.mu.Unlock()
	}

	// Without failFast the same round waits for every node.
	nodes[3].stall, nodes[4].stall = false, false
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v", err)
	}
	_, calls, _ = m.current()
	nodes[3].stall, nodes[4].stall = true, true
	const timeout = 300 * time.Millisecond
	start := time.Now()
	tl = m.nodes.broadcast(context.Background(), timeout, false, nodeOp{call: &calls.release})
	if took := time.Since(start); took < timeout || tl.replied != 5 {
		t.Errorf("without failFast: returned after %v with %d replies, want all 5 after the timeout of %v", took, tl.replied, timeout)
	}
}

// TestPipelinedPatience: over pipelining pools, nodes whose pool has no
// connection to spare (served by a goroutine) still count for Extend and
// Unlock when they answer after the per-node timeout but within the
// validity (see Mutex.patience).
func TestPipelinedPatience(t *testing.T) {
	c, nodes, pools := pipeNodes(3)
	m := New(pools...).NewMutex("k", WithExpiry(10*time.Second), WithTimeoutFactor(0.01))
	m.now = c.clock.Now
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v", err)
	}
	for _, call := range []struct {
		name string
		run  func() (bool, error)
	}{{"Extend", m.Extend}, {"Unlock", m.Unlock}} {
		hold := make(chan struct{})
		for _, n := range nodes[:2] {
			n.mu.Lock()
			n.noIdle, n.block = true, hold
			n.mu.Unlock()
		}
		// Well past the per-node timeout of 100 ms, well within the
		// validity of about 10 s.
		timer := time.AfterFunc(300*time.Millisecond, func() { close(hold) })
		if ok, err := call.run(); !ok || err != nil {
			t.Errorf("%s() with 2 of 3 nodes waiting 300ms for a connection = %v, %v, want true, nil", call.name, ok, err)
		}
		timer.Stop()
		for _, n := range nodes[:2] {
			n.mu.Lock()
			n.block = nil
			n.mu.Unlock()
		}
	}
	// The round returns once a quorum released; the last node's release
	// lands just after.
	eventually(t, "no node holds the key", func() bool { return c.keys("k") == 0 })
}
