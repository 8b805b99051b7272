package redsync

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/go-redlock/redsync/redis"
)

// A Mutex is a distributed mutual exclusion lock over the nodes of the
// [Redsync] that made it.
//
// A Mutex is safe for concurrent use by several goroutines. Like
// [sync.Mutex], it holds at most one acquisition at a time: while one
// goroutine holds the lock, Lock in another goroutine waits (retrying)
// until the lock is released or expires, and Unlock or Extend act on the
// current acquisition, whichever goroutine calls them.
//
// A Mutex must not be copied after first use.
type Mutex struct {
	config // set by NewMutex, then read-only
	// building is &config while NewMutex applies the options, nil after
	// (see setting).
	building *config

	nodes     *nodes // the Redsync's, or a shuffled copy (WithShufflePools)
	configErr error

	keyArg any // name, boxed once for the scripts
	// queueKeyArg is the key of the name's queue of waiters (queueKey),
	// boxed once for the queue scripts (one name, no kind).
	queueKeyArg any
	// NewMultiMutex: the names, and the key count and names, boxed once
	// for the multi-key scripts (multi.go); nil for one name.
	names   []string
	keyArgs []any
	// kind, when not nil, describes a lock that is not a Mutex of one or
	// several names (the writer's or a reader's side of an RWMutex): its
	// scripts replace those of the names.
	kind   *lockKind
	ttlArg any              // expiry in ms, formatted once for the scripts
	now    func() time.Time // the clock; tests replace it
	notify *notifier        // the Redsync's release notifications, or nil

	mu sync.Mutex
	// acq is the current acquisition (acquisition.go); never nil. Behind
	// a pointer, which fmt prints as an address, so that no way of
	// printing a Mutex shows the value (see Format).
	acq   *acquisition
	lease *lease // the current acquisition's lease, once needed
	// With WithSetNXOnExtend, extending counts the Extend calls in flight
	// (of any acquisition: see beginCheck), and extendDone is closed when
	// it drops to 0 (nil while it is 0).
	extending  int
	extendDone chan struct{}

	heldSince acquisitionStart // with an observer: the start of the current acquisition
}

// lockCalls are the script calls of one acquisition, built once and sent
// to every node on every try.
type lockCalls struct {
	value   any // the value, boxed once
	acquire redis.ScriptCall
	// setNX, for the plain acquire script only, is the command that does
	// its work when the key is free (SET key value NX PX ttl): a
	// pipelined round sends it instead, and the script only where it
	// finds the key taken (quorum.go).
	setNX   []any
	release redis.ScriptCall // announces the release unless WithReleaseNotification(false)
	undo    redis.ScriptCall // a kind's undo of a failed try (see lockKind), or none: release
	// queue, for a try of a waiting Lock that joins the nodes' queues of
	// waiters, is what that try adds (handoff.go); nil otherwise.
	queue *queueTry
	token uint64 // WithFencing: the token, set by the try that acquired the lock
	// settled, when not nil, is closed once every node ended the command
	// that made this acquisition, which returned before they all had (at
	// a quorum, as a local hand-off does, or at a timeout): the next
	// command must not overtake it on a node. nil when every node had
	// answered (see nodeOp.settled).
	settled chan struct{}
	// WithFencing: the token proposed in the acquire round (fencing.go).
	proposed uint64
	// handoffs is how many local hand-offs in a row led to this
	// acquisition (0 for one made by a try): it bounds the hand-offs that
	// keep the lock from the waiters of other processes (transfer.go).
	handoffs int
	// partial is set when the round that made this acquisition (a try,
	// or a transfer round, which returns at a quorum) did not hear every
	// node take the key: it is not passed on without a round (passOn).
	partial bool
	// origin is, for an acquisition passed on (passOn), the calls of the
	// round that set its keys; nil for one made by a round (see root).
	origin *lockCalls
}

// root returns the calls of the round that set the keys of c's
// acquisition: c itself, or what it was passed on from.
func (c *lockCalls) root() *lockCalls {
	if c.origin != nil {
		return c.origin
	}
	return c
}

