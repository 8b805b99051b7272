package otel_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	goredislib "github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/internal/redistest"
	redsyncotel "github.com/go-redlock/redsync/otel"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/goredis"
)

// recorder is an Observer with in-memory metrics and spans.
type recorder struct {
	obs    *redsyncotel.Observer
	reader *sdkmetric.ManualReader
	spans  *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
}

func newRecorder(t *testing.T, opts ...redsyncotel.Option) *recorder {
	t.Helper()
	r := &recorder{reader: sdkmetric.NewManualReader(), spans: tracetest.NewSpanRecorder()}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r.reader))
	r.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(r.spans))
	t.Cleanup(func() {
		mp.Shutdown(context.Background())
		r.tp.Shutdown(context.Background())
	})
	obs, err := redsyncotel.NewObserver(append([]redsyncotel.Option{redsyncotel.WithMeterProvider(mp), redsyncotel.WithTracerProvider(r.tp)}, opts...)...)
	if err != nil {
		t.Fatalf("NewObserver() = %v", err)
	}
	r.obs = obs
	return r
}

// metrics collects the metrics recorded so far, by name.
func (r *recorder) metrics(t *testing.T) map[string]metricdata.Aggregation {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Aggregation{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != redsyncotel.ScopeName {
			t.Errorf("scope = %q, want %q", sm.Scope.Name, redsyncotel.ScopeName)
		}
		for _, m := range sm.Metrics {
			out[m.Name] = m.Data
		}
	}
	return out
}

// has reports whether set holds every attribute of want.
func has(set attribute.Set, want ...attribute.KeyValue) bool {
	for _, kv := range want {
		if v, ok := set.Value(kv.Key); !ok || v != kv.Value {
			return false
		}
	}
	return true
}

// sum adds up the points of a counter whose attributes hold want.
func sum(t *testing.T, data metricdata.Aggregation, want ...attribute.KeyValue) int64 {
	t.Helper()
	s, ok := data.(metricdata.Sum[int64])
	if !ok {
		t.Fatalf("aggregation %T, want a Sum[int64]", data)
	}
	var total int64
	for _, p := range s.DataPoints {
		if has(p.Attributes, want...) {
			total += p.Value
		}
	}
	return total
}

// hist returns the count and sum of the points of a histogram whose
// attributes hold want.
func hist(t *testing.T, data metricdata.Aggregation, want ...attribute.KeyValue) (uint64, float64) {
	t.Helper()
	h, ok := data.(metricdata.Histogram[float64])
	if !ok {
		t.Fatalf("aggregation %T, want a Histogram[float64]", data)
	}
	var (
		count uint64
		total float64
	)
	for _, p := range h.DataPoints {
		if has(p.Attributes, want...) {
			count += p.Count
			total += p.Sum
		}
	}
	return count, total
}

// near reports whether a and b differ by less than a microsecond's worth.
func near(a, b float64) bool {
	return a-b < 1e-6 && b-a < 1e-6
}

