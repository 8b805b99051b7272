package redsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-redlock/redsync/redis"
)

// Review 23: passing an acquisition on with no round (passOn, transfer.go),
// after review 22's fixes (lockCalls.partial, endCheck's whole,
// keyWaiters.freeSeen, Mutex.String/Format) and 009fc9f's transfer round
// that waits for every node.

// r23Scene locks "k" with a holder over three fake nodes wrapped by
// r20Pools (hooks; they cannot be listened to, so waiters are polled and
// have no queue entries), starts a waiter of the same Redsync in Lock (retry
// delay of an hour: only a hand-off ends it), and then makes node 0 lose the
// key (a restart without persistence, an eviction). It returns the hooks,
// the Redsync, both Mutexes, the holder's value (read from a node) and the
// waiter's result channel.
func r23Scene(t *testing.T, c *fakeCluster) (ps []*r20Pool, rs *Redsync, holder, waiter *Mutex, value string, done chan error) {
	t.Helper()
	ps, pools := r20Pools(c)
	rs = New(pools...)
	holder = rs.NewMutex("k")
	holder.now = c.clock.Now
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	value, _ = c.nodes[1].value("k")
	waiter = rs.NewMutex("k", WithRetryDelay(time.Hour))
	waiter.now = c.clock.Now
	done = make(chan error, 1)
	go func() { done <- waiter.Lock() }()
	queuedWaiter(t, waiter)
	r22Lose(c, 0, "k")
	return ps, rs, holder, waiter, value, done
}

// r23BlockUndo makes node n's pool hold the release (the undo of a failed
// try) of any value but keep until gate closes (or the command's context
// ends); entered receives once when one is held.
func r23BlockUndo(p *r20Pool, keep string, gate chan struct{}) (entered chan struct{}) {
	entered = make(chan struct{}, 1)
	p.setHook(func(c *fakeConn, script *redis.Script, args []any) (bool, any, error) {
		if script != releaseNotifyScript {
			return false, nil, nil
		}
		if v, _ := withoutQueueKeys(script, args)[1].(string); v == keep {
			return false, nil, nil
		}
		select {
		case entered <- struct{}{}:
		default:
		}
		select {
		case <-gate:
		case <-c.ctx.Done():
			return true, nil, c.ctx.Err()
		}
		return false, nil, nil
	})
	return entered
}

// r23SecondLoss makes node 1 lose the key too and lets a Lock of another
// Redsync (another process) try: it reports two holders when that Lock
// succeeds while the waiter's Until is still ahead.
func r23SecondLoss(t *testing.T, c *fakeCluster, waiter *Mutex, what string) {
	t.Helper()
	got := waiter.Value()
	covered := c.holders("k", got)
	r22Lose(c, 1, "k")
	other := New(c.pools()...).NewMutex("k")
	other.now = c.clock.Now
	err := other.TryLock()
	if err == nil {
		defer other.Unlock()
	}
	if left := waiter.Until().Sub(c.clock.Now()); err == nil && left > 0 {
		t.Errorf("%s; the waiter's value was on %d of 3 nodes, and after node 1 lost it too another client locked "+
			"while the waiter's Until was %v away: two holders", what, covered, left)
	}
	waiter.Unlock()
}

