package redsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"
)

// A lease follows one acquisition of a Mutex from a successful Lock to
// Unlock, loss or the next acquisition: its context, the timer that ends
// the context when the validity runs out (or the hold time set by
// WithMaxHold is over), and, with WithAutoExtend, the goroutine that
// extends the lock.
//
// The acquisition makes its lease when it has WithAutoExtend (which follows
// it at once: context, timer and extender) or WithMaxHold (whose limit
// counts from the acquisition); otherwise the first call of Mutex.Context
// makes it. Without WithAutoExtend, the first Context call follows it.
// An ended lease stays the Mutex's lease until the next acquisition, so
// that Context keeps returning its ended context. The fields are guarded
// by the Mutex's mu.
type lease struct {
	m      *Mutex
	value  string    // the acquisition's value
	until  time.Time // validity end, as Mutex.until
	limit  time.Time // end of the hold time (WithMaxHold); zero when unbounded
	ended  bool
	ext    *extender    // nil without WithAutoExtend; set before the lease is shared
	ctx    *heldContext // nil until followed; ends with Unlock or loss
	cancel context.CancelCauseFunc
	timer  *time.Timer // runs expire at the deadline; nil until followed
}

// heldContext is the context of a lease. Done, Err, Value and the cause
// come from the embedded cancel-cause context; Deadline is the end of the
// validity, which moves forward with each successful extension.
type heldContext struct {
	context.Context
	l *lease
}

// String returns what the context is, never the lock's value.
func (c *heldContext) String() string {
	return c.l.m.String() + ".Context"
}

// Format prints String for every verb (see Mutex.Format).
func (c *heldContext) Format(f fmt.State, _ rune) {
	_, _ = io.WriteString(f, c.String())
}

// Deadline returns when the lock's validity ends (or the hold time, when
// that comes first); it moves forward with each successful extension.
func (c *heldContext) Deadline() (time.Time, bool) {
	c.l.m.mu.Lock()
	defer c.l.m.mu.Unlock()
	return c.l.deadline(), true
}

// deadline is the earlier of the validity end and the hold limit. The
// caller holds m.mu.
func (l *lease) deadline() time.Time {
	if !l.limit.IsZero() && l.limit.Before(l.until) {
		return l.limit
	}
	return l.until
}

// Context returns a context that lasts as long as the current acquisition
// is guaranteed. It ends when Unlock is called (Err and the cause are then
// context.Canceled), or, with a cause matching [ErrLockLost], when the
// validity runs out, an automatic extension fails (see [WithAutoExtend]),
// or the hold time set by [WithMaxHold] is over. Its Deadline is the end of
// the validity (or of the hold time, when earlier) and moves forward with
// each successful extension, manual or automatic. Pass it to the work that
// the lock protects:
//
//	if err := m.Lock(); err != nil { ... }
//	defer m.Unlock()
//	err := work(m.Context()) // stops when the lock is lost
//
// Every call during one acquisition returns the same context, also after
// the loss: a later call does not renew it. The next Lock starts a new
// one. A context asked for once the acquisition can no longer be
// guaranteed (its validity or hold time is over) has already ended when
// Context returns. On a Mutex that holds no acquisition (Lock never
// succeeded, or Unlock was called) Context returns a context that has
// already ended, with a cause matching ErrLockLost (and [ErrNotLocked]
// when there was no acquisition at all). Without WithAutoExtend, Context
// starts no goroutine, only a timer.
func (m *Mutex) Context() context.Context {
	if m.configErr != nil {
		return endedContext(m, &lostError{reason: "no acquisition", err: m.configErr})
	}
	m.mu.Lock()
	state := acqNone // a Mutex not made by NewMutex has no acquisition
	if m.acq != nil {
		state = m.acq.state
	}
	switch state {
	case acqUnlocked:
		m.mu.Unlock()
		return endedContext(m, &lostError{reason: "the lock was released"})
	case acqNone, acqGiven:
		m.mu.Unlock()
		return endedContext(m, &lostError{reason: "no acquisition", err: ErrNotLocked})
	}
	l := m.lease
	if l == nil || l.value != m.acq.value {
		// No lease yet, or Lock has not yet replaced the previous one:
		// the acquisition was made about now.
		l = m.newLease(m.acq.value, m.now())
	}
	var lost error
	var lapsed func()
	if l.ctx == nil {
		lost = l.follow()
	} else {
		lapsed = l.lapsedLocked(m.now())
	}
	ctx := l.ctx
	m.mu.Unlock()
	if lost != nil {
		m.observeLost(l.value, lost)
	}
	if lapsed != nil {
		lapsed()
	}
	return ctx
}

