package redsync

import (
	"context"
	"testing"
	"time"

	"github.com/go-redlock/redsync/internal/redistest"
)

// The review of the first skipped first try (commit 299bdcb, reverted in
// 65b9eea; wip/skip_review_test.go.txt) found four ways in which a Lock
// call that waits behind other Lock calls of its Redsync, with no entry in
// the nodes' queues, is left waiting for its retry delay while the lock is
// free. Each test below sets one up with a retry delay of an hour: only a
// wake-up ends such a wait within the test. The skip of lockWait.begin
// stands behind listed waiters only, decides and registers under one lock,
// and keeps a listed waiter of the Redsync on the nodes while any waiter
// stands behind (keyWaiters.cover); these tests pass with it and failed
// with the first one.

// skipOpts are the options of the waiters: only a wake-up ends their wait
// within a test.
func skipOpts() []Option {
	return []Option{WithRetryDelay(time.Hour), WithTries(1000), WithExpiry(time.Minute)}
}

// secondWaiter waits until a waiter of m other than ahead waits, and
// returns it; it logs on how many nodes it is queued 300 ms after it began
// waiting (0 while it stands behind).
func secondWaiter(t *testing.T, servers []*redistest.Server, m *Mutex, ahead *waiter) *waiter {
	t.Helper()
	w := otherWaiter(t, m, ahead)
	time.Sleep(300 * time.Millisecond)
	t.Logf("the second waiter is queued on %d of %d nodes", countQueued(t, servers, w.member), len(servers))
	return w
}

// awaitWaiterLock fails the test unless done reports a successful Lock
// within 5 s of the lock being free on every node.
func awaitWaiterLock(t *testing.T, servers []*redistest.Server, m *Mutex, w *waiter, done chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: Lock() = %v", what, err)
		}
		if ok, err := m.Unlock(); !ok || err != nil {
			t.Errorf("%s: Unlock() = %v, %v", what, ok, err)
		}
	case <-time.After(5 * time.Second):
		free := 0
		for _, srv := range servers {
			if srv.MustDo(t, "EXISTS", m.name).Int == 0 {
				free++
			}
		}
		t.Fatalf("%s: the waiter did not get the lock within 5s, with the key free on %d of %d nodes and the waiter queued on %d (retry delay 1h)",
			what, free, len(servers), countQueued(t, servers, w.member))
	}
}

// TestSkipReviewBehindFencedWaiter: a Redsync has a Lock call of a
// WithFencing Mutex waiting for a lock held by another process. A fencing
// waiter polls (Mutex.queues is false) but is a waiter of the notifier. A
// Lock of a plain Mutex of the same Redsync for the same name must not
// stand behind it: nobody of its Redsync would be in the nodes' queues,
// and the holder's release would wake nobody. (The first skip stood
// behind any waiter; the same held behind a waiter with WithRestartGuard.)
func TestSkipReviewBehindFencedWaiter(t *testing.T) {
	servers := redistest.StartN(t, 3)
	holder := New(realPools(t, servers)...).NewMutex("skipf")
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	rs := New(realPools(t, servers)...)
	fenced := rs.NewMutex("skipf", append(skipOpts(), WithFencing())...)
	startLock(t, fenced)
	queuedWaiter(t, fenced)
	eventually(t, "the Redsync hears a quorum", rs.notify.hears)
	// The quorum's confirmation makes every waiter try once: let the
	// fencing waiter's extra try end.
	time.Sleep(300 * time.Millisecond)
	wf := queuedWaiter(t, fenced)

	plain := rs.NewMutex("skipf", skipOpts()...)
	done := startLock(t, plain)
	w := secondWaiter(t, servers, plain, wf)

	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("holder Unlock() = %v, %v", ok, err)
	}
	awaitWaiterLock(t, servers, plain, w, done, "plain Lock behind a fencing waiter of its Redsync")
}

// TestSkipReviewHeadLockExpiresThenOthersTrade: W1 and W2 of one Redsync
// wait for a lock held by another process; W1 is in the nodes' queues, W2
// stands behind it. The release gives W1 its turn and W1 takes the lock.
// W1's holder then runs past its expiry (2 s here: a slow job, a stalled
// goroutine) and does not Unlock within the test. P, another process,
// takes the lock once it expired and releases it: P's release wakes the
// first entry of the nodes' queues, which must be W2's. (With the first
// skip W2 had none: it waited for its retry delay while the lock was
// free.)
func TestSkipReviewHeadLockExpiresThenOthersTrade(t *testing.T) {
	servers := redistest.StartN(t, 3)
	m1, m2, d2, w2 := w1HoldsW2Behind(t, servers, "skipx", WithRetryDelay(time.Hour), WithTries(1000), WithExpiry(2*time.Second))
	// W1 holds and overruns its expiry; P, another process, takes the
	// lock once it expired, and releases it.
	p := New(realPools(t, servers)...).NewMutex("skipx", WithRetryDelay(50*time.Millisecond), WithTries(400))
	if err := p.Lock(); err != nil {
		t.Fatalf("P Lock() = %v", err)
	}
	if ok, err := p.Unlock(); !ok || err != nil {
		t.Fatalf("P Unlock() = %v, %v", ok, err)
	}
	awaitWaiterLock(t, servers, m2, w2, d2, "W2 after the lock expired on W1 and P released it")
	// W1's late Unlock finds its lock expired.
	_, _ = m1.Unlock()
}

