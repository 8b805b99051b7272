// Package otel reports the locks of github.com/go-redlock/redsync as
// OpenTelemetry metrics and spans: an [Observer] to set on a Redsync
// ([redsync.Redsync.SetObserver]) or a Mutex ([redsync.WithObserver]).
//
// The package is a module of its own, so that programs that do not use
// OpenTelemetry do not download it. Its name clashes with the OpenTelemetry
// API's; import it under another:
//
//	import redsyncotel "github.com/go-redlock/redsync/otel"
//
// # Metrics
//
// Durations are in seconds. Every instrument carries the attribute
// redsync.lock.name only with [WithLockNames]: lock names may be unbounded
// (one per user, say), and each name makes a time series of its own.
//
//	redsync.lock.acquire.attempts   counter    tries sent to the nodes by Lock calls
//	redsync.lock.acquire.duration   histogram  Lock calls; redsync.lock.outcome = acquired, taken, failed or canceled
//	redsync.lock.acquire.validity   histogram  validity left when an acquiring Lock returned
//	redsync.lock.extensions         counter    extensions; redsync.lock.outcome = extended or failed
//	redsync.lock.held.duration      histogram  from acquisition to release or loss; redsync.lock.end = released or lost
//	redsync.lock.losses             counter    acquisitions lost (see [redsync.Observer].OnLost)
//	redsync.node.duration           histogram  commands on one node; redsync.node, redsync.operation, redsync.node.outcome
//	redsync.node.failures           counter    commands on one node that failed; redsync.node, redsync.operation
//
// redsync.node is the index of the node in the pools given to
// redsync.New; redsync.operation is acquire, extend or release;
// redsync.node.outcome is ok, taken, missing or failed.
//
// # Spans
//
// Each Lock call makes a span "redsync.acquire", each Extend a span
// "redsync.extend" and each Unlock a span "redsync.release", children of
// the span in the context of the call (for Lock, Unlock and Extend, which
// take no context, and for automatic extensions: root spans). They start
// and end when the call did, carry redsync.lock.name (never the lock's
// value, which proves ownership) and the status Error with the call's
// error, and have one event "redsync.node" per node's reply, at the time
// of the reply, with redsync.node, redsync.node.outcome and, for a
// failure, error.message. An acquire span also has one event
// "redsync.try" at the start of each try (redsync.try is its number),
// and the attributes redsync.lock.attempts, redsync.lock.wait,
// redsync.lock.validity and, with fencing, redsync.lock.fencing_token.
// A loss makes no span: it has no caller.
package otel

import (
	"context"
	"errors"
	"math"
	"time"

	global "go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/go-redlock/redsync"
)

var _ redsync.Observer = (*Observer)(nil)

// ScopeName is the instrumentation scope of the meter and the tracer.
const ScopeName = "github.com/go-redlock/redsync/otel"

// Attribute keys.
const (
	keyName     = attribute.Key("redsync.lock.name")
	keyOutcome  = attribute.Key("redsync.lock.outcome")
	keyEnd      = attribute.Key("redsync.lock.end")
	keyAttempts = attribute.Key("redsync.lock.attempts")
	keyWait     = attribute.Key("redsync.lock.wait")
	keyValidity = attribute.Key("redsync.lock.validity")
	keyToken    = attribute.Key("redsync.lock.fencing_token")
	keyHeld     = attribute.Key("redsync.lock.held")
	keyTry      = attribute.Key("redsync.try")
	keyNode     = attribute.Key("redsync.node")
	keyNodeOut  = attribute.Key("redsync.node.outcome")
	keyOp       = attribute.Key("redsync.operation")
	keyError    = attribute.Key("error.message")
)

// An Option configures NewObserver.
type Option interface {
	apply(*config)
}

type config struct {
	meters    metric.MeterProvider
	tracers   trace.TracerProvider
	lockNames bool
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithMeterProvider sets the MeterProvider of the metrics. The default is
// the global one (go.opentelemetry.io/otel.GetMeterProvider).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) { c.meters = mp })
}

