package redsync

import (
	"math/rand/v2"
	"time"
)

// Defaults of a Mutex; they are those of go-redsync/redsync v4.
const (
	DefaultExpiry        = 8 * time.Second
	DefaultTries         = 32
	DefaultDriftFactor   = 0.01
	DefaultTimeoutFactor = 0.05

	minRetryDelay = 50 * time.Millisecond
	maxRetryDelay = 250 * time.Millisecond

	// maxValueLen bounds the lock value: a value is a token, not a payload.
	maxValueLen = 4096
)

// A DelayFunc returns how long to wait before try number tries (counted
// from 1 for the first retry).
type DelayFunc func(tries int) time.Duration

// An Option configures a Mutex.
type Option interface {
	Apply(*Mutex)
}

// OptionFunc is a function that configures a Mutex.
type OptionFunc func(*Mutex)

// Apply calls f(mutex).
func (f OptionFunc) Apply(mutex *Mutex) {
	f(mutex)
}

// config is the configuration of a Mutex. NewMutex applies the options to
// it and checks it; it does not change after. An option applied to a Mutex
// that NewMutex returned (Option.Apply, which redsync v4's interface
// allows) has no effect: the settings that the nodes see (the TTL sent,
// the scripts) and those the Mutex reports (Until) come from one
// configuration, fixed at NewMutex.
type config struct {
	name          string
	expiry        time.Duration
	tries         int
	delayFunc     DelayFunc
	driftFactor   float64
	timeoutFactor float64
	genValueFunc  func() (string, error)
	ownValues     bool // WithGenValueFunc was given: the caller's code sees each value
	failFast      bool
	shuffle       bool
	setNXOnExtend bool
	initValue     string       // WithValue
	guard         restartGuard // WithRestartGuard
	fence         fencing      // WithFencing

	// Lifetime and hand-off options (lease.go, handoff.go).
	autoExtend   time.Duration // WithAutoExtend's interval; 0 means expiry/3
	autoExtendOn bool          // WithAutoExtend was given
	maxHold      time.Duration // WithMaxHold; 0 means no bound
	noNotify     bool          // WithReleaseNotification(false)

	observer Observer // WithObserver or Redsync.SetObserver; nil for none (hooks.go)
}

// setting returns the Option that changes the configuration with set while
// NewMutex builds the Mutex, and does nothing after.
func setting(set func(*config)) Option {
	return OptionFunc(func(m *Mutex) {
		if m.building != nil {
			set(m.building)
		}
	})
}

// defaultDelay waits a uniformly random 50-250 ms, so that competing
// clients do not retry in lock step.
func defaultDelay(int) time.Duration {
	return minRetryDelay + rand.N(maxRetryDelay-minRetryDelay)
}

// WithExpiry sets how long the lock lives on the nodes (the TTL of the key).
// It must be at least 1 ms and long enough for the per-node timeout and the
// drift. The default is 8s.
func WithExpiry(expiry time.Duration) Option {
	return setting(func(c *config) {
		c.expiry = expiry
	})
}

// WithTries sets how many times Lock tries to acquire the lock; it must be
// at least 1. The default is 32.
func WithTries(tries int) Option {
	return setting(func(c *config) {
		c.tries = tries
	})
}

// WithRetryDelay sets a fixed wait between tries. The default is a uniformly
// random wait of 50-250 ms.
func WithRetryDelay(delay time.Duration) Option {
	return setting(func(c *config) {
		c.delayFunc = func(int) time.Duration { return delay }
	})
}

// WithRetryDelayFunc sets the function that decides the wait between tries.
// The default is a uniformly random wait of 50-250 ms.
func WithRetryDelayFunc(delayFunc DelayFunc) Option {
	return setting(func(c *config) {
		c.delayFunc = delayFunc
	})
}

// WithSetNXOnExtend makes Extend also set the key on nodes where it is
// missing (for example after a node restarted), not only extend it where
// this Mutex's value is present. It cannot be combined with
// [WithFencing]: a holder whose keys expired, and whose lock another client
// has taken since with a greater token, would get the lock back by
// Extend, with its older token. NewMutex then returns a Mutex whose
// methods fail with an error matching [ErrInvalidConfig] that names both
// options. The default is off.
func WithSetNXOnExtend() Option {
	return setting(func(c *config) {
		c.setNXOnExtend = true
	})
}

// WithDriftFactor sets the share of the expiry subtracted from the validity
// to allow for clock drift between the client and the nodes; 2 ms are
// subtracted as well. It must be in [0, 1). The default is 0.01.
func WithDriftFactor(factor float64) Option {
	return setting(func(c *config) {
		c.driftFactor = factor
	})
}

