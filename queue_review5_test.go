package redsync

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/goredis"
)

// Fifth review of the queue of waiters (handoff.go, queue_lib.lua):
// reproductions, and a measurement.

// countingPools returns realPools over servers, counting as countingOver.
func countingPools(t *testing.T, servers []*redistest.Server, tries, undos *atomic.Int64) []redis.Pool {
	return countingOver(realPools(t, servers), tries, undos)
}

// countingOver wraps pools (which can be listened to) in delayPools
// without delay, so that tries counts the tries (acquire.lua and
// queue_acquire.lua) that reach node 0, and undos the undos of failed
// queue tries (queue_leave.lua 'undo') there. The wrapper implements
// neither ScriptRunner nor Pipeliner: every try goes through Eval, one per
// node.
func countingOver(pools []redis.Pool, tries, undos *atomic.Int64) []redis.Pool {
	armed := &atomic.Bool{}
	armed.Store(true)
	for i, p := range pools {
		dp := &delayPool{inner: p, armed: armed, delay: func(*redis.Script, []any) time.Duration { return 0 }}
		if i == 0 {
			dp.delay = func(s *redis.Script, args []any) time.Duration {
				switch s {
				case queueAcquireScript, acquireScript:
					tries.Add(1)
				case queueLeaveScript:
					if len(args) > 2 && args[2] == "undo" {
						undos.Add(1)
					}
				}
				return 0
			}
		}
		pools[i] = dp
	}
	return pools
}

// TestReview5MinorityFreeKeyStormsHead breaks the performance promise
// ("a storm of extra tries would be a performance defect"; LIFETIME.md:
// "each release wakes one waiter ... instead of every waiter") and, in
// spirit, promise 3's "tries only when it may win".
//
// The lock is held on a quorum (nodes 1 and 2 of 3) and free on node 0:
// the holder's try missed it, a split vote's loser undid its key there,
// or node 0 restarted without its data (the case LIFETIME.md names for
// the minority standby). Nothing is released; the waiter H (retry delay 1
// h) should sit still until the holder's Unlock. Instead, every queue try
// of H takes the free key on node 0 and fails; its undo (queue_leave.lua
// 'undo') deletes it, puts H back and wakes the head of node 0's queue
// WITHOUT popping it (wake(queue, id, false)) -- H itself, with a new id
// (the SHA1 of the try's value). receive (handoff.go) counts that one
// node's turn (count == 1) and sets a standby wait: H tries again 100 ms
// later, which takes node 0 again, is undone again, wakes H again, and so
// on for as long as the lock is held (10 rounds a second, each a try on
// every node and an undo: with the default expiry and Extend, for
// minutes). Before the minority standby, a one-node turn was ignored.
func TestReview5MinorityFreeKeyStormsHead(t *testing.T) {
	servers := redistest.StartN(t, 3)
	opts := []Option{WithRetryDelay(time.Hour), WithTries(2), WithExpiry(time.Minute)}
	holder := New(realPools(t, servers)...).NewMutex("storm", opts...)
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	// The key is free on node 0 only: the holder still holds a quorum.
	servers[0].MustDo(t, "DEL", "storm")

	var tries, undos atomic.Int64
	m := New(countingPools(t, servers, &tries, &undos)...).NewMutex("storm", opts...)
	done := startLock(t, m)
	w := queuedWaiter(t, m)
	eventually(t, "the waiter queued on the nodes where the lock is held", func() bool {
		return queuedOn(t, servers[1], w.member) && queuedOn(t, servers[2], w.member)
	})
	time.Sleep(200 * time.Millisecond) // let the joining tries settle
	before, beforeUndos := tries.Load(), undos.Load()
	const watch = 3 * time.Second
	time.Sleep(watch)
	extra, extraUndos := tries.Load()-before, undos.Load()-beforeUndos
	select {
	case err := <-done:
		t.Fatalf("Lock() returned %v while the lock is held on a quorum", err)
	default:
	}
	t.Logf("while the lock was held (nothing released), the waiter sent %d tries and %d undos in %v", extra, extraUndos, watch)
	// Nothing was released: no try is due for an hour, and the entry's
	// renewal for 30 s. A few tries are tolerated.
	if extra > 5 {
		t.Errorf("a waiter with nothing to wait for sent %d tries (and %d undos) in %v while the lock stayed held on a quorum and free on one node: each try's undo woke it again (one-node turn -> standby wait -> try)", extra, extraUndos, watch)
	}
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("holder Unlock() = %v, %v", ok, err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Lock() = %v", err)
		}
		m.Unlock()
	case <-time.After(5 * time.Second):
		t.Fatalf("the waiter did not get the lock within 5s of the release")
	}
}

