package redsync

import (
	"context"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/goredis"
)

// Review of the queue of waiters (#17 item 2): reproductions.

// zsetMembers returns the members of the queue entries in the sorted set
// zkey on srv, in order.
func zsetMembers(t *testing.T, srv *redistest.Server, zkey string) []string {
	t.Helper()
	var members []string
	for _, e := range srv.MustDo(t, "ZRANGE", zkey, "0", "-1").Elems {
		member, _, _ := cutLast(e.Text(), "|")
		members = append(members, member)
	}
	return members
}

// queueKeyOf returns the key of the sorted set on srv that queues member
// (whatever the scripts name it), or "".
func queueKeyOf(t *testing.T, srv *redistest.Server, member string) string {
	t.Helper()
	for _, e := range srv.MustDo(t, "KEYS", "*").Elems {
		k := e.Text()
		if srv.MustDo(t, "TYPE", k).Text() != "zset" {
			continue
		}
		if slices.Contains(zsetMembers(t, srv, k), member) {
			return k
		}
	}
	return ""
}

// queuedOn reports whether srv queues member.
func queuedOn(t *testing.T, srv *redistest.Server, member string) bool {
	return queueKeyOf(t, srv, member) != ""
}

// realPoolsCtx is realPools with go-redis's ContextTimeoutEnabled, as the
// README recommends.
func realPoolsCtx(t *testing.T, servers []*redistest.Server) []redis.Pool {
	t.Helper()
	pools := make([]redis.Pool, len(servers))
	for i, s := range servers {
		client := goredislib.NewClient(&goredislib.Options{Addr: s.Addr(), MaxRetries: -1, ContextTimeoutEnabled: true})
		t.Cleanup(func() { client.Close() })
		pools[i] = goredis.NewPool(client)
	}
	return pools
}

// startLock starts m.LockContext in a goroutine and returns its result
// channel; the Lock is cancelled at the end of the test.
func startLock(t *testing.T, m *Mutex) chan error {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() { done <- m.LockContext(ctx) }()
	return done
}

// TestReviewQueueKeyCollisionBraces: the locks "doc" and "{doc}" are two
// different keys, but queue_acquire.lua, queue_leave.lua and
// release_notify.lua derive the same queue key for both,
// "{doc}:redsync-queue" ('{' .. KEYS[1] .. '}' for a name without a hash
// tag, KEYS[1] itself for a name with one). A release of "{doc}" then
// hands its turn to the waiters of "doc" at the head of the shared queue:
// the key "{doc}" is kept for a waiter that never tries it, the next one
// named is a waiter of "doc" too, and the waiter of "{doc}" is woken by
// nothing (here it waits for its retry delay of an hour, or its renewal
// after 30s), although "{doc}" is free 100 ms after the release.
// (The same collision for the RWMutex was fixed on main with a namespace
// and a slot tag: fenceCounter in fencing.go.)
func TestReviewQueueKeyCollisionBraces(t *testing.T) {
	servers := redistest.StartN(t, 3)
	holdDoc := New(realPools(t, servers)...).NewMutex("doc")
	if err := holdDoc.Lock(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holdDoc.Unlock() })
	holdBraced := New(realPools(t, servers)...).NewMutex("{doc}")
	if err := holdBraced.Lock(); err != nil {
		t.Fatal(err)
	}

	waitOpts := []Option{WithRetryDelay(time.Hour), WithTries(2), WithExpiry(time.Minute)}
	var members []string
	// Two waiters of "doc", then one of "{doc}", each queued on every node
	// before the next starts.
	var bracedDone chan error
	for i, name := range []string{"doc", "doc", "{doc}"} {
		m := New(realPools(t, servers)...).NewMutex(name, waitOpts...)
		done := startLock(t, m)
		if i == 2 {
			bracedDone = done
		}
		w := queuedWaiter(t, m)
		eventually(t, "the waiter queued on every node", func() bool {
			for _, srv := range servers {
				if !queuedOn(t, srv, w.member) {
					return false
				}
			}
			return true
		})
		members = append(members, w.member)
	}
	for i, srv := range servers {
		doc, braced := queueKeyOf(t, srv, members[0]), queueKeyOf(t, srv, members[2])
		if doc == braced {
			t.Errorf("node %d: the waiters of the locks \"doc\" and \"{doc}\" share one queue, %q: %q", i, doc, zsetMembers(t, srv, doc))
		}
	}

	start := time.Now()
	if ok, err := holdBraced.Unlock(); !ok || err != nil {
		t.Fatalf("Unlock of {doc} = %v, %v", ok, err)
	}
	// The promise: each release wakes the waiter of the lock that has
	// waited longest. The only waiter of "{doc}" should have it at once.
	select {
	case err := <-bracedDone:
		if err != nil {
			t.Fatalf("waiter of {doc}: Lock() = %v", err)
		}
		t.Logf("waiter of {doc} got the lock after %v", time.Since(start))
	case <-time.After(5 * time.Second):
		t.Fatalf("the release of \"{doc}\" did not wake its only waiter within 5s: its turn went to a waiter of \"doc\" (shared queue key)")
	}
}

