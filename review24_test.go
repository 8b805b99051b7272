package redsync

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redlock/redsync/redis"
)

// Review 24: the fixes of 60c4ff1 (review 23's findings): the notifier's
// freeSeen map noted by every failed try (and by an undo that deleted the
// try's key where its reply was lost), kept for the longest expiry noted;
// the transfer round bounded by min(holder, waiter) per-node timeout;
// Mutex.acq behind a pointer, *heldContext's String and Format.
//
// Every scene is r23Scene: 3 fake nodes, the holder H locked "k" on all
// three, the waiter W (same Redsync, polled, no queue entry) waits in Lock,
// node 0 then lost the key. A failed try of a Mutex of the same Redsync
// that finds node 0 free must keep H's acquisition from being passed on
// (a transfer round sets W's value on node 0 again); when it does not,
// W holds nodes 1 and 2 only, and a second single-node loss gives another
// client the lock while W's Until is seconds away (r23SecondLoss).

// r24PassOnOrRound unlocks holder and reports whether the hand-off was
// passed on (no command sent).
func r24PassOnOrRound(t *testing.T, c *fakeCluster, holder *Mutex, done chan error) bool {
	t.Helper()
	sent := c.calls()
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("holder Unlock() = %v, %v", ok, err)
	}
	if err := awaitLock(t, done); err != nil {
		t.Fatalf("waiter Lock() = %v", err)
	}
	return c.calls() == sent
}

// TestReview24FreeSeenPrunedByShortExpiry breaks "only acquisitions ... not
// seen lost are passed on" and, through it, "at most one holder".
//
// sawFree prunes every note older than freeKeep, the longest expiry of
// the Mutexes that noted something (not of the holder). Interleaving, all
// on one Redsync: H and W have the default expiry (8 s); node 0 loses H's
// key; a TryLock of X ("k", WithExpiry(100ms)) takes node 0, fails on 1
// and 2, notes "k" (freeKeep = 100 ms) and undoes node 0 (free again).
// 150 ms later a failed try of Y on an unrelated name (also a 100 ms
// expiry, the key free on one node) calls sawFree, which drops the note
// of "k" (older than 100 ms). H's Unlock, 150 ms after its round (well
// within the 400 ms pass-on window of an 8 s expiry), finds freeSince("k")
// zero and passes on: W holds nodes 1 and 2 only.
//
// Suggested fix: keep a note at least as long as any acquisition it could
// concern may be passed on: e.g. freeKeep = the longest expiry of any
// Mutex of the Redsync (recorded by NewMutex), not of those that noted;
// or prune only notes older than the longest validFor ever made.
// Fixed: NewMutex tells the notifier its expiry (keepFor); notes are kept
// for the longest.
func TestReview24FreeSeenPrunedByShortExpiry(t *testing.T) {
	c := newFakeCluster(3)
	_, rs, holder, waiter, _, done := r23Scene(t, c)
	x := rs.NewMutex("k", WithExpiry(100*time.Millisecond))
	x.now = c.clock.Now
	if err := x.TryLock(); !errors.Is(err, ErrFailed) {
		t.Fatalf("X TryLock() = %v, want a failure", err)
	}
	if _, ok := c.nodes[0].value("k"); ok {
		t.Fatal("X's undo left its key on node 0")
	}
	if rs.notify.freeSince("k").IsZero() {
		t.Fatal("X's try found node 0 free but noted nothing")
	}
	c.clock.Advance(150 * time.Millisecond)
	c.nodes[1].set("other", "someone")
	c.nodes[2].set("other", "someone")
	y := rs.NewMutex("other", WithExpiry(100*time.Millisecond))
	y.now = c.clock.Now
	if err := y.TryLock(); !errors.Is(err, ErrFailed) {
		t.Fatalf("Y TryLock() = %v, want a failure", err)
	}
	pruned := rs.notify.freeSince("k").IsZero()
	if !r24PassOnOrRound(t, c, holder, done) {
		waiter.Unlock()
		return // a round: it set W's value on node 0
	}
	r23SecondLoss(t, c, waiter, fmt.Sprintf("X's TryLock found node 0 free 150 ms after the holder's round "+
		"(note pruned by Y's unrelated sawFree: %v), yet Unlock passed the acquisition on", pruned))
}

