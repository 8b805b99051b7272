package redsync

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// Review 25: the fixes of 4240990 (review 24's findings): a failed try
// notes a possible free key (notifier.sawFree) whenever some node did not
// answer "taken", for every name, before its undo; notes are kept for the
// longest expiry of the Redsync's Mutexes (keepFor); passOn bounds the
// validity left with min(holder, waiter) per-node timeout; Value, Until and
// usable are nil-safe.

// r25Scene is r23Scene with a waiter whose Lock ends with ctx (so that a
// round, which leaves it waiting an hour, does not leak it): 3 fake nodes
// (not listened to), the holder H locked "k" on all three, the waiter W of
// the same Redsync waits in LockContext, and node 0 then lost the key.
func r25Scene(t *testing.T, c *fakeCluster, ctx context.Context) (rs *Redsync, holder, waiter *Mutex, value string, done chan error) {
	t.Helper()
	_, pools := r20Pools(c)
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
	go func() { done <- waiter.LockContext(ctx) }()
	queuedWaiter(t, waiter)
	r22Lose(c, 0, "k")
	return rs, holder, waiter, value, done
}

// TestReview25SuccessfulTryNotNoted breaks "only acquisitions last
// confirmed on every node and not possibly seen lost since are passed on"
// and, through it, "at most one holder" (in this very process).
//
// acquire notes a possible free key only on the failure path: a try that
// succeeds returns before the note. A try that succeeds while a Mutex of
// the same Redsync holds the name has, by definition, found the name free
// (or taken it) on a quorum of nodes: the strongest evidence there is that
// the holder's acquisition is lost.
//
// Interleaving, 3 nodes, one Redsync: H holds "k" on all three; W waits;
// nodes 0 and 1 lose the key (restarts without persistence, evictions).
// A TryLock of X ("k") takes nodes 0 and 1 and succeeds: nothing noted.
// H's Unlock claims W; passOn finds no note and hands H's acquisition to
// W with no command sent. W's Lock returns nil while X holds the lock on
// a quorum: two holders in one process, both with their Until seconds
// away. A transfer round would have found X's value on nodes 0 and 1 and
// failed (W would have gone on waiting).
//
// Suggested fix: note on every try, successful or not, when some node did
// not answer "taken" (move the sawFree block before the success return,
// or repeat it there); a success always has done >= quorum.
// Fixed: every try notes before its outcome; the note names the try's
// calls, so that it does not refuse the acquisition that try made (nor
// what is passed on from it: lockCalls.origin).
func TestReview25SuccessfulTryNotNoted(t *testing.T) {
	c := newFakeCluster(3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rs, holder, waiter, _, done := r25Scene(t, c, ctx)
	r22Lose(c, 1, "k")
	x := rs.NewMutex("k")
	x.now = c.clock.Now
	if err := x.TryLock(); err != nil {
		t.Fatalf("X TryLock() = %v; nodes 0 and 1 were free", err)
	}
	defer x.Unlock()
	noted := !rs.notify.freeSince("k").IsZero()
	sent := c.calls()
	_, _ = holder.Unlock()
	passed := c.calls() == sent
	var werr error
	select {
	case werr = <-done:
	case <-time.After(500 * time.Millisecond):
		cancel()
		werr = awaitLock(t, done)
		if werr == nil {
			t.Fatal("W's Lock returned nil after its ctx was cancelled")
		}
	}
	if werr == nil {
		defer waiter.Unlock()
		xLeft, wLeft := x.Until().Sub(c.clock.Now()), waiter.Until().Sub(c.clock.Now())
		if xLeft > 0 && wLeft > 0 {
			t.Errorf("X's successful TryLock took nodes 0 and 1 from H (noted: %v), yet H's Unlock handed the "+
				"acquisition to W (passed on with no round: %v): X (Until %v away, %d nodes) and W (Until %v away) "+
				"both hold \"k\"", noted, passed, xLeft, c.holders("k", x.Value()), wLeft)
		}
	}
}

// TestReview25OtherOwnerNotNoted breaks the same rule, and "at most one
// holder" two hand-offs later.
//
// The note is skipped whenever every node answered "taken", but "taken"
// says by whom (the acquire script's reply carries a fingerprint of the
// value, tally.holders): a try that finds the key held by one owner on
// nodes 1 and 2 and by another on node 0 has seen that the holder's key is
// not on node 0 (whoever the holder is, it lost a node).
//
// Interleaving, 3 nodes, one Redsync: H holds "k" everywhere; W1 and W2
// wait; node 0 loses the key and a try of another process Z lands there
// (its undo is late, or Z died). A TryLock of X (same Redsync) answers
// ErrTaken from all three nodes, two owners: nothing noted. H's Unlock
// passes on to W1 (no round; the round would have found Z's value on node
// 0 and marked the acquisition partial). Z's key on node 0 then goes (its
// undo arrives, or it expires). W1's Unlock passes on to W2, again with
// no round: a round would have set W2's value on node 0 (a missing key is
// taken). W2 holds nodes 1 and 2 only; node 1 losing the key lets another
// client lock while W2's Until is seconds away.
//
// Suggested fix: note also when the taken nodes do not share one owner
// (t.mostHeld() < len(t.taken)), i.e. note unless every node answered
// "taken" by the same owner.
// Fixed that way (t.mostHeld() < len(t.taken)).
func TestReview25OtherOwnerNotNoted(t *testing.T) {
	c := newFakeCluster(3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, pools := r20Pools(c)
	rs := New(pools...)
	holder := rs.NewMutex("k")
	holder.now = c.clock.Now
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	var ws [2]*Mutex
	var dones [2]chan error
	for i := range ws {
		ws[i] = rs.NewMutex("k", WithRetryDelay(time.Hour))
		ws[i].now = c.clock.Now
		dones[i] = make(chan error, 1)
		go func() { dones[i] <- ws[i].LockContext(ctx) }()
		queuedWaiters(t, ws[i], i+1)
	}
	w1, w2, done1, done2 := ws[0], ws[1], dones[0], dones[1]
	c.nodes[0].set("k", "z-other-process") // node 0 lost H's key; Z's try landed there
	x := rs.NewMutex("k")
	x.now = c.clock.Now
	var taken *ErrTaken
	if err := x.TryLock(); !errors.As(err, &taken) {
		t.Fatalf("X TryLock() = %v, want ErrTaken", err)
	}
	noted := !rs.notify.freeSince("k").IsZero()
	sent := c.calls()
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("H Unlock() = %v, %v", ok, err)
	}
	if err := awaitLock(t, done1); err != nil {
		t.Fatalf("W1 Lock() = %v", err)
	}
	first := c.calls() == sent
	r22Lose(c, 0, "k") // Z's undo, or its expiry
	sent = c.calls()
	if ok, err := w1.Unlock(); !ok || err != nil {
		t.Fatalf("W1 Unlock() = %v, %v", ok, err)
	}
	if err := awaitLock(t, done2); err != nil {
		t.Fatalf("W2 Lock() = %v", err)
	}
	if c.calls() != sent {
		w2.Unlock()
		return // a round: W2's value on every node
	}
	r23SecondLoss(t, c, w2, fmt.Sprintf("X's try saw node 0 held by another owner than nodes 1 and 2 (noted: %v), "+
		"yet H's Unlock passed on (no round: %v) and so did W1's", noted, first))
}

// TestReview25ZeroMutexAccessorsPanic breaks "no panics" for the fix
// "Value, Until and usable are nil-safe for a Mutex not made by NewMutex"
// (4240990): FencingToken and Context, read-only accessors like Value and
// Until, still dereference the nil m.acq of a zero Mutex (new(Mutex), or a
// Mutex embedded by value in a struct). Before 60c4ff1 made acq a pointer,
// both returned 0 / an ended context with ErrNotLocked, as Context's doc
// says for "a Mutex that holds no acquisition".
//
// Suggested fix: the same nil check in FencingToken (return 0) and Context
// (the acqNone branch), or have every accessor go through one helper that
// treats a nil acq as acqNone.
// Fixed that way.
func TestReview25ZeroMutexAccessorsPanic(t *testing.T) {
	for name, f := range map[string]func(m *Mutex){
		"FencingToken": func(m *Mutex) { _ = m.FencingToken() },
		"Context": func(m *Mutex) {
			if ctx := m.Context(); ctx.Err() == nil {
				t.Errorf("Context of a zero Mutex has not ended")
			}
		},
	} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s of a Mutex not made by NewMutex panics: %v (Value, Until and Unlock do not)", name, r)
				}
			}()
			f(new(Mutex))
		}()
	}
}

