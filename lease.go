package redsync

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// A lease follows one acquisition of a Mutex from a successful Lock to
// Unlock or loss: its context, the timer that ends the context when the
// validity runs out (or the hold time set by WithMaxHold is over), and,
// with WithAutoExtend, the goroutine that extends the lock.
//
// A lease is made when the acquisition needs one: at Lock with
// WithAutoExtend, or at the first call of Mutex.Context. Its fields are
// guarded by the Mutex's mu.
type lease struct {
	m      *Mutex
	value  string       // the acquisition's value
	ctx    *heldContext // ends with Unlock or loss
	cancel context.CancelCauseFunc
	until  time.Time   // validity end, as Mutex.until
	limit  time.Time   // end of the hold time (WithMaxHold); zero when unbounded
	timer  *time.Timer // runs expire at the deadline
	ended  bool

	stop     chan struct{} // closed when the lease ends: the extender returns
	extended chan struct{} // closed when the extender returned; nil without one
}

// heldContext is the context of a lease. Done, Err, Value and the cause
// come from the embedded cancel-cause context; Deadline is the end of the
// validity, which moves forward with each successful extension.
type heldContext struct {
	context.Context
	l *lease
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
// the validity and moves forward with each successful extension, manual or
// automatic. Pass it to the work that the lock protects:
//
//	if err := m.Lock(); err != nil { ... }
//	defer m.Unlock()
//	err := work(m.Context()) // stops when the lock is lost
//
// Every call during one acquisition returns the same context; the next
// Lock starts a new one. On a Mutex that holds no acquisition (Lock never
// succeeded, Unlock was called, or the validity is over) Context returns a
// context that has already ended, with a cause matching ErrLockLost (and
// [ErrNotLocked] when there was no acquisition at all). Without
// WithAutoExtend, Context starts no goroutine, only a timer.
func (m *Mutex) Context() context.Context {
	if m.configErr != nil {
		return endedContext(m, &lostError{reason: "no acquisition", err: m.configErr})
	}
	m.mu.Lock()
	if l := m.lease; l != nil {
		m.mu.Unlock()
		return l.ctx
	}
	switch {
	case m.value == "" || m.until.IsZero():
		m.mu.Unlock()
		return endedContext(m, &lostError{reason: "no acquisition", err: ErrNotLocked})
	case m.unlocked:
		m.mu.Unlock()
		return endedContext(m, &lostError{reason: "the lock was released"})
	}
	l := m.newLease(m.value, time.Time{})
	m.mu.Unlock()
	return l.ctx
}

// endedContext returns a lease context that has already ended with cause.
func endedContext(m *Mutex, cause error) context.Context {
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(cause)
	return &heldContext{Context: ctx, l: &lease{m: m, ended: true}}
}

// newLease makes the lease of the acquisition of value, valid until
// m.until, and sets it as m.lease. start is when the acquisition was made
// (for WithMaxHold); zero means now. The caller holds m.mu.
func (m *Mutex) newLease(value string, start time.Time) *lease {
	now := m.now()
	if start.IsZero() {
		start = now
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	l := &lease{m: m, value: value, cancel: cancel, until: m.until, stop: make(chan struct{})}
	l.ctx = &heldContext{Context: ctx, l: l}
	if m.maxHold > 0 {
		l.limit = start.Add(m.maxHold)
	}
	l.timer = time.AfterFunc(l.deadline().Sub(now), l.expire)
	m.lease = l
	return l
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
	if left := l.deadline().Sub(now); left > 0 {
		l.timer.Reset(left)
		m.mu.Unlock()
		return
	}
	reason := "the validity ran out"
	if !l.limit.IsZero() && !l.limit.After(now) && l.limit.Before(l.until) {
		reason = "the hold time set by WithMaxHold is over"
	}
	l.endLocked()
	m.mu.Unlock()
	cause := &lostError{reason: reason}
	l.cancel(cause)
	m.observeLost(l.value, cause)
}

// endLocked marks the lease ended and stops its timer and extender; the
// caller holds m.mu and then cancels the context (outside the lock, since
// cancellation runs the context's AfterFunc callbacks).
func (l *lease) endLocked() {
	l.ended = true
	l.timer.Stop()
	close(l.stop)
	if l.m.lease == l {
		l.m.lease = nil
	}
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
	l.cancel(cause)
	l.m.observeLost(l.value, cause)
}

// extendedTo moves the lease's deadline after a successful extension. The
// caller holds m.mu.
func (l *lease) extendedTo(until time.Time) {
	if l.ended {
		return
	}
	l.until = until
	l.timer.Reset(l.deadline().Sub(l.m.now()))
}

// extendLoop extends the lock every interval (less up to 10% at random)
// until the lease ends. A failed extension ends the lease: the lock can no
// longer be guaranteed beyond the validity, and the caller should stop.
func (l *lease) extendLoop(interval time.Duration) {
	defer close(l.extended)
	m := l.m
	timer := time.NewTimer(jitterDown(interval))
	defer timer.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-timer.C:
		}
		m.mu.Lock()
		deadline, ended := l.deadline(), l.ended
		m.mu.Unlock()
		left := deadline.Sub(m.now())
		if ended || left <= 0 {
			return
		}
		// An extension that cannot finish within the validity is worthless.
		ctx, cancel := context.WithTimeout(context.Background(), left)
		began := time.Now()
		ok, err := m.extendValue(ctx, l.value)
		// A node that timed out or dropped the connection may answer the
		// next time; a lock that the nodes say is gone or taken will not
		// come back. Retrying stops after half an interval, so that a loss
		// is still reported within about one interval.
		for try := 1; !ok && try < extendTries && extendRetriable(err) && ctx.Err() == nil && time.Since(began) < interval/2; try++ {
			ok, err = m.extendValue(ctx, l.value)
		}
		cancel()
		if !ok {
			l.end(&lostError{reason: "extension failed", err: err})
			return
		}
		timer.Reset(jitterDown(interval))
	}
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
	current := m.value
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

// acquired runs after a successful Lock of value: it ends the lease of an
// earlier acquisition and, with WithAutoExtend, starts the new lease and
// its extender.
func (m *Mutex) acquired(value string, until time.Time) {
	m.acquiredSince(value, until, until.Add(-(m.expiry - m.drift())))
}

// acquiredSince is acquired for an acquisition that this Mutex holds since
// start (on m.now's clock), which bounds its WithMaxHold: a lock passed on
// by a local hand-off (transfer.go) keeps its until, but is held from the
// hand-off.
func (m *Mutex) acquiredSince(value string, until, start time.Time) {
	m.mu.Lock()
	m.unlocked = false
	old := m.lease
	if old != nil {
		old.endLocked()
	}
	var l *lease
	if m.autoExtendOn {
		l = m.newLease(value, start)
		l.extended = make(chan struct{})
	}
	m.mu.Unlock()
	if old != nil {
		old.cancel(&lostError{reason: "the Mutex made a new acquisition"})
	}
	if l != nil {
		go l.extendLoop(m.autoExtendInterval())
	}
}

// released runs at the start of Unlock: it ends the lease with
// context.Canceled and waits for its extender, so that no extension runs
// after the release.
func (m *Mutex) released() {
	m.mu.Lock()
	m.unlocked = true
	l := m.lease
	if l == nil || l.ended {
		m.mu.Unlock()
		return
	}
	l.endLocked()
	m.mu.Unlock()
	l.cancel(nil)
	if l.extended != nil {
		<-l.extended
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
		validity := m.expiry - m.drift() - m.nodeTimeout()
		if iv := m.autoExtendInterval(); iv >= validity {
			return newConfigError("auto-extension interval %v is not shorter than the validity %v (expiry %v less drift and per-node timeout)",
				iv, validity, m.expiry)
		}
	}
	return nil
}
