package redsync

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/go-redlock/redsync/redis"
)

// Fencing tokens over a quorum (WithFencing).
//
// The acquire round runs a fenced variant of the acquire script, which
// returns the node's counter for the lock name and, where it takes the
// lock, raises the counter to a proposed token: one more than the highest
// counter the mutexes of this Redsync have seen for the name (fenceHints).
// If every reply reports a counter below the proposal, the proposal is the
// token, already written on the quorum that granted the lock (the fast
// path: no extra round trip, the usual case of a process locking again
// while no other client did). Otherwise a second round sends
// token = highest+1 to every node, where fence_advance.lua raises the
// counter to it, but only while the node still holds this acquisition's
// lock key and only where the counter is below the token. The lock is held
// when the rounds succeeded on a quorum within the validity, which counts
// both.
//
// A node confirms token t for an acquisition in one atomic step that finds
// the acquisition's lock key on the node and raises the counter from below
// t to t: the fenced acquire script where it takes the key (every node
// counted on the fast path did, since its counter was below the proposal),
// or fence_advance.lua. A node whose counter is already at t or above does
// not confirm: another acquisition raised it there, and may hold t.
//
// Why tokens differ and grow: let A and B be acquisitions that held the
// lock, with tokens a and b confirmed on quorums W and L. Any two quorums
// share a node; on it, both raised the counter, which never goes down. If
// A's step came first, B found the counter at a or more and raised it
// from below b, so b > a; and the other way round. So no two held
// acquisitions share a token, and the one confirmed later on the shared
// node has the greater token; in particular, B has the greater token when
// its try began after A's Lock returned. This needs the shared node to
// keep its counter (see docs/FENCING.md); no clock, expiry or lock key
// lifetime plays a part in it. Commands that land late (after their round
// was decided) only ever raise counters, which does no harm.

var (
	//go:embed lua/fence_acquire.lua
	fenceAcquireTail string
	//go:embed lua/fence_advance.lua
	fenceAdvanceSrc string

	fenceAdvanceScript      = redis.NewScript(2, fenceAdvanceSrc, "")
	multiFenceAdvanceScript = redis.NewScript(-1, fenceAdvanceSrc, "") // the key count first
)

// fenceCounterPrefix starts the name of every fencing counter key; a
// cluster hash tag and the lock name follow it.
const fenceCounterPrefix = "redsync:fence:"

// WithFencing makes every acquisition issue a fencing token, read with
// [Mutex.FencingToken]: a number that strictly increases from one holder of
// the lock name to the next, across all clients and Mutex values. Pass it
// with every write to the protected resource and have the resource reject
// a token lower than the last one it accepted (see [GuardedSet] for a
// resource kept in Redis): a holder that paused past its validity, whose
// lock has since gone to another client, then cannot overwrite the newer
// holder's work. No lease lock can prevent that pause by itself.
//
// A token needs one more round trip only when the lock changed hands: the
// acquire round also reads each node's counter for the lock name and, where
// it takes the lock, raises it to a proposed token, one more than the
// highest counter that the mutexes of this [Redsync] have seen for the
// name. When every node reports a lower counter (a Mutex of this Redsync
// was the last holder), the proposal is the token. When not (another
// client held the lock since), a second round writes the highest counter
// plus one on the nodes that still hold the lock; a node counts only where
// its counter was below that token and now holds it. The lock is held only
// when the rounds succeeded on a quorum within the validity; when the
// second one fails, the try fails like any other (the error matches
// [ErrFailed] and names the failing nodes) and is undone on every node.
//
// Tokens of two acquisitions that held the lock always differ, and the
// token is greater for an acquisition whose try began after the other's
// Lock returned, even when lock keys vanish early or commands arrive late.
// When lock keys live out their expiry, tokens also follow the order in
// which the Lock calls returned.
//
// Each node keeps one counter per lock name, in a key without expiry named
// "redsync:fence:{TAG}:" + name (TAG hashes to the lock key's cluster
// slot). Tokens grow only as long as the nodes keep these counters: a node
// that loses its data (a restart without persistence, FLUSHALL, eviction,
// a resync or a failover) can make a later token repeat or go below an
// earlier one. Run the nodes with appendonly yes and appendfsync always,
// and a maxmemory-policy that does not evict keys without expiry
// (noeviction, or volatile-*); [WithRestartGuard] protects lock keys, not
// counters.
//
// WithFencing cannot be combined with [WithSetNXOnExtend]: an Extend that
// sets missing keys would make a holder whose keys expired, and whose lock
// another client has taken since with a greater token, hold the lock
// again with its older token. NewMutex then returns a Mutex whose methods
// fail with an error matching [ErrInvalidConfig]. docs/FENCING.md has the
// argument and the limits. The default is off, as in redsync v4.
func WithFencing() Option {
	return setting(func(c *config) {
		c.fence.on = true
	})
}