// TestReview5CrashedWorkerPoolHidesLiveWaiter breaks promise 3
// (liveness) and LIFETIME.md ("Standbys are waiters of other processes
// than the head's: the entries of one process die together, so a process
// that crashed with several Lock calls waiting at the head costs one
// standby wait too").
//
// wake() (queue_lib.lua) stops once it has looked at maxLive (32) live
// entries, and picks standbys only among processes other than the head's.
// A process that crashed with 40 Lock calls waiting for the lock (a worker
// pool of 40 goroutines; their entries live a minute) fills the first 32
// live entries: each release pops one of them, tells the dead process its
// turn, and names no standby at all, although a live waiter of another
// process is right behind them. The key is free on every node and nobody
// tries: the live waiter waits for its renewal (half its entry's life,
// 30 s) or its retry delay (1 h), and after that every release costs it
// the same again until the dead entries' life ends.
func TestReview5CrashedWorkerPoolHidesLiveWaiter(t *testing.T) {
	servers := redistest.StartN(t, 3)
	holder := New(realPools(t, servers)...).NewMutex("pool")
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	m := New(realPools(t, servers)...).NewMutex("pool", WithRetryDelay(time.Hour), WithTries(2), WithExpiry(time.Minute))
	done := startLock(t, m)
	w := queuedWaiter(t, m)
	queuedEverywhere(t, servers, w)
	// The crashed process's 40 waiters, ahead of the live one (lower
	// tickets), their entries within their life (a minute).
	queueCrashedAhead(t, servers, w.member, 40, time.Minute)
	if unlockThenLocked(t, holder, done) {
		m.Unlock()
		return
	}
	free := 0
	for _, srv := range servers {
		if srv.MustDo(t, "EXISTS", "pool").Int == 0 {
			free++
		}
	}
	t.Fatalf("a crashed process's 40 waiters at the head (one process) kept the live waiter of another process from a free lock for 5s (free on %d of %d nodes; retry delay 1h, renewal after 30s): wake() stopped after 32 live entries of the dead process and named no standby", free, len(servers))
}

// TestReview5TriesPerAcquisition measures (reports; asserts only an
// extreme storm) the tries per acquisition under contention: eight
// processes (Redsyncs) on five real servers take one lock in turn, each
// Lock with a retry delay of an hour (every try comes from the queue: a
// turn, a standby wait, a one-node turn, joining, a split vote's
// back-off), holding it 1 ms, then (second row) 150 ms, longer than a
// standby wait. Tries are counted on node 0 (every try reaches every
// node), undos too.
func TestReview5TriesPerAcquisition(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	for _, row := range []struct {
		hold   time.Duration
		rounds int
	}{{time.Millisecond, 30}, {150 * time.Millisecond, 4}} {
		t.Run(row.hold.String(), func(t *testing.T) {
			servers := redistest.StartN(t, 5)
			const procs = 8
			var tries, undos atomic.Int64
			errs := make(chan error, procs)
			var acquired atomic.Int64
			start := time.Now()
			for p := range procs {
				m := New(countingPools(t, servers, &tries, &undos)...).NewMutex("contended", WithRetryDelay(time.Hour), WithTries(1<<20), WithExpiry(time.Minute))
				go func() {
					for r := range row.rounds {
						ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
						err := m.LockContext(ctx)
						cancel()
						if err != nil {
							errs <- fmt.Errorf("process %d, round %d: Lock() = %w", p, r, err)
							return
						}
						acquired.Add(1)
						time.Sleep(row.hold)
						if ok, err := m.Unlock(); !ok || err != nil {
							errs <- fmt.Errorf("process %d, round %d: Unlock() = %v, %w", p, r, ok, err)
							return
						}
					}
					errs <- nil
				}()
			}
			for range procs {
				if err := <-errs; err != nil {
					t.Error(err)
				}
			}
			n := acquired.Load()
			perAcq := float64(tries.Load()) / float64(max(n, 1))
			t.Logf("hold %v: %d acquisitions in %v, %d tries (%.2f per acquisition), %d undos of queue tries", row.hold, n, time.Since(start).Round(time.Millisecond), tries.Load(), perAcq, undos.Load())
			if perAcq > 10 {
				t.Errorf("%.1f tries per acquisition: a storm", perAcq)
			}
		})
	}
}