// WithTracerProvider sets the TracerProvider of the spans. The default is
// the global one (go.opentelemetry.io/otel.GetTracerProvider).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c *config) { c.tracers = tp })
}

// WithLockNames adds the attribute redsync.lock.name to every metric.
// Use it when the lock names are few. Spans always carry it. The default
// is off.
func WithLockNames() Option {
	return optionFunc(func(c *config) { c.lockNames = true })
}

// An Observer turns the events of redsync into metrics and spans. Make one
// with NewObserver; it is safe for concurrent use.
type Observer struct {
	tracer    trace.Tracer
	lockNames bool

	attempts   metric.Int64Counter
	acquire    metric.Float64Histogram
	validity   metric.Float64Histogram
	extensions metric.Int64Counter
	held       metric.Float64Histogram
	losses     metric.Int64Counter
	nodeTime   metric.Float64Histogram
	nodeFails  metric.Int64Counter
}

// Bucket boundaries, in seconds.
var (
	callBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
	heldBuckets = []float64{0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 600, 1800, 3600, 14400}
)

// NewObserver returns an Observer that records to the providers of opts.
// It fails only when an instrument cannot be made.
func NewObserver(opts ...Option) (*Observer, error) {
	var c config
	for _, o := range opts {
		o.apply(&c)
	}
	if c.meters == nil {
		c.meters = global.GetMeterProvider()
	}
	if c.tracers == nil {
		c.tracers = global.GetTracerProvider()
	}
	meter := c.meters.Meter(ScopeName)
	o := &Observer{tracer: c.tracers.Tracer(ScopeName), lockNames: c.lockNames}
	var errs []error
	counter := func(name, unit, desc string) metric.Int64Counter {
		i, err := meter.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return i
	}
	histogram := func(name, desc string, buckets []float64) metric.Float64Histogram {
		i, err := meter.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc), metric.WithExplicitBucketBoundaries(buckets...))
		errs = append(errs, err)
		return i
	}
	o.attempts = counter("redsync.lock.acquire.attempts", "{attempt}", "Tries sent to the nodes to acquire a lock.")
	o.acquire = histogram("redsync.lock.acquire.duration", "Duration of Lock calls.", callBuckets)
	o.validity = histogram("redsync.lock.acquire.validity", "Validity left when an acquiring Lock returned.", callBuckets)
	o.extensions = counter("redsync.lock.extensions", "{extension}", "Extensions of locks.")
	o.held = histogram("redsync.lock.held.duration", "Time from the acquisition of a lock to its release or loss.", heldBuckets)
	o.losses = counter("redsync.lock.losses", "{loss}", "Locks lost while held.")
	o.nodeTime = histogram("redsync.node.duration", "Duration of a lock command on one node.", callBuckets)
	o.nodeFails = counter("redsync.node.failures", "{failure}", "Lock commands that failed on one node.")
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return o, nil
}

// metricAttrs returns the attributes of a metric of lock name, with more.
func (o *Observer) metricAttrs(name string, more ...attribute.KeyValue) metric.MeasurementOption {
	if o.lockNames {
		more = append(more, keyName.String(name))
	}
	return metric.WithAttributes(more...)
}

// acquireOutcome classifies the error of a Lock call.
func acquireOutcome(err error) string {
	var taken *redsync.ErrTaken
	switch {
	case err == nil:
		return "acquired"
	case errors.As(err, &taken):
		return "taken"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	}
	return "failed"
}