// lockKind describes a lock that is not a Mutex of one or several names,
// such as a side of an [RWMutex] (rwmutex.go): the scripts that acquire,
// release and extend it on a node, with their keys and extra arguments. A
// Mutex with a kind sends no SET NX in place of its acquire script, takes
// no part in release notification and local hand-off (its waiting Lock
// calls poll, with the retry delay), and has no Valid.
type lockKind struct {
	acquire kindScript // called with the keys, the value, the TTL, then the args
	release kindScript // called with the keys, the value, then the args
	// undo, when its script is set, undoes a failed try in place of
	// release; it is called as release is.
	undo kindScript
	// extend is called with the keys, the value, the TTL, the flag of
	// WithSetNXOnExtend, then the args.
	extend kindScript
}

// kindScript is one script of a lockKind, with its keys (as many as the
// script's KeyCount) and the arguments that follow the call's own.
type kindScript struct {
	script *redis.Script
	keys   []any
	args   []any
}

// call returns the call of s with args between the keys and s.args.
func (s *kindScript) call(args ...any) redis.ScriptCall {
	all := make([]any, 0, len(s.keys)+len(args)+len(s.args))
	all = append(append(append(all, s.keys...), args...), s.args...)
	return redis.NewScriptCall(s.script, all...)
}

// errNotMade is the error of Lock on a Mutex that Redsync.NewMutex did not
// make (a zero Mutex): it has no nodes to lock.
var errNotMade = newConfigError("the Mutex was not made by Redsync.NewMutex: it has no nodes")

// errNoValid is the error of Valid on a Mutex with a kind, which is not
// handed out (the sides of an RWMutex): no GET tells whether it holds.
var errNoValid = errors.New("redsync: Valid is not available for this lock; use Until")

// validityLeft is what is left at now of the validity of a round that
// started at start; it is not positive when the validity is over.
func (m *Mutex) validityLeft(start time.Time) time.Duration {
	return m.validFor() - m.now().Sub(start)
}

// Name returns the mutex name (the Redis key); for a Mutex of
// [Redsync.NewMultiMutex], its names joined by commas.
func (m *Mutex) Name() string {
	return m.name
}

// String returns "redsync.Mutex(" + the name + ")". It never shows the
// value: printing a Mutex does not give away what proves its ownership
// (use Value for that).
func (m *Mutex) String() string {
	return "redsync.Mutex(" + strconv.Quote(m.name) + ")"
}

// Format prints String for every verb, so that no verb of the fmt package
// (%+v, %#v, %d, ...) prints the Mutex's fields, among them its value.
func (m *Mutex) Format(f fmt.State, _ rune) {
	_, _ = io.WriteString(f, m.String())
}

// Value returns the value of the current acquisition: the proof of
// ownership stored on the nodes. It is empty until a Lock succeeds, unless
// WithValue was given. After Unlock it keeps the released value, which no
// node holds for this lock any more, or it is empty when the Unlock passed
// the acquisition on to a waiting Lock of the same Redsync, which holds
// that value now. An acquisition whose value was read is never passed on:
// a hand-off gives the waiter a fresh value of its own (see
// [WithReleaseNotification]).
func (m *Mutex) Value() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.acq == nil {
		return "" // a Mutex not made by NewMutex
	}
	m.acq.shown = true
	return m.acq.value
}

// setAcquisition makes value, valid until until, with the script calls
// calls, the current acquisition of m. m.mu must be held.
func (m *Mutex) setAcquisition(value string, until time.Time, calls *lockCalls) {
	m.acq = &acquisition{state: acqHeld, value: value, until: until, calls: calls, doubtful: calls.partial}
}

// Until returns when the validity of the current acquisition ends: until
// then no other client can hold the lock. It is the zero time until a Lock
// succeeds; Extend moves it forward.
func (m *Mutex) Until() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.acq == nil {
		return time.Time{}
	}
	return m.acq.until
}

// TryLock tries once to acquire the lock, without retrying.
func (m *Mutex) TryLock() error {
	return m.TryLockContext(context.Background())
}

