package redsync

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingObserver keeps every event it is told.
type recordingObserver struct {
	mu       sync.Mutex
	acquires []AcquireEvent
	extends  []ExtendEvent
	releases []ReleaseEvent
	losses   []LostEvent
	ctxs     []context.Context
	lost     chan struct{} // one token per loss
	// onAcquire, when set, runs within OnAcquire.
	onAcquire func(AcquireEvent)
}

func newRecordingObserver() *recordingObserver {
	return &recordingObserver{lost: make(chan struct{}, 16)}
}

func (o *recordingObserver) OnAcquire(ctx context.Context, e AcquireEvent) {
	if o.onAcquire != nil {
		o.onAcquire(e)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.acquires = append(o.acquires, e)
	o.ctxs = append(o.ctxs, ctx)
}

func (o *recordingObserver) OnExtend(ctx context.Context, e ExtendEvent) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.extends = append(o.extends, e)
	o.ctxs = append(o.ctxs, ctx)
}

func (o *recordingObserver) OnRelease(ctx context.Context, e ReleaseEvent) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.releases = append(o.releases, e)
	o.ctxs = append(o.ctxs, ctx)
}

func (o *recordingObserver) OnLost(ctx context.Context, e LostEvent) {
	o.mu.Lock()
	o.losses = append(o.losses, e)
	o.ctxs = append(o.ctxs, ctx)
	o.mu.Unlock()
	o.lost <- struct{}{}
}

func (o *recordingObserver) counts() (acquires, extends, releases, losses int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.acquires), len(o.extends), len(o.releases), len(o.losses)
}

// outcomes returns the outcome of each node, by node index.
func outcomes(nodes []NodeResult, n int) []NodeOutcome {
	out := make([]NodeOutcome, n)
	for _, r := range nodes {
		out[r.Node] = r.Outcome
	}
	return out
}

func TestObserverAcquireAndRelease(t *testing.T) {
	c := newFakeCluster(3)
	c.nodes[2].set("obs", "someone else")
	obs := newRecordingObserver()
	m := c.mutex("obs", WithObserver(obs))

	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil", err)
	}
	if n, _, _, _ := obs.counts(); n != 1 {
		t.Fatalf("OnAcquire called %d times after one Lock, want 1", n)
	}
	e := obs.acquires[0]
	if e.Name != "obs" || e.Value != m.Value() || e.Err != nil {
		t.Errorf("AcquireEvent = {Name %q, Value %q, Err %v}, want {obs, %q, nil}", e.Name, e.Value, e.Err, m.Value())
	}
	if e.Attempts != 1 || len(e.Tries) != 1 {
		t.Fatalf("AcquireEvent Attempts = %d, len(Tries) = %d, want 1, 1", e.Attempts, len(e.Tries))
	}
	want := []NodeOutcome{NodeOK, NodeOK, NodeTaken}
	if got := outcomes(e.Tries[0].Nodes, 3); !slices.Equal(got, want) || len(e.Tries[0].Nodes) != 3 {
		t.Errorf("node outcomes of the try = %v (%d results), want %v", got, len(e.Tries[0].Nodes), want)
	}
	if !e.Until.Equal(m.Until()) {
		t.Errorf("AcquireEvent Until = %v, want Until() = %v", e.Until, m.Until())
	}
	// The fake clock stood still: the whole validity is left.
	if want := m.expiry - m.drift(); e.Validity != want {
		t.Errorf("AcquireEvent Validity = %v, want %v", e.Validity, want)
	}
	if e.Wait < 0 || e.Wait > e.Duration || e.Tries[0].Err != nil {
		t.Errorf("AcquireEvent Wait = %v, Duration = %v, try error %v; want 0 <= Wait <= Duration, nil", e.Wait, e.Duration, e.Tries[0].Err)
	}
	for _, r := range e.Tries[0].Nodes {
		if r.Latency <= 0 || r.Latency > e.Duration {
			t.Errorf("node %d latency = %v, want in (0, %v]", r.Node, r.Latency, e.Duration)
		}
	}

	value := m.Value()
	if ok, err := m.Unlock(); !ok || err != nil {
		t.Fatalf("Unlock() = %v, %v, want true, nil", ok, err)
	}
	if _, _, n, _ := obs.counts(); n != 1 {
		t.Fatalf("OnRelease called %d times after one Unlock, want 1", n)
	}
	r := obs.releases[0]
	if r.Name != "obs" || r.Value != value || r.Err != nil || r.Held <= 0 || r.Held > time.Since(e.Start) {
		t.Errorf("ReleaseEvent = {Name %q, Value %q, Err %v, Held %v}, want {obs, %q, nil, in (0, %v]}", r.Name, r.Value, r.Err, r.Held, value, time.Since(e.Start))
	}
	if got := outcomes(r.Nodes, 3); !slices.Equal(got, want) {
		t.Errorf("node outcomes of the release = %v, want %v", got, want)
	}
	for _, ctx := range obs.ctxs {
		if ctx != context.Background() {
			t.Errorf("observer ctx of Lock/Unlock = %v, want context.Background()", ctx)
		}
	}
}