// TestReview24MultiKeyFreeNotNoted breaks the same rule and "at most one
// holder" for a MultiMutex, whose names a Mutex of one of them excludes
// (multi.go: "a Mutex of one of the names excludes both").
//
// Interleaving: node 0 lost H's key "k"; a TryLock of a MultiMutex X of
// the same Redsync on {"k", "other"} takes both names on node 0 (free
// there), fails on nodes 1 and 2 (H holds "k") and undoes node 0. acquire
// notes sawFree(m.name, ...) with m.name = "k,other", the joined names:
// freeSince("k") stays zero. H's Unlock passes on with no round; W holds
// nodes 1 and 2 only.
//
// Suggested fix: for a Mutex with names, note every name (for _, n :=
// range m.names { sawFree(n, ...) }), in both places of acquire.
// Fixed: acquire notes every name of the lock.
func TestReview24MultiKeyFreeNotNoted(t *testing.T) {
	c := newFakeCluster(3)
	_, rs, holder, waiter, _, done := r23Scene(t, c)
	x := rs.NewMultiMutex([]string{"k", "other"})
	x.now = c.clock.Now
	if err := x.TryLock(); !errors.Is(err, ErrFailed) {
		t.Fatalf("MultiMutex TryLock() = %v, want a failure", err)
	}
	if _, ok := c.nodes[0].value("k"); ok {
		t.Fatal("the MultiMutex's undo left its key on node 0")
	}
	if !r24PassOnOrRound(t, c, holder, done) {
		waiter.Unlock()
		return
	}
	r23SecondLoss(t, c, waiter, fmt.Sprintf("a MultiMutex of {k, other} found node 0 free (noted as %v under \"k,other\"), "+
		"yet Unlock passed the acquisition on", !rs.notify.freeSince("k,other").IsZero()))
}

// TestReview24FailFastUndoNotNoted breaks the same rule and "at most one
// holder": the undo-based note (u.done > 0 && t.done == 0) reads a tally
// that WithFailFast ends early.
//
// Interleaving: node 0 lost H's key. A TryLock of X (same Redsync,
// WithFailFast) runs on node 0, which takes the key (free), but the reply
// is lost; nodes 1 and 2 answer "taken". t.done == 0: nothing noted before
// the undo. The undo (release) runs with X's failFast: nodes 1 and 2
// answer "another owner" first, which decides the round (no quorum can
// release), and fanoutScript returns with u.done == 0, before node 0's
// undo (a little slower) deleted X's key and replied done. Nothing is
// noted; node 0 is free; H's Unlock passes on.
//
// Suggested fix: the undo of a try whose tally has unanswered or failed
// nodes must wait for every node (failFast false) before it reads u.done;
// or note when the try's tally has node errors/unanswered nodes (a lost
// reply may hide a free key), as review 23 suggested.
// Fixed the second way: a failed try notes a possible free key whenever
// some node did not answer "taken" (took it, failed or did not answer).
func TestReview24FailFastUndoNotNoted(t *testing.T) {
	c := newFakeCluster(3)
	ps, rs, holder, waiter, value, done := r23Scene(t, c)
	gate, entered := make(chan struct{}), make(chan struct{})
	var lost, held atomic.Bool
	ps[0].setHook(func(fc *fakeConn, script *redis.Script, args []any) (bool, any, error) {
		switch {
		case script == acquireScript && args[1] != value && !lost.Swap(true):
			_, _ = fc.Eval(script, args...) // node 0 was free: the key is X's now
			return true, nil, errR20ReplyLost
		case script == releaseNotifyScript && withoutQueueKeys(script, args)[1] != value && !held.Swap(true):
			close(entered)
			select { // X's undo on node 0 is the slowest of the three
			case <-gate:
			case <-fc.ctx.Done():
			}
		}
		return false, nil, nil
	})
	x := rs.NewMutex("k", WithFailFast(true), WithTimeoutFactor(0.5)) // 4 s per node: the gate, not the timeout, ends it
	x.now = c.clock.Now
	xDone := make(chan error, 1)
	go func() { xDone <- x.TryLock() }()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("X's undo did not reach node 0")
	}
	var xErr error
	select {
	case xErr = <-xDone: // returned before node 0's undo replied
	case <-time.After(300 * time.Millisecond): // waits for node 0 (fixed)
	}
	close(gate)
	if xErr == nil {
		xErr = awaitLock(t, xDone)
	}
	if !errors.Is(xErr, ErrFailed) {
		t.Fatalf("X TryLock() = %v, want a failure", xErr)
	}
	noted := !rs.notify.freeSince("k").IsZero()
	eventually(t, "X's undo ended on node 0", func() bool { _, ok := c.nodes[0].value("k"); return !ok })
	if !r24PassOnOrRound(t, c, holder, done) {
		waiter.Unlock()
		return
	}
	r23SecondLoss(t, c, waiter, fmt.Sprintf("X's try set the key on node 0 (reply lost; its fail-fast undo returned "+
		"before node 0's, which deleted it; noted: %v), yet Unlock passed the acquisition on", noted))
}