// TryLockContext tries once to acquire the lock, without retrying.
func (m *Mutex) TryLockContext(ctx context.Context) error {
	return m.lock(ctx, 1)
}

// Lock acquires the lock, trying up to the configured number of times (see
// [WithTries]). The error matches [ErrFailed] when the lock was not
// acquired; it is a *[ErrTaken] when the last try found the lock held on a
// quorum of nodes. Lock may be called again after a failure.
func (m *Mutex) Lock() error {
	return m.LockContext(context.Background())
}

// LockContext is Lock bounded by ctx. When ctx ends first, the error
// matches both [ErrFailed] and ctx.Err() (context.Cause(ctx) when a cause
// was set), and nothing is left locked: a try cut short is undone on every
// node with a short timeout of its own. It also carries the error of the
// last try that ctx did not cut short (a *[ErrTaken] when the lock was
// held), when there was one.
func (m *Mutex) LockContext(ctx context.Context) error {
	return m.lock(ctx, m.tries)
}

// lockContext makes up to tries tries; rec, when not nil, records them for
// the observer (hooks.go).
func (m *Mutex) lockContext(ctx context.Context, tries int, rec *acquireRecord) error {
	if m.configErr != nil {
		return m.configErr
	}
	if m.nodes == nil {
		return errNotMade
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if ctx.Err() != nil {
		return &cancelError{cause: context.Cause(ctx)}
	}
	var last error
	wait := lockWait{m: m} // the wait between tries (handoff.go)
	defer wait.close(ctx)
	// A try that a turn brings forward, that joins the queue of waiters,
	// or that follows a try nobody won after a short back-off, is extra:
	// it does not count toward tries, and the counted tries keep their
	// schedule, so Lock gives up after as many scheduled tries, at about
	// the same time, as without notification. The first try is skipped
	// (begin returns 1) when Lock calls of this Redsync that are in the
	// nodes' queues already wait for the lock: this one waits behind them.
	try := wait.begin(m, tries)
	wait.follow(ctx)
	for try < tries {
		counted := true
		if try > 0 {
			switch r, g := wait.await(ctx, try); r {
			case waitDone:
				return &cancelError{cause: context.Cause(ctx), last: last}
			case waitGranted:
				m.takeGrant(g, rec) // a holder of this Redsync handed the lock over
				return nil
			case waitExtra:
				counted = false
			}
		}

		wait.tryStarts()
		// Each try has a value of its own: the undo of a failed try may
		// reach a slow node after we gave up on it, and must not delete
		// the lock that a later try took with the same value.
		value, err := m.newValue()
		if err != nil {
			return err
		}
		calls := m.makeCalls(value)
		wait.prepare(m, calls) // a waiter's try joins the queue (handoff.go)
		until, permanent, split, err := m.acquire(ctx, calls, rec)
		rec.tried(err)
		if err == nil {
			m.acquired(value, until, calls)
			wait.acquired(calls)
			return nil
		}
		if last == nil || !cutShort(ctx) {
			// A try that ctx's deadline cut short tells nothing about the
			// lock (its nodes time out with it); the error of the try
			// before it, such as ErrTaken, is kept as the last one.
			last = err
		}
		wait.tried(err, split)
		if ctx.Err() != nil {
			return &cancelError{cause: context.Cause(ctx), last: last}
		}
		if permanent {
			break
		}
		if counted {
			try++
		} else {
			wait.soon = wait.splitBackoff()
		}
		if try < tries {
			wait.failed(m)
			wait.follow(ctx)
		}
	}
	return last
}

// cutShort reports whether ctx's deadline has passed: a try that
// returns then was cut short by it, even when ctx does not say so yet (a
// driver that keeps deadlines returns its timeout at the deadline).
func cutShort(ctx context.Context) bool {
	deadline, ok := ctx.Deadline()
	return ok && !time.Now().Before(deadline)
}

// acquire makes one try: the acquire script on every node, then the
// validity check. On failure it releases on every node (a SET may have
// landed where the reply was lost) and tells whether the nodes' errors make
// a quorum impossible for good, and whether the try was a split vote (see
// tally.split). rec, when not nil, records the try.
func (m *Mutex) acquire(ctx context.Context, calls *lockCalls, rec *acquireRecord) (until time.Time, permanent, split bool, err error) {
	start := m.now()
	tr := rec.try()
	var (
		t       tally
		highest uint64 // WithFencing: the highest fencing counter read
	)
	// The round may return before a node ran the script (at a quorum
	// with WithFailFast, when ctx ends, at the node timeout): the undo of
	// a failed try must not overtake it there, or the late script would
	// set keys that nobody undoes (see awaitSettled).
	if m.fence.on {
		t, highest = m.fencedAcquireRound(ctx, calls, tr)
	} else {
		t = m.nodes.broadcast(ctx, m.nodeTimeout(), m.failFast, nodeOp{call: &calls.acquire, setNX: calls.setNX, trace: tr, settled: &calls.settled})
	}
	if m.guard.on {
		t.needs("WithRestartGuard needs TIME, LASTSAVE and INFO in scripts")
	}
	if m.notify != nil && (len(t.taken) < len(m.nodes.pools) || t.mostHeld() < len(t.taken)) {
		// A node took the key, failed, did not answer, or held another
		// owner than the others: the key may have been free there,
		// maybe while another Mutex of this Redsync holds it, whose
		// acquisition is then not passed on (passOn). Noted before the
		// outcome (a success too, whose own acquisition it excludes) and
		// before any undo, for each name.
		m.notify.sawFree(m.lockNames(), m.now(), calls)
	}
	validity := m.validityLeft(start)
	if t.done >= m.nodes.quorum && validity > 0 {
		// The fencing round (fencing.go) counts in the same validity.
		if m.fence.on {
			err = m.advanceFence(ctx, calls, highest, start)
		}
		if err == nil {
			// Unlock does not wait for a slow node's acquire: with
			// WithFailFast it returns at a quorum too, and a node serves
			// one client's commands in the order they came.
			calls.settled = nil
			calls.partial = t.done < len(m.nodes.pools)
			return start.Add(m.validFor()), false, false, nil
		}
	}

	// Undo the try even when ctx has ended: the keys must not outlive it.
	// Only a try that every node answered without taking the key for us
	// left nothing to undo.
	if !t.nothingTaken() {
		calls.awaitSettled(m.nodeTimeout())
		undo := &calls.release
		switch {
		case calls.queue != nil && t.mostHeld() >= m.nodes.quorum:
			undo = &calls.queue.quietUndo
		case calls.undo.Script() != nil:
			undo = &calls.undo
		}
		m.nodes.fanoutScript(context.WithoutCancel(ctx), m.nodeTimeout(), m.failFast, undo)
	}

	switch {
	case err != nil: // the fencing round failed
		return time.Time{}, false, false, err
	case len(t.taken) >= m.nodes.quorum:
		// Taken on a quorum, though maybe by several owners: then it is
		// a split vote all the same (ErrTaken keeps its v4 meaning).
		return time.Time{}, false, t.split(m.nodes.quorum), &ErrTaken{Nodes: t.taken}
	case t.done >= m.nodes.quorum:
		return time.Time{}, false, false, fmt.Errorf("%w: a quorum answered after the validity ran out (expiry %v, drift %v)", ErrFailed, m.expiry, m.drift())
	}
	return time.Time{}, len(m.nodes.pools)-t.permanent < m.nodes.quorum, t.split(m.nodes.quorum), errors.Join(ErrFailed, t.err())
}

// current returns the value and script calls of the current acquisition,
// or ErrNotLocked, or, after Unlock, errUnlocked.
func (m *Mutex) current() (string, *lockCalls, error) {
	if m.configErr != nil {
		return "", nil, m.configErr
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.acq.usable(); err != nil {
		return "", nil, err
	}
	return m.acq.value, m.acq.calls, nil
}

// takeForUnlock is current for Unlock: in the same critical section, it
// marks the acquisition unlocked, so that of several Unlock calls only one
// acts on it, and ends its lease (lease.go); it returns the function that
// ends the lease's context, for the caller to run once the release is
// sent (the caller may have passed that context to Unlock). Before it
// returns, the extensions in flight that could set the key again after the
// release (WithSetNXOnExtend) have ended.
func (m *Mutex) takeForUnlock() (*lockCalls, func(), error) {
	if m.configErr != nil {
		return nil, nil, m.configErr
	}
	m.mu.Lock()
	if err := m.acq.usable(); err != nil {
		m.mu.Unlock()
		return nil, nil, err
	}
	m.acq.unlockedFrom = m.acq.state
	m.acq.state = acqUnlocked
	calls := m.acq.calls
	endLease := m.releasedLocked()
	extends := m.extendDone
	m.mu.Unlock()
	if extends != nil {
		m.awaitExtends(extends)
	}
	return calls, endLease, nil
}

// awaitExtends waits for the Extend calls in flight with
// WithSetNXOnExtend, which end within their per-node timeout; the bound
// is only a guard against a pool that does not keep it.
func (m *Mutex) awaitExtends(done <-chan struct{}) {
	timer := time.NewTimer(2 * m.nodeTimeout())
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
	}
}

// beginCheck registers an Extend (extend set) or a Valid of the
// acquisition of calls, unless that is no longer the current acquisition
// or Unlock took it; endCheck ends it, telling whether every node held
// the lock (an Extend or Valid may succeed on a quorum with a node that
// lost the key). While one is registered, or after one found a node
// without the key or failed, the acquisition is not passed on without a
// round (see passOn). With WithSetNXOnExtend,
// Unlock also waits for every registered Extend, also of an earlier
// acquisition of the Mutex: any of them may set its key again where it
// finds none.
func (m *Mutex) beginCheck(calls *lockCalls, extend bool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.acq.state == acqUnlocked || m.acq.calls != calls {
		return false
	}
	m.acq.checks++
	if extend && m.setNXOnExtend {
		if m.extending == 0 {
			m.extendDone = make(chan struct{})
		}
		m.extending++
	}
	return true
}

func (m *Mutex) endCheck(calls *lockCalls, extend, held bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.acq.calls == calls {
		m.acq.checks--
		m.acq.doubtful = m.acq.doubtful || !held
	}
	if extend && m.setNXOnExtend {
		m.extending--
		if m.extending == 0 {
			close(m.extendDone)
			m.extendDone = nil
		}
	}
}

// giveBack makes the acquisition of calls current again after an Unlock
// whose release reached no quorum for other reasons than expiry (node
// errors, ctx): the nodes may still hold it, and Unlock may be tried again.
func (m *Mutex) giveBack(calls *lockCalls) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.acq.calls == calls && m.acq.state == acqUnlocked {
		m.acq.state = m.acq.unlockedFrom
		// The release may have landed on nodes whose replies were lost:
		// the next Unlock must not pass the acquisition on (passOn).
		m.acq.doubtful = true
	}
}