func TestObserverFailedTries(t *testing.T) {
	c := newFakeCluster(3)
	boom := errors.New("boom")
	c.nodes[0].setErr(boom)
	c.nodes[1].set("obs", "someone else")
	c.nodes[2].set("obs", "someone else")
	obs := newRecordingObserver()
	m := c.mutex("obs", WithObserver(obs), WithTries(3))

	err := m.Lock()
	if !errors.Is(err, ErrFailed) {
		t.Fatalf("Lock() = %v, want ErrFailed", err)
	}
	e := obs.acquires[0]
	if e.Err != err || e.Value != "" || e.Attempts != 3 || len(e.Tries) != 3 {
		t.Fatalf("AcquireEvent = {Err %v, Value %q, Attempts %d, %d tries}, want {Lock's error, \"\", 3, 3}", e.Err, e.Value, e.Attempts, len(e.Tries))
	}
	want := []NodeOutcome{NodeFailed, NodeTaken, NodeTaken}
	for i, try := range e.Tries {
		var taken *ErrTaken
		if !errors.As(try.Err, &taken) {
			t.Errorf("try %d error = %v, want *ErrTaken", i, try.Err)
		}
		if got := outcomes(try.Nodes, 3); !slices.Equal(got, want) {
			t.Errorf("try %d node outcomes = %v, want %v", i, got, want)
		}
		if i > 0 && try.Start.Before(e.Tries[i-1].Start) {
			t.Errorf("try %d started before try %d", i, i-1)
		}
		for _, r := range try.Nodes {
			if r.Outcome == NodeFailed && !errors.Is(r.Err, boom) {
				t.Errorf("try %d node %d Err = %v, want boom", i, r.Node, r.Err)
			}
		}
	}
	if !e.Tries[2].Start.Equal(e.Start.Add(e.Wait)) {
		t.Errorf("Wait = %v, want the start of the last try less Start (%v)", e.Wait, e.Tries[2].Start.Sub(e.Start))
	}
	if !e.Until.IsZero() || e.Validity != 0 {
		t.Errorf("failed AcquireEvent Until = %v, Validity = %v, want zero", e.Until, e.Validity)
	}
}

func TestObserverKeepsLastTries(t *testing.T) {
	c := newFakeCluster(1)
	c.nodes[0].set("obs", "someone else")
	obs := newRecordingObserver()
	m := c.mutex("obs", WithObserver(obs), WithTries(maxObservedTries+5))
	if err := m.Lock(); err == nil {
		t.Fatal("Lock() of a taken lock = nil, want an error")
	}
	e := obs.acquires[0]
	if e.Attempts != maxObservedTries+5 || len(e.Tries) != maxObservedTries {
		t.Errorf("Attempts = %d, len(Tries) = %d, want %d, %d", e.Attempts, len(e.Tries), maxObservedTries+5, maxObservedTries)
	}
}