// WithTimeoutFactor sets the per-node timeout of each command as a share of
// the expiry, so that a dead or slow node costs one timeout, not the whole
// call. It must be in [0, 1); 0 bounds each node only by the validity. The
// default is 0.05.
func WithTimeoutFactor(factor float64) Option {
	return setting(func(c *config) {
		c.timeoutFactor = factor
	})
}

// WithGenValueFunc sets the function that makes the random value proving
// ownership of each acquisition. It must return a non-empty value of at
// most 4096 bytes that no other client can guess, and a new one on each
// call: two acquisitions with one value are one owner to the nodes (a
// constant value lets two Semaphore permits share a slot). The default returns 16
// bytes from crypto/rand, base64-encoded. Every acquisition, also one
// handed over by a local hand-off (see [WithReleaseNotification]), gets a
// value of its own from it.
func WithGenValueFunc(genValueFunc func() (string, error)) Option {
	return setting(func(c *config) {
		c.genValueFunc = genValueFunc
		c.ownValues = true
	})
}

// WithValue sets the value of the Mutex without acquiring the lock, so that
// Unlock or Extend can act on a lock acquired elsewhere (for example by
// another process that passed its Value on). Lock replaces the value with a
// fresh one. The default is no value.
func WithValue(v string) Option {
	return setting(func(c *config) {
		c.initValue = v
	})
}

// WithFailFast makes each call return as soon as its outcome is decided (a
// quorum succeeded, or a quorum can no longer succeed) instead of waiting
// for every node. Commands still in flight on slower nodes run to their
// per-node timeout in the background. An Extend with [WithSetNXOnExtend]
// waits for every node all the same: a slow node's extension landing after
// the next Unlock would set the key again. The default is false.
func WithFailFast(b bool) Option {
	return setting(func(c *config) {
		c.failFast = b
	})
}

// WithShufflePools makes the Mutex contact the nodes in a random order,
// chosen once by NewMutex, to spread load when many mutexes start at once.
// The default is false.
func WithShufflePools(b bool) Option {
	return setting(func(c *config) {
		c.shuffle = b
	})
}

// WithAutoExtend makes the lock extend itself while it is held: from each
// successful Lock until Unlock or the loss (within [Redsync.Do], until Do's
// ctx ends), a goroutine of the Mutex calls Extend every
// interval, less a random 0-10% so that many holders do not extend in step.
// An interval of 0 means a third of the expiry; it must be shorter than
// the validity (the expiry less the drift and the per-node timeout). An
// extension that fails because of node errors (timeouts, dropped
// connections) is tried again at once, up to three tries in all, while
// less than half an interval has passed and the extender has not been
// stopped; when it still fails, or when the
// nodes report the key expired or taken, the lock is treated as lost:
// [Mutex.Context] ends with a cause matching [ErrLockLost] and extension
// stops. [Redsync.Do] always extends, with this option's interval when
// given. The default is no automatic extension.
func WithAutoExtend(interval time.Duration) Option {
	return setting(func(c *config) {
		c.autoExtend, c.autoExtendOn = interval, true
	})
}

// WithMaxHold bounds how long one acquisition is kept: d after the
// acquisition (the start of the try that took the lock, or of the
// hand-off round of a local hand-off), automatic extension stops and [Mutex.Context] (and the context
// of [Redsync.Do]'s function) ends with a cause matching [ErrLockLost]. The
// lock itself stays on the nodes until Unlock or its expiry. It must not be
// negative. The default is 0, no bound.
func WithMaxHold(d time.Duration) Option {
	return setting(func(c *config) {
		c.maxHold = d
	})
}