// endedContext returns a lease context that has already ended with cause.
func endedContext(m *Mutex, cause error) context.Context {
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(cause)
	return &heldContext{Context: ctx, l: &lease{m: m, ended: true}}
}

// newLease makes the lease of the acquisition of value, made at start and
// valid until m.acq.until, and sets it as m.lease. It is not followed yet. The
// caller holds m.mu.
func (m *Mutex) newLease(value string, start time.Time) *lease {
	l := &lease{m: m, value: value, until: m.acq.until}
	if m.maxHold > 0 {
		l.limit = start.Add(m.maxHold)
	}
	m.lease = l
	return l
}

// follow makes the lease's context and its timer. When the deadline has
// passed already, the context is made ended, and follow returns the cause
// for the observer. The caller holds m.mu; cancelling here is safe, since
// nobody has the context yet to register a callback.
func (l *lease) follow() error {
	ctx, cancel := context.WithCancelCause(context.Background())
	l.ctx, l.cancel = &heldContext{Context: ctx, l: l}, cancel
	now := l.m.now()
	left := l.deadline().Sub(now)
	if left <= 0 {
		cause := l.lossCause(now)
		l.endLocked()
		cancel(cause)
		return cause
	}
	l.timer = time.AfterFunc(left, l.expire)
	return nil
}

// lossCause is the cause of the end of a lease whose deadline passed at
// now.
func (l *lease) lossCause(now time.Time) error {
	if !l.limit.IsZero() && !l.limit.After(now) && l.limit.Before(l.until) {
		return &lostError{reason: "the hold time set by WithMaxHold is over"}
	}
	return &lostError{reason: "the validity ran out"}
}

// expire runs when the lease's deadline may have passed. An extension may
// have moved the deadline after the timer was set; then it waits again.
func (l *lease) expire() {
	m := l.m
	m.mu.Lock()
	if l.ended {
		m.mu.Unlock()
		return
	}
	now := m.now()
	end := l.lapsedLocked(now)
	if end == nil {
		l.timer.Reset(l.deadline().Sub(now))
	}
	m.mu.Unlock()
	if end != nil {
		end()
	}
}

// lapsedLocked ends the lease when its deadline is at or before at, and
// returns the function that ends its context and tells the observer, to
// run outside m.mu; otherwise nil. Everything that relies on the lease
// asks it, rather than trusting the timer to have run already. The caller
// holds m.mu.
func (l *lease) lapsedLocked(at time.Time) func() {
	if l.ended || l.deadline().After(at) {
		return nil
	}
	l.endLocked()
	cause := l.lossCause(at)
	return func() {
		if l.cancel != nil {
			l.cancel(cause)
		}
		l.m.observeLost(l.value, cause)
	}
}

// endLocked marks the lease ended and stops its timer and its extender;
// the caller holds m.mu and then cancels the context, if the lease was
// followed (outside the lock, since cancellation runs the context's
// AfterFunc callbacks). The lease stays m.lease: Context returns its
// ended context until the next acquisition.
func (l *lease) endLocked() {
	l.ended = true
	if l.timer != nil {
		l.timer.Stop()
	}
	l.stopExtending()
}

// end ends the lease with cause, a loss (told to the observer), unless it
// has ended already.
func (l *lease) end(cause error) {
	l.m.mu.Lock()
	if l.ended {
		l.m.mu.Unlock()
		return
	}
	l.endLocked()
	l.m.mu.Unlock()
	if l.cancel != nil {
		l.cancel(cause)
	}
	l.m.observeLost(l.value, cause)
}