func TestObserverSlowNode(t *testing.T) {
	c := newFakeCluster(3)
	block := make(chan struct{})
	defer close(block)
	c.nodes[1].block = block
	obs := newRecordingObserver()
	m := c.mutex("obs", WithObserver(obs), WithExpiry(time.Second)) // per-node timeout 50ms
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil", err)
	}
	defer m.Unlock()
	nodes := obs.acquires[0].Tries[0].Nodes
	i := slices.IndexFunc(nodes, func(r NodeResult) bool { return r.Node == 1 })
	if i < 0 {
		t.Fatalf("no result of the blocked node in %v", nodes)
	}
	r := nodes[i]
	// The latency runs from the start of the round, a little after the
	// timeout started.
	if r.Outcome != NodeFailed || !errors.Is(r.Err, context.DeadlineExceeded) || r.Latency < 25*time.Millisecond {
		t.Errorf("blocked node result = %v, want failed, DeadlineExceeded, latency near 50ms", r)
	}
}

func TestObserverExtend(t *testing.T) {
	c := newFakeCluster(3)
	obs := newRecordingObserver()
	m := c.mutex("obs", WithObserver(obs))
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil", err)
	}
	c.clock.Advance(time.Second)
	if ok, err := m.Extend(); !ok || err != nil {
		t.Fatalf("Extend() = %v, %v, want true, nil", ok, err)
	}
	e := obs.extends[0]
	if e.Err != nil || !e.Until.Equal(m.Until()) || e.Validity != m.expiry-m.drift() || e.Value != m.Value() {
		t.Errorf("ExtendEvent = {Err %v, Until %v, Validity %v, Value %q}, want {nil, %v, %v, %q}", e.Err, e.Until, e.Validity, e.Value, m.Until(), m.expiry-m.drift(), m.Value())
	}
	if got := outcomes(e.Nodes, 3); !slices.Equal(got, []NodeOutcome{NodeOK, NodeOK, NodeOK}) {
		t.Errorf("extend node outcomes = %v, want all ok", got)
	}

	for _, n := range c.nodes[:2] {
		n.mu.Lock()
		delete(n.keys, "obs")
		n.mu.Unlock()
	}
	ok, err := m.Extend()
	if ok || !errors.Is(err, ErrExtendFailed) {
		t.Fatalf("Extend() of a lock deleted on 2 of 3 nodes = %v, %v, want false, ErrExtendFailed", ok, err)
	}
	e = obs.extends[1]
	if e.Err != err || !e.Until.IsZero() {
		t.Errorf("failed ExtendEvent = {Err %v, Until %v}, want {Extend's error, zero}", e.Err, e.Until)
	}
	if got := outcomes(e.Nodes, 3); !slices.Equal(got, []NodeOutcome{NodeMissing, NodeMissing, NodeOK}) {
		t.Errorf("failed extend node outcomes = %v, want [missing missing ok]", got)
	}
}

func TestObserverLostByExpiry(t *testing.T) {
	c := newFakeCluster(3)
	obs := newRecordingObserver()
	m := c.mutex("obs", WithObserver(obs), WithExpiry(50*time.Millisecond))
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil", err)
	}
	value := m.Value()
	ctx := m.Context()
	c.clock.Advance(time.Second) // the validity is over once the timer fires
	select {
	case <-obs.lost:
	case <-time.After(5 * time.Second):
		t.Fatal("no OnLost within 5s of the end of the validity")
	}
	<-ctx.Done()
	e := obs.losses[0]
	if e.Name != "obs" || e.Value != value || !errors.Is(e.Err, ErrLockLost) || e.Err != context.Cause(ctx) || e.Held <= 0 {
		t.Errorf("LostEvent = {Name %q, Value %q, Err %v, Held %v}, want {obs, %q, the context's cause, > 0}", e.Name, e.Value, e.Err, e.Held, value)
	}
	if obs.ctxs[len(obs.ctxs)-1] != context.Background() {
		t.Errorf("OnLost ctx = %v, want context.Background()", obs.ctxs[len(obs.ctxs)-1])
	}
}