// TestReview23FreeSeenNotedAfterUndo breaks "at most one holder" and the
// rule "no try of a waiting Lock of the same Redsync found the key free on a
// node after the round that set it (noted ... while others wait for the
// name)" (docs/LIFETIME.md).
//
// Interleaving, 3 nodes: the holder locks value v on every node; the
// waiter W waits (kw exists); node 0 loses the key. A TryLock of another
// Mutex B of the same Redsync takes node 0 (free) and fails on 1 and 2.
// acquire sets calls.freeSeen, then sends the undo and waits for it on
// every node; lockContext calls sawFree only after acquire returned. While
// the undo round is under way (one node's reply is slow: here held on a
// gate), the holder's Unlock claims W and passOn reads kw.freeSeen, still
// zero: the acquisition goes to W with no round, on nodes 1 and 2 only
// (B's undo emptied node 0). A transfer round would have set W's value on
// node 0 (transfer.lua takes a missing key). Node 1 then loses the key too:
// another client takes nodes 0 and 1 while W's Until is seconds away.
//
// Suggested fix: note the observation in the notifier before anything else
// can happen, in acquire as soon as the try's tally is known (before the
// undo, before returning), e.g. m.notify.sawFree(m.name, now) right where
// calls.freeSeen is set; or count tries under way like checks (a try of
// the name in flight makes passOn refuse, as an Extend in flight does).
// Fixed: acquire notes it (notifier.sawFree) before the undo, in a map of
// the notifier kept for the longest expiry, whether or not a waiter exists.
func TestReview23FreeSeenNotedAfterUndo(t *testing.T) {
	c := newFakeCluster(3)
	ps, rs, holder, waiter, value, done := r23Scene(t, c)
	gate := make(chan struct{})
	entered := r23BlockUndo(ps[2], value, gate)
	defer close(gate)

	b := rs.NewMutex("k", WithTimeoutFactor(0.5)) // a 4 s per-node timeout: the gate, not the timeout, ends the undo
	b.now = c.clock.Now
	bDone := make(chan error, 1)
	go func() { bDone <- b.TryLock() }()
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("B's undo did not reach node 2")
	}
	if v, _ := c.nodes[0].value("k"); v == value {
		t.Fatal("node 0 holds the holder's value")
	}
	sent := c.calls()
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("holder Unlock() = %v, %v", ok, err)
	}
	if err := awaitLock(t, done); err != nil {
		t.Fatalf("waiter Lock() = %v", err)
	}
	passed := c.calls() == sent
	gate <- struct{}{} // B's undo on node 2 goes on
	if err := awaitLock(t, bDone); !errors.Is(err, ErrFailed) {
		t.Fatalf("B TryLock() = %v, want a failure", err)
	}
	if !passed {
		return // a round: it set the waiter's value on node 0
	}
	eventually(t, "B's undo ended", func() bool { _, ok := c.nodes[0].value("k"); return !ok })
	r23SecondLoss(t, c, waiter, "B's TryLock found node 0 free after the holder's round, yet Unlock, during B's undo, passed the acquisition on")
}

// TestReview23FreeSeenLostWhenCtxEnds breaks the same rule and "at most one
// holder", with no race at all: the observation is never noted.
//
// Interleaving, 3 nodes: as above, but B is LockContext(ctx) and ctx ends
// during the try's undo (a Lock with a deadline, the usual way to bound a
// wait). lockContext sees ctx.Err() after acquire and returns the
// cancellation at once: the sawFree call at the end of the loop never
// runs, and kw.freeSeen stays zero although W waits for the name all
// along. The holder's Unlock then passes on (no round), W holds v on nodes
// 1 and 2 only, and a second single-node loss gives another client the
// lock.
//
// Suggested fix: as above (note it in acquire, before the undo), or call
// sawFree before every return of lockContext after a failed try (the ctx
// and permanent exits skip it).
// Fixed the first way (see above).
func TestReview23FreeSeenLostWhenCtxEnds(t *testing.T) {
	c := newFakeCluster(3)
	ps, rs, holder, waiter, value, done := r23Scene(t, c)
	gate := make(chan struct{})
	entered := r23BlockUndo(ps[2], value, gate)

	b := rs.NewMutex("k", WithTimeoutFactor(0.5))
	b.now = c.clock.Now
	ctx, cancel := context.WithCancel(context.Background())
	bDone := make(chan error, 1)
	go func() { bDone <- b.LockContext(ctx) }()
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("B's undo did not reach node 2")
	}
	cancel() // B's deadline passes during its undo
	close(gate)
	if err := awaitLock(t, bDone); !errors.Is(err, context.Canceled) {
		t.Fatalf("B LockContext() = %v, want the cancellation", err)
	}
	sent := c.calls()
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("holder Unlock() = %v, %v", ok, err)
	}
	if err := awaitLock(t, done); err != nil {
		t.Fatalf("waiter Lock() = %v", err)
	}
	if c.calls() != sent {
		return // a round
	}
	r23SecondLoss(t, c, waiter, "B's LockContext found node 0 free (while the waiter waited), yet Unlock passed the acquisition on with no round")
}

