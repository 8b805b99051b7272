package redsync

import (
	"cmp"
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"time"
)

// An Observer is told what the mutexes it is set on do: every Lock call
// (with its tries and the result of each node), every extension, release
// and loss. Set it with [WithObserver] on one Mutex, or with
// [Redsync.SetObserver] for every Mutex of a Redsync. [SlogObserver] logs
// the events; the module github.com/go-redlock/redsync/otel turns them into
// OpenTelemetry metrics and spans.
//
// The methods are called synchronously: OnAcquire on the goroutine that
// called Lock (or LockContext, TryLock, TryLockContext, Do) before that
// returns, OnRelease and OnExtend likewise for Unlock and Extend, and
// OnExtend for an automatic extension (see [WithAutoExtend]) and OnLost on
// the goroutine of the Mutex that extends or times the acquisition. So an
// Observer must be safe for concurrent use, and should return quickly: the
// caller, or the next automatic extension, waits for it. No lock of the
// Mutex is held during a call, so an Observer may call the Mutex's methods.
//
// ctx is the context passed to the call observed (context.Background() for
// Lock, Unlock and Extend, which take none); for automatic extensions and
// losses, which no caller's call runs, it is context.Background(). The
// events and their slices belong to the Observer, which may keep them.
//
// Without an Observer, nothing is measured: no clock is read and nothing
// is allocated for observation.
//
// Later versions may add methods to Observer (for primitives other than
// Mutex) and fields to its events. An implementation that embeds
// [BaseObserver] keeps compiling then, and ignores the new events until it
// overrides their methods.
type Observer interface {
	// OnAcquire reports a Lock call, successful or not.
	OnAcquire(ctx context.Context, e AcquireEvent)
	// OnExtend reports an extension, by Extend or automatic.
	OnExtend(ctx context.Context, e ExtendEvent)
	// OnRelease reports an Unlock (also the one at the end of Do).
	OnRelease(ctx context.Context, e ReleaseEvent)
	// OnLost reports an acquisition that can no longer be guaranteed: the
	// context of [Mutex.Context] ended with a cause matching [ErrLockLost].
	// It is called only for acquisitions whose lease is followed: with
	// [WithAutoExtend] (and so within [Redsync.Do]) or after a call of
	// Mutex.Context.
	OnLost(ctx context.Context, e LostEvent)
}

// BaseObserver is an Observer that ignores every event. Embed it in an
// Observer that needs only some of the methods, or that must keep
// compiling when methods are added to Observer.
type BaseObserver struct{}

// OnAcquire does nothing.
func (BaseObserver) OnAcquire(context.Context, AcquireEvent) {}

// OnExtend does nothing.
func (BaseObserver) OnExtend(context.Context, ExtendEvent) {}

// OnRelease does nothing.
func (BaseObserver) OnRelease(context.Context, ReleaseEvent) {}

// OnLost does nothing.
func (BaseObserver) OnLost(context.Context, LostEvent) {}

// NodeOutcome is what one node did with one command.
type NodeOutcome uint8

// Outcomes of a command on a node.
const (
	// NodeOK: the node acquired, extended or released the lock.
	NodeOK NodeOutcome = iota + 1
	// NodeTaken: another owner holds the lock on the node.
	NodeTaken
	// NodeMissing: the lock key does not exist on the node (an Extend or
	// Unlock of a lock that expired or was deleted there).
	NodeMissing
	// NodeFailed: the node gave no valid reply in time: a connection
	// error, the per-node timeout, or an error reply (see NodeResult.Err).
	NodeFailed
)

// String returns "ok", "taken", "missing" or "failed".
func (o NodeOutcome) String() string {
	switch o {
	case NodeOK:
		return "ok"
	case NodeTaken:
		return "taken"
	case NodeMissing:
		return "missing"
	case NodeFailed:
		return "failed"
	}
	return "NodeOutcome(" + strconv.Itoa(int(o)) + ")"
}

// NodeResult is the result of one command on one node.
type NodeResult struct {
	// Node is the index of the node in the pools of the Mutex: the order
	// given to New (unless WithShufflePools reordered them), as in
	// [RedisError] and [ErrNodeTaken].
	Node    int
	Outcome NodeOutcome
	// Latency is the time from the start of the command round until the
	// node's reply reached the caller, or until the timeout for a node
	// that did not answer in time.
	Latency time.Duration
	// Err is what failed, when Outcome is NodeFailed; errors.Is matches it
	// against [ErrWrongType] and [ErrNodeRestarted] as for [RedisError].
	Err error
}