// TestReviewACLWithoutZREMCannotLock: docs/ECOSYSTEM.md says every queue
// command runs through pcall, so that a user without the permission "still
// locks and releases, and its waiters poll". But the scripts remove
// entries with redis.call('ZREM', ...) after a pcall'd ZRANGE/ZRANGEBYSCORE
// found them, after they wrote the lock key: a user allowed ZADD and ZRANGE
// but not ZREM (e.g. read-only key permissions on the queue key, or the
// documented list minus ZREM) queues, and then every try that finds the
// key free SETs it, then fails with the ACL error: its Lock never succeeds
// on a free lock (v4 would take it on the first try). And as a holder,
// its Unlock deletes the key and then fails in designate's ZREM: Unlock
// reports an error for a release that happened, and no turn is given.
func TestReviewACLWithoutZREMCannotLock(t *testing.T) {
	servers := redistest.StartN(t, 3)
	rules := []string{
		"resetkeys", "~*", "resetchannels", "&redsync:released:*", "&redsync:wake:*", "-@all",
		"+evalsha", "+eval", "+get", "+set", "+pexpire", "+del",
		"+publish", "+subscribe", "+unsubscribe", "+ping",
		"+time", "+pttl", "+zadd", "+zrange", "+zrangebyscore", // no +zrem
	}
	for _, srv := range servers {
		args := append([]string{"ACL", "SETUSER", "nozrem", "reset", "on", ">pw"}, rules...)
		srv.MustDo(t, args...)
	}
	userPools := func() []redis.Pool {
		pools := make([]redis.Pool, len(servers))
		for i, s := range servers {
			client := goredislib.NewClient(&goredislib.Options{Addr: s.Addr(), Username: "nozrem", Password: "pw", MaxRetries: -1})
			t.Cleanup(func() { client.Close() })
			pools[i] = goredis.NewPool(client)
		}
		return pools
	}

	t.Run("waiter", func(t *testing.T) {
		// A holder that gives no turns (a v4 client, or
		// WithReleaseNotification(false)): the waiter finds the key free
		// at its next counted try.
		holder := New(realPools(t, servers)...).NewMutex("acl-w", WithReleaseNotification(false))
		if err := holder.Lock(); err != nil {
			t.Fatal(err)
		}
		m := New(userPools()...).NewMutex("acl-w", WithRetryDelay(50*time.Millisecond), WithTries(10))
		done := startLock(t, m)
		w := queuedWaiter(t, m)
		// Its join try ran (the listeners confirmed, then a try at once)
		// well within 300 ms; a user who could add entries but not remove
		// them joins no queue (queue_acquire.lua checks the ACL): it polls.
		time.Sleep(300 * time.Millisecond)
		for i, srv := range servers {
			if queuedOn(t, srv, w.member) {
				t.Errorf("node %d queues the waiter of a user without ZREM", i)
			}
		}
		if ok, err := holder.Unlock(); !ok || err != nil {
			t.Fatalf("holder Unlock() = %v, %v", ok, err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Lock of a user without ZREM on a free lock = %v, want nil (v4 takes it)", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Lock did not return")
		}
	})

	t.Run("holder", func(t *testing.T) {
		holder := New(userPools()...).NewMutex("acl-h")
		if err := holder.Lock(); err != nil {
			t.Fatal(err)
		}
		waiter := New(realPools(t, servers)...).NewMutex("acl-h", WithRetryDelay(time.Hour), WithTries(2))
		done := startLock(t, waiter)
		w := queuedWaiter(t, waiter)
		eventually(t, "the waiter queued on every node", func() bool {
			for _, srv := range servers {
				if !queuedOn(t, srv, w.member) {
					return false
				}
			}
			return true
		})
		ok, err := holder.Unlock()
		if !ok || err != nil {
			var keys int
			for _, srv := range servers {
				if srv.MustDo(t, "EXISTS", "acl-h").Int == 1 {
					keys++
				}
			}
			t.Errorf("Unlock of a user without ZREM with a waiter queued = %v, %v; the key is left on %d of %d nodes", ok, err, keys, len(servers))
		}
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("waiter: %v", err)
			}
		case <-time.After(3 * time.Second):
			t.Error("the waiter was not given the lock after the release (no turn)")
		}
	})
}