// Unlock releases the lock and reports whether a quorum of nodes released
// it.
func (m *Mutex) Unlock() (bool, error) {
	return m.UnlockContext(context.Background())
}

// UnlockContext releases the lock and reports whether a quorum of nodes
// released it. Each node is bounded by the per-node timeout as well as ctx.
// When the lock had already expired on so many nodes that no quorum could
// release it (the key missing there, or another owner's), the error
// matches [ErrLockAlreadyExpired], and the acquisition is given up; with
// another owner on a quorum it is an [*ErrTaken] too, as in v4.
//
// Only the first Unlock of an acquisition acts on it: a second one, also
// one called at the same time from another goroutine, sends nothing and
// returns an error matching ErrLockAlreadyExpired, as do Extend (with
// [ErrExtendFailed]) and Valid (false) until the next Lock. (In redsync v4
// they sent their commands with the released value, which found no key.)
// An Unlock that released on no quorum for other reasons than expiry (node
// errors, ctx ended) leaves the acquisition as it was, so that Unlock can
// be called again; its context (see [Mutex.Context]) has ended all the
// same.
func (m *Mutex) UnlockContext(ctx context.Context) (bool, error) {
	if m.observer != nil {
		return m.unlockObserved(ctx)
	}
	return m.unlock(ctx, nil)
}