// TestReview25FreeSeenKeptForLongestExpiry breaks "nothing leaked" (and
// makes every failed try slower, under the notifier's lock).
//
// Since 4240990 notes are kept for the longest expiry of any Mutex ever
// made by the Redsync (keepFor only grows), not of those that could hold
// the noted name, and sawFree scans the whole map on every note. One Mutex
// with a long expiry (a daily job's, 24 h), made once, makes the Redsync
// keep a note for every name any failed try touched in the last 24 h, e.g.
// with one node down (every failed try notes: some node did not answer
// "taken"), and every failed try of every Mutex walks them all holding
// n.mu, which claim, wake and register also take.
//
// Interleaving: NewMutex("daily", WithExpiry(24h)); nodes 1 and 2 fail;
// 1000 Mutexes of distinct names with a 1 s expiry each fail a TryLock;
// an hour later (no acquisition of those names can be passed on: their
// only Mutexes have a 1 s expiry) another failed try notes: the map still
// holds all 1000 notes.
//
// Suggested fix: bound the map (e.g. a few thousand names): when full,
// replace it by one Redsync-wide note (passOn then refuses for every name
// until it ages out), or keep with each note the longest expiry among the
// Mutexes of that name (tracked only while such a Mutex holds).
// Fixed: notes are kept for the longest per-node timeout (an acquisition
// is passed on only within one of its round's start), at most 64 names;
// past that one note stands for every name.
func TestReview25FreeSeenKeptForLongestExpiry(t *testing.T) {
	c := newFakeCluster(3)
	rs := New(c.pools()...)
	_ = rs.NewMutex("daily", WithExpiry(24*time.Hour))
	down := errors.New("node down")
	c.nodes[1].setErr(down)
	c.nodes[2].setErr(down)
	const names = 1000
	for i := range names {
		m := rs.NewMutex(fmt.Sprintf("n:%d", i), WithExpiry(time.Second), WithTries(1))
		m.now = c.clock.Now
		if err := m.TryLock(); err == nil {
			t.Fatal("TryLock succeeded with two nodes down")
		}
	}
	c.clock.Advance(time.Hour)
	m := rs.NewMutex("late", WithExpiry(time.Second))
	m.now = c.clock.Now
	_ = m.TryLock()
	rs.notify.mu.Lock()
	kept := len(rs.notify.freeSeen)
	rs.notify.mu.Unlock()
	if kept > names/10 {
		t.Errorf("an hour after %d failed tries of Mutexes with a 1 s expiry, the notifier still keeps %d notes "+
			"(kept for the 24 h of an unrelated Mutex), and scans them all on every failed try", names, kept)
	}
}