// String returns the node's index, outcome and latency, and its error if
// any: "#1 failed 400ms: dial tcp ...".
func (r NodeResult) String() string {
	s := "#" + strconv.Itoa(r.Node) + " " + r.Outcome.String() + " " + r.Latency.String()
	if r.Err != nil {
		s += ": " + r.Err.Error()
	}
	return s
}

// maxObservedTries bounds [AcquireEvent.Tries]: a Lock that waits for a
// long time makes many tries, and an observer needs the last ones.
const maxObservedTries = 32

// A Try is one try of a Lock call: the acquire script sent to every node.
type Try struct {
	Start    time.Time
	Duration time.Duration // until the outcome was known (with WithFencing, including the fencing round)
	// Nodes holds the result of the acquire script on each node, in the
	// order of the replies. With WithFailFast, nodes whose reply was not
	// awaited are missing.
	Nodes []NodeResult
	Err   error // nil for the try that acquired the lock
}

// AcquireEvent reports a Lock call (Lock, LockContext, TryLock,
// TryLockContext, or the Lock of [Redsync.Do]).
type AcquireEvent struct {
	Name     string
	Value    string        // the value of the acquisition; empty when Err is not nil
	Start    time.Time     // when Lock was called
	Duration time.Duration // how long Lock took
	// Wait is the time from Start to the start of the last try: how long
	// the call waited for the lock.
	Wait time.Duration
	// Attempts counts the tries sent to the nodes. A try that the Mutex
	// did not send, because other Lock calls of the same Redsync were
	// waiting ahead (see WithReleaseNotification), is not counted. Tries
	// brought forward by release announcements are counted here, though
	// not toward WithTries, so Attempts may exceed it.
	Attempts int
	// Tries holds the last tries sent, oldest first: all of them, unless
	// there were more than 32. When HandedOver, the last Try is the round
	// of the hand-off (sent by the holder, not counted in Attempts).
	Tries []Try
	// HandedOver is set when the lock was handed to this call by an Unlock
	// of another Mutex of the same Redsync, without a try of its own (see
	// WithReleaseNotification).
	HandedOver bool
	// Validity is, on success, the validity left when Lock returned: the
	// time from then to Until, during which no other client can hold the
	// lock.
	Validity     time.Duration
	Until        time.Time
	FencingToken uint64 // with WithFencing, the token of the acquisition
	Err          error  // the error of Lock; nil when the lock was acquired
}

// ExtendEvent reports an extension: a call of Extend or ExtendContext, or
// one try of an automatic extension.
type ExtendEvent struct {
	Name     string
	Value    string
	Start    time.Time
	Duration time.Duration
	Nodes    []NodeResult  // the result of the extend script on each node, in the order of the replies
	Until    time.Time     // on success, the new end of the validity
	Validity time.Duration // on success, the validity left when the extension returned
	Err      error         // the error of Extend; nil when the lock was extended
}

// ReleaseEvent reports a call of Unlock or UnlockContext.
type ReleaseEvent struct {
	Name     string
	Value    string
	Start    time.Time
	Duration time.Duration
	// Held is the time from the start of the try that acquired the lock to
	// the start of the release; 0 when the acquisition was not made by
	// this Mutex (WithValue).
	Held  time.Duration
	Nodes []NodeResult // the result of the release script on each node, in the order of the replies
	Err   error        // nil when a quorum released the lock
	// HandedOver is set when the lock went straight to a waiting Lock call
	// of the same Redsync instead of being released (see
	// WithReleaseNotification); Nodes is then the result of the hand-off,
	// NodeOK where the lock was this Mutex's.
	HandedOver bool
}

// LostEvent reports an acquisition that can no longer be guaranteed.
type LostEvent struct {
	Name  string
	Value string
	// Held is the time from the start of the try that acquired the lock to
	// the loss.
	Held time.Duration
	// Err is the cause with which Mutex.Context ended; it matches
	// [ErrLockLost] and says why: the validity ran out, an extension failed
	// (wrapping its error), or the hold time of WithMaxHold is over.
	Err error
}