// TestReview23UndoFoundFreeIgnored breaks the same rule and "at most one
// holder" for "a node whose reply was an error but which did set the key".
//
// Interleaving, 3 nodes: as above, but node 0's reply to B's try is lost
// (the script ran and set B's value: node 0 was free; the read timed out).
// The try's tally has no done node, so calls.freeSeen stays zero; its undo
// then deletes B's value on node 0 and replies done, which proves that the
// try had found the key free there, but fanoutScript's tally is dropped.
// The holder's Unlock passes on with no round; after node 1's loss another
// client locks.
//
// Suggested fix: note a free key also when the undo of a failed try
// released on some node (its tally's done), or treat a node error in a
// try's tally as a possible free key (freeSeen when t.done > 0 or some
// node failed).
// Fixed: the undo's tally notes it when the try's own replies did not.
func TestReview23UndoFoundFreeIgnored(t *testing.T) {
	c := newFakeCluster(3)
	ps, rs, holder, waiter, value, done := r23Scene(t, c)
	var once sync.Once
	ps[0].setHook(func(fc *fakeConn, script *redis.Script, args []any) (bool, any, error) {
		if script != acquireScript || args[1] == value {
			return false, nil, nil
		}
		handled := false
		once.Do(func() {
			_, _ = fc.Eval(script, args...)
			handled = true
		})
		return handled, nil, errR20ReplyLost
	})
	b := rs.NewMutex("k")
	b.now = c.clock.Now
	if err := b.TryLock(); !errors.Is(err, ErrFailed) {
		t.Fatalf("B TryLock() = %v, want a failure", err)
	}
	if _, ok := c.nodes[0].value("k"); ok {
		t.Fatal("B's undo left its value on node 0")
	}
	sent := c.calls()
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("holder Unlock() = %v, %v", ok, err)
	}
	if err := awaitLock(t, done); err != nil {
		t.Fatalf("waiter Lock() = %v", err)
	}
	if c.calls() != sent {
		return // a round
	}
	r23SecondLoss(t, c, waiter, "B's try set the key on node 0 (its undo deleted it there), yet Unlock passed the acquisition on with no round")
}

// TestReview23HeldFreeSeenBeforeUnlock is the control of the tests above:
// B's TryLock ends (its observation noted) before the holder's Unlock, so
// the hand-off is a transfer round, which sets the waiter's value on node
// 0; after node 1's loss, the other client fails.
func TestReview23HeldFreeSeenBeforeUnlock(t *testing.T) {
	c := newFakeCluster(3)
	_, rs, holder, waiter, value, done := r23Scene(t, c)
	b := rs.NewMutex("k")
	b.now = c.clock.Now
	if err := b.TryLock(); !errors.Is(err, ErrFailed) {
		t.Fatalf("B TryLock() = %v", err)
	}
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("holder Unlock() = %v, %v", ok, err)
	}
	if err := awaitLock(t, done); err != nil {
		t.Fatalf("waiter Lock() = %v", err)
	}
	got := waiter.Value()
	if got == value {
		t.Fatal("passed on after a noted free key")
	}
	if n := c.holders("k", got); n != 3 {
		t.Fatalf("the round set the waiter's value on %d nodes, want 3", n)
	}
	r22Lose(c, 1, "k")
	other := New(c.pools()...).NewMutex("k")
	other.now = c.clock.Now
	if err := other.TryLock(); err == nil {
		other.Unlock()
		t.Fatal("another client locked after a second single-node loss")
	}
	if ok, err := waiter.Unlock(); !ok || err != nil {
		t.Fatalf("waiter Unlock() = %v, %v", ok, err)
	}
}

