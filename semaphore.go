package redsync

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A semaphore of P permits is P slots, each an ordinary lock of its own:
// slot i is the Mutex of the key name + ":permit:" + i. A permit is held
// while one slot's lock is held, so the semaphore's safety is the
// mutex's: any two quorums of N nodes share a node (2Q > N), one node
// grants a key to one owner at a time, so each slot has at most one valid
// holder at any instant, and the semaphore at most P. It tolerates as
// many failed nodes as a Mutex. Counting the holders on each node instead
// (a node grants while it has fewer than P) needs a quorum Q with
// (P+1)Q > PN to be safe: at a majority, three holders of a semaphore of
// 2 permits can each have 3 of 5 nodes, no node counting more than two.
// docs/PRIMITIVES.md has the argument.

// permitInfix joins a semaphore's name and a slot's number in the slot's
// key.
const permitInfix = ":permit:"

// A Semaphore is a distributed counting semaphore over the nodes of the
// [Redsync] that made it: at most Permits holders at any instant, across
// every client that uses the same name and number of permits.
//
// Its permits are slots: permit i is an ordinary Redlock lock on the key
// Name() + ":permit:" + i, for i from 0 to Permits()-1, held when a
// majority of the nodes granted it within its validity, exactly as a
// [Mutex]. Each slot has at most one holder at any instant, so the
// semaphore has at most Permits holders, and it tolerates as many failed
// nodes as a Mutex (two of five). Every client must use the same name and
// number of permits: a client with more permits uses the extra slots as
// well, so that the bound is the largest number of permits among the
// clients. Nothing but the slots' keys is stored.
//
// A Semaphore holds no state about its permits: each [Permit] carries its
// own acquisition. It is safe for concurrent use by several goroutines.
// Make one with [Redsync.NewSemaphore]; the zero Semaphore is not usable
// (its methods return an error matching [ErrInvalidConfig]).
type Semaphore struct {
	r         *Redsync
	name      string
	permits   int
	options   []Option // of each slot's Mutex
	tries     int
	delayFunc DelayFunc
	configErr error
	now       func() time.Time // the slots' clock; tests replace it (nil: time.Now)
}

// NewSemaphore returns a semaphore called name with the given number of
// permits. The options apply to the Mutex of each slot (see [Semaphore]):
// [WithExpiry], [WithDriftFactor], [WithTimeoutFactor], [WithFailFast],
// [WithShufflePools], [WithGenValueFunc], [WithSetNXOnExtend],
// [WithRestartGuard], [WithAutoExtend], [WithMaxHold] and [WithObserver]
// act on every permit as they do on a lock (an Observer sees the try of
// each slot as a TryLock of the slot's key); [WithTries], [WithRetryDelay]
// and [WithRetryDelayFunc] set the tries of Acquire and the wait between
// them. [WithReleaseNotification] has no effect: a waiting Acquire polls,
// and Release announces nothing.
//
// Like NewMutex, it never fails: a bad configuration is returned as an
// error, matching [ErrInvalidConfig], by every method that would send a
// command, and then nothing is sent. That is so for fewer than one
// permit, an empty name, a bad option as for NewMutex, [WithValue] (a
// Permit acts only on the acquisition that made it, with a fresh value),
// and [WithFencing] (the holders of a semaphore hold at the same time:
// there is no order of holders for tokens to follow).
func (r *Redsync) NewSemaphore(name string, permits int, options ...Option) *Semaphore {
	s := &Semaphore{r: r, name: name, permits: permits}
	// Slots take no part in release notification: an Acquire never waits
	// for one slot, so an announcement would wake nobody.
	s.options = append(slices.Clone(options), setting(func(c *config) { c.noNotify = true }))
	s.configErr = s.check()
	return s
}