// WithObserver sets the Observer told of this Mutex's acquisitions,
// extensions, releases and losses; nil means none, also when the Redsync
// has one (see [Redsync.SetObserver]). The default is the Redsync's
// observer, which is none unless set.
func WithObserver(o Observer) Option {
	return setting(func(c *config) {
		c.observer = o
	})
}

// SetObserver sets the default Observer of the mutexes that NewMutex and
// Do make from now on; [WithObserver] overrides it for one Mutex. Mutexes
// made before keep theirs. nil removes the default. SetObserver may be
// called while other goroutines use the Redsync.
func (r *Redsync) SetObserver(o Observer) {
	if o == nil {
		r.observer.Store(nil)
		return
	}
	r.observer.Store(&observerRef{o})
}

// observerRef holds the default Observer of a Redsync.
type observerRef struct {
	o Observer
}

// defaultObserver returns the Observer set by SetObserver, or nil.
func (r *Redsync) defaultObserver() Observer {
	if ref := r.observer.Load(); ref != nil {
		return ref.o
	}
	return nil
}

// MultiObserver returns an Observer that passes every event to each of
// observers in turn, skipping nil ones.
func MultiObserver(observers ...Observer) Observer {
	var m multiObserver
	for _, o := range observers {
		if o != nil {
			m = append(m, o)
		}
	}
	return m
}

type multiObserver []Observer

func (m multiObserver) OnAcquire(ctx context.Context, e AcquireEvent) {
	for _, o := range m {
		o.OnAcquire(ctx, e)
	}
}

func (m multiObserver) OnExtend(ctx context.Context, e ExtendEvent) {
	for _, o := range m {
		o.OnExtend(ctx, e)
	}
}

func (m multiObserver) OnRelease(ctx context.Context, e ReleaseEvent) {
	for _, o := range m {
		o.OnRelease(ctx, e)
	}
}

func (m multiObserver) OnLost(ctx context.Context, e LostEvent) {
	for _, o := range m {
		o.OnLost(ctx, e)
	}
}

// The core records what an observer is told only when the Mutex has an
// observer: the entry points below take the plain path otherwise, and the
// records are nil there. A nil *acquireRecord or *nodeTrace records
// nothing.

// nodeTrace collects the results of the nodes in one round of commands.
// broadcast adds to it on the caller's goroutine as the results come in
// (the nodes' goroutines never touch it).
type nodeTrace struct {
	nodes      []NodeResult
	handedOver bool // an Unlock handed the lock over (transfer.go)
	// tookOver is the outcome recorded for replyTookOver; 0 for NodeOK.
	tookOver NodeOutcome
}

// add records the outcome of one node of a round that started at start.
// It is small enough to be inlined, so that without a trace it costs a
// comparison.
func (tr *nodeTrace) add(res nodeResult, start time.Time) {
	if tr != nil {
		tr.record(res, start)
	}
}

func (tr *nodeTrace) record(res nodeResult, start time.Time) {
	r := NodeResult{Node: res.node, Latency: time.Since(start)}
	switch {
	case res.err != nil:
		r.Outcome = NodeFailed
		r.Err, _ = classifyReplyError(res.err)
	case res.reply == replyDone:
		r.Outcome = NodeOK
	case res.reply == replyTookOver:
		r.Outcome = cmp.Or(tr.tookOver, NodeOK)
	case res.reply == replyMissing:
		r.Outcome = NodeMissing
	default:
		r.Outcome = NodeTaken
	}
	tr.nodes = append(tr.nodes, r)
}

// acquireRecord collects the tries of one observed Lock call.
type acquireRecord struct {
	attempts   int
	tries      []Try
	cur        nodeTrace
	curStart   time.Time
	handedOver bool // the lock was handed over (transfer.go)
}

// try starts recording a try and returns the trace of its acquire round.
func (rec *acquireRecord) try() *nodeTrace {
	if rec == nil {
		return nil
	}
	rec.attempts++
	rec.cur = nodeTrace{}
	rec.curStart = time.Now()
	return &rec.cur
}