// OnAcquire records a Lock call.
func (o *Observer) OnAcquire(ctx context.Context, e redsync.AcquireEvent) {
	outcome := acquireOutcome(e.Err)
	o.attempts.Add(ctx, int64(e.Attempts), o.metricAttrs(e.Name))
	o.acquire.Record(ctx, e.Duration.Seconds(), o.metricAttrs(e.Name, keyOutcome.String(outcome)))
	if e.Err == nil {
		o.validity.Record(ctx, e.Validity.Seconds(), o.metricAttrs(e.Name))
	}

	attrs := []attribute.KeyValue{
		keyName.String(e.Name),
		keyOutcome.String(outcome),
		keyAttempts.Int(e.Attempts),
		keyWait.Float64(e.Wait.Seconds()),
	}
	if e.Err == nil {
		attrs = append(attrs, keyValidity.Float64(e.Validity.Seconds()))
		if e.FencingToken != 0 && e.FencingToken <= math.MaxInt64 {
			attrs = append(attrs, keyToken.Int64(int64(e.FencingToken)))
		}
	}
	_, span := o.tracer.Start(ctx, "redsync.acquire", trace.WithTimestamp(e.Start), trace.WithAttributes(attrs...))
	first := e.Attempts - len(e.Tries) + 1 // Tries may hold only the last ones
	for i, try := range e.Tries {
		span.AddEvent("redsync.try", trace.WithTimestamp(try.Start), trace.WithAttributes(keyTry.Int(first+i)))
		o.nodes(ctx, span, e.Name, "acquire", try.Start, try.Nodes)
	}
	o.end(span, e.Start.Add(e.Duration), e.Err)
}

// OnExtend records an extension.
func (o *Observer) OnExtend(ctx context.Context, e redsync.ExtendEvent) {
	outcome := "extended"
	if e.Err != nil {
		outcome = "failed"
	}
	o.extensions.Add(ctx, 1, o.metricAttrs(e.Name, keyOutcome.String(outcome)))
	attrs := []attribute.KeyValue{keyName.String(e.Name), keyOutcome.String(outcome)}
	if e.Err == nil {
		attrs = append(attrs, keyValidity.Float64(e.Validity.Seconds()))
	}
	_, span := o.tracer.Start(ctx, "redsync.extend", trace.WithTimestamp(e.Start), trace.WithAttributes(attrs...))
	o.nodes(ctx, span, e.Name, "extend", e.Start, e.Nodes)
	o.end(span, e.Start.Add(e.Duration), e.Err)
}

// OnRelease records an Unlock.
func (o *Observer) OnRelease(ctx context.Context, e redsync.ReleaseEvent) {
	outcome := "released"
	if e.Err != nil {
		outcome = "failed"
	}
	if e.Held > 0 {
		o.held.Record(ctx, e.Held.Seconds(), o.metricAttrs(e.Name, keyEnd.String("released")))
	}
	attrs := []attribute.KeyValue{keyName.String(e.Name), keyOutcome.String(outcome), keyHeld.Float64(e.Held.Seconds())}
	_, span := o.tracer.Start(ctx, "redsync.release", trace.WithTimestamp(e.Start), trace.WithAttributes(attrs...))
	o.nodes(ctx, span, e.Name, "release", e.Start, e.Nodes)
	o.end(span, e.Start.Add(e.Duration), e.Err)
}

// OnLost records a loss.
func (o *Observer) OnLost(ctx context.Context, e redsync.LostEvent) {
	o.losses.Add(ctx, 1, o.metricAttrs(e.Name))
	if e.Held > 0 {
		o.held.Record(ctx, e.Held.Seconds(), o.metricAttrs(e.Name, keyEnd.String("lost")))
	}
}

// nodes records the results of one round on the nodes, which started at
// start: metrics, and events of span.
func (o *Observer) nodes(ctx context.Context, span trace.Span, name, op string, start time.Time, nodes []redsync.NodeResult) {
	for _, r := range nodes {
		node, outcome := keyNode.Int(r.Node), keyNodeOut.String(r.Outcome.String())
		o.nodeTime.Record(ctx, r.Latency.Seconds(), o.metricAttrs(name, node, keyOp.String(op), outcome))
		if r.Outcome == redsync.NodeFailed {
			o.nodeFails.Add(ctx, 1, o.metricAttrs(name, node, keyOp.String(op)))
		}
		if !span.IsRecording() {
			continue
		}
		attrs := []attribute.KeyValue{node, outcome}
		if r.Err != nil {
			attrs = append(attrs, keyError.String(r.Err.Error()))
		}
		span.AddEvent("redsync.node", trace.WithTimestamp(start.Add(r.Latency)), trace.WithAttributes(attrs...))
	}
}

// end ends span at end, with the status of err.
func (o *Observer) end(span trace.Span, end time.Time, err error) {
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End(trace.WithTimestamp(end))
}