func TestObserverLostByFailedExtension(t *testing.T) {
	c := newFakeCluster(3)
	obs := newRecordingObserver()
	m := c.mutex("obs", WithObserver(obs), WithExpiry(time.Second), WithAutoExtend(20*time.Millisecond))
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil", err)
	}
	for _, n := range c.nodes[1:] {
		n.mu.Lock()
		delete(n.keys, "obs")
		n.mu.Unlock()
	}
	select {
	case <-obs.lost:
	case <-time.After(5 * time.Second):
		t.Fatal("no OnLost within 5s of deleting the key on 2 of 3 nodes")
	}
	e := obs.losses[0]
	if !errors.Is(e.Err, ErrLockLost) || !errors.Is(e.Err, ErrLockAlreadyExpired) {
		t.Errorf("LostEvent Err = %v, want ErrLockLost and ErrLockAlreadyExpired", e.Err)
	}
	_, extends, _, losses := obs.counts()
	if extends == 0 || losses != 1 {
		t.Errorf("after the loss: %d OnExtend, %d OnLost calls, want >= 1, 1", extends, losses)
	}
	last := obs.extends[extends-1]
	if !errors.Is(last.Err, ErrExtendFailed) {
		t.Errorf("last ExtendEvent Err = %v, want ErrExtendFailed", last.Err)
	}
	m.Unlock()
	if _, _, _, losses := obs.counts(); losses != 1 {
		t.Errorf("OnLost called %d times after Unlock, want 1", losses)
	}
}

func TestObserverUnlockIsNoLoss(t *testing.T) {
	c := newFakeCluster(3)
	obs := newRecordingObserver()
	m := c.mutex("obs", WithObserver(obs), WithAutoExtend(0))
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil", err)
	}
	m.Unlock()
	if a, _, r, l := obs.counts(); a != 1 || r != 1 || l != 0 {
		t.Errorf("after Lock and Unlock: %d OnAcquire, %d OnRelease, %d OnLost; want 1, 1, 0", a, r, l)
	}
}

func TestObserverFencingToken(t *testing.T) {
	c := newFakeCluster(3)
	obs := newRecordingObserver()
	m := c.mutex("obs", WithObserver(obs), WithFencing())
	for range 2 {
		if err := m.Lock(); err != nil {
			t.Fatalf("Lock() = %v, want nil", err)
		}
		if got, want := obs.acquires[len(obs.acquires)-1].FencingToken, m.FencingToken(); got != want || got == 0 {
			t.Errorf("AcquireEvent FencingToken = %d, want FencingToken() = %d", got, want)
		}
		if got := outcomes(obs.acquires[len(obs.acquires)-1].Tries[0].Nodes, 3); !slices.Equal(got, []NodeOutcome{NodeOK, NodeOK, NodeOK}) {
			t.Errorf("fenced acquire node outcomes = %v, want all ok", got)
		}
		m.Unlock()
	}
}

func TestObserverMayCallMutex(t *testing.T) {
	c := newFakeCluster(3)
	obs := newRecordingObserver()
	var m *Mutex
	var seen string
	obs.onAcquire = func(AcquireEvent) { seen = m.Value() + " " + m.Until().String() }
	m = c.mutex("obs", WithObserver(obs))
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil", err)
	}
	if want := m.Value() + " " + m.Until().String(); seen != want {
		t.Errorf("Value and Until read within OnAcquire = %q, want %q", seen, want)
	}
}

func TestSetObserver(t *testing.T) {
	c := newFakeCluster(1)
	rs := New(c.pools()...)
	before := rs.NewMutex("a")
	obs := newRecordingObserver()
	rs.SetObserver(obs)
	other := newRecordingObserver()
	mutexes := []struct {
		name string
		m    *Mutex
		want Observer
	}{
		{"made before", before, nil},
		{"default", rs.NewMutex("b"), obs},
		{"WithObserver", rs.NewMutex("c", WithObserver(other)), other},
		{"WithObserver(nil)", rs.NewMutex("d", WithObserver(nil)), nil},
	}
	rs.SetObserver(nil)
	mutexes = append(mutexes, struct {
		name string
		m    *Mutex
		want Observer
	}{"after SetObserver(nil)", rs.NewMutex("e"), nil})
	for _, tt := range mutexes {
		if tt.m.observer != tt.want {
			t.Errorf("%s: observer = %v, want %v", tt.name, tt.m.observer, tt.want)
		}
	}
}