// TestReview23HandOffUnlockWaitsWaitersTimeout breaks UnlockContext's
// "Each node is bounded by the per-node timeout as well as ctx" (the
// holder's timeout), a latency regression of 009fc9f.
//
// Interleaving, 3 nodes, node 2 hung (it answers nothing until its
// command's context ends): the holder (expiry 2 s, per-node timeout 100
// ms) locks; its value is read (so the hand-off is a round); a waiter of
// the same Redsync with WithTimeoutFactor(0.5) (per-node timeout 1 s)
// waits. The holder's Unlock hands over by the transfer round, which since
// 009fc9f waits for every node, by the waiter's per-node timeout: the
// holder's Unlock takes 1 s, ten times its own bound, although nodes 0 and
// 1 decided both sides at once (a plain release would return after 100 ms;
// before 009fc9f the round returned at the quorum). Every hand-off of a
// holder to a waiter with a longer timeout pays it while a node hangs.
//
// Suggested fix: once the round is decided for both sides, wait for the
// rest no longer than the holder's own per-node timeout (min of the two),
// leaving the slower nodes to next.settled as before; the waiter's
// partial is set all the same (a node not heard is not done).
// Fixed: each node of the transfer round is bounded by the shorter of the
// holder's and the waiter's per-node timeouts.
func TestReview23HandOffUnlockWaitsWaitersTimeout(t *testing.T) {
	c := newFakeCluster(3)
	rs := New(c.pools()...)
	holder := rs.NewMutex("k", WithExpiry(2*time.Second))
	holder.now = c.clock.Now
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	_ = holder.Value() // shown: the hand-off is a round
	waiter := rs.NewMutex("k", WithExpiry(2*time.Second), WithTimeoutFactor(0.5), WithRetryDelay(time.Hour))
	waiter.now = c.clock.Now
	done := make(chan error, 1)
	go func() { done <- waiter.Lock() }()
	queuedWaiter(t, waiter)
	hung := make(chan struct{})
	n2 := c.nodes[2]
	n2.mu.Lock()
	n2.slow, n2.block = "transfer", hung
	n2.mu.Unlock()
	defer close(hung)

	start := time.Now()
	ok, err := holder.Unlock()
	took := time.Since(start)
	if !ok || err != nil {
		t.Fatalf("holder Unlock() = %v, %v", ok, err)
	}
	if err := awaitLock(t, done); err != nil {
		t.Fatalf("waiter Lock() = %v", err)
	}
	if bound := holder.nodeTimeout(); took > 5*bound {
		t.Errorf("holder Unlock() took %v with node 2 hung; its per-node timeout is %v (the waiter's is %v): "+
			"the transfer round held the holder's Unlock for the waiter's timeout", took.Round(time.Millisecond), bound, waiter.nodeTimeout())
	}
	n2.mu.Lock()
	n2.slow, n2.block = "", nil
	n2.mu.Unlock()
	if ok, err := waiter.Unlock(); !ok || err != nil {
		t.Errorf("waiter Unlock() = %v, %v", ok, err)
	}
}

// TestReview23HeldPrintingNeverShowsValue: the ways code outside the
// library commonly prints a Mutex (every verb on the pointer, in a slice, a
// map and an []any; %v, %+v, %#v, %x and %d inside a struct, also in an
// unexported field, and on the lease's Context; slog.Any through the text
// and JSON handlers) never print the value, and the
// acquisition is still passed on (printing did not need to mark it shown).
func TestReview23HeldPrintingNeverShowsValue(t *testing.T) {
	c := newFakeCluster(3)
	holder, waiter, value, done := passOnScene(t, c, nil, nil)
	ctx := holder.Context()
	type wrap struct {
		M   *Mutex
		m   *Mutex
		Ctx context.Context
	}
	var out strings.Builder
	for _, verb := range []string{"%v", "%+v", "%#v", "%x", "%d", "%s", "%q", "%t"} {
		args := []any{holder, []*Mutex{holder}, map[string]*Mutex{"k": holder}, []any{holder, ctx}}
		if verb != "%s" && verb != "%q" && verb != "%t" { // those break: TestReview23FmtBadVerbShowsValue
			args = append(args, wrap{holder, holder, ctx}, &wrap{holder, holder, ctx}, ctx)
		}
		for _, arg := range args {
			fmt.Fprintf(&out, verb+"\n", arg)
		}
	}
	for _, h := range []slog.Handler{slog.NewTextHandler(&out, nil), slog.NewJSONHandler(&out, nil)} {
		slog.New(h).Info("held", slog.Any("m", holder), slog.Any("w", wrap{holder, holder, ctx}), "ctx", ctx)
	}
	if strings.Contains(out.String(), value) {
		t.Fatalf("printing showed the value:\n%s", out.String())
	}
	unlockPassesOn(t, c, holder, done)
	if got := waiter.Value(); got != value {
		t.Fatalf("waiter Value() = %q, want the passed-on value", got)
	}
	unlockBothAgain(t, c, holder, waiter)
}