// unlock is UnlockContext; tr, when not nil, records the nodes' results.
func (m *Mutex) unlock(ctx context.Context, tr *nodeTrace) (bool, error) {
	calls, endLease, err := m.takeForUnlock()
	if err != nil {
		return false, err
	}
	// The lease's context ends once the release is sent: it may be ctx.
	defer endLease()
	if ctx == nil {
		ctx = context.Background()
	}
	calls.awaitSettled(m.nodeTimeout())
	var ok, handed bool
	if w, g := m.claimWaiter(calls); w != nil {
		ok, handed, err = m.handOver(ctx, calls, w, g, tr) // transfer.go
	} else {
		ok, err = m.release(ctx, calls, tr)
	}
	if !handed && !ok && !errors.Is(err, ErrLockAlreadyExpired) {
		m.giveBack(calls)
	}
	return ok, err
}

// release deletes the lock of calls on every node and reports the result
// as Unlock does.
func (m *Mutex) release(ctx context.Context, calls *lockCalls, tr *nodeTrace) (bool, error) {
	return m.releaseResult(m.nodes.broadcast(ctx, m.nodeTimeout(), m.failFast, nodeOp{call: &calls.release, trace: tr, patience: m.patience()}))
}

// patience is how long Extend and Unlock may wait for the nodes whose
// answers decide the outcome, past the per-node timeout: until the
// validity of the acquisition ends, when this Mutex knows it (not for
// WithValue's, nor for automatic extension). A node that waits for a connection of a busy shared pool
// then still counts, as in redsync v4, where the pool's own timeout was
// the only bound; once a quorum decided the outcome, the call returns at
// the per-node timeout as before (see nodeOp.patience).
func (m *Mutex) patience() time.Duration {
	m.mu.Lock()
	until := m.acq.until
	m.mu.Unlock()
	if until.IsZero() {
		return 0
	}
	return max(until.Sub(m.now()), 0)
}