// TestReview25HeldFailedTriesOfOtherKindsNote: failed tries of a fenced
// Mutex (two rounds), an RWMutex writer (the writer key is the name) and a
// TryLockContext whose ctx has a deadline all note node 0 free, and H's
// Unlock then does a round that sets W's value on every node.
func TestReview25HeldFailedTriesOfOtherKindsNote(t *testing.T) {
	for name, try := range map[string]func(rs *Redsync, c *fakeCluster) error{
		"fenced": func(rs *Redsync, c *fakeCluster) error {
			x := rs.NewMutex("k", WithFencing())
			x.now = c.clock.Now
			return x.TryLock()
		},
		"rw writer": func(rs *Redsync, c *fakeCluster) error {
			return rs.NewRWMutex("k").TryLock()
		},
		"ctx deadline": func(rs *Redsync, c *fakeCluster) error {
			x := rs.NewMutex("k")
			x.now = c.clock.Now
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			return x.TryLockContext(ctx)
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := newFakeCluster(3)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			rs, holder, waiter, value, done := r25Scene(t, c, ctx)
			if err := try(rs, c); err == nil {
				t.Fatal("the try succeeded against H's two nodes")
			}
			if rs.notify.freeSince("k").IsZero() {
				t.Fatal("a failed try found node 0 free but noted nothing")
			}
			if r24PassOnOrRound(t, c, holder, done) {
				t.Fatal("passed on after a noted free key")
			}
			if got := waiter.Value(); got == value || c.holders("k", got) != 3 {
				t.Fatalf("the round set W's value on %d nodes", c.holders("k", got))
			}
			waiter.Unlock()
		})
	}
}