// extendedTo moves the lease's deadline after a successful extension. The
// caller holds m.mu.
func (l *lease) extendedTo(until time.Time) {
	if l.ended {
		return
	}
	l.until = until
	if l.timer != nil {
		l.timer.Reset(l.deadline().Sub(l.m.now()))
	}
}

// An extender is the goroutine that extends the lock of a lease
// (WithAutoExtend). Stopping it (when the lease ends, or when Do's function
// context ends) prevents every further round and try, and cancels the
// round in flight, except with WithSetNXOnExtend (see released).
type extender struct {
	ctx   context.Context // ends when the extender is stopped
	stop  context.CancelFunc
	round context.Context // parent of each round's context
}

// extenderKey is the context key of an extender's rounds (see
// Mutex.extended).
type extenderKey struct{}

// startExtending starts the lease's extender. The caller holds m.mu, and
// the lease is not shared yet.
func (l *lease) startExtending() {
	e := &extender{}
	e.ctx, e.stop = context.WithCancel(context.Background())
	e.round = e.ctx
	if l.m.setNXOnExtend {
		// A round that sets the key where it is missing is not cut short:
		// written to a node, it may land after a release whatever its
		// context says. Unlock waits for it instead (Mutex.beginCheck).
		e.round = context.Background()
	}
	l.ext = e
	go l.extendLoop(e, l.m.autoExtendInterval())
}

// stopExtending stops the lease's extender, if it has one, without ending
// the lease: the lock then expires at the end of its validity, unless
// extended by hand. It may be called from any goroutine, more than once.
func (l *lease) stopExtending() {
	if l.ext != nil {
		l.ext.stop()
	}
}

// extendLoop extends the lock every interval (less up to 10% at random)
// until the extender is stopped. A failed extension ends the lease: the
// lock can no longer be guaranteed beyond the validity, and the caller
// should stop.
func (l *lease) extendLoop(e *extender, interval time.Duration) {
	timer := time.NewTimer(jitterDown(interval))
	defer timer.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-timer.C:
		}
		if !l.extendOnce(e, interval) {
			return
		}
		timer.Reset(jitterDown(interval))
	}
}

// extendOnce makes one automatic extension and reports whether the
// extender should go on. A failure that the nodes report ends the lease
// as lost; one caused by stopping the extender does not.
func (l *lease) extendOnce(e *extender, interval time.Duration) bool {
	m := l.m
	m.mu.Lock()
	deadline, ended := l.deadline(), l.ended
	left := deadline.Sub(m.now())
	if ended || left <= 0 || e.ctx.Err() != nil {
		m.mu.Unlock()
		return false // the timer, or whoever stopped the extender, ends the lease
	}
	m.mu.Unlock()
	ok, err := l.extendRound(e, interval, left)
	switch {
	case ok:
		return true
	case e.ctx.Err() != nil && extendRetriable(err):
		return false // cut short by the stop, not refused by the nodes
	}
	l.end(&lostError{reason: "extension failed", err: err})
	return false
}

// extendRound extends the lock, trying again on node errors, within left,
// the time to the lease's deadline: an extension that cannot finish within
// the validity is worthless.
func (l *lease) extendRound(e *extender, interval, left time.Duration) (bool, error) {
	ctx, cancel := context.WithTimeout(e.round, left)
	defer cancel()
	ctx = context.WithValue(ctx, extenderKey{}, e)
	began := time.Now()
	ok, err := l.m.extendValue(ctx, l.value)
	// A node that timed out or dropped the connection may answer the next
	// time; a lock that the nodes say is gone or taken will not come back.
	// Retrying stops after half an interval, so that a loss is still
	// reported within about one interval, and at once when the extender
	// is stopped: Unlock never waits for a retry.
	for try := 1; !ok && try < extendTries && extendRetriable(err) && ctx.Err() == nil && e.ctx.Err() == nil && time.Since(began) < interval/2; try++ {
		ok, err = l.m.extendValue(ctx, l.value)
	}
	return ok, err
}

// extendTries is how many times an automatic extension is tried in a row
// before the lock counts as lost, when the failures are node errors.
const extendTries = 3