// fencing is the configuration of WithFencing.
type fencing struct {
	on bool
	// counters are the counter keys of the lock's names, boxed once for
	// the scripts (set by NewMutex and NewMultiMutex).
	counters []any
	hints    *fenceHints // the Redsync's: the highest counter seen per name
}

// fenceSeen records that the lock's fencing counters have reached n.
func (m *Mutex) fenceSeen(n uint64) {
	for _, name := range m.lockNames() {
		m.fence.hints.see(name, n)
	}
}

// fenceProposal returns the token that a fenced try proposes: one more
// than the highest counter the mutexes of this Redsync have seen for the
// lock's names. A counter at the top of uint64 makes it propose 0, which
// no counter is below.
func (m *Mutex) fenceProposal() uint64 {
	var highest uint64
	for _, name := range m.lockNames() {
		highest = max(highest, m.fence.hints.get(name))
	}
	return highest + 1
}

// fenceHintSlots is how many lock names a Redsync remembers the fencing
// counter of at once.
const fenceHintSlots = 256

// fenceHints remembers, for the mutexes of one Redsync, the highest fencing
// counter or token seen per lock name, so that every Mutex of a name, also
// one made for a single Lock (as Do does), proposes the token that a lock
// taken again by this process needs. It has a fixed number of slots: names
// that share one replace each other, which only costs a fencing round now
// and then. A hint only ever makes a proposal; the nodes' counters decide
// whether it is kept. The zero value is ready to use.
type fenceHints struct {
	slots [fenceHintSlots]atomic.Pointer[fenceHint]
}

// fenceHint is the content of one slot: a name and its highest counter.
type fenceHint struct {
	name string
	seen uint64
}

// fenceHintSeed spreads the names over the slots.
var fenceHintSeed = maphash.MakeSeed()

func (h *fenceHints) slot(name string) *atomic.Pointer[fenceHint] {
	return &h.slots[maphash.String(fenceHintSeed, name)%fenceHintSlots]
}

// get returns the highest counter seen for name; 0 when unknown.
func (h *fenceHints) get(name string) uint64 {
	if p := h.slot(name).Load(); p != nil && p.name == name {
		return p.seen
	}
	return 0
}

// see records that name's counter has reached n.
func (h *fenceHints) see(name string, n uint64) {
	s := h.slot(name)
	for {
		old := s.Load()
		if old != nil && old.name == name && old.seen >= n {
			return
		}
		if s.CompareAndSwap(old, &fenceHint{name: name, seen: n}) {
			return
		}
	}
}

// fenceCounter returns the name of the fencing counter of the lock key:
// the prefix, a hash tag that hashes to key's Redis Cluster slot (as the
// restart guard's marker, see guardMarker), and key itself, since each
// lock name needs a counter of its own.
func fenceCounter(key string) string {
	return fenceCounterPrefix + "{" + slotTag(keySlot(key)) + "}:" + key
}

// FencingToken returns the fencing token of the current acquisition: the
// token issued by the last successful Lock, until Unlock is called. It is
// 0 without [WithFencing], before the first successful Lock, after Unlock,
// and on a Mutex made with [WithValue] that has not locked itself. An
// Unlock that gives the acquisition back (it released on no quorum because
// of node errors or its ctx, see [Mutex.UnlockContext]) gives the token
// back with it.
// Within [Redsync.Do], the function reads it with
// MutexFromContext(ctx).FencingToken().
//
// The token is not cleared when the validity runs out: the holder cannot
// know for sure that its lock is gone (it may have been paused), which is
// why the resource, not the holder, must compare tokens.
func (m *Mutex) FencingToken() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.acq == nil || m.acq.calls == nil || m.acq.state == acqUnlocked {
		return 0
	}
	return m.acq.calls.token
}