// TestReview5ReleaseByUserWithoutChannelsPopsSilently broke promise 3
// (liveness) and LIFETIME.md ("The PUBLISHes and every queue command run
// through redis.pcall ...: a user whose ACL forbids them still locks and
// releases").
//
// Since Redis 7 a user created with "ACL SETUSER app reset on >pw ~*
// +@all" may run every command on every key but publish on no channel
// (acl-pubsub-default is resetchannels). Such a user locks and releases
// fine. But its Unlock, run by release_notify.lua, pops the head of the
// queue (wake(queue, id, true): ZREM) and then PUBLISHes its turn and the
// standbys' notices, which the ACL refuses (the pcall swallows it): the
// waiter, queued by a process of another user that may subscribe, is
// taken out of the queue on every node and told nothing. The key is free
// on every node and nobody tries: the waiter waits for its renewal (half
// its entry's life, 30 s here) or its retry delay (1 h); every release
// by that user does it again to the next head.
func TestReview5ReleaseByUserWithoutChannelsPopsSilently(t *testing.T) {
	servers := redistest.StartN(t, 3)
	for _, srv := range servers {
		srv.MustDo(t, "ACL", "SETUSER", "nochan", "reset", "on", ">pw", "~*", "+@all")
	}
	pools := make([]redis.Pool, len(servers))
	for i, s := range servers {
		client := goredislib.NewClient(&goredislib.Options{Addr: s.Addr(), Username: "nochan", Password: "pw", MaxRetries: -1})
		t.Cleanup(func() { client.Close() })
		pools[i] = goredis.NewPool(client)
	}
	holder := New(pools...).NewMutex("nochan")
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	m := New(realPools(t, servers)...).NewMutex("nochan", WithRetryDelay(time.Hour), WithTries(2), WithExpiry(time.Minute))
	done := startLock(t, m)
	w := queuedWaiter(t, m)
	queuedEverywhere(t, servers, w)
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("holder Unlock() = %v, %v", ok, err)
	}
	// Fixed: such a release wakes nobody (it cannot tell anyone: the
	// waiter's fallback is its retry delay, as after a v4 client's
	// release) but takes nobody out of the queue either, so the next
	// release by a user who may publish wakes the waiter.
	if n := countQueued(t, servers, w.member); n != len(servers) {
		t.Fatalf("the release by a user that may not PUBLISH took the waiter out of the queue on %d of %d nodes", len(servers)-n, len(servers))
	}
	other := New(realPools(t, servers)...).NewMutex("nochan", WithTries(1))
	if err := other.Lock(); err != nil {
		// The waiter's try took the free key (a renewal, or the
		// subscription quorum's catch-up try): it is awake after all.
		if err := <-done; err != nil {
			t.Fatalf("Lock() = %v", err)
		}
		m.Unlock()
		return
	}
	start := time.Now()
	if ok, err := other.Unlock(); !ok || err != nil {
		t.Fatalf("Unlock() = %v, %v", ok, err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Lock() = %v", err)
		}
		t.Logf("the waiter got the lock %v after the next release", time.Since(start))
		m.Unlock()
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter, still first in the queue, was not woken by the next release (by a user who may publish) within 5s")
	}
}