// extendRetriable reports whether a failed extension may succeed when
// tried again at once: no node reported the key taken by another owner,
// and it had not expired on too many nodes.
func extendRetriable(err error) bool {
	var taken *ErrNodeTaken
	return !errors.Is(err, ErrLockAlreadyExpired) && !errors.Is(err, ErrNotLocked) && !errors.As(err, &taken)
}

// jitterDown returns d less a random 0-10%.
func jitterDown(d time.Duration) time.Duration {
	if d <= 10 {
		return d
	}
	return d - rand.N(d/10)
}

// extendValue extends the acquisition of value, unless the Mutex has moved
// on to another acquisition (then it reports failure with ErrNotLocked).
func (m *Mutex) extendValue(ctx context.Context, value string) (bool, error) {
	m.mu.Lock()
	current := m.acq.value
	m.mu.Unlock()
	if current != value {
		return false, ErrNotLocked
	}
	return m.ExtendContext(ctx)
}

// autoExtendInterval is the interval of automatic extension.
func (m *Mutex) autoExtendInterval() time.Duration {
	if m.autoExtend > 0 {
		return m.autoExtend
	}
	return m.expiry / 3
}

// acquired runs after a successful Lock of value, valid until until with
// the script calls calls: it makes that the current acquisition, ends the
// lease of an earlier one and makes the new one's, when it needs one from
// the start (WithAutoExtend starts its extender, WithMaxHold counts from
// it).
func (m *Mutex) acquired(value string, until time.Time, calls *lockCalls) {
	m.acquiredSince(value, until, until.Add(-m.validFor()), calls)
}

// acquiredSince is acquired for an acquisition that this Mutex holds since
// start (on m.now's clock), from which its WithMaxHold counts: a lock
// handed over by a local hand-off (transfer.go) is held from the start of
// the hand-off round.
func (m *Mutex) acquiredSince(value string, until, start time.Time, calls *lockCalls) {
	m.mu.Lock()
	// The acquisition and its lease are set in one critical section: an
	// Unlock or a Context call of another goroutine sees both or neither.
	m.setAcquisition(value, until, calls)
	old := m.lease
	oldLive := old != nil && !old.ended
	if oldLive {
		old.endLocked()
	}
	m.lease = nil
	var lost error
	if m.autoExtendOn || m.maxHold > 0 {
		l := m.newLease(value, start)
		if m.autoExtendOn {
			if lost = l.follow(); lost == nil {
				l.startExtending()
			}
		}
	}
	m.mu.Unlock()
	if oldLive && old.cancel != nil {
		old.cancel(&lostError{reason: "the Mutex made a new acquisition"})
	}
	if lost != nil {
		m.observeLost(value, lost)
	}
}

// releasedLocked runs as Unlock takes the acquisition (the caller holds
// m.mu): it ends the lease and stops its extender, cancelling the
// extension in flight (extend.lua extends only a key that holds the lock's
// value, so an extension that reaches a node after the release finds
// nothing to extend; with WithSetNXOnExtend the round is not cancelled,
// and Unlock waits for it: see Mutex.beginCheck). No retry starts once
// the extender is stopped. It returns the function that ends the lease's
// context with context.Canceled, which Unlock runs once the release is
// sent.
func (m *Mutex) releasedLocked() func() {
	l := m.lease
	if l == nil || l.ended {
		return func() {}
	}
	l.endLocked()
	return func() {
		if l.cancel != nil {
			l.cancel(nil)
		}
	}
}

// validateLifetime checks the options of WithAutoExtend and WithMaxHold.
func (m *Mutex) validateLifetime() error {
	switch {
	case m.autoExtend < 0:
		return newConfigError("auto-extension interval is %v; it must not be negative", m.autoExtend)
	case m.maxHold < 0:
		return newConfigError("maximum hold time is %v; it must not be negative", m.maxHold)
	}
	if m.autoExtendOn {
		validity := m.validFor() - m.nodeTimeout()
		if iv := m.autoExtendInterval(); iv >= validity {
			return newConfigError("auto-extension interval %v is not shorter than the validity %v (expiry %v less drift and per-node timeout)",
				iv, validity, m.expiry)
		}
	}
	return nil
}