// Extend resets the lock's expiry on the nodes and reports whether it did
// so on a quorum within the validity; on success Until moves forward.
func (m *Mutex) Extend() (bool, error) {
	return m.ExtendContext(context.Background())
}

// ExtendContext resets the lock's expiry on the nodes and reports whether
// it did so on a quorum within the validity. On failure the error matches
// [ErrExtendFailed], and also [ErrLockAlreadyExpired] when the key had
// expired on so many nodes that no quorum was possible.
func (m *Mutex) ExtendContext(ctx context.Context) (bool, error) {
	if m.observer != nil {
		return m.extendObserved(ctx)
	}
	return m.extend(ctx, nil)
}

// extend is ExtendContext; tr, when not nil, records the nodes' results.
func (m *Mutex) extend(ctx context.Context, tr *nodeTrace) (ok bool, err error) {
	_, calls, err := m.current()
	if errors.Is(err, errUnlocked) {
		return false, errors.Join(ErrExtendFailed, err)
	}
	if err != nil {
		return false, err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	// With SetNX, an Unlock waits for this Extend before it releases: its
	// SET must not land after the release.
	if !m.beginCheck(calls, true) {
		return false, errors.Join(ErrExtendFailed, errUnlocked)
	}
	whole := false // every node extended the key
	defer func() { m.endCheck(calls, true, ok && whole) }()
	setNX := "0"
	if m.setNXOnExtend {
		setNX = "1"
	}
	calls.awaitSettled(m.nodeTimeout())
	var extend redis.ScriptCall
	switch {
	case m.kind != nil:
		extend = m.kind.extend.call(calls.value, m.ttlArg, setNX)
	case m.names != nil:
		extend = m.lockCall(multiExtendScript, nil, calls.value, m.ttlArg, setNX)
	default:
		extend = redis.NewScriptCall(extendScript, m.keyArg, calls.value, m.ttlArg, setNX)
	}
	start := m.now()
	// With SetNX, an extension that lands on a node after the release sets
	// the key again: the round waits for every node (within the per-node
	// timeout), even with WithFailFast, so that an Unlock that follows
	// cannot be overtaken by it.
	op := nodeOp{call: &extend, trace: tr}
	_, automatic := ctx.Value(extenderKey{}).(*extender)
	if !m.setNXOnExtend && !automatic {
		// Not with SetNX: a round that returned at a quorum would leave
		// slower nodes' SETs in flight, which Unlock could not wait for.
		// Not for automatic extension either, which tries again within
		// the interval and must notice a loss soon (see lease.go).
		op.patience = m.patience()
	}
	t := m.nodes.broadcast(ctx, m.nodeTimeout(), m.failFast && !m.setNXOnExtend, op)
	whole = t.done == len(m.nodes.pools)
	validity := m.validityLeft(start)
	if t.done >= m.nodes.quorum && validity > 0 {
		return m.extended(ctx, calls, start)
	}
	if t.done >= m.nodes.quorum {
		return false, fmt.Errorf("%w: a quorum answered after the validity ran out (expiry %v, drift %v)", ErrExtendFailed, m.expiry, m.drift())
	}
	if t.expired(m.nodes.quorum) {
		return false, errors.Join(ErrExtendFailed, ErrLockAlreadyExpired, t.err())
	}
	return false, errors.Join(ErrExtendFailed, t.err())
}

// extended moves the validity of the acquisition of calls after an
// extension round that started at start succeeded, and reports Extend's
// result: a failure when Unlock took the acquisition, or the Mutex made
// another one, while the round ran. When the lease's deadline had passed
// before the round started, the lock was not guaranteed in between
// (another client may have held it, and WithSetNXOnExtend set the keys
// again): the lease ends as lost, though Extend succeeds. The round of an
// extender stopped while it ran (WithSetNXOnExtend does not cut it short)
// moves nothing: a stopped extender no longer extends the validity.
func (m *Mutex) extended(ctx context.Context, calls *lockCalls, start time.Time) (bool, error) {
	if e, ok := ctx.Value(extenderKey{}).(*extender); ok && e.ctx.Err() != nil {
		return false, fmt.Errorf("%w: automatic extension was stopped while the round ran", ErrExtendFailed)
	}
	m.mu.Lock()
	switch {
	case m.acq.state == acqUnlocked && m.acq.calls == calls:
		m.mu.Unlock()
		return false, errors.Join(ErrExtendFailed, errUnlocked)
	case m.acq.calls != calls:
		m.mu.Unlock()
		return false, fmt.Errorf("%w: the Mutex made another acquisition while the extension ran", ErrExtendFailed)
	}
	var lapsed func()
	if m.lease != nil {
		lapsed = m.lease.lapsedLocked(start)
	}
	m.acq.until = start.Add(m.validFor())
	if m.lease != nil && lapsed == nil {
		m.lease.extendedTo(m.acq.until)
	}
	m.mu.Unlock()
	if lapsed != nil {
		lapsed()
	}
	return true, nil
}

// Valid reports whether a quorum of nodes still hold this Mutex's value.
//
// Deprecated: Use Until, which needs no round trip. Valid may report true
// for a lock that expires while the reply travels.
func (m *Mutex) Valid() (bool, error) {
	return m.ValidContext(context.Background())
}

// ValidContext reports whether a quorum of nodes still hold this Mutex's
// value.
//
// Deprecated: Use Until, which needs no round trip. ValidContext may report
// true for a lock that expires while the reply travels.
func (m *Mutex) ValidContext(ctx context.Context) (bool, error) {
	if m.kind != nil {
		return false, errNoValid
	}
	value, calls, err := m.current()
	if errors.Is(err, errUnlocked) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if !m.beginCheck(calls, false) {
		return false, nil // Unlock took it meanwhile
	}
	whole := false // every node holds the value
	defer func() { m.endCheck(calls, false, whole) }()
	t := m.nodes.fanout(ctx, m.nodeTimeout(), m.failFast, func(ctx context.Context, node int) (int64, error) {
		conn, err := m.nodes.pools[node].Get(ctx)
		if err != nil {
			return 0, err
		}
		defer conn.Close()
		if m.names != nil {
			return m.multiHolds(conn, value)
		}
		got, err := conn.Get(m.name)
		switch {
		case err != nil:
			return 0, err
		case got == value:
			return replyDone, nil
		case got == "":
			return replyMissing, nil
		}
		return replyTaken, nil
	})
	whole = t.done == len(m.nodes.pools)
	return t.done >= m.nodes.quorum, t.err()
}

// makeCalls returns the acquire and release calls for value.
func (m *Mutex) makeCalls(value string) *lockCalls {
	c := &lockCalls{value: value}
	if m.kind != nil {
		c.acquire = m.kind.acquire.call(c.value, m.ttlArg)
		c.release = m.kind.release.call(c.value)
		if m.kind.undo.script != nil {
			c.undo = m.kind.undo.call(c.value)
		}
		return c
	}
	switch {
	case m.fence.on || m.guard.on || m.names != nil:
		c.acquire, c.proposed = m.acquireCall(c.value)
	default:
		c.acquire = redis.NewScriptCall(acquireScript, m.keyArg, c.value, m.ttlArg)
		if m.nodes.pipeliners != nil {
			c.setNX = []any{"SET", m.keyArg, c.value, "NX", "PX", m.ttlArg}
		}
	}
	// The undo of a failed try releases as Unlock does: where it deletes
	// the key, the first waiter of the nodes' queue is woken (see
	// handoff.go).
	switch {
	case m.names != nil && m.noNotify:
		c.release = m.lockCall(multiReleaseScript, nil, c.value, "0")
	case m.names != nil:
		queues := make([]any, len(m.names))
		for i, name := range m.names {
			queues[i] = queueKey(name)
		}
		c.release = m.lockCall(multiReleaseScript, queues, c.value, "1")
	case m.noNotify:
		c.release = redis.NewScriptCall(releaseScript, m.keyArg, c.value)
	default:
		c.release = redis.NewScriptCall(releaseNotifyScript, m.keyArg, m.queueKeyArg, c.value)
	}
	return c
}

// acquireCall returns the call of the acquire script for value, with the
// restart guard and fencing as configured (see acquireSource), and the
// token it proposes (0 without fencing).
func (m *Mutex) acquireCall(value any) (redis.ScriptCall, uint64) {
	var extra []any
	args := []any{value, m.ttlArg}
	if m.guard.on {
		extra = append(extra, m.guard.marker)
		args = append(args, m.guard.ttlArg)
	}
	var proposed uint64
	if m.fence.on {
		extra = append(extra, m.fence.counters...)
		proposed = m.fenceProposal()
		args = append(args, strconv.FormatUint(proposed, 10))
	}
	script := acquireScripts[b2i(m.names != nil)][b2i(m.guard.on)][b2i(m.fence.on)]
	return m.lockCall(script, extra, args...), proposed
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// lockCall returns a call of script on the lock keys followed by the keys
// extra, with args. A script whose KeyCount is negative (those of several
// names) gets the key count first.
func (m *Mutex) lockCall(script *redis.Script, extra []any, args ...any) redis.ScriptCall {
	all := make([]any, 0, 1+len(m.keyArgs)+len(extra)+len(args))
	if script.KeyCount < 0 {
		all = append(all, len(m.keyArgs)+len(extra))
	}
	all = append(append(append(all, m.keyArgs...), extra...), args...)
	return redis.NewScriptCall(script, all...)
}

// lockNames returns the names of the lock: its name, or the names of a
// Mutex of NewMultiMutex.
func (m *Mutex) lockNames() []string {
	if m.names != nil {
		return m.names
	}
	return []string{m.name}
}

// newValue returns a value for a new try from the value generator, or an
// error that names what is wrong with it.
func (m *Mutex) newValue() (string, error) {
	value, err := m.genValueFunc()
	if err != nil {
		return "", fmt.Errorf("%w: generating the lock value: %w", ErrFailed, err)
	}
	if value == "" || len(value) > maxValueLen {
		return "", newConfigError("the value generator returned %d bytes; a lock value must have 1 to %d", len(value), maxValueLen)
	}
	return value, nil
}

// genValue returns 16 random bytes from crypto/rand, base64-encoded.
func genValue() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b[:]), nil
}