func TestDoObserved(t *testing.T) {
	c := newFakeCluster(3)
	obs := newRecordingObserver()
	rs := New(c.pools()...)
	rs.SetObserver(obs)
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, "caller")
	err := rs.Do(ctx, "obs", func(context.Context) error { return nil }, WithRetryDelay(0))
	if err != nil {
		t.Fatalf("Do() = %v, want nil", err)
	}
	if a, _, r, l := obs.counts(); a != 1 || r != 1 || l != 0 {
		t.Fatalf("after Do: %d OnAcquire, %d OnRelease, %d OnLost; want 1, 1, 0", a, r, l)
	}
	for i, got := range obs.ctxs {
		if got.Value(key{}) != "caller" {
			t.Errorf("event %d: observer ctx lacks the caller's values", i)
		}
	}
}

func TestMultiObserver(t *testing.T) {
	a, b := newRecordingObserver(), newRecordingObserver()
	o := MultiObserver(a, nil, b)
	ctx := context.Background()
	o.OnAcquire(ctx, AcquireEvent{Name: "x"})
	o.OnExtend(ctx, ExtendEvent{Name: "x"})
	o.OnRelease(ctx, ReleaseEvent{Name: "x"})
	o.OnLost(ctx, LostEvent{Name: "x"})
	for i, r := range []*recordingObserver{a, b} {
		if a, e, rel, l := r.counts(); a != 1 || e != 1 || rel != 1 || l != 1 {
			t.Errorf("observer %d got %d, %d, %d, %d events, want one of each", i, a, e, rel, l)
		}
	}
}

func TestNodeResultString(t *testing.T) {
	tests := []struct {
		r    NodeResult
		want string
	}{
		{NodeResult{Node: 0, Outcome: NodeOK, Latency: 1500 * time.Microsecond}, "#0 ok 1.5ms"},
		{NodeResult{Node: 2, Outcome: NodeTaken, Latency: time.Millisecond}, "#2 taken 1ms"},
		{NodeResult{Node: 1, Outcome: NodeMissing}, "#1 missing 0s"},
		{NodeResult{Node: 4, Outcome: NodeFailed, Latency: 400 * time.Millisecond, Err: errors.New("i/o timeout")}, "#4 failed 400ms: i/o timeout"},
		{NodeResult{Node: 3, Outcome: 9}, "#3 NodeOutcome(9) 0s"},
	}
	for _, tt := range tests {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

// TestNoObserverNoRecord checks that a Mutex without an observer takes the
// plain paths: its rounds carry no trace, so nothing is timed per node.
func TestNoObserverNoRecord(t *testing.T) {
	c := newFakeCluster(3)
	m := c.mutex("plain")
	if m.observer != nil {
		t.Fatalf("observer of a Mutex without WithObserver = %v, want nil", m.observer)
	}
	var rec *acquireRecord
	if tr := rec.try(); tr != nil {
		t.Errorf("nil acquireRecord.try() = %v, want nil", tr)
	}
	rec.tried(errors.New("ignored")) // must not panic
	var tr *nodeTrace
	tr.add(nodeResult{node: 1}, time.Now())
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil", err)
	}
	if m.heldSince != (acquisitionStart{}) {
		t.Errorf("heldSince without an observer = %+v, want zero", m.heldSince)
	}
	if !strings.Contains(NodeFailed.String(), "failed") {
		t.Errorf("NodeFailed.String() = %q", NodeFailed.String())
	}
}

// TestBaseObserver: an Observer embedding BaseObserver gets the events it
// overrides, and the others are ignored.
func TestBaseObserver(t *testing.T) {
	c := newFakeCluster(3)
	var lost lostOnly
	m := c.mutex("k", WithObserver(&lost))
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil", err)
	}
	if ok, err := m.Unlock(); !ok || err != nil {
		t.Fatalf("Unlock() = %v, %v, want true, nil", ok, err)
	}
	if lost.acquired != 1 {
		t.Errorf("OnAcquire calls = %d, want 1", lost.acquired)
	}
}

type lostOnly struct {
	BaseObserver
	acquired int
}

func (l *lostOnly) OnAcquire(context.Context, AcquireEvent) { l.acquired++ }