// WithReleaseNotification turns the hand-off by a queue of waiters on or
// off. When on, a Lock that has to wait joins a queue of waiters kept next
// to the key on every node, ordered the same way on each (by when the Lock
// started waiting), and listens for its turn on every node whose pool
// implements [redis.Subscriber]. Unlock, where it deletes the key, wakes
// the first live waiter of the node's queue with a PUBLISH on its
// Redsync's channel "redsync:wake:<id>" (with nobody queued, the release
// is announced on "redsync:released:" + name). A waiter that a quorum of
// nodes woke tries at once instead of sleeping the whole retry delay; the
// retry delay stays as a fallback. The lock key is used as without a
// queue, and the lock is still only what a try takes on a quorum within
// the validity: the queue decides who is woken, not who holds. A Lock that ends without the lock
// leaves the queues before it returns; the entry of a process that died
// ends with its life (the Mutex's expiry, at least a second). A try that
// a wake-up brings forward (and a quick retry when nobody won a try) is
// extra: it does not count toward WithTries, and the counted tries keep
// their schedule, so a Lock gives up after as many tries of the retry
// delay's schedule as without notification. A Lock whose Redsync already
// has a Lock waiting in the queues for the same lock skips its first try
// and waits behind it (the local hand-off below serves it); that skipped
// try counts. When
// that waiter is a Lock of the same Redsync (and neither
// Mutex uses fencing, nor the waiter a restart guard), Unlock does better:
// it hands the lock straight to the waiter, so that the lock is never free
// in between and the waiter sends no try: one round replaces the holder's
// value with a fresh one of the waiter on the nodes, or, when no code
// outside the library can know the holder's value (it was never returned
// by Value, seen by an observer or made by WithGenValueFunc) and enough of
// its validity is left, the acquisition itself passes to the waiter with
// no round (the old Mutex's Value is then empty). See the local hand-off
// in docs/LIFETIME.md. When off, Unlock gives no turn, publishes
// nothing, hands nothing over, and Lock only polls, as redsync v4 does.
// The default is on.
func WithReleaseNotification(enabled bool) Option {
	return setting(func(c *config) {
		c.noNotify = !enabled
	})
}

// validate returns the first configuration problem of m, or nil.
func (m *Mutex) validate() error {
	switch {
	case m.nodes.check() != nil:
		return m.nodes.check()
	case m.name == "":
		return newConfigError("empty mutex name")
	case m.tries < 1:
		return newConfigError("tries is %d; it must be at least 1", m.tries)
	case m.driftFactor < 0 || m.driftFactor >= 1 || m.driftFactor != m.driftFactor:
		return newConfigError("drift factor is %v; it must be in [0, 1)", m.driftFactor)
	case m.timeoutFactor < 0 || m.timeoutFactor >= 1 || m.timeoutFactor != m.timeoutFactor:
		return newConfigError("timeout factor is %v; it must be in [0, 1)", m.timeoutFactor)
	case m.expiry < time.Millisecond:
		return newConfigError("expiry is %v; it must be at least 1ms", m.expiry)
	case m.delayFunc == nil:
		return newConfigError("nil retry delay function")
	case m.genValueFunc == nil:
		return newConfigError("nil value generator function")
	case len(m.initValue) > maxValueLen:
		return newConfigError("lock value is %d bytes; the limit is %d", len(m.initValue), maxValueLen)
	case m.fence.on && m.setNXOnExtend:
		// An Extend that re-creates missing keys gives the lock back to a
		// holder whose keys expired, after a later holder with a greater
		// token: the tokens would no longer follow the holders.
		return newConfigError("WithFencing and WithSetNXOnExtend cannot be combined: an Extend that re-creates expired keys would let a holder keep an older token than a later holder's")
	}
	if err := m.validateLifetime(); err != nil {
		return err
	}
	if m.nodeTimeout() < time.Millisecond {
		return newConfigError("per-node timeout is %v (expiry %v x timeout factor %v); it must be at least 1ms: raise the expiry or the timeout factor",
			m.nodeTimeout(), m.expiry, m.timeoutFactor)
	}
	if m.timeoutFactor > 0 && m.validFor()-m.nodeTimeout() <= 0 {
		return newConfigError("expiry %v is too short: the per-node timeout (%v) and the drift (%v) leave no validity",
			m.expiry, m.nodeTimeout(), m.drift())
	}
	if err := m.guard.check(m.expiry); err != nil {
		return err
	}
	return nil
}

// drift is subtracted from the validity for clock drift between the client
// and the nodes: expiry x driftFactor, plus 2 ms for the granularity of
// Redis expiry.
func (c *config) drift() time.Duration {
	return time.Duration(float64(c.expiry)*c.driftFactor) + 2*time.Millisecond
}

// validFor is how long an acquisition or an extension is valid, counted
// from the start of the round that made it: the expiry less the drift. A
// round that started at start gives validity until start + validFor; the
// nodes' keys may live a little longer, never less (see drift).
func (c *config) validFor() time.Duration {
	return c.expiry - c.drift()
}

// nodeTimeout bounds each command on one node. A timeout factor of 0 bounds
// it by the longest validity instead: a later reply is worthless.
func (c *config) nodeTimeout() time.Duration {
	if c.timeoutFactor == 0 {
		return c.validFor()
	}
	return time.Duration(float64(c.expiry) * c.timeoutFactor)
}
