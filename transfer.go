package redsync

import (
	"context"
	_ "embed"
	"errors"
	"time"

	"github.com/go-redlock/redsync/redis"
)

// Local hand-off.
//
// When Unlock finds a Lock call of the same Redsync waiting for the same
// lock (a waiter of the notifier, see handoff.go), it does not release the
// lock and let the waiter try again, which costs the waiter a turn message
// and a try of its own after the release. It hands the lock
// over instead, in one round: transfer.lua replaces, on every node, the
// holder's value with a fresh value of the waiter (or sets it where the key
// had expired), with the waiter's expiry, and takes the waiter out of the
// nodes' queue of waiters. Both run in this process, so the
// round's start on the monotonic clock bounds the new validity exactly as
// the start of a try does: the waiter holds the lock when a quorum took the
// new value and the validity, computed with the waiter's expiry and drift,
// is still positive. Otherwise the hand-off is undone on every node (the
// key is deleted where it holds either value), which releases the holder's
// lock as a plain Unlock would, and the waiter goes on with a try of its
// own at once.
//
// Passing on. When nothing outside this process can know the holder's
// value, and nothing says the nodes lost it, the hand-off needs no round at
// all: the holder's acquisition itself, its value and the validity of the
// round that set its keys, becomes the waiter's (passOn). The nodes hold a
// value, not a Mutex: under Redlock's assumptions a quorum keeps that
// value until the validity computed from the round's start ends, whoever
// in this process uses it. Passing on changes only who may use it, and
// does so once, atomically:
//   - only the Unlock that took the acquisition (takeForUnlock) can pass it
//     on, and only to the waiter that it claimed (claim sets the waiter's
//     grant under the notifier's lock); the waiter takes the grant, or
//     releases the lock when its Lock call has ended (lockWait's end);
//   - under the holder's mu, in one step, it checks that the value was never
//     shown (no Value call, no observer, which sees it in events, no
//     WithGenValueFunc, whose code made it; both Mutexes), that every node
//     took the key in the round that made the acquisition, that no Extend
//     or Valid of it is in flight, none failed or found a node without the
//     key, no Unlock of it failed and no try of another acquisition by a
//     Mutex of this Redsync may have found the key free on a node since (a
//     node took it, failed, did not answer or held another owner:
//     notifier.sawFree), and blanks the holder's
//     copy: from then on the old Mutex has no value to act with (Unlock,
//     Extend and Valid send nothing, Value is empty), and no code outside
//     the library ever had it (String and Format print no value);
//   - the waiter's validity is computed from the same round's start, with
//     the waiter's expiry (the same as the holder's, or there is a round)
//     and its own drift, and is passed on only when at least as much of it
//     is left as a round that took its whole per-node timeout (the shorter
//     of the two Mutexes') would have left (by default, within 400 ms of
//     the round that set the keys): the waiter's Lock returns what a slow
//     round could have returned;
//   - the waiter has no entry in the nodes' queue of waiters, which only
//     the transfer round removes; the entries that the holder's try left
//     where it failed go with the acquisition, whose release or transfer
//     round removes them (keepEntries); fencing and the restart guard, on
//     either side, take no part.
// Otherwise the hand-off is the transfer round.
//
// Waiters in other processes cannot be handed the lock this way; to leave
// them a chance, a lock goes to local waiters at most maxLocalHandoffs
// times in a row, then it is released as usual, which gives the turn to
// the first waiter of the nodes' queue. Mutexes with
// fencing, and waiters with a restart guard, take no part: their
// acquisitions need a new token, or a check of each node's restart. An
// observer sees a hand-off as the last Try of the waiter's AcquireEvent and
// in the holder's ReleaseEvent, both with HandedOver set.

// maxLocalHandoffs bounds how many times in a row a lock goes to a waiter
// of the same Redsync without being released.
const maxLocalHandoffs = 16

//go:embed lua/transfer.lua
var transferSrc string

var transferScript = redis.NewScript(2, queueLibSrc+transferSrc, "")

// grant is a hand-off to a waiter; done is closed when it has ended, and
// ok tells whether the waiter now holds the lock.
type grant struct {
	done  chan struct{}
	ok    bool
	value string
	calls *lockCalls
	until time.Time
	// since is when the waiter holds the lock from, on its clock (for
	// WithMaxHold).
	since time.Time
	// For the waiter's observer: the hand-off round's start and duration,
	// and the nodes' results when either Mutex has an observer.
	start    time.Time
	duration time.Duration
	nodes    []NodeResult
}