func attr(span sdktrace.ReadOnlySpan, key attribute.Key) (attribute.Value, bool) {
	for _, kv := range span.Attributes() {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestObserverEvents(t *testing.T) {
	r := newRecorder(t)
	boom := errors.New("boom")
	try := func(start time.Time, err error) redsync.Try {
		return redsync.Try{Start: start, Duration: 6 * time.Millisecond, Err: err, Nodes: []redsync.NodeResult{
			{Node: 0, Outcome: redsync.NodeOK, Latency: time.Millisecond},
			{Node: 1, Outcome: redsync.NodeFailed, Latency: 5 * time.Millisecond, Err: boom},
			{Node: 2, Outcome: redsync.NodeTaken, Latency: 2 * time.Millisecond},
		}}
	}
	taken := &redsync.ErrTaken{Nodes: []int{2}}
	parentCtx, parent := r.tp.Tracer("test").Start(context.Background(), "parent")
	r.obs.OnAcquire(parentCtx, redsync.AcquireEvent{
		Name: "job", Value: "secret-value", Start: t0, Duration: 30 * time.Millisecond, Wait: 20 * time.Millisecond,
		Attempts: 3, Tries: []redsync.Try{try(t0.Add(20*time.Millisecond), nil)},
		Validity: 7900 * time.Millisecond, Until: t0.Add(8 * time.Second), FencingToken: 42,
	})
	parent.End()
	r.obs.OnAcquire(context.Background(), redsync.AcquireEvent{
		Name: "job", Start: t0, Duration: 10 * time.Millisecond,
		Attempts: 2, Tries: []redsync.Try{try(t0, taken), try(t0.Add(4*time.Millisecond), taken)}, Err: taken,
	})
	r.obs.OnExtend(context.Background(), redsync.ExtendEvent{Name: "job", Start: t0, Duration: time.Millisecond, Validity: 7 * time.Second})
	r.obs.OnExtend(context.Background(), redsync.ExtendEvent{Name: "job", Start: t0, Duration: time.Millisecond, Err: redsync.ErrExtendFailed,
		Nodes: []redsync.NodeResult{{Node: 1, Outcome: redsync.NodeFailed, Err: boom}}})
	r.obs.OnRelease(context.Background(), redsync.ReleaseEvent{Name: "job", Start: t0, Duration: 2 * time.Millisecond, Held: 3 * time.Second,
		Nodes: []redsync.NodeResult{{Node: 0, Outcome: redsync.NodeOK, Latency: time.Millisecond}}})
	r.obs.OnLost(context.Background(), redsync.LostEvent{Name: "job", Held: 5 * time.Second, Err: redsync.ErrLockLost})

	m := r.metrics(t)
	if got := sum(t, m["redsync.lock.acquire.attempts"]); got != 5 {
		t.Errorf("redsync.lock.acquire.attempts = %d, want 5", got)
	}
	for _, tt := range []struct {
		outcome string
		count   uint64
		sum     float64
	}{{"acquired", 1, 0.030}, {"taken", 1, 0.010}} {
		if n, s := hist(t, m["redsync.lock.acquire.duration"], attribute.String("redsync.lock.outcome", tt.outcome)); n != tt.count || !near(s, tt.sum) {
			t.Errorf("redsync.lock.acquire.duration{outcome=%s} = %d points, sum %v; want %d, %v", tt.outcome, n, s, tt.count, tt.sum)
		}
	}
	if n, s := hist(t, m["redsync.lock.acquire.validity"]); n != 1 || !near(s, 7.9) {
		t.Errorf("redsync.lock.acquire.validity = %d points, sum %v; want 1, 7.9", n, s)
	}
	if ext, fail := sum(t, m["redsync.lock.extensions"], attribute.String("redsync.lock.outcome", "extended")),
		sum(t, m["redsync.lock.extensions"], attribute.String("redsync.lock.outcome", "failed")); ext != 1 || fail != 1 {
		t.Errorf("redsync.lock.extensions = %d extended, %d failed; want 1, 1", ext, fail)
	}
	for _, tt := range []struct {
		end string
		sum float64
	}{{"released", 3}, {"lost", 5}} {
		if n, s := hist(t, m["redsync.lock.held.duration"], attribute.String("redsync.lock.end", tt.end)); n != 1 || !near(s, tt.sum) {
			t.Errorf("redsync.lock.held.duration{end=%s} = %d points, sum %v; want 1, %v", tt.end, n, s, tt.sum)
		}
	}
	if got := sum(t, m["redsync.lock.losses"]); got != 1 {
		t.Errorf("redsync.lock.losses = %d, want 1", got)
	}
	for _, tt := range []struct {
		node int
		op   string
		want int64
	}{{1, "acquire", 3}, {1, "extend", 1}, {0, "acquire", 0}, {1, "release", 0}} {
		if got := sum(t, m["redsync.node.failures"], attribute.Int("redsync.node", tt.node), attribute.String("redsync.operation", tt.op)); got != tt.want {
			t.Errorf("redsync.node.failures{node=%d, operation=%s} = %d, want %d", tt.node, tt.op, got, tt.want)
		}
	}
	if n, s := hist(t, m["redsync.node.duration"], attribute.Int("redsync.node", 2), attribute.String("redsync.operation", "acquire"), attribute.String("redsync.node.outcome", "taken")); n != 3 || !near(s, 0.006) {
		t.Errorf("redsync.node.duration{node=2, acquire, taken} = %d points, sum %v; want 3, 0.006", n, s)
	}
	for name, data := range m {
		var sets []attribute.Set
		switch d := data.(type) {
		case metricdata.Sum[int64]:
			for _, p := range d.DataPoints {
				sets = append(sets, p.Attributes)
			}
		case metricdata.Histogram[float64]:
			for _, p := range d.DataPoints {
				sets = append(sets, p.Attributes)
			}
		}
		for _, set := range sets {
			if set.HasValue("redsync.lock.name") {
				t.Errorf("%s has redsync.lock.name without WithLockNames", name)
			}
		}
	}

	spans := r.spans.Ended()
	var names []string
	for _, s := range spans {
		names = append(names, s.Name())
	}
	if want := []string{"redsync.acquire", "parent", "redsync.acquire", "redsync.extend", "redsync.extend", "redsync.release"}; !slices.Equal(names, want) {
		t.Fatalf("spans = %v, want %v", names, want)
	}
	ok := spans[0]
	if ok.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("acquire span's parent = %v, want the span of the caller's ctx", ok.Parent().SpanID())
	}
	if !ok.StartTime().Equal(t0) || !ok.EndTime().Equal(t0.Add(30*time.Millisecond)) {
		t.Errorf("acquire span runs %v to %v, want %v to %v", ok.StartTime(), ok.EndTime(), t0, t0.Add(30*time.Millisecond))
	}
	for key, want := range map[attribute.Key]attribute.Value{
		"redsync.lock.name":          attribute.StringValue("job"),
		"redsync.lock.outcome":       attribute.StringValue("acquired"),
		"redsync.lock.attempts":      attribute.IntValue(3),
		"redsync.lock.fencing_token": attribute.Int64Value(42),
		"redsync.lock.wait":          attribute.Float64Value(0.02),
		"redsync.lock.validity":      attribute.Float64Value(7.9),
	} {
		if got, found := attr(ok, key); !found || got != want {
			t.Errorf("acquire span %s = %v, want %v", key, got.String(), want.String())
		}
	}
	for _, kv := range ok.Attributes() {
		if kv.Value.String() == "secret-value" {
			t.Errorf("acquire span carries the lock value in %s", kv.Key)
		}
	}
	if ok.Status().Code != codes.Unset {
		t.Errorf("acquire span status = %v, want Unset", ok.Status())
	}
	events := ok.Events()
	if len(events) != 4 || events[0].Name != "redsync.try" || events[1].Name != "redsync.node" {
		t.Fatalf("acquire span events = %+v, want a try and 3 nodes", events)
	}
	if try := events[0]; !try.Time.Equal(t0.Add(20*time.Millisecond)) || !slices.Contains(try.Attributes, attribute.Int("redsync.try", 3)) {
		t.Errorf("try event = %+v, want try 3 at %v", try, t0.Add(20*time.Millisecond))
	}
	failed := events[2]
	if !failed.Time.Equal(t0.Add(25*time.Millisecond)) || !slices.Contains(failed.Attributes, attribute.String("error.message", "boom")) ||
		!slices.Contains(failed.Attributes, attribute.String("redsync.node.outcome", "failed")) || !slices.Contains(failed.Attributes, attribute.Int("redsync.node", 1)) {
		t.Errorf("event of the failed node = %+v, want node 1 failed at %v with error.message boom", failed, t0.Add(25*time.Millisecond))
	}

	bad := spans[2]
	if bad.Status().Code != codes.Error || bad.Status().Description != taken.Error() || len(bad.Events()) != 8 {
		t.Errorf("failed acquire span: status %v, %d events; want Error %q, 8 events", bad.Status(), len(bad.Events()), taken.Error())
	}
	if v, _ := attr(bad, "redsync.lock.outcome"); v.AsString() != "taken" {
		t.Errorf("failed acquire span outcome = %q, want taken", v.AsString())
	}
	if first := bad.Events()[0]; !slices.Contains(first.Attributes, attribute.Int("redsync.try", 1)) {
		t.Errorf("first try event = %+v, want try 1", first)
	}
	if rel := spans[5]; len(rel.Events()) != 1 || !rel.EndTime().Equal(t0.Add(2*time.Millisecond)) {
		t.Errorf("release span: %d events, end %v; want 1, %v", len(rel.Events()), rel.EndTime(), t0.Add(2*time.Millisecond))
	}
}

func TestObserverLockNames(t *testing.T) {
	r := newRecorder(t, redsyncotel.WithLockNames())
	r.obs.OnAcquire(context.Background(), redsync.AcquireEvent{Name: "job", Attempts: 1, Duration: time.Millisecond})
	r.obs.OnLost(context.Background(), redsync.LostEvent{Name: "other", Held: time.Second})
	m := r.metrics(t)
	if got := sum(t, m["redsync.lock.acquire.attempts"], attribute.String("redsync.lock.name", "job")); got != 1 {
		t.Errorf("redsync.lock.acquire.attempts{name=job} = %d, want 1", got)
	}
	if got := sum(t, m["redsync.lock.losses"], attribute.String("redsync.lock.name", "other")); got != 1 {
		t.Errorf("redsync.lock.losses{name=other} = %d, want 1", got)
	}
}

// nodes starts n redis-servers and returns a pool for each.
func nodes(t *testing.T, n int) ([]*redistest.Server, []redis.Pool) {
	t.Helper()
	servers := redistest.StartN(t, n)
	pools := make([]redis.Pool, n)
	for i, s := range servers {
		client := goredislib.NewClient(&goredislib.Options{Addr: s.Addr(), ContextTimeoutEnabled: true})
		t.Cleanup(func() { client.Close() })
		pools[i] = goredis.NewPool(client)
	}
	return servers, pools
}

// tally is an Observer that keeps the events it is told, to compare with
// what the otel Observer recorded for the same events.
type tally struct {
	mu       sync.Mutex
	acquires []redsync.AcquireEvent
	lost     chan struct{} // signalled by OnLost, when not nil
}

func (t *tally) OnAcquire(_ context.Context, e redsync.AcquireEvent) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.acquires = append(t.acquires, e)
}
func (*tally) OnExtend(context.Context, redsync.ExtendEvent)   {}
func (*tally) OnRelease(context.Context, redsync.ReleaseEvent) {}
func (t *tally) OnLost(context.Context, redsync.LostEvent) {
	select {
	case t.lost <- struct{}{}:
	default: // nil, or a loss already signalled
	}
}