// TestReviewTwoCrashedWaitersAtHead: a waiter that crashed costs the
// others one standby wait when a release makes it the head, because the
// waiters named standbys try after rank x standbyWait. When the first two
// entries are dead (a process that crashed with two Lock calls waiting
// for the lock, which queue one after the other), the live third waiter,
// the standby of rank 2, must still try soon, not after its retry delay
// (an hour) or its renewal after half its entry's life.
func TestReviewTwoCrashedWaitersAtHead(t *testing.T) {
	servers := redistest.StartN(t, 3)
	holder := New(realPools(t, servers)...).NewMutex("k2")
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	m := New(realPools(t, servers)...).NewMutex("k2", WithRetryDelay(time.Hour), WithTries(2), WithExpiry(time.Minute))
	done := startLock(t, m)
	w := queuedWaiter(t, m)
	eventually(t, "the waiter queued on every node", func() bool {
		for _, srv := range servers {
			if !queuedOn(t, srv, w.member) {
				return false
			}
		}
		return true
	})
	// The crashed process's two waiters, ahead of it (lower tickets).
	queueCrashedAhead(t, servers, w.member, 2, time.Minute)
	if !unlockThenLocked(t, holder, done) {
		t.Fatalf("two crashed waiters at the head of the queue kept the live waiter from a free lock for 5s (retry delay 1h; promise: one standby wait per crashed head)")
	}
}

// TestReviewPollersStarvedByQueue: Mutexes with fencing, a restart guard,
// several names, or WithReleaseNotification(false) (and v4 clients) poll,
// and must not be kept from the lock for good by a queue that never
// empties (found against a draft in which a release made the free key the
// head waiter's turn). Two processes here take turns with the lock, each
// releasing only once the other is queued on a quorum; a poller
// (WithReleaseNotification(false), a try every 5 ms) must get the lock
// within the test's releases: every release leaves the key free for
// whichever try comes first.
func TestReviewPollersStarvedByQueue(t *testing.T) {
	servers := redistest.StartN(t, 3)
	const name = "starve"
	opts := []Option{WithRetryDelay(time.Hour), WithTries(2), WithExpiry(time.Minute)}
	ms := []*Mutex{
		New(realPools(t, servers)...).NewMutex(name, opts...),
		New(realPools(t, servers)...).NewMutex(name, opts...),
	}
	if err := ms[0].Lock(); err != nil {
		t.Fatal(err)
	}
	pollCtx, stopPoll := context.WithCancel(context.Background())
	defer stopPoll()
	poller := New(realPools(t, servers)...).NewMutex(name, WithReleaseNotification(false),
		WithRetryDelay(5*time.Millisecond), WithTries(1<<30))
	polled := make(chan error, 1)
	go func() { polled <- poller.LockContext(pollCtx) }()

	const releases = 3000 // ends when the poller got the lock
	holder := 0
	for range releases {
		next := 1 - holder
		done := startLock(t, ms[next])
		w := queuedWaiter(t, ms[next])
		// Queued on a quorum: on a node where the poller took the free key
		// the next holder's try may have won there.
		eventually(t, "the next holder queued on a quorum", func() bool {
			n := 0
			for _, srv := range servers {
				if queuedOn(t, srv, w.member) {
					n++
				}
			}
			return n >= len(servers)/2+1
		})
		if ok, err := ms[holder].Unlock(); !ok || err != nil {
			t.Fatalf("Unlock() = %v, %v", ok, err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Lock() = %v", err)
			}
		case err := <-polled:
			t.Logf("the poller got the lock (%v)", err)
			return
		case <-time.After(5 * time.Second):
			t.Fatal("no hand-off within 5s")
		}
		holder = next
	}
	ms[holder].Unlock()
	stopPoll()
	if err := <-polled; err == nil {
		poller.Unlock()
		return
	}
	t.Errorf("a polling Mutex (WithReleaseNotification(false), a try every 5 ms) never got the lock in %d releases: queue waiters take every release", releases)
}