// check returns the configuration problem of s, or nil; when there is
// none, it sets the tries and the retry delay from the options.
func (s *Semaphore) check() error {
	switch {
	case s.name == "":
		return newConfigError("empty semaphore name")
	case s.permits < 1:
		return newConfigError("semaphore %q has %d permits; it must have at least 1", s.name, s.permits)
	}
	probe := s.r.NewMutex(s.key(0), s.options...)
	switch {
	case probe.configErr != nil:
		return probe.configErr
	case probe.initValue != "":
		return newConfigError("WithValue cannot be given to a semaphore: a Permit acts only on the acquisition that made it, with a fresh value")
	case probe.fence.on:
		return newConfigError("WithFencing cannot be given to a semaphore: its holders hold at the same time, so there is no order of holders for tokens to follow")
	}
	s.tries, s.delayFunc = probe.tries, probe.delayFunc
	return nil
}

// Name returns the semaphore's name.
func (s *Semaphore) Name() string {
	return s.name
}

// Permits returns the number of permits.
func (s *Semaphore) Permits() int {
	return s.permits
}

// key is the Redis key of slot i.
func (s *Semaphore) key(i int) string {
	return s.name + permitInfix + strconv.Itoa(i)
}

// slot returns a fresh Mutex for slot i, with extra options after the
// semaphore's.
func (s *Semaphore) slot(i int, extra []Option) *Mutex {
	opts := s.options
	if len(extra) > 0 {
		opts = append(slices.Clip(opts), extra...)
	}
	m := s.r.NewMutex(s.key(i), opts...)
	if s.now != nil {
		m.now = s.now
	}
	return m
}

// TryAcquire tries once to acquire a permit, without retrying: one sweep
// over the slots (see [Semaphore.Acquire]).
func (s *Semaphore) TryAcquire(ctx context.Context) (*Permit, error) {
	return s.acquire(ctx, 1, nil)
}

// Acquire acquires a permit, trying up to the configured number of times
// (see [WithTries]) with the retry delay between tries.
//
// A try is a sweep over the slots: starting at a random slot, it tries
// each slot once, as TryLock does, and stops at the first it acquires. So
// a try costs one round trip to the nodes when the first slot is free,
// and up to Permits round trips when all are held (plus, for a slot that
// some nodes granted without a quorum, the round that undoes it). A sweep
// stops early when so many nodes failed that no slot could get a quorum.
// A waiting Acquire polls: it is not woken when a permit is released.
//
// The error matches [ErrFailed] when no permit was acquired; its text
// says how many permits were found held, and errors.As finds a *[ErrTaken]
// for each, and a *[RedisError] for each node error. When ctx ends first,
// the error matches both ErrFailed and ctx.Err() (context.Cause(ctx)
// when a cause was set), and nothing is left locked, as for
// [Mutex.LockContext]. Acquire may be called again after a failure.
func (s *Semaphore) Acquire(ctx context.Context) (*Permit, error) {
	return s.acquire(ctx, s.tries, nil)
}

