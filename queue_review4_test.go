package redsync

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
)

// Fourth review of the queue of waiters (handoff.go, queue_lib.lua):
// reproductions.

// otherWaiter waits until a waiter of m's Redsync for m's name other than
// not is registered and waits, and returns it.
func otherWaiter(t *testing.T, m *Mutex, not *waiter) *waiter {
	t.Helper()
	var w *waiter
	eventually(t, "another waiter queued", func() bool {
		m.notify.mu.Lock()
		defer m.notify.mu.Unlock()
		if kw := m.notify.keys[m.name]; kw != nil {
			for _, q := range kw.queue {
				if q != not {
					w = q
				}
			}
		}
		return w != nil
	})
	return w
}

// registered reports whether member is a registered waiter of n.
func registered(n *notifier, member string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.members[member] != nil
}

// TestReview4CancelledHeadStrandsSameProcessWaiter breaks promise 3
// (liveness: "waiters that ... give up or are cancelled never leave others
// stuck beyond a standby wait or two when the retry delay is an hour").
//
// Two Lock calls of ONE Redsync (two goroutines of a worker process) wait
// for a lock held by another process: W1 at the head of every node's
// queue, W2 behind it. W1 gives up (its ctx is cancelled) just as the
// holder releases: its withdrawal reaches the nodes after the release
// (here it is held back 1.5 s on the way; in production, any release that
// lands between w.close and the withdrawal). The release pops W1's entry
// and tells W1 its turn; W1's Redsync drops the turn (notifier.receive:
// "a waiter that has ended (its standbys cover the turn)"). But wake()
// (queue_lib.lua) names as standbys only waiters of OTHER Redsyncs than
// the head's, so W2, of the same Redsync, is told nothing. The key is free
// on every node and nobody tries: W2 waits for its renewal (half its
// entry's life, 30 s here) or its retry delay (1 h).
//
// The doc (LIFETIME.md, "Waiters that crash, or give up as their turn
// comes") says a waiter that gave up just as its turn came costs the
// others one standby wait; the exclusion of the head's process from the
// standbys is argued for crashes ("the entries of one process die
// together"), which does not hold for a Lock that is cancelled.
func TestReview4CancelledHeadStrandsSameProcessWaiter(t *testing.T) {
	servers := redistest.StartN(t, 3)
	opts := []Option{WithRetryDelay(time.Hour), WithTries(2), WithExpiry(time.Minute)}
	holder := New(realPools(t, servers)...).NewMutex("same", opts...)
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	var armed atomic.Bool
	rs := New(delayBeforePools(t, servers, &armed, func(s *redis.Script, _ []any) time.Duration {
		if s == queueLeaveScript {
			return 1500 * time.Millisecond
		}
		return 0
	})...)
	m1 := rs.NewMutex("same", opts...)
	ctx1, cancel1 := context.WithCancel(context.Background())
	defer cancel1()
	w1done := make(chan error, 1)
	go func() { w1done <- m1.LockContext(ctx1) }()
	w1 := queuedWaiter(t, m1)
	queuedEverywhere(t, servers, w1)

	m2 := rs.NewMutex("same", opts...)
	w2done := startLock(t, m2)
	w2 := otherWaiter(t, m2, w1)
	// W2 stands behind W1, of its own Redsync, without a try of its own
	// (lockWait.begin): when W1 ends, W2 tries and joins the queues
	// (keyWaiters.cover), or takes the lock if the release came first.

	armed.Store(true)
	cancel1()
	eventually(t, "W1 unregistered", func() bool { return !registered(rs.notify, w1.member) })
	start := time.Now()
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("holder Unlock() = %v, %v", ok, err)
	}
	if err := <-w1done; !errors.Is(err, context.Canceled) {
		t.Fatalf("W1 LockContext() = %v, want context.Canceled", err)
	}
	armed.Store(false)
	select {
	case err := <-w2done:
		if err != nil {
			t.Fatalf("W2 Lock() = %v", err)
		}
		t.Logf("W2 got the lock %v after the release", time.Since(start))
		m2.Unlock()
	case <-time.After(5 * time.Second):
		free := 0
		for _, srv := range servers {
			if srv.MustDo(t, "EXISTS", "same").Int == 0 {
				free++
			}
		}
		t.Fatalf("W2 (same Redsync as the cancelled head W1) did not get the lock within 5s of the release, with the key free on %d of %d nodes and W2 queued on %d (retry delay 1h; next renewal after 30s)", free, len(servers), countQueued(t, servers, w2.member))
	}
}