// acquireEvents returns a copy of the AcquireEvents told so far.
func (t *tally) acquireEvents() []redsync.AcquireEvent {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.acquires)
}

// nodeResults counts the node results of e's tries, all of them or those
// with the given outcomes.
func nodeResults(e redsync.AcquireEvent, outcomes ...redsync.NodeOutcome) int {
	n := 0
	for _, try := range e.Tries {
		for _, r := range try.Nodes {
			if len(outcomes) == 0 || slices.Contains(outcomes, r.Outcome) {
				n++
			}
		}
	}
	return n
}

// TestObserverOnServers checks the metrics and spans of real locks. How
// many tries a Lock takes depends on the machine's load (a try whose
// node misses its per-node timeout is tried again), so the counts are
// checked against the events the library reported, and against the least
// the calls make; outcomes are checked exactly. The holder and the Lock
// that must find it on every node have a per-node timeout of seconds.
func TestObserverOnServers(t *testing.T) {
	servers, pools := nodes(t, 3)
	r := newRecorder(t)
	// MultiObserver calls events after r.obs: once events saw a loss,
	// the OpenTelemetry observer has recorded it.
	events := &tally{lost: make(chan struct{}, 1)}
	rs := redsync.New(pools...)
	rs.SetObserver(redsync.MultiObserver(r.obs, events))
	const timeoutFactor = 0.5 // a per-node timeout of 4 s with the default expiry

	m := rs.NewMutex("real", redsync.WithTimeoutFactor(timeoutFactor))
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil", err)
	}
	if ok, err := m.Extend(); !ok {
		t.Fatalf("Extend() = %v, %v, want true", ok, err)
	}
	// Without release notification: a waiter's subscriptions, once
	// confirmed, may wake it for an extra try (a release during the
	// set-up may have gone unheard), which Attempts counts.
	other := rs.NewMutex("real", redsync.WithTries(2), redsync.WithRetryDelay(time.Millisecond), redsync.WithTimeoutFactor(timeoutFactor),
		redsync.WithReleaseNotification(false))
	var taken *redsync.ErrTaken
	if err := other.Lock(); !errors.Is(err, redsync.ErrFailed) || !errors.As(err, &taken) {
		t.Fatalf("Lock() of a held lock = %v, want ErrFailed and *ErrTaken", err)
	}
	if ok, err := m.Unlock(); !ok {
		t.Fatalf("Unlock() = %v, %v, want true", ok, err)
	}

	// A loss: the key deleted on 2 of 3 nodes under an auto-extended lock.
	lost := rs.NewMutex("lost", redsync.WithAutoExtend(50*time.Millisecond))
	if err := lost.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil", err)
	}
	ctx := lost.Context()
	for _, s := range servers[:2] {
		s.MustDo(t, "DEL", "lost")
	}
	select {
	case <-ctx.Done():
	case <-time.After(redsync.DefaultExpiry):
		t.Fatalf("the lock deleted on 2 of 3 nodes was not lost within its expiry of %v", redsync.DefaultExpiry)
	}
	// The context ends first, then the observers hear of the loss (on
	// the extender's goroutine): wait for them before reading metrics.
	select {
	case <-events.lost:
	case <-time.After(redsync.DefaultExpiry):
		t.Fatalf("no OnLost within %v of the context's end", redsync.DefaultExpiry)
	}
	lost.Unlock()

	acquires := events.acquireEvents()
	if len(acquires) != 3 {
		t.Fatalf("%d AcquireEvents, want 3 (one per Lock call)", len(acquires))
	}
	var attempts int64
	var takenNodes int
	for _, e := range acquires {
		attempts += int64(e.Attempts)
		takenNodes += nodeResults(e, redsync.NodeTaken)
	}
	if otherEvent := acquires[1]; otherEvent.Attempts != 2 || nodeResults(otherEvent, redsync.NodeTaken) != 6 {
		t.Errorf("the failed Lock's AcquireEvent: %d attempts, %d nodes taken; want 2, 6 (2 tries on 3 nodes, each answering within %v)",
			otherEvent.Attempts, nodeResults(otherEvent, redsync.NodeTaken), time.Duration(timeoutFactor*float64(redsync.DefaultExpiry)))
	}

	mt := r.metrics(t)
	if got := sum(t, mt["redsync.lock.acquire.attempts"]); got != attempts || got < 4 {
		t.Errorf("redsync.lock.acquire.attempts = %d, want the events' %d, at least 4 (1 + 2 + 1)", got, attempts)
	}
	if n, _ := hist(t, mt["redsync.lock.acquire.duration"], attribute.String("redsync.lock.outcome", "taken")); n != 1 {
		t.Errorf("redsync.lock.acquire.duration{outcome=taken} has %d points, want 1", n)
	}
	if n, _ := hist(t, mt["redsync.lock.acquire.duration"], attribute.String("redsync.lock.outcome", "acquired")); n != 2 {
		t.Errorf("redsync.lock.acquire.duration{outcome=acquired} has %d points, want 2", n)
	}
	if got := sum(t, mt["redsync.lock.losses"]); got != 1 {
		t.Errorf("redsync.lock.losses = %d, want 1", got)
	}
	if n, s := hist(t, mt["redsync.lock.held.duration"], attribute.String("redsync.lock.end", "released")); n != 2 || s <= 0 {
		t.Errorf("redsync.lock.held.duration{end=released} = %d points, sum %v; want 2 (m and the lost lock's Unlock), > 0", n, s)
	}
	if failed := sum(t, mt["redsync.lock.extensions"], attribute.String("redsync.lock.outcome", "failed")); failed < 1 {
		t.Errorf("redsync.lock.extensions{outcome=failed} = %d, want >= 1", failed)
	}
	if n, _ := hist(t, mt["redsync.node.duration"], attribute.String("redsync.operation", "acquire"), attribute.String("redsync.node.outcome", "taken")); int(n) != takenNodes || n < 6 {
		t.Errorf("redsync.node.duration{acquire, taken} has %d points, want the events' %d, at least 6 (2 tries on 3 nodes)", n, takenNodes)
	}

	var spans []sdktrace.ReadOnlySpan
	for _, s := range r.spans.Ended() {
		if s.Name() == "redsync.acquire" {
			spans = append(spans, s)
		}
	}
	if len(spans) != 3 {
		t.Fatalf("%d acquire spans, want 3", len(spans))
	}
	first := spans[0]
	var nodeEvents int
	for _, e := range first.Events() {
		if e.Name == "redsync.node" {
			nodeEvents++
			if e.Time.Before(first.StartTime()) || e.Time.After(first.EndTime()) {
				t.Errorf("node event at %v outside the span (%v to %v)", e.Time, first.StartTime(), first.EndTime())
			}
		}
	}
	if want := nodeResults(acquires[0]); nodeEvents != want || want < 3 || !first.EndTime().After(first.StartTime()) {
		t.Errorf("acquire span: %d node events, from %v to %v; want the event's %d (3 a try) and a positive duration", nodeEvents, first.StartTime(), first.EndTime(), want)
	}
}