// canHandOver reports whether m's Unlock may hand the lock to a waiter:
// never for a Mutex with a kind, which does not listen.
func (m *Mutex) canHandOver() bool {
	return m.listens() && !m.fence.on && m.notify.watched.Load() > 0
}

// claimWaiter returns the waiter to which m's Unlock hands the acquisition
// of calls over, and its grant, or nil.
func (m *Mutex) claimWaiter(calls *lockCalls) (*waiter, *grant) {
	if !m.canHandOver() {
		return nil, nil
	}
	return m.notify.claim(m.name, calls.handoffs)
}

// canTakeOver reports whether m's waiting Lock call may be handed a lock.
func (m *Mutex) canTakeOver() bool {
	return m.configErr == nil && !m.fence.on && !m.guard.on && m.names == nil && m.kind == nil
}

// claim takes the longest-waiting waiter for key out of the queue to hand
// it the lock, or returns nil when there is none that can take it, or when
// the acquisition being released came by handoffs hand-offs in a row
// (lockCalls.handoffs) and has reached maxLocalHandoffs. The caller must
// then end the returned grant.
func (n *notifier) claim(key string, handoffs int) (*waiter, *grant) {
	if handoffs >= maxLocalHandoffs {
		return nil, nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	kw := n.keys[key]
	if kw == nil || len(kw.queue) == 0 {
		return nil, nil
	}
	w := kw.queue[0]
	if w.grant != nil || !w.m.canTakeOver() {
		return nil, nil
	}
	w.unqueue()
	w.grant = &grant{done: make(chan struct{})}
	return w, w.grant
}

// handOver is Unlock by hand-off to waiter w, whose grant is g: see the
// comment at the top of this file. It reports the holder's release as
// unlock does, and whether the waiter got the lock, and records it in tr
// (nil for none).
func (m *Mutex) handOver(ctx context.Context, calls *lockCalls, w *waiter, g *grant, tr *nodeTrace) (ok, handed bool, err error) {
	wm := w.m
	defer func() {
		close(g.done)
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}()
	if m.passOn(calls, w, g) {
		return true, true, nil
	}
	value, err := wm.newValue()
	if err != nil {
		// The waiter's next try will fail the same way and say so.
		ok, err := m.release(ctx, calls, tr)
		return ok, false, err
	}
	next := wm.makeCalls(value)
	next.handoffs = calls.handoffs + 1
	member, ticket := w.entry()
	holder, holderTicket := calls.entry()
	transfer := redis.NewScriptCall(transferScript, m.keyArg, m.queueKeyArg, calls.value, next.value, wm.ttlArg, "", member, ticket, holder, holderTicket)
	trace := tr
	if trace == nil && wm.observer != nil {
		trace = &nodeTrace{}
	}
	if tr != nil {
		tr.tookOver = NodeMissing // the holder's view
	}
	g.start = time.Now()
	start := wm.now()
	// The round waits for every node (within the per-node timeout), as a
	// try does, unless the waiter has WithFailFast: then it ends as soon
	// as a quorum took the new value (or cannot). Either way, until the
	// slower nodes' replies came, the next command on the lock waits (see
	// awaitSettled): on a node, it could overtake the hand-off, which
	// would then set a key that nobody holds. Every node's reply also
	// tells whether the new acquisition may be passed on (partial). Each
	// node is bounded by the shorter per-node timeout of the two: this is
	// the holder's Unlock as much as the waiter's acquisition.
	t := wm.nodes.broadcast(ctx, min(m.nodeTimeout(), wm.nodeTimeout()), wm.failFast, nodeOp{call: &transfer, trace: trace, settled: &next.settled})
	validity := wm.validityLeft(start)
	if t.done >= wm.nodes.quorum && validity > 0 {
		next.partial = t.done < len(wm.nodes.pools)
		g.ok, g.value, g.calls = true, value, next
		g.until, g.since = start.Add(wm.validFor()), start
		g.duration = time.Since(g.start)
		if trace != nil {
			// A node where the key had expired took the waiter's value:
			// missing for the holder, ok for the waiter.
			for _, r := range trace.nodes {
				if r.Outcome == NodeMissing {
					r.Outcome = NodeOK
				}
				g.nodes = append(g.nodes, r)
			}
		}
		if tr != nil {
			tr.handedOver = true
		}
		// The holder released where its value was replaced.
		t.done -= t.tookOver
		t.missing += t.tookOver
		ok, err := m.releaseResult(t)
		return ok, true, err
	}
	// Undo on every node, even when ctx has ended: neither value may
	// outlive this Unlock. The holder's observer sees the undo, which is
	// what released the lock.
	if tr != nil {
		tr.nodes = nil
	}
	next.awaitSettled(wm.nodeTimeout())
	undo := redis.NewScriptCall(transferScript, m.keyArg, m.queueKeyArg, calls.value, next.value, wm.ttlArg, "undo")
	t = m.nodes.broadcast(context.WithoutCancel(ctx), m.nodeTimeout(), m.failFast, nodeOp{call: &undo, trace: tr})
	ok, err = m.releaseResult(t)
	return ok, false, err
}

// passOn gives the acquisition of calls, which m's Unlock took, itself to
// waiter w in its grant g, with no round, when the rules at the top of this
// file allow it; it reports whether it did.
func (m *Mutex) passOn(calls *lockCalls, w *waiter, g *grant) bool {
	wm := w.m
	if m.ownValues || wm.ownValues || m.observer != nil || wm.observer != nil || m.guard.on || m.expiry != wm.expiry {
		return false
	}
	if member, _ := w.entry(); member != "" {
		return false // only a transfer round takes the waiter out of the queues
	}
	if w.ended() {
		// Its Lock will give the lock back: a round, which fails as a
		// whole when nodes cannot be reached, leaves the holder's Unlock
		// able to try again; a release of a passed-on lock that fails
		// there would leave the keys to their TTL.
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.acq
	if a.calls != calls || a.state != acqUnlocked || a.unlockedFrom != acqHeld || a.shown || a.doubtful || a.checks > 0 {
		return false
	}
	if m.notify.freeRefuses(m.name, calls.root(), a.until.Add(-m.validFor())) {
		return false // a try may have found the key free on a node since the round that set it
	}
	// The validity of the round that set the keys (Lock's, or the last
	// Extend's: both set until to their start + validFor), with the
	// waiter's drift.
	until := a.until.Add(wm.validFor() - m.validFor())
	now := wm.now()
	// A round would bound each node by the shorter per-node timeout of the
	// two (see handOver above).
	if left := until.Sub(now); left <= 0 || left < wm.validFor()-min(m.nodeTimeout(), wm.nodeTimeout()) {
		return false
	}
	next := wm.makeCalls(a.value)
	next.handoffs = calls.handoffs + 1
	next.origin = calls.root()
	if member, ticket := calls.entry(); member != "" {
		next.keepEntries(wm, member, ticket)
	}
	g.ok, g.value, g.calls, g.until, g.since = true, a.value, next, until, now
	g.start = time.Now()
	a.value = "" // the waiter's now: the old Mutex can neither show nor use it
	return true
}

// takeGrant makes the lock handed over in g the current acquisition of m,
// and records the hand-off in rec (nil for none).
func (m *Mutex) takeGrant(g *grant, rec *acquireRecord) {
	if rec != nil {
		rec.handedOver = true
		if len(rec.tries) == maxObservedTries {
			rec.tries = append(rec.tries[:0], rec.tries[1:]...)
		}
		rec.tries = append(rec.tries, Try{Start: g.start, Duration: g.duration, Nodes: g.nodes})
	}
	m.acquiredSince(g.value, g.until, g.since, g.calls)
}

// refuseGrant releases the lock handed over in g to a Lock call whose ctx
// ended meanwhile.
func (m *Mutex) refuseGrant(g *grant) {
	g.calls.awaitSettled(m.nodeTimeout())
	m.nodes.broadcast(context.Background(), m.nodeTimeout(), m.failFast, nodeOp{call: &g.calls.release})
}

// awaitSettled waits, at most d, until every node ended the command that
// made the acquisition of c, when that command returned at a quorum.
func (c *lockCalls) awaitSettled(d time.Duration) {
	if c.settled == nil {
		return
	}
	select {
	case <-c.settled:
		return
	default:
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-c.settled:
	case <-timer.C:
	}
}

// releaseResult turns the tally of a release on every node into Unlock's
// result.
func (m *Mutex) releaseResult(t tally) (bool, error) {
	if t.done >= m.nodes.quorum {
		return true, nil
	}
	// Expired only when the nodes that miss the key or hold another
	// owner's rule out a quorum; a lock that failed on timeouts and errors
	// is not reported as expired. Taken on a quorum, it is *ErrTaken too,
	// as in v4.
	if t.lost(m.nodes.quorum) {
		if len(t.taken) >= m.nodes.quorum {
			return false, errors.Join(ErrLockAlreadyExpired, &ErrTaken{Nodes: t.taken}, t.err())
		}
		return false, errors.Join(ErrLockAlreadyExpired, t.err())
	}
	if t.missing > 0 && t.err() == nil {
		return false, ErrLockAlreadyExpired
	}
	return false, t.err()
}