// TestReview4DeadEntriesHideLiveWaiter breaks promise 3 (liveness) and
// the doc's "The entry of a process that crashed is dropped when its life
// ends" (LIFETIME.md, "Waiters that crash, or give up as their turn
// comes"). wake() (queue_lib.lua) counts the dead entries it removes
// toward scanLimit (32): a process that crashed with 32 or more Lock calls
// waiting for the lock (a worker pool) leaves entries whose life ends
// while the lock is held; the release then removes 32 of them, stops,
// picks nobody, and only PUBLISHes on redsync:released:<key>, which no
// Redsync listens to. The live waiter queued behind them is told nothing
// although the key is free on every node: it waits for its renewal (half
// its entry's life, 30 s here) or its retry delay (1 h).
func TestReview4DeadEntriesHideLiveWaiter(t *testing.T) {
	servers := redistest.StartN(t, 3)
	holder := New(realPools(t, servers)...).NewMutex("dead")
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	m := New(realPools(t, servers)...).NewMutex("dead", WithRetryDelay(time.Hour), WithTries(2), WithExpiry(time.Minute))
	done := startLock(t, m)
	w := queuedWaiter(t, m)
	queuedEverywhere(t, servers, w)
	// The crashed process's 40 waiters, ahead of the live one (lower
	// tickets), their life over (it ended a second ago on the node's
	// clock).
	queueCrashedAhead(t, servers, w.member, 40, -time.Second)
	if unlockThenLocked(t, holder, done) {
		m.Unlock()
		return
	}
	left := srv0Card(t, servers[0], w.member)
	t.Fatalf("40 dead entries (life over) of a crashed process kept the live waiter behind them from a free lock for 5s (retry delay 1h, renewal after 30s); node 0's queue still has %d entries", left)
}

// srv0Card returns the size of the queue that holds member on srv.
func srv0Card(t *testing.T, srv *redistest.Server, member string) int64 {
	zkey := queueKeyOf(t, srv, member)
	if zkey == "" {
		return 0
	}
	return srv.MustDo(t, "ZCARD", zkey).Int
}

// TestReview4DriftedQueuesWakeNobody breaks promise 3 (liveness). Every
// script that frees a key now wakes its queue, also the undo of a failed
// try on the few nodes where that try took the key (queue_leave.lua
// 'undo', multi_release.lua): the head of the queue is popped on those
// nodes only, and the queues of the nodes drift apart. After two such
// minority undos on two different nodes, a release that frees the key on
// every node names a different head on each: no waiter hears a quorum of
// turns, and the standbys, which must be of other Redsyncs than the head's
// and each other's, are named by one node at most. The key is free on
// every node, three live waiters wait, and nobody tries until a renewal
// (half the entry's life, 30 s here; retry delay 1 h).
//
// Scene (3 nodes): waiters X (Redsync P), then Y and Z (Redsync Q), queued
// on every node. The holder's key is lost on node 0 (a restart without
// persistence, an early expiry); a try of a multi-key Mutex that includes
// the name takes node 0 only and is undone there: X is popped on node 0.
// Later the key is lost on node 1 instead; two such tries pop X and Y on
// node 1. The holder (still holding a quorum throughout) releases: node 0
// turns Y (Z is of Y's Redsync: no standby), node 1 turns Z, node 2 turns
// X and names Y standby: one node each.
func TestReview4DriftedQueuesWakeNobody(t *testing.T) {
	servers := redistest.StartN(t, 3)
	opts := []Option{WithRetryDelay(time.Hour), WithTries(2), WithExpiry(time.Minute)}
	holder := New(realPools(t, servers)...).NewMutex("drift", opts...)
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	hv := holder.Value()

	p := New(realPools(t, servers)...)
	mx := p.NewMutex("drift", opts...)
	xdone := startLock(t, mx)
	wx := queuedWaiter(t, mx)
	queuedEverywhere(t, servers, wx)
	q := New(realPools(t, servers)...)
	my := q.NewMutex("drift", opts...)
	ydone := startLock(t, my)
	wy := queuedWaiter(t, my)
	queuedEverywhere(t, servers, wy)
	mz := q.NewMutex("drift", opts...)
	zdone := startLock(t, mz)
	otherWaiter(t, mz, wy)
	// Z stands behind Y, of its own Redsync, without a try of its own
	// (lockWait.begin): it is in no node's queue, and relies on Y.

	multi := New(realPools(t, servers)...).NewMultiMutex([]string{"drift", "drift:other"})
	// minorityTry frees the holder's key on node i only, lets a try of the
	// multi-key Mutex take node i and be undone there, and restores the
	// holder's key.
	minorityTry := func(i int) {
		t.Helper()
		servers[i].MustDo(t, "DEL", "drift")
		if err := multi.TryLock(); err == nil {
			t.Fatal("the multi-key TryLock took the lock held on a quorum")
		}
		servers[i].MustDo(t, "SET", "drift", hv, "PX", "60000")
	}
	minorityTry(0) // pops X on node 0
	minorityTry(1) // pops X on node 1
	minorityTry(1) // pops Y on node 1
	for i, srv := range servers {
		t.Logf("node %d queues %q", i, queueOnNode(t, srv, "drift"))
	}
	start := time.Now()
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("holder Unlock() = %v, %v", ok, err)
	}
	var got *Mutex
	select {
	case err := <-xdone:
		got = mx
		if err != nil {
			t.Fatalf("X: Lock() = %v", err)
		}
	case err := <-ydone:
		got = my
		if err != nil {
			t.Fatalf("Y: Lock() = %v", err)
		}
	case err := <-zdone:
		got = mz
		if err != nil {
			t.Fatalf("Z: Lock() = %v", err)
		}
	case <-time.After(5 * time.Second):
		free := 0
		for _, srv := range servers {
			if srv.MustDo(t, "EXISTS", "drift").Int == 0 {
				free++
			}
		}
		t.Fatalf("after the release, none of three live waiters got the lock within 5s, with the key free on %d of %d nodes (retry delay 1h, renewal after 30s)", free, len(servers))
	}
	t.Logf("a waiter got the lock %v after the release", time.Since(start))
	got.Unlock()
}