// TestSkipReviewHeadLockUnlockedElsewhere: as above, but W1 passes its
// value on and another process releases W1's lock with WithValue. That
// release wakes the nodes' queues, where W2 must be: no Unlock of W1's
// Redsync will tell it anything.
func TestSkipReviewHeadLockUnlockedElsewhere(t *testing.T) {
	servers := redistest.StartN(t, 3)
	m1, m2, d2, w2 := w1HoldsW2Behind(t, servers, "skipv", skipOpts()...)
	other := New(realPools(t, servers)...).NewMutex("skipv", WithValue(m1.Value()))
	if ok, err := other.Unlock(); !ok || err != nil {
		t.Fatalf("Unlock elsewhere with W1's value = %v, %v", ok, err)
	}
	awaitWaiterLock(t, servers, m2, w2, d2, "W2 after W1's lock was released by another process")
}

// TestSkipReviewNudgeBeforeQueued: a race between the decision to stand
// behind and what wakes such a waiter. The first skip decided in
// lockWait.begin but entered the list that wake-ups reach only in its
// first wait; a waiter ahead that gave up in between woke nobody, and the
// new call then waited, with no entry, for its retry delay, behind
// nobody. Each round starts a Lock (W2) while the only waiter ahead (W1)
// is cancelled; a W2 that made no try 2 s later is stranded: the holder
// (another process) then releases, and W2 must get the free lock within
// 5 s.
func TestSkipReviewNudgeBeforeQueued(t *testing.T) {
	servers := redistest.StartN(t, 3)
	holder := New(realPools(t, servers)...).NewMutex("skipr", WithExpiry(time.Minute))
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	held := true
	rs := New(realPools(t, servers)...)
	const rounds = 300
	round := 0
	for ; round < rounds && held; round++ {
		m1 := rs.NewMutex("skipr", skipOpts()...)
		ctx1, cancel1 := context.WithCancel(context.Background())
		d1 := make(chan error, 1)
		go func() { d1 <- m1.LockContext(ctx1) }()
		w1 := queuedWaiter(t, m1)
		queuedEverywhere(t, servers, w1)

		m2 := rs.NewMutex("skipr", skipOpts()...)
		ctx2, cancel2 := context.WithCancel(context.Background())
		d2 := make(chan error, 1)
		start := make(chan struct{})
		go func() { <-start; d2 <- m2.LockContext(ctx2) }()
		go func() { <-start; cancel1() }()
		close(start)
		<-d1
		w2 := otherWaiter(t, m2, w1)
		// W2 tries within moments, unless it stands behind: give it
		// 100 ms, then 2 s more.
		for deadline := time.Now().Add(100 * time.Millisecond); countQueued(t, servers, w2.member) == 0 && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		if countQueued(t, servers, w2.member) == 0 {
			time.Sleep(2 * time.Second)
		}
		if countQueued(t, servers, w2.member) == 0 {
			// W2 made no try: it stood behind W1, and W1's end missed it.
			if ok, err := holder.Unlock(); !ok || err != nil {
				t.Fatalf("holder Unlock() = %v, %v", ok, err)
			}
			held = false
			select {
			case err := <-d2:
				if err == nil {
					m2.Unlock()
				}
				t.Logf("round %d: W2 made no try for 2s but got the lock after the release: %v", round, err)
			case <-time.After(5 * time.Second):
				t.Errorf("round %d: W2 (started as W1, the only waiter ahead of it, gave up) did not get the lock within 5s of the release: it skipped its first try, W1's end did not wake it, and it is queued on %d nodes (retry delay 1h)", round, countQueued(t, servers, w2.member))
				cancel2()
				<-d2
			}
		}
		cancel2()
		if held {
			<-d2
		}
		cancel1()
	}
	t.Logf("%d rounds", round)
	if held {
		if ok, err := holder.Unlock(); !ok || err != nil {
			t.Errorf("holder Unlock() = %v, %v", ok, err)
		}
	}
	settle(t, servers)
	for i, srv := range servers {
		if n := srv.MustDo(t, "DBSIZE").Int; n != 0 {
			t.Errorf("node %d keeps %d keys after every call returned", i, n)
		}
	}
}

// w1HoldsW2Behind sets up a lock name held by another Redsync, W1 (of one
// Redsync, with opts) in every node's queue and W2 (of the same) behind it;
// then the holder unlocks and W1 gets its turn and the lock. It returns
// W1's and W2's Mutexes, the channel of W2's Lock result, and W2.
func w1HoldsW2Behind(t *testing.T, servers []*redistest.Server, name string, opts ...Option) (*Mutex, *Mutex, chan error, *waiter) {
	t.Helper()
	holder := New(realPools(t, servers)...).NewMutex(name)
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	rs := New(realPools(t, servers)...)
	m1 := rs.NewMutex(name, opts...)
	d1 := startLock(t, m1)
	w1 := queuedWaiter(t, m1)
	queuedEverywhere(t, servers, w1)
	m2 := rs.NewMutex(name, skipOpts()...)
	d2 := startLock(t, m2)
	w2 := secondWaiter(t, servers, m2, w1)
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("holder Unlock() = %v, %v", ok, err)
	}
	select {
	case err := <-d1:
		if err != nil {
			t.Fatalf("W1 Lock() = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("W1 did not get its turn")
	}
	return m1, m2, d2, w2
}