// acquire makes up to tries sweeps; the slots' mutexes get the options
// extra as well.
func (s *Semaphore) acquire(ctx context.Context, tries int, extra []Option) (*Permit, error) {
	if s.r == nil {
		return nil, newConfigError("the zero Semaphore is not usable: make one with Redsync.NewSemaphore")
	}
	if s.configErr != nil {
		return nil, s.configErr
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if ctx.Err() != nil {
		return nil, &cancelError{cause: context.Cause(ctx)}
	}
	var (
		last  error
		timer *time.Timer
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for try := range tries {
		if try > 0 {
			d := s.delayFunc(try)
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			select {
			case <-ctx.Done():
				return nil, &cancelError{cause: context.Cause(ctx), last: last}
			case <-timer.C:
			}
		}
		p, err := s.sweep(ctx, extra)
		if p != nil {
			return p, nil
		}
		if last == nil || !cutShort(ctx) {
			// As in Mutex.lockContext: a sweep that ctx's deadline cut
			// short tells nothing about the permits.
			last = err
		}
		if ctx.Err() != nil {
			return nil, &cancelError{cause: context.Cause(ctx), last: last}
		}
		if err.permanent {
			break
		}
	}
	return nil, last
}

// sweep tries each slot once, from a random one, until one is acquired.
func (s *Semaphore) sweep(ctx context.Context, extra []Option) (*Permit, *sweepError) {
	e := &sweepError{name: s.name, permits: s.permits}
	first := rand.N(s.permits)
	permanent := true // every slot tried failed for good
	for k := range s.permits {
		if ctx.Err() != nil {
			return nil, e
		}
		i := (first + k) % s.permits
		m := s.slot(i, extra)
		err := m.TryLockContext(ctx)
		if err == nil {
			return &Permit{slot: i, m: m}, nil
		}
		if ctx.Err() != nil {
			// Cut short: the slot's error says more about ctx than about
			// the slot.
			return nil, e
		}
		e.tried++
		e.errs = append(e.errs, &slotError{slot: i, err: err})
		var taken *ErrTaken
		switch {
		case errors.As(err, &taken):
			e.taken++
			permanent = false
		case errors.Is(err, ErrInvalidConfig):
			// The value generator's value was refused: every slot
			// would refuse it alike.
			e.permanent = true
			return nil, e
		default:
			failed, forGood := s.nodeFailures(err)
			permanent = permanent && forGood
			if failed > len(s.r.nodes.pools)-s.r.nodes.quorum {
				// Too few nodes answer for any slot to get a quorum: the
				// other slots would fail alike, each at the cost of a
				// per-node timeout.
				e.permanent = forGood
				return nil, e
			}
		}
	}
	e.permanent = permanent
	return nil, e
}

// nodeFailures counts the nodes that failed a slot's try with err for
// another reason than the slot's key (ErrWrongType concerns that key
// alone), and reports whether the nodes' errors leave too few nodes for a
// quorum for good, as the try of a Mutex tells.
func (s *Semaphore) nodeFailures(err error) (failed int, permanent bool) {
	seen := map[int]bool{}
	perm := 0
	walkErrors(err, func(err error) bool {
		re, ok := err.(*RedisError)
		if !ok {
			return true
		}
		if seen[re.Node] {
			return false
		}
		seen[re.Node] = true
		if !errors.Is(re.Err, ErrWrongType) {
			failed++
		}
		if isPermanent(re.Err) {
			perm++
		}
		return false
	})
	return failed, len(s.r.nodes.pools)-perm < s.r.nodes.quorum
}

// isPermanent reports whether a node's error, as a try reports it, is one
// that another try will not cure.
func isPermanent(err error) bool {
	if errors.Is(err, ErrWrongType) || errors.Is(err, ErrCommandUnavailable) {
		return true
	}
	_, permanent := classifyReplyError(err)
	return permanent
}

// walkErrors calls visit on err and, while visit returns true, on the
// errors it wraps.
func walkErrors(err error, visit func(error) bool) {
	if err == nil || !visit(err) {
		return
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		walkErrors(u.Unwrap(), visit)
	case interface{ Unwrap() []error }:
		for _, inner := range u.Unwrap() {
			walkErrors(inner, visit)
		}
	}
}

// sweepError is the error of a sweep that acquired no permit. It matches
// ErrFailed, and wraps the error of each slot tried.
type sweepError struct {
	name      string
	permits   int
	tried     int // slots tried to the end of their try
	taken     int // of those, slots held by other owners
	errs      []error
	permanent bool // another sweep cannot succeed
}

func (e *sweepError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "redsync: no permit of semaphore %q acquired: ", e.name)
	if e.taken == e.permits {
		fmt.Fprintf(&b, "all %d permits are held", e.permits)
		return b.String()
	}
	fmt.Fprintf(&b, "%d of %d permits held, %d failed", e.taken, e.permits, e.tried-e.taken)
	if e.tried < e.permits {
		fmt.Fprintf(&b, ", %d not tried", e.permits-e.tried)
	}
	for _, err := range e.errs {
		if se := err.(*slotError); !errors.As(se.err, new(*ErrTaken)) {
			b.WriteString("\n")
			b.WriteString(se.Error())
		}
	}
	return b.String()
}

func (e *sweepError) Is(target error) bool {
	return target == ErrFailed
}

func (e *sweepError) Unwrap() []error {
	return e.errs
}

// slotError is the error of one slot's try in a sweep.
type slotError struct {
	slot int
	err  error
}

func (e *slotError) Error() string {
	return "permit " + strconv.Itoa(e.slot) + ": " + strings.ReplaceAll(e.err.Error(), "\n", "; ")
}

func (e *slotError) Unwrap() error {
	return e.err
}

// A Permit is one acquisition of a permit of a [Semaphore]: the lock of
// one slot. Its methods act on that acquisition only, and never on
// another, also of the same slot. A Permit is safe for concurrent use by
// several goroutines; Release, Extend and Context behave as those of a
// [Mutex] that holds the acquisition.
type Permit struct {
	slot int
	m    *Mutex // made for this acquisition alone
}

// Slot returns the number of the permit's slot, from 0 to Permits()-1.
// Two permits held at the same time have different slots.
func (p *Permit) Slot() int {
	return p.slot
}

// Key returns the Redis key of the permit's slot.
func (p *Permit) Key() string {
	return p.m.Name()
}

// Value returns the acquisition's value: the proof of ownership stored on
// the nodes.
func (p *Permit) Value() string {
	return p.m.Value()
}

// Until returns when the validity of the acquisition ends: until then no
// other client holds this permit's slot. Extend moves it forward.
func (p *Permit) Until() time.Time {
	return p.m.Until()
}

// Context returns a context that lasts as long as the permit is
// guaranteed, as [Mutex.Context] does: it ends when Release is called, or,
// with a cause matching [ErrLockLost], when the validity runs out, an
// automatic extension fails (see [WithAutoExtend]), or the hold time set
// by [WithMaxHold] is over.
func (p *Permit) Context() context.Context {
	return p.m.Context()
}

// Extend resets the expiry of the permit's slot on the nodes and reports
// whether it did so on a quorum within the validity, as
// [Mutex.ExtendContext] does. On failure the error matches
// [ErrExtendFailed], and also [ErrLockAlreadyExpired] when the slot's key
// had expired on so many nodes that no quorum was possible, or the permit
// was released.
func (p *Permit) Extend(ctx context.Context) (bool, error) {
	return p.m.ExtendContext(ctx)
}

// Release gives the permit back and reports whether a quorum of nodes
// released it, as [Mutex.UnlockContext] does. When the slot's key had
// already expired on so many nodes that no quorum could release it, the
// error matches [ErrLockAlreadyExpired]. Only the first Release acts: a
// second one sends nothing and returns an error matching
// ErrLockAlreadyExpired. A Release that failed on node errors can be
// called again.
func (p *Permit) Release(ctx context.Context) (bool, error) {
	return p.m.UnlockContext(ctx)
}

// Do runs fn while holding a permit: it acquires one with Acquire(ctx),
// runs fn, extends the permit automatically while fn runs (see
// [WithAutoExtend]; a third of the expiry unless that option was given),
// and releases it when fn returns, also when fn panics. It is
// [Redsync.Do] for a permit: fn's context carries ctx's values and the
// Permit (see [PermitFromContext]), its Deadline is the end of the
// permit's validity, and it is cancelled with a cause matching
// [ErrLockLost] as soon as the permit can no longer be guaranteed or ctx
// ends.
//
// When no permit can be acquired, Do returns Acquire's error (it matches
// [ErrFailed]) without calling fn. Otherwise it returns fn's error joined
// with the cause of fn's context if that ended before fn returned (it
// matches ErrLockLost), and with the error of the release if the permit
// was not lost.
func (s *Semaphore) Do(ctx context.Context, fn func(ctx context.Context) error) (err error) {
	if ctx == nil {
		ctx = context.Background()
	}
	p, err := s.acquire(ctx, s.tries, doOptions(nil))
	if err != nil {
		return err
	}
	// The slot's Mutex is the Permit's: fn's context carries the Permit,
	// and MutexFromContext does not give the Mutex away.
	held := func(context.Context) error { return nil }
	return holdWhile(ctx, p.m, held, func(fnCtx context.Context) error {
		return fn(context.WithValue(fnCtx, permitKey{}, p))
	}, false)
}

// permitKey is the context key under which Semaphore.Do stores the Permit.
type permitKey struct{}

// PermitFromContext returns the Permit held by the [Semaphore.Do] call
// whose function received ctx (or a context derived from it), or nil.
// The function must not Release it: Do does that when the function
// returns.
func PermitFromContext(ctx context.Context) *Permit {
	p, _ := ctx.Value(permitKey{}).(*Permit)
	return p
}