// fencedAcquireRound is the acquire round of a fenced try: the fenced
// acquire script on every node. It returns the outcomes and the highest
// counter that any node returned (0 when none did).
//
// Every node that granted the lock and was counted returned its counter
// before its outcome was collected, so the highest counter covers at least
// those nodes. Counters of nodes that refused, or answered too late, can
// only raise it, which does no harm. tr, when not nil, records the nodes'
// results for the observer.
func (m *Mutex) fencedAcquireRound(ctx context.Context, calls *lockCalls, tr *nodeTrace) (tally, uint64) {
	var highest atomic.Uint64
	t := m.nodes.broadcast(ctx, m.nodeTimeout(), m.failFast, nodeOp{trace: tr, settled: &calls.settled, fn: func(ctx context.Context, node int) (int64, error) {
		reply, err := evalScript(ctx, m.nodes.pools[node], m.nodes.runners[node], &calls.acquire)
		if err != nil {
			return 0, err
		}
		status, counter, err := parseFenceReply(reply, "fenced acquire")
		if err != nil {
			return 0, err
		}
		if status != replyDone && !isTaken(status) {
			return 0, fmt.Errorf("redsync: unexpected status %d from the fenced acquire script", status)
		}
		for {
			seen := highest.Load()
			if counter <= seen || highest.CompareAndSwap(seen, counter) {
				break
			}
		}
		return status, nil
	}})
	h := highest.Load()
	m.fenceSeen(h)
	return t, h
}

// advanceFence completes a fenced try that won the acquire round, in which
// highest was the highest counter read. When it is below the token
// proposed in that round, the proposal is the token: the nodes that granted
// the lock raised their counters to it as they did. Otherwise it runs the
// second round: it sends highest+1 to every node, where fence_advance.lua
// confirms it only by raising the counter to it under this acquisition's
// lock key, and checks that a quorum confirmed it within the validity,
// which started at start. On success it records the token in calls.
func (m *Mutex) advanceFence(ctx context.Context, calls *lockCalls, highest uint64, start time.Time) error {
	if highest < calls.proposed {
		calls.token = calls.proposed
		m.fenceSeen(calls.token)
		return nil
	}
	if highest == math.MaxUint64 {
		return fmt.Errorf("%w: fencing counter of %s is exhausted (%d)", ErrFailed, m.name, highest)
	}
	token := highest + 1
	script := fenceAdvanceScript
	if m.names != nil {
		script = multiFenceAdvanceScript
	}
	call := m.lockCall(script, m.fence.counters, calls.value, strconv.FormatUint(token, 10))
	// A confirmation after the validity is worthless: bound the round by
	// what is left of it.
	timeout := min(m.nodeTimeout(), m.validityLeft(start))
	if timeout <= 0 {
		return fmt.Errorf("%w: fencing round: the validity ran out before it started (expiry %v, drift %v)", ErrFailed, m.expiry, m.drift())
	}
	t := m.nodes.fanoutScript(ctx, timeout, m.failFast, &call)
	validity := m.validityLeft(start)
	switch {
	case t.done >= m.nodes.quorum && validity > 0:
		// lockContext publishes calls, and with them the token, under m.mu.
		calls.token = token
		m.fenceSeen(token)
		return nil
	case t.done >= m.nodes.quorum:
		return fmt.Errorf("%w: fencing round: a quorum confirmed token %d after the validity ran out (expiry %v, drift %v)",
			ErrFailed, token, m.expiry, m.drift())
	}
	return errors.Join(
		fmt.Errorf("%w: fencing round: token %d confirmed by %d of %d nodes, quorum %d", ErrFailed, token, t.done, len(m.nodes.pools), m.nodes.quorum),
		t.err())
}

// parseFenceReply parses a {status, token} reply of the fenced acquire
// script or the guarded write script (named by script, for errors).
func parseFenceReply(reply any, script string) (status int64, token uint64, err error) {
	r, ok := reply.([]any)
	if !ok || len(r) != 2 {
		return 0, 0, fmt.Errorf("redsync: unexpected reply %#v to the %s script", reply, script)
	}
	status, ok = r[0].(int64)
	if !ok {
		return 0, 0, fmt.Errorf("redsync: unexpected status %#v from the %s script", r[0], script)
	}
	token, err = parseToken(r[1])
	if err != nil {
		return 0, 0, fmt.Errorf("redsync: unexpected token from the %s script: %w", script, err)
	}
	return status, token, nil
}

// parseToken parses a token as drivers return a Lua string: a string
// (go-redis, rueidis) or a []byte (redigo).
func parseToken(v any) (uint64, error) {
	var s string
	switch v := v.(type) {
	case string:
		s = v
	case []byte:
		s = string(v)
	case int64:
		if v >= 0 {
			return uint64(v), nil
		}
		return 0, fmt.Errorf("negative token %d", v)
	default:
		return 0, fmt.Errorf("%#v is not a token", v)
	}
	return strconv.ParseUint(s, 10, 64)
}