// TestReviewNoStrayQueueState: processes (Redsyncs) with several
// goroutines each lock and unlock one name on real servers; once every
// Lock and Unlock returned, the nodes should keep nothing for the name
// (once a background withdrawal landed): no lock key, no queue entry (a stray
// entry is a waiter that no longer waits, and the next release would give
// it a turn that nobody takes).
func TestReviewNoStrayQueueState(t *testing.T) {
	servers := redistest.StartN(t, 3)
	const (
		name       = "stray"
		procs      = 3
		goroutines = 3
		rounds     = 10
	)
	errs := make(chan error, procs*goroutines)
	for range procs {
		rs := New(realPools(t, servers)...)
		for range goroutines {
			go func() {
				m := rs.NewMutex(name, WithTries(1000), WithRetryDelay(50*time.Millisecond))
				for range rounds {
					if err := m.Lock(); err != nil {
						errs <- err
						return
					}
					time.Sleep(time.Millisecond)
					if ok, err := m.Unlock(); !ok || err != nil {
						errs <- errors.Join(errors.New("unlock"), err)
						return
					}
				}
				errs <- nil
			}()
		}
	}
	for range procs * goroutines {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	settle(t, servers)
	for i, srv := range servers {
		var keys []string
		for _, e := range srv.MustDo(t, "KEYS", "*").Elems {
			k := e.Text()
			keys = append(keys, k)
			if srv.MustDo(t, "TYPE", k).Text() == "string" {
				t.Logf("node %d: %q = %q, PTTL %d ms", i, k, srv.MustDo(t, "GET", k).Text(), srv.MustDo(t, "PTTL", k).Int)
			} else {
				t.Logf("node %d: %q = %q, PTTL %d ms", i, k, zsetMembers(t, srv, k), srv.MustDo(t, "PTTL", k).Int)
			}
		}
		if len(keys) > 0 {
			t.Errorf("node %d keeps %q after every Lock and Unlock returned", i, keys)
		}
	}
}

// settle waits, up to 5 s, until no server keeps a key (a Lock whose
// plain try won after it had queued withdraws its entries in the
// background).
func settle(t *testing.T, servers []*redistest.Server) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		empty := true
		for _, srv := range servers {
			if srv.MustDo(t, "DBSIZE").Int != 0 {
				empty = false
			}
		}
		if empty {
			return
		}
	}
}

