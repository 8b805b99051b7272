//go:build unix

package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/go-redlock/redsync"
)

// A hold is what exec holds while the job runs: the lock NAME, or with
// --permits one permit of the semaphore NAME. Everything else that exec
// does (the job, its supervision, the exit statuses) is the same for
// both.
type hold interface {
	// Context ends when the hold can no longer be guaranteed (see
	// redsync.Mutex.Context), or is released.
	Context() context.Context
	// env returns the variables that tell COMMAND what it runs under.
	env() []string
	// release gives the hold back.
	release(ctx context.Context) (bool, error)
	// String names the hold for messages: lock "NAME", or permit 1 of
	// semaphore "NAME".
	String() string
}

// A taker takes a hold: it tries once, or, with wait, until ctx ends.
type taker interface {
	take(ctx context.Context, wait bool) (hold, error)
	// heldElsewhere says that the hold is held elsewhere, for messages.
	heldElsewhere() string
	// String names what is taken, for messages.
	String() string
}

// lockTaker takes the lock NAME.
type lockTaker struct {
	m       *redsync.Mutex
	fencing bool
}

func (l lockTaker) take(ctx context.Context, wait bool) (hold, error) {
	var err error
	if wait {
		err = l.m.LockContext(ctx)
	} else {
		err = l.m.TryLockContext(ctx)
	}
	if err != nil {
		return nil, err
	}
	return heldLock(l), nil
}

func (l lockTaker) heldElsewhere() string {
	return fmt.Sprintf("lock %q is held elsewhere", l.m.Name())
}

func (l lockTaker) String() string {
	return fmt.Sprintf("lock %q", l.m.Name())
}

// heldLock is the lock NAME, held.
type heldLock lockTaker

func (h heldLock) Context() context.Context {
	return h.m.Context()
}

func (h heldLock) env() []string {
	env := []string{envName + "=" + h.m.Name(), envValue + "=" + h.m.Value()}
	if h.fencing {
		env = append(env, envFencing+"="+strconv.FormatUint(h.m.FencingToken(), 10))
	}
	return env
}

func (h heldLock) release(ctx context.Context) (bool, error) {
	return h.m.UnlockContext(ctx)
}

func (h heldLock) String() string {
	return lockTaker(h).String()
}

// permitTaker takes a permit of the semaphore NAME.
type permitTaker struct {
	s *redsync.Semaphore
}

func (p permitTaker) take(ctx context.Context, wait bool) (hold, error) {
	var (
		permit *redsync.Permit
		err    error
	)
	if wait {
		permit, err = p.s.Acquire(ctx)
	} else {
		permit, err = p.s.TryAcquire(ctx)
	}
	if err != nil {
		return nil, err
	}
	return heldPermit{s: p.s, p: permit}, nil
}

func (p permitTaker) heldElsewhere() string {
	return fmt.Sprintf("all %d permits of semaphore %q are held elsewhere", p.s.Permits(), p.s.Name())
}

func (p permitTaker) String() string {
	return fmt.Sprintf("a permit of semaphore %q", p.s.Name())
}

// heldPermit is a permit of the semaphore NAME, held.
type heldPermit struct {
	s *redsync.Semaphore
	p *redsync.Permit
}

func (h heldPermit) Context() context.Context {
	return h.p.Context()
}

func (h heldPermit) env() []string {
	return []string{envName + "=" + h.s.Name(), envValue + "=" + h.p.Value(), envPermit + "=" + strconv.Itoa(h.p.Slot())}
}

func (h heldPermit) release(ctx context.Context) (bool, error) {
	return h.p.Release(ctx)
}

func (h heldPermit) String() string {
	return fmt.Sprintf("permit %d of semaphore %q", h.p.Slot(), h.s.Name())
}