// TestReview24PassOnLeftBoundIgnoresMinTimeout breaks the rule of passOn
// (transfer.go, docs/LIFETIME.md): "passed on only when at least as much
// of it is left as a round that took the waiter's whole per-node timeout
// would have left ... the waiter's Lock returns what a slow round could
// have returned". Since 60c4ff1 a transfer round takes at most
// min(holder, waiter) per-node timeout, but passOn still bounds by the
// waiter's own timeout.
//
// Interleaving: H has the default timeout factor (8 s expiry, 400 ms per
// node); W has the same expiry and WithTimeoutFactor(0) (per node: the
// whole validity, 7.918 s) or 0.5 (4 s). H unlocks 7.9 s (resp. 3 s) after
// its round. A transfer round, bounded by 400 ms per node, would give W at
// least 7.5 s or fail; passOn gives W the remaining 18 ms (resp. 4.9 s).
//
// Suggested fix: in passOn, left < wm.validFor() - min(m.nodeTimeout(),
// wm.nodeTimeout()).
// Fixed that way.
func TestReview24PassOnLeftBoundIgnoresMinTimeout(t *testing.T) {
	for _, tc := range []struct {
		factor  float64
		elapsed time.Duration
	}{{0, 7900 * time.Millisecond}, {0.5, 3 * time.Second}} {
		t.Run(fmt.Sprint("waiter factor ", tc.factor), func(t *testing.T) {
			c := newFakeCluster(3)
			holder, waiter, _, done := passOnScene(t, c, nil, []Option{WithTimeoutFactor(tc.factor)})
			c.clock.Advance(tc.elapsed)
			passed := r24PassOnOrRound(t, c, holder, done)
			left := waiter.Until().Sub(c.clock.Now())
			bound := waiter.validFor() - min(holder.nodeTimeout(), waiter.nodeTimeout())
			if passed && left < bound {
				t.Errorf("passed on with %v of validity left; the transfer round (per node at most %v) "+
					"returns at least %v or fails: the waiter's Lock returned what no round could have",
					left, min(holder.nodeTimeout(), waiter.nodeTimeout()), bound)
			}
			waiter.Unlock()
		})
	}
}

// TestReview24HeldNoteForHolderOfOtherExpiry: the control of the pruning
// test: with no unrelated sawFree after X's note, the note stays and the
// hand-off is a round (W's value on all three nodes).
func TestReview24HeldNoteForHolderOfOtherExpiry(t *testing.T) {
	c := newFakeCluster(3)
	_, rs, holder, waiter, value, done := r23Scene(t, c)
	x := rs.NewMutex("k", WithExpiry(100*time.Millisecond))
	x.now = c.clock.Now
	if err := x.TryLock(); !errors.Is(err, ErrFailed) {
		t.Fatalf("X TryLock() = %v", err)
	}
	c.clock.Advance(150 * time.Millisecond)
	if r24PassOnOrRound(t, c, holder, done) {
		t.Fatal("passed on after a noted free key")
	}
	got := waiter.Value()
	if got == value || c.holders("k", got) != 3 {
		t.Fatalf("the round set W's value on %d nodes", c.holders("k", got))
	}
	waiter.Unlock()
}

// TestReview24HeldPrintRace: printing a Mutex and its Context with every
// verb (also as an unexported field with a bad verb, where fmt walks the
// fields by reflection, after the other goroutines ended) while other
// goroutines Lock, Extend, read and Unlock it: no race on the acq pointer
// (run with -race), no panic, no value printed; a nil *Mutex and a name with quotes print safely.
func TestReview24HeldPrintRace(t *testing.T) {
	c := newFakeCluster(3)
	m := c.mutex("k\"%s\\")
	type job struct{ mu *Mutex }
	var wg sync.WaitGroup
	stop := make(chan struct{})
	values := make(chan string, 1000)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if m.Lock() == nil {
					_, _ = m.Extend()
					select {
					case values <- m.Value():
					default:
					}
					_ = m.Until()
					_ = m.FencingToken()
					_, _ = m.Unlock()
				}
			}
		}()
	}
	var out []string
	for i := 0; i < 300; i++ {
		ctx := m.Context()
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%d"} {
			out = append(out, fmt.Sprintf(verb, m), fmt.Sprintf(verb, ctx))
		}
	}
	close(stop)
	wg.Wait()
	// An unexported field walked by reflection (a bad verb) reads the
	// Mutex's fields unsynchronized, as for any struct with a sync.Mutex:
	// printed only once the other goroutines ended.
	if m.Lock() == nil {
		values <- m.Value()
		for _, verb := range []string{"%v", "%s", "%q", "%d", "%x"} {
			out = append(out, fmt.Sprintf(r23Format(verb), job{m}), fmt.Sprintf(r23Format(verb), &job{m}))
		}
		_, _ = m.Unlock()
	}
	close(values)
	seen := map[string]bool{}
	for v := range values {
		seen[v] = true
	}
	for _, s := range out {
		for v := range seen {
			if v != "" && len(s) > 0 && strings.Contains(s, v) {
				t.Fatalf("printed a value: %q", s)
			}
		}
	}
	var nilM *Mutex
	if s := fmt.Sprint(nilM); s != "<nil>" {
		t.Errorf("nil *Mutex printed %q", s)
	}
}