// TestReviewNoStrayQueueStateCancelled: as TestReviewNoStrayQueueState,
// with Lock calls that give up after 1-15 ms.
func TestReviewNoStrayQueueStateCancelled(t *testing.T) {
	servers := redistest.StartN(t, 3)
	const (
		name       = "stray-c"
		procs      = 3
		goroutines = 3
		rounds     = 10
	)
	errs := make(chan error, procs*goroutines)
	for range procs {
		rs := New(realPoolsCtx(t, servers)...)
		for range goroutines {
			go func() {
				m := rs.NewMutex(name, WithTries(1000), WithRetryDelay(50*time.Millisecond))
				for range rounds {
					ctx, cancel := context.WithTimeout(context.Background(), time.Duration(1+mathrand.IntN(15))*time.Millisecond)
					err := m.LockContext(ctx)
					cancel()
					if err != nil {
						continue // gave up: must leave nothing behind
					}
					time.Sleep(time.Millisecond)
					if ok, err := m.Unlock(); !ok || err != nil {
						errs <- errors.Join(errors.New("unlock"), err)
						return
					}
				}
				errs <- nil
			}()
		}
	}
	for range procs * goroutines {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	settle(t, servers)
	for i, srv := range servers {
		var keys []string
		for _, e := range srv.MustDo(t, "KEYS", "*").Elems {
			k := e.Text()
			keys = append(keys, k)
			if srv.MustDo(t, "TYPE", k).Text() == "string" {
				t.Logf("node %d: %q = %q, PTTL %d ms", i, k, srv.MustDo(t, "GET", k).Text(), srv.MustDo(t, "PTTL", k).Int)
			} else {
				t.Logf("node %d: %q = %q, PTTL %d ms", i, k, zsetMembers(t, srv, k), srv.MustDo(t, "PTTL", k).Int)
			}
		}
		if len(keys) > 0 {
			t.Errorf("node %d keeps %q after every Lock and Unlock returned", i, keys)
		}
	}
}

// TestReviewQueueKeySlot: docs/LIFETIME.md says the queue key shares the
// lock key's Redis Cluster slot. The scripts wrap a name without a valid
// hash tag in braces, which gives a name with a '}' in it (and no valid
// tag of its own) the tag before that '}': another slot. On a cluster the
// scripts' pcalls on the queue then fail and the waiters of such a name
// are never given turns (they wait for the retry delay), although they
// believe they are queued. The queue keys are found here on a real server
// by running queue_acquire.lua on a held key.
func TestReviewQueueKeySlot(t *testing.T) {
	srv := redistest.Start(t)
	pool := realPools(t, []*redistest.Server{srv})[0]
	for _, name := range []string{"a}b", "x{}y}z", "{}k}"} {
		srv.MustDo(t, "FLUSHALL")
		srv.MustDo(t, "SET", name, "held")
		conn, err := pool.Get(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Eval(queueAcquireScript, name, queueKey(name), "v", "1000", "m:1", "1", "60000"); err != nil {
			t.Fatal(err)
		}
		conn.Close()
		for _, e := range srv.MustDo(t, "KEYS", "*").Elems {
			k := e.Text()
			if k == name {
				continue
			}
			if keySlot(k) != keySlot(name) {
				t.Errorf("lock %q (slot %d): its queue %q is in slot %d", name, keySlot(name), k, keySlot(k))
			}
		}
	}
}

// TestReviewClusterBracedName: the consequence of TestReviewQueueKeySlot on
// a Redis Cluster (one go-redis cluster client as the only node): the
// waiter of "a}b" cannot join its queue (another slot), so the release
// gives it no turn and it waits for its retry delay; the waiter of "ab"
// (control) is woken at once.
func TestReviewClusterBracedName(t *testing.T) {
	servers := redistest.StartCluster(t)
	pool := func() redis.Pool {
		addrs := make([]string, len(servers))
		for i, s := range servers {
			addrs[i] = s.Addr()
		}
		client := goredislib.NewClusterClient(&goredislib.ClusterOptions{Addrs: addrs, MaxRetries: -1})
		t.Cleanup(func() { client.Close() })
		return goredis.NewPool(client)
	}
	for _, name := range []string{"ab", "a}b"} {
		t.Run(name, func(t *testing.T) {
			holder := New(pool()).NewMutex(name)
			if err := holder.Lock(); err != nil {
				t.Fatal(err)
			}
			m := New(pool()).NewMutex(name, WithRetryDelay(time.Hour), WithTries(2), WithExpiry(time.Minute))
			master := servers[redistest.ClusterMaster(t, servers[0], name)]
			before := master.MustDo(t, "INFO", "commandstats").Text()
			done := startLock(t, m)
			w := queuedWaiter(t, m)
			// The join try ran once the master saw the waiter's queue
			// script twice (its first try, plain, then the join).
			eventually(t, "the waiter's join try ran", func() bool {
				w.n.mu.Lock()
				hears := w.n.hears()
				w.n.mu.Unlock()
				return hears && master.MustDo(t, "INFO", "commandstats").Text() != before
			})
			time.Sleep(300 * time.Millisecond) // the join try follows at once
			if ok, err := holder.Unlock(); !ok || err != nil {
				t.Fatalf("Unlock() = %v, %v", ok, err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Lock() = %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("the waiter of %q was not woken by the release within 5s (retry delay 1h)", name)
			}
		})
	}
}

// TestReviewWithdrawAfterSuccessWaitsForHungNode: a waiter whose winning
// try was not granted by every node (lockWait.acquired: clean only when
// granted == every node) withdraws before Lock returns, in a second round
// that waits for every node (without WithFailFast) up to the per-node
// timeout. With one node hung (a paused redis-server: a partition, a long
// fork), a waiter's successful Lock thus returns one per-node timeout later
// than its try decided, and with that much less of its validity left; v4
// (and this library's plain tries) return when the try returns. Per-node
// timeout here 2 s (expiry 20 s, factor 0.1): the try waits 2 s for the
// hung node, the withdrawal 2 s more.
func TestReviewWithdrawAfterSuccessWaitsForHungNode(t *testing.T) {
	servers := redistest.StartN(t, 3)
	opts := []Option{WithExpiry(20 * time.Second), WithTimeoutFactor(0.1)}
	holder := New(realPools(t, servers)...).NewMutex("hung", opts...)
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	m := New(realPools(t, servers)...).NewMutex("hung", append(opts, WithRetryDelay(time.Hour), WithTries(2))...)
	done := startLock(t, m)
	w := queuedWaiter(t, m)
	eventually(t, "the waiter queued on every node", func() bool {
		for _, srv := range servers {
			if !queuedOn(t, srv, w.member) {
				return false
			}
		}
		return true
	})
	if err := servers[2].Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { servers[2].Resume() })
	start := time.Now()
	go holder.Unlock() // waits for the hung node too; the turns come from the others
	var took time.Duration
	select {
	case err := <-done:
		took = time.Since(start)
		if err != nil {
			t.Fatalf("Lock() = %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Lock did not return")
	}
	left := time.Until(m.Until())
	t.Logf("Lock returned %v after the release, with %v of validity left", took, left)
	// The try alone takes one per-node timeout (2 s) here.
	if took > 3500*time.Millisecond {
		t.Errorf("a waiter's successful Lock returned %v after the release: its try took one per-node timeout (2s), the withdrawal after success another", took)
	}
}

// TestReviewMutualExclusionStress: Redsyncs with several goroutines each
// lock one name on real servers, some Lock calls giving up after a few ms
// (withdrawals, undos, turns passed on); local hand-offs, turns and plain
// tries mix. Holds are far shorter than the validity, so two goroutines
// inside the critical section at once is a double grant.
func TestReviewMutualExclusionStress(t *testing.T) {
	servers := redistest.StartN(t, 3)
	const (
		procs      = 3
		goroutines = 3
		rounds     = 60
	)
	var (
		inside  atomic.Int32
		doubles atomic.Int32
		locked  atomic.Int32
	)
	errs := make(chan error, procs*goroutines)
	for p := range procs {
		rs := New(realPoolsCtx(t, servers)...)
		for g := range goroutines {
			go func() {
				var opts []Option
				if (p+g)%3 == 0 {
					opts = append(opts, WithReleaseNotification(false)) // a poller
				}
				m := rs.NewMutex("me", append(opts, WithTries(1000), WithRetryDelay(20*time.Millisecond))...)
				for range rounds {
					ctx, cancel := context.WithTimeout(context.Background(), time.Duration(5+mathrand.IntN(60))*time.Millisecond)
					err := m.LockContext(ctx)
					cancel()
					if err != nil {
						continue
					}
					locked.Add(1)
					if inside.Add(1) != 1 {
						doubles.Add(1)
					}
					time.Sleep(time.Duration(mathrand.IntN(3)) * time.Millisecond)
					inside.Add(-1)
					if ok, err := m.Unlock(); !ok || err != nil {
						errs <- errors.Join(errors.New("unlock"), err)
						return
					}
				}
				errs <- nil
			}()
		}
	}
	for range procs * goroutines {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d acquisitions", locked.Load())
	if d := doubles.Load(); d > 0 {
		t.Errorf("%d times two holders at once", d)
	}
}

// TestReviewLockNamedLikeAQueue: a lock whose name is another lock's queue
// key (docs/LIFETIME.md, "Names"). While a waiter of "doc" is queued, the
// lock named queueKey("doc") cannot be taken (the key is a sorted set):
// Lock fails with ErrWrongType, and takes nothing. While that lock is
// held, waiters of "doc" cannot queue and poll, and neither lock loses its
// holder: no script deletes or expires a queue key that is not a sorted
// set.
func TestReviewLockNamedLikeAQueue(t *testing.T) {
	servers := redistest.StartN(t, 3)
	pools := realPools(t, servers)
	qname := queueKey("doc")

	// A waiter of "doc" queued: the other lock cannot be taken.
	holder := New(pools...).NewMutex("doc")
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- New(pools...).NewMutex("doc", WithRetryDelay(time.Hour), WithTries(2)).LockContext(ctx)
	}()
	eventually(t, "the waiter of doc queued on every node", func() bool {
		for _, srv := range servers {
			if srv.MustDo(t, "ZCARD", qname).Int == 0 {
				return false
			}
		}
		return true
	})
	if err := New(pools...).NewMutex(qname, WithTries(1)).Lock(); !errors.Is(err, ErrWrongType) {
		t.Errorf("Lock(%q) while a waiter of doc is queued = %v, want ErrWrongType", qname, err)
	}
	cancel()
	<-done
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("Unlock(doc) = %v, %v", ok, err)
	}
	settle(t, servers)

	// The other lock held: doc's waiters poll, and both holders keep their
	// locks.
	other := New(pools...).NewMutex(qname, WithExpiry(time.Minute))
	if err := other.Lock(); err != nil {
		t.Fatal(err)
	}
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	waiter := New(pools...).NewMutex("doc", WithRetryDelay(10*time.Millisecond), WithTries(1000))
	got := startLock(t, waiter)
	time.Sleep(50 * time.Millisecond) // some of the waiter's tries find doc held
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("Unlock(doc) = %v, %v", ok, err)
	}
	if err := <-got; err != nil {
		t.Fatalf("the waiter of doc: Lock() = %v", err)
	}
	for i, srv := range servers {
		if v := srv.MustDo(t, "GET", qname).Text(); v != other.Value() {
			t.Errorf("node %d: the lock %q holds %q, want its holder's value %q", i, qname, v, other.Value())
		}
		if ttl := srv.MustDo(t, "PTTL", qname).Int; ttl < 30_000 {
			t.Errorf("node %d: the lock %q expires in %d ms, want its holder's minute", i, qname, ttl)
		}
	}
	if ok, err := waiter.Unlock(); !ok || err != nil {
		t.Errorf("Unlock(doc) = %v, %v", ok, err)
	}
	if ok, err := other.Unlock(); !ok || err != nil {
		t.Errorf("Unlock(%q) = %v, %v", qname, ok, err)
	}
	settle(t, servers)
}

// queueCrashedAhead puts n entries of a process that crashed
// ("deadbeefdeadbeef:1".."deadbeefdeadbeef:n", tickets 1..n) ahead of
// member in its queue on every server, each living life past the node's
// clock (negative: over already).
func queueCrashedAhead(t *testing.T, servers []*redistest.Server, member string, n int, life time.Duration) {
	t.Helper()
	for _, srv := range servers {
		zkey := queueKeyOf(t, srv, member)
		rep := srv.MustDo(t, "TIME")
		sec, _ := strconv.ParseInt(rep.Elems[0].Text(), 10, 64)
		end := sec*1000 + life.Milliseconds()
		args := []string{"ZADD", zkey}
		for i := 1; i <= n; i++ {
			args = append(args, strconv.Itoa(i), fmt.Sprintf("deadbeefdeadbeef:%d|%d", i, end))
		}
		srv.MustDo(t, args...)
	}
}

// unlockThenLocked unlocks holder and reports whether the Lock call whose
// result comes on done got the lock within 5 s (it fails the test when
// that Lock returned an error).
func unlockThenLocked(t *testing.T, holder *Mutex, done <-chan error) bool {
	t.Helper()
	start := time.Now()
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("holder Unlock() = %v, %v", ok, err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Lock() = %v", err)
		}
		t.Logf("the live waiter got the lock after %v", time.Since(start))
		return true
	case <-time.After(5 * time.Second):
		return false
	}
}
