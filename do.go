package redsync

import (
	"context"
	"errors"
	"time"
)

// Do runs fn while holding the lock called name: it acquires the lock
// with LockContext(ctx), runs fn, extends the lock automatically while fn
// runs (see [WithAutoExtend]; Do uses a third of the expiry unless that
// option is given), and releases it when fn returns, also when fn panics.
//
// The context passed to fn carries ctx's values and the Mutex (see
// [MutexFromContext]); its Deadline is the end of the lock's validity (or
// ctx's deadline, when earlier), moving forward with each extension. It is
// cancelled, with a cause (see context.Cause) matching [ErrLockLost], as
// soon as the lock can no longer be guaranteed: an extension failed, the
// validity ran out, the hold time set by [WithMaxHold] is over, or ctx
// ended. In the last case the cause matches context.Cause(ctx) as well.
// fn should stop working on the protected resource when its context ends.
// Once fn's context has ended, the lock is no longer extended: it expires
// at the end of its validity at the latest, also when fn ignores its
// context and goes on.
//
// When the lock cannot be acquired, Do returns LockContext's error (it
// matches [ErrFailed]) without calling fn. Otherwise it returns fn's error
// joined with the cause of fn's context if that ended before fn returned
// (it matches ErrLockLost), and with the error of the release if the lock
// was not lost.
func (r *Redsync) Do(ctx context.Context, name string, fn func(ctx context.Context) error, opts ...Option) (err error) {
	if ctx == nil {
		ctx = context.Background()
	}
	m := r.NewMutex(name, doOptions(opts)...)
	return holdWhile(ctx, m, m.LockContext, fn, true)
}

// doOptions returns the options of a Mutex of Do: opts after automatic
// extension, which Do turns on (WithAutoExtend in opts sets its interval).
func doOptions(opts []Option) []Option {
	return append([]Option{setting(func(c *config) { c.autoExtendOn = true })}, opts...)
}

// holdWhile is Do once m is made: it acquires m's lock with lock, runs fn
// with the context of runContext, and releases the lock when fn returns or
// panics. It returns as Do does. Unless carry is set, MutexFromContext
// finds no Mutex in fn's context: m is not handed out. [RWMutex.Do],
// [RWMutex.RDo] and [Semaphore.Do] share it; lock may be a function that
// does nothing, for a lock already acquired.
func holdWhile(ctx context.Context, m *Mutex, lock func(context.Context) error, fn func(ctx context.Context) error, carry bool) (err error) {
	if err := lock(ctx); err != nil {
		return err
	}
	fnCtx, stop := m.runContext(ctx)
	if !carry {
		fnCtx = context.WithValue(fnCtx, mutexKey{}, (*Mutex)(nil))
	}
	defer func() {
		lost := stop()
		var unlockErr error
		if _, uerr := m.UnlockContext(context.WithoutCancel(ctx)); lost == nil {
			unlockErr = uerr
		}
		if lost != nil || unlockErr != nil {
			err = errors.Join(err, lost, unlockErr)
		}
	}()
	return fn(fnCtx)
}

// mutexKey is the context key under which Do stores the Mutex.
type mutexKey struct{}

// MutexFromContext returns the Mutex held by the [Redsync.Do] call whose
// function received ctx (or a context derived from it), or nil. Through it
// the function can read the lock's Value, Until or Name while it runs. It
// must not Unlock it: Do does that when the function returns.
func MutexFromContext(ctx context.Context) *Mutex {
	m, _ := ctx.Value(mutexKey{}).(*Mutex)
	return m
}

// runContext returns the context of Do's function: it carries ctx's values
// and m, and ends with the first of the lease's end and ctx's end. When ctx
// ends first, automatic extension stops before the function's context
// ends: the lock then expires at the end of its validity at the latest,
// even if the function goes on. stop detaches the context and returns the
// cause with which it ended before, or nil.
func (m *Mutex) runContext(ctx context.Context) (context.Context, func() error) {
	lease := m.Context()
	base := context.WithValue(context.WithoutCancel(ctx), mutexKey{}, m)
	run, cancel := context.WithCancelCause(base)
	stopCaller := context.AfterFunc(ctx, func() {
		if held, ok := lease.(*heldContext); ok {
			held.l.stopExtending()
		}
		cancel(&lostError{reason: "the caller's context ended", err: context.Cause(ctx)})
	})
	stopLease := context.AfterFunc(lease, func() {
		cancel(context.Cause(lease))
	})
	rc := &runContext{Context: run, lease: lease}
	if d, ok := ctx.Deadline(); ok {
		rc.callerDeadline = d
	}
	return rc, func() error {
		stopCaller()
		stopLease()
		cause := context.Cause(run)
		cancel(nil)
		return cause
	}
}

// runContext is the context of Do's function: a cancel-cause context
// whose Deadline follows the lock's validity.
type runContext struct {
	context.Context
	lease          context.Context
	callerDeadline time.Time
}

// Deadline returns the end of the lock's validity, or the caller's
// deadline when that comes first.
func (c *runContext) Deadline() (time.Time, bool) {
	d, _ := c.lease.Deadline()
	if !c.callerDeadline.IsZero() && c.callerDeadline.Before(d) {
		d = c.callerDeadline
	}
	return d, true
}