// TestReview23FmtBadVerbShowsValue breaks "a value ever shown outside the
// library is never passed on" (and "dead after Unlock"): Mutex.Format does
// not cover every way fmt reaches the value.
//
// fmt prints a pointer that it cannot call methods on (an unexported
// field, at depth > 0) with a verb that is wrong for pointers (%s, %q, %t)
// as "%!s(*T=...)", and that bad-verb text prints the pointed-to value with
// %v from depth 0, where methods are not looked up: Format is skipped and
// every field of the Mutex is printed, the acquisition's value among them.
// Two common cases:
//   - the lock's Context (Mutex.Context, the context to pass to the work),
//     printed with %s: *heldContext has no String or Format, and its
//     unexported lease pointer is printed that way, with lease.value (go
//     vet does not flag it: the static type is context.Context);
//   - a struct of the caller with an unexported *Mutex field, logged with
//     %s or %q through a format vet does not see (a logger's wrapper).
//
// shown stays false, so Unlock passes the acquisition on with no round; the
// value in the log line is the waiter's live lock, and a Mutex given it
// with WithValue (another process) releases it while the waiter's Until is
// seconds away.
//
// Suggested fix: keep the value where reflection-based printing does not
// reach it as text: behind a pointer in acquisition and lease (fmt prints
// a nested pointer as an address), or in a type whose fields hold no
// string (e.g. []byte behind a pointer); and give *heldContext a String
// (context packages' convention) and Format as *Mutex has.
// Fixed: Mutex.acq is a pointer, and *heldContext has String and Format.
func TestReview23FmtBadVerbShowsValue(t *testing.T) {
	type job struct {
		id int
		mu *Mutex // unexported: fmt cannot call Format on it
	}
	for _, tc := range []struct {
		name  string
		print func(m *Mutex) string
	}{
		{"Context %s", func(m *Mutex) string { return fmt.Sprintf("working under %s", m.Context()) }},
		// A constant format would be flagged by go vet's printf check
		// (the Context's would not: its static type is an interface).
		{"struct field %s", func(m *Mutex) string { return fmt.Sprintf(r23Format("job %s"), job{7, m}) }},
		{"struct field %q", func(m *Mutex) string { return fmt.Sprintf(r23Format("job %q"), &job{7, m}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newFakeCluster(3)
			holder, waiter, value, done := passOnScene(t, c, nil, nil)
			logged := tc.print(holder)
			if !strings.Contains(logged, value) {
				unlockPassesOn(t, c, holder, done)
				unlockBothAgain(t, c, holder, waiter)
				return
			}
			sent := c.calls()
			if ok, err := holder.Unlock(); !ok || err != nil {
				t.Fatalf("holder Unlock() = %v, %v", ok, err)
			}
			if err := awaitLock(t, done); err != nil {
				t.Fatalf("waiter Lock() = %v", err)
			}
			if c.calls() != sent || waiter.Until().IsZero() {
				return // a round: the waiter has a fresh value
			}
			other := New(c.pools()...).NewMutex("k", WithValue(value))
			released, _ := other.Unlock()
			t.Errorf("the log line %.60q... carries the value, yet Unlock passed it on with no round; a Mutex given it "+
				"with WithValue released the waiter's lock (Unlock %v, %d nodes keep it) while the waiter's Until is %v away",
				logged, released, c.keys("k"), waiter.Until().Sub(c.clock.Now()))
			waiter.Unlock()
		})
	}
}

// r23Format returns format, out of go vet's sight.
func r23Format(format string) string { return format }
