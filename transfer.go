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
// lock and let the waiter try again, which costs the waiter a release
// announcement and a try of its own after the release. It hands the lock
// over instead, in one round: transfer.lua replaces, on every node, the
// holder's value with a fresh value of the waiter (or sets it where the key
// had expired), with the waiter's expiry. Both run in this process, so the
// round's start on the monotonic clock bounds the new validity exactly as
// the start of a try does: the waiter holds the lock when a quorum took the
// new value and the validity, computed with the waiter's expiry and drift,
// is still positive. Otherwise the hand-off is undone on every node (the
// key is deleted where it holds either value), which releases the holder's
// lock as a plain Unlock would, and the waiter goes on with a try of its
// own at once.
//
// Waiters in other processes cannot be handed the lock this way; to leave
// them a chance, a lock goes to local waiters at most maxLocalHandoffs
// times in a row, then it is released and announced as usual. Mutexes with
// fencing, a restart guard or an observer neither hand over nor receive a
// lock this way: their acquisitions need a token, a check of the node's
// restart, or a record of the try.

// maxLocalHandoffs bounds how many times in a row a lock goes to a waiter
// of the same Redsync without being released.
const maxLocalHandoffs = 16

//go:embed transfer.lua
var transferSrc string

var transferScript = redis.NewScript(1, transferSrc, "")

// grant is a hand-off to a waiter; done is closed when it has ended, and
// ok tells whether the waiter now holds the lock.
type grant struct {
	done  chan struct{}
	ok    bool
	value string
	calls *lockCalls
	until time.Time
}

// canHandOver reports whether m's Unlock may hand the lock to a waiter.
func (m *Mutex) canHandOver() bool {
	return m.notify != nil && !m.noNotify && !m.fence.on && m.observer == nil && m.notify.watched.Load() > 0
}

// canTakeOver reports whether m's waiting Lock call may be handed a lock.
func (m *Mutex) canTakeOver() bool {
	return m.configErr == nil && !m.fence.on && !m.guard.on && m.observer == nil
}

// claim takes the longest-waiting waiter for key out of the queue to hand
// it the lock, or returns nil when there is none that can take it (or the
// lock went to local waiters maxLocalHandoffs times in a row). The caller
// must then end the returned grant.
func (n *notifier) claim(key string) (*waiter, *grant) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ch := n.channels[key]
	if ch == nil || len(ch.queue) == 0 {
		return nil, nil
	}
	w := ch.queue[0]
	if w.grant != nil || !w.m.canTakeOver() || ch.handoffs >= maxLocalHandoffs {
		ch.handoffs = 0
		return nil, nil
	}
	ch.handoffs++
	w.unqueue()
	w.grant = &grant{done: make(chan struct{})}
	return w, w.grant
}

// handOver is Unlock by hand-off to waiter w, whose grant is g: see the
// comment at the top of this file. It reports the holder's release as
// unlock does.
func (m *Mutex) handOver(ctx context.Context, calls *lockCalls, w *waiter, g *grant) (bool, error) {
	wm := w.m
	defer func() {
		close(g.done)
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}()
	value, err := wm.newValue()
	if err != nil {
		// The waiter's next try will fail the same way and say so.
		return m.release(ctx, calls, nil)
	}
	next := wm.makeCalls(value)
	transfer := redis.NewScriptCall(transferScript, m.keyArg, calls.value, next.value, wm.ttlArg, "")
	start := wm.now()
	t := wm.broadcast(ctx, wm.nodeTimeout(), false, nodeOp{call: &transfer})
	validity := wm.expiry - wm.now().Sub(start) - wm.drift()
	if t.done+t.missing >= wm.quorum && validity > 0 {
		g.ok, g.value, g.calls = true, value, next
		g.until = start.Add(wm.expiry - wm.drift())
		return m.releaseResult(t)
	}
	// Undo on every node, even when ctx has ended: neither value may
	// outlive this Unlock.
	undo := redis.NewScriptCall(transferScript, m.keyArg, calls.value, next.value, wm.ttlArg, "undo")
	t = m.broadcast(context.WithoutCancel(ctx), m.nodeTimeout(), m.failFast, nodeOp{call: &undo})
	return m.releaseResult(t)
}

// takeGrant makes the lock handed over in g the current acquisition of m.
func (m *Mutex) takeGrant(g *grant) {
	m.mu.Lock()
	m.value, m.until, m.calls = g.value, g.until, g.calls
	m.mu.Unlock()
	m.acquired(g.value, g.until)
}

// refuseGrant releases the lock handed over in g to a Lock call whose ctx
// ended meanwhile.
func (m *Mutex) refuseGrant(g *grant) {
	m.broadcast(context.Background(), m.nodeTimeout(), m.failFast, nodeOp{call: &g.calls.release})
}

// releaseResult turns the tally of a release on every node into Unlock's
// result.
func (m *Mutex) releaseResult(t tally) (bool, error) {
	if t.done >= m.quorum {
		return true, nil
	}
	// Expired only when the missing keys alone rule out a quorum; a lock
	// that failed on timeouts and errors is not reported as expired.
	if t.missing > len(m.pools)-m.quorum {
		return false, errors.Join(ErrLockAlreadyExpired, t.err())
	}
	if t.missing > 0 && t.err() == nil {
		return false, ErrLockAlreadyExpired
	}
	return false, t.err()
}