// tried ends the try started last, which failed with err (or succeeded).
func (rec *acquireRecord) tried(err error) {
	if rec != nil {
		rec.record(err)
	}
}

func (rec *acquireRecord) record(err error) {
	if rec.curStart.IsZero() {
		return
	}
	if len(rec.tries) == maxObservedTries {
		rec.tries = append(rec.tries[:0], rec.tries[1:]...)
	}
	rec.tries = append(rec.tries, Try{Start: rec.curStart, Duration: time.Since(rec.curStart), Nodes: rec.cur.nodes, Err: err})
	rec.curStart = time.Time{}
}

// acquisitionStart is the start of the current acquisition, for the Held
// of the observer's events. Guarded by the Mutex's mu.
type acquisitionStart struct {
	value string
	start time.Time
}

// held returns how long the acquisition of value has been held at now, or
// 0 when this Mutex did not make it.
func (m *Mutex) held(value string, now time.Time) time.Duration {
	m.mu.Lock()
	h := m.heldSince
	m.mu.Unlock()
	if h.value != value || h.start.IsZero() {
		return 0
	}
	return now.Sub(h.start)
}

// lock is Lock with tries tries, observed when the Mutex has an observer.
func (m *Mutex) lock(ctx context.Context, tries int) error {
	if m.observer != nil {
		return m.lockObserved(ctx, tries)
	}
	return m.lockContext(ctx, tries, nil)
}

// lockObserved is lock for a Mutex with an observer.
func (m *Mutex) lockObserved(ctx context.Context, tries int) error {
	if ctx == nil {
		ctx = context.Background()
	}
	start := time.Now()
	rec := &acquireRecord{}
	err := m.lockContext(ctx, tries, rec)
	end := time.Now()
	e := AcquireEvent{Name: m.name, Start: start, Duration: end.Sub(start), Attempts: rec.attempts, Tries: rec.tries, HandedOver: rec.handedOver, Err: err}
	if len(rec.tries) > 0 {
		last := rec.tries[len(rec.tries)-1]
		e.Wait = last.Start.Sub(start)
		if err == nil {
			m.mu.Lock()
			e.Value, e.Until = m.acq.value, m.acq.until
			if m.acq.calls != nil {
				e.FencingToken = m.acq.calls.token
			}
			m.heldSince = acquisitionStart{value: m.acq.value, start: last.Start}
			m.mu.Unlock()
			e.Validity = e.Until.Sub(m.now())
		}
	}
	m.observer.OnAcquire(ctx, e)
	return err
}

// extendObserved is ExtendContext for a Mutex with an observer.
func (m *Mutex) extendObserved(ctx context.Context) (bool, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	value := m.Value()
	start := time.Now()
	var tr nodeTrace
	ok, err := m.extend(ctx, &tr)
	e := ExtendEvent{Name: m.name, Value: value, Start: start, Duration: time.Since(start), Nodes: tr.nodes, Err: err}
	if ok {
		e.Until = m.Until()
		e.Validity = e.Until.Sub(m.now())
	} else if err == nil {
		e.Err = ErrExtendFailed
	}
	m.observer.OnExtend(ctx, e)
	return ok, err
}

// unlockObserved is UnlockContext for a Mutex with an observer.
func (m *Mutex) unlockObserved(ctx context.Context) (bool, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	value := m.Value()
	start := time.Now()
	held := m.held(value, start)
	var tr nodeTrace
	ok, err := m.unlock(ctx, &tr)
	e := ReleaseEvent{Name: m.name, Value: value, Start: start, Duration: time.Since(start), Held: held, Nodes: tr.nodes, HandedOver: tr.handedOver, Err: err}
	if !ok && err == nil {
		e.Err = errors.New("redsync: lock not released by a quorum")
	}
	m.observer.OnRelease(ctx, e)
	return ok, err
}

// observeLost tells the observer that the acquisition of value was lost
// with cause. The caller holds no lock.
func (m *Mutex) observeLost(value string, cause error) {
	if m.observer == nil {
		return
	}
	e := LostEvent{Name: m.name, Value: value, Held: m.held(value, time.Now()), Err: cause}
	m.observer.OnLost(context.Background(), e)
}

// observerSlot holds the default Observer of a Redsync (see SetObserver).
type observerSlot = atomic.Pointer[observerRef]
