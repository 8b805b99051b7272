package redsync

import (
	"context"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
)

// Second review of the local skip (f8b9419, 82e78f1, 7bd2888: a Lock whose
// Redsync has a listed waiter for the lock stands behind it, keyWaiters.cover)
// and of the queue's wake (98473bf: standbys only when the turn's PUBLISH
// reached nobody). Each TestSkipReview2... test states the promise it
// checks and the interleaving; the others are marked "held" (the promise
// held in every run: -race -count=3, and once under CPU load). Two broke
// it at 24e48fa: TestSkipReview2ThreeCrashedProcessesAtHead (a "next" that
// reached nobody counted as a standby; wake now names standbys that hear
// it) and TestSkipReview2NewLockSkipsFreeLock (now a documented limit
// that the retry delay covers; the test checks that).

// skipReview2Opts are the options of the waiters: with a retry delay of an
// hour and entries renewed every 30 s, only a wake-up, a hand-off or a
// cover ends a wait within a test.
func skipReview2Opts() []Option {
	return []Option{WithRetryDelay(time.Hour), WithTries(1000), WithExpiry(time.Minute)}
}

// queueCrashedRedsyncsAhead puts one entry of each of n crashed Redsyncs
// ("dead<i>..." ids that nobody listens to, tickets 1..n) ahead of member
// in its queue on every server, each living life past the node's clock:
// n processes (or n Redsyncs of one process) that died with a Lock waiting.
func queueCrashedRedsyncsAhead(t *testing.T, servers []*redistest.Server, member string, n int, life time.Duration) {
	t.Helper()
	for _, srv := range servers {
		zkey := queueKeyOf(t, srv, member)
		if zkey == "" {
			t.Fatalf("%s is not queued on %s", member, srv.Addr())
		}
		rep := srv.MustDo(t, "TIME")
		sec, _ := strconv.ParseInt(rep.Elems[0].Text(), 10, 64)
		end := sec*1000 + life.Milliseconds()
		for i := 1; i <= n; i++ {
			srv.MustDo(t, "ZADD", zkey, strconv.Itoa(i), fmt.Sprintf("dead%012d:1|%d", i, end))
		}
	}
}

// TestSkipReview2ThreeCrashedProcessesAtHead: was a break of promise 2
// (liveness) by change 2 (98473bf), fixed: wake now names as standbys only
// waiters whose "next" reaches a listener. At 24e48fa subtest "three"
// failed every run, and
// passes with e4456b9's queue_lib.lua (the live waiter gets the lock in
// about 1 ms). Three processes that each waited for the lock with one Lock
// call crashed (a rolling restart, a host that died with three workers; or
// one process with three Redsyncs): their entries, one per Redsync, are at
// the head of every node's queue for their life (the lock's expiry, a
// minute here). The holder (another process) releases. wake() pops the
// first dead entry and tells it its turn; its PUBLISH reaches nobody, so it
// names the next two waiters of other Redsyncs standbys: the second and
// third dead Redsyncs (the count of a "next" is not looked at). The live
// waiter, fourth, is told nothing; the key is free on every node and
// nobody tries until the live waiter's renewal (30 s) or retry delay (1 h).
// e4456b9 removed a Redsync's entries whose PUBLISH reached nobody and
// went on to the next live waiter in the same call; LIFETIME.md says a
// crashed head costs one standby wait, and lists no such case among what
// the queue does not cover (its argument, "the entries of one process die
// together", covers one crashed Redsync, not three). With two crashed
// Redsyncs the live waiter is the rank-2 standby and gets the lock after
// 200 ms (subtest "two", held).
func TestSkipReview2ThreeCrashedProcessesAtHead(t *testing.T) {
	for _, n := range []int{2, 3} {
		t.Run(map[int]string{2: "two", 3: "three"}[n], func(t *testing.T) {
			servers := redistest.StartN(t, 3)
			name := "crashed-" + strconv.Itoa(n)
			holder := New(realPools(t, servers)...).NewMutex(name)
			if err := holder.Lock(); err != nil {
				t.Fatal(err)
			}
			m := New(realPools(t, servers)...).NewMutex(name, skipReview2Opts()...)
			done := startLock(t, m)
			w := queuedWaiter(t, m)
			queuedEverywhere(t, servers, w)
			queueCrashedRedsyncsAhead(t, servers, w.member, n, time.Minute)
			if unlockThenLocked(t, holder, done) {
				m.Unlock()
				return
			}
			free, _ := freeOn(servers, name)
			t.Fatalf("%d crashed Redsyncs' entries at the head kept the live waiter from the lock for 5s, free on %d of %d nodes (retry delay 1h, renewal after 30s): the turn went to the first, the standbys to the next two, all dead", n, free, len(servers))
		})
	}
}

// TestSkipReview2NewLockSkipsFreeLock: a documented limit (LIFETIME.md,
// "Standing behind"), which the retry delay covers. Found as a break of
// promise 2: the skip takes a listed waiter of the Redsync as a sign that
// the lock is held. It may not be: W1 (listed, in every node's queue) may
// wait on a lock that was freed in a way that wakes nobody, one of the
// cases the retry delay covers for waiters that were waiting then:
//
//   - expired: the holder (another process) stalled or died holding it,
//     and its lock expired;
//   - quiet: the holder released it with WithReleaseNotification(false)
//     (a v4 client's release is the same).
//
// A new Lock of the same Redsync (W2), called after the lock became free,
// sends no try and stands behind W1: it waits like W1, for its retry
// delay (here a second; with an hour, for W1's renewal, 30 s), where a
// first try of its own would have taken the free lock at once (as TryLock
// of the same Redsync does).
func TestSkipReview2NewLockSkipsFreeLock(t *testing.T) {
	for _, mode := range []string{"expired", "quiet"} {
		t.Run(mode, func(t *testing.T) {
			servers := redistest.StartN(t, 3)
			name := "skipfree-" + mode
			var holder *Mutex
			if mode == "expired" {
				holder = New(realPools(t, servers)...).NewMutex(name, WithExpiry(time.Second))
			} else {
				holder = New(realPools(t, servers)...).NewMutex(name, WithReleaseNotification(false))
			}
			if err := holder.Lock(); err != nil {
				t.Fatal(err)
			}
			rs := New(realPools(t, servers)...)
			m1 := rs.NewMutex(name, skipReview2Opts()...)
			startLock(t, m1)
			w1 := queuedWaiter(t, m1)
			queuedEverywhere(t, servers, w1)
			if mode == "quiet" {
				if ok, err := holder.Unlock(); !ok || err != nil {
					t.Fatalf("holder Unlock() = %v, %v", ok, err)
				}
			}
			eventually(t, "the lock free on every node", func() bool {
				free, _ := freeOn(servers, name)
				return free == len(servers)
			})

			m2 := rs.NewMutex(name, WithRetryDelay(time.Second), WithTries(1000), WithExpiry(time.Minute))
			start := time.Now()
			done := startLock(t, m2)
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("W2 Lock() = %v", err)
				}
				t.Logf("W2 got the free lock after %v", time.Since(start))
				m2.Unlock()
				return
			case <-time.After(5 * time.Second):
			}
			free, _ := freeOn(servers, name)
			probe := rs.NewMutex(name)
			probeErr := probe.TryLock()
			if probeErr == nil {
				probe.Unlock()
			}
			t.Fatalf("a Lock called while the lock was free (%d of %d nodes) did not get it within 5s, past its retry delay (1s): it stood behind W1 of its Redsync, listed but not woken (%s release); TryLock of the same Redsync then = %v",
				free, len(servers), mode, probeErr)
		})
	}
}

// firstQueueTryDelayPools wraps realPools so that, while armed, the first
// queue try (queue_acquire.lua) for name on each node is held for delay
// before it is sent (a stalled client or a congested link); later ones go
// at once.
func firstQueueTryDelayPools(t *testing.T, servers []*redistest.Server, name string, armed *atomic.Bool, delay time.Duration) []redis.Pool {
	pools := realPools(t, servers)
	for i, p := range pools {
		var sent atomic.Bool
		pools[i] = &delayPool{inner: p, armed: armed, delay: func(s *redis.Script, args []any) time.Duration {
			if s == queueAcquireScript && len(args) > 0 && args[0] == name && !sent.Swap(true) {
				return delay
			}
			return 0
		}}
	}
	return pools
}

// TestSkipReview2ListedCancelledDuringTry (held): promises 2 and 5. A
// Redsync that already listens (a waiter for another lock) starts W1 for a
// lock held by another process: its first try is a queue try (W1 is
// listed from the moment it goes out), held 500 ms on the way. W2 of the
// same Redsync starts meanwhile and stands behind W1. W1's Lock is
// cancelled while its try is still on the way: the try fails (ctx), W1
// lapses, the cover makes W2 try; W1's late scripts reach the nodes (and
// queue W1) before its undo and withdrawal, which the round waits for
// (awaitSettled). The holder's release must then give W2 the lock, and W1
// must be queued nowhere.
func TestSkipReview2ListedCancelledDuringTry(t *testing.T) {
	servers := redistest.StartN(t, 3)
	const name = "skip-cancel-try"
	holder := New(realPools(t, servers)...).NewMutex(name)
	warmHolder := New(realPools(t, servers)...).NewMutex("skip-warm")
	for _, m := range []*Mutex{holder, warmHolder} {
		if err := m.Lock(); err != nil {
			t.Fatal(err)
		}
	}
	var armed atomic.Bool
	rs := New(firstQueueTryDelayPools(t, servers, name, &armed, 500*time.Millisecond)...)
	warm := rs.NewMutex("skip-warm", skipReview2Opts()...)
	startLock(t, warm)
	queuedWaiter(t, warm)
	eventually(t, "the Redsync hears a quorum", rs.notify.hears)
	time.Sleep(300 * time.Millisecond) // the confirmation's extra tries end

	armed.Store(true)
	m1 := rs.NewMutex(name, skipReview2Opts()...)
	ctx1, cancel1 := context.WithCancel(context.Background())
	defer cancel1()
	d1 := make(chan error, 1)
	go func() { d1 <- m1.LockContext(ctx1) }()
	var w1 *waiter
	eventually(t, "W1 registered and listed", func() bool {
		rs.notify.mu.Lock()
		defer rs.notify.mu.Unlock()
		if kw := rs.notify.keys[name]; kw != nil && len(kw.waiters) == 1 && kw.waiters[0].standing == listed {
			w1 = kw.waiters[0]
		}
		return w1 != nil
	})
	m2 := rs.NewMutex(name, skipReview2Opts()...)
	d2 := startLock(t, m2)
	var w2 *waiter
	eventually(t, "W2 registered", func() bool {
		rs.notify.mu.Lock()
		defer rs.notify.mu.Unlock()
		for _, q := range rs.notify.keys[name].waiters {
			if q != w1 {
				w2 = q
			}
		}
		return w2 != nil
	})
	rs.notify.mu.Lock()
	behindW1 := w2.standing == behind
	rs.notify.mu.Unlock()
	if !behindW1 {
		t.Fatalf("W2 did not stand behind W1 (its try in flight): the interleaving was not reached")
	}
	time.Sleep(100 * time.Millisecond)
	cancel1()
	if err := <-d1; !errors.Is(err, context.Canceled) {
		t.Fatalf("W1 LockContext() = %v, want context.Canceled", err)
	}
	queuedEverywhere(t, servers, w2)
	if k := countQueued(t, servers, w1.member); k != 0 {
		t.Errorf("W1, cancelled, is still queued on %d nodes", k)
	}
	if !unlockThenLocked(t, holder, d2) {
		free, _ := freeOn(servers, name)
		t.Fatalf("W2 did not get the lock within 5s of the release (free on %d nodes)", free)
	}
	m2.Unlock()
	warmHolder.Unlock()
}

// TestSkipReview2PausedNodesLapse (held): promises 2 and 3. W1 (listed,
// entries living a second, so it renews every 500 ms) and W2, W3 of one
// Redsync wait for a lock held by another process; W2 and W3 stand behind
// W1. Two of the three nodes are paused (SIGSTOP) for two seconds: W1's
// renewal fails on them (node timeouts), W1 lapses, the cover makes W3
// try, which lapses too, and so on. Once the nodes are back, the holder's
// release must bring the lock to all three, by turns and local hand-offs,
// without anyone waiting for a 30 s renewal or the hour's retry delay.
func TestSkipReview2PausedNodesLapse(t *testing.T) {
	servers := redistest.StartN(t, 3)
	const name = "skip-pause"
	holder := New(realPools(t, servers)...).NewMutex(name)
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	rs := New(realPools(t, servers)...)
	m1 := rs.NewMutex(name, WithRetryDelay(time.Hour), WithTries(1000), WithExpiry(time.Second))
	d1 := startLock(t, m1)
	w1 := queuedWaiter(t, m1)
	queuedEverywhere(t, servers, w1)
	m2 := rs.NewMutex(name, skipReview2Opts()...)
	d2 := startLock(t, m2)
	otherWaiter(t, m2, w1)
	m3 := rs.NewMutex(name, skipReview2Opts()...)
	d3 := startLock(t, m3)
	queuedWaiters(t, m1, 3)

	for _, srv := range servers[:2] {
		if err := srv.Pause(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2 * time.Second)
	for _, srv := range servers[:2] {
		if err := srv.Resume(); err != nil {
			t.Fatal(err)
		}
	}
	rs.notify.mu.Lock()
	var standings []standing
	for _, q := range rs.notify.keys[name].waiters {
		standings = append(standings, q.standing)
	}
	rs.notify.mu.Unlock()
	t.Logf("standings after the pause (0 unlisted, 1 behind, 2 lapsed, 3 listed): %v", standings)
	time.Sleep(time.Second)
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("holder Unlock() = %v, %v", ok, err)
	}
	ms := []*Mutex{m1, m2, m3}
	dones := []chan error{d1, d2, d3}
	for range 3 {
		i := -1
		var err error
		select {
		case err = <-dones[0]:
			i = 0
		case err = <-dones[1]:
			i = 1
		case err = <-dones[2]:
			i = 2
		case <-time.After(5 * time.Second):
			free, _ := freeOn(servers, name)
			t.Fatalf("a waiter did not get the lock within 5s (free on %d of %d nodes)", free, len(servers))
		}
		if err != nil {
			t.Fatalf("W%d Lock() = %v", i+1, err)
		}
		if ok, err := ms[i].Unlock(); !ok || err != nil {
			t.Fatalf("W%d Unlock() = %v, %v", i+1, ok, err)
		}
		dones[i] = nil
	}
	settle(t, servers)
	for i, srv := range servers {
		if n := srv.MustDo(t, "DBSIZE").Int; n != 0 {
			t.Errorf("node %d keeps %d keys", i, n)
		}
	}
}

// holdWindow is when one holder believed it held the lock: from the return
// of its Lock to the earlier of the moment it stopped and its validity's
// end.
type holdWindow struct {
	who        string
	start, end time.Time
}

// overlaps returns a description of the first two windows that overlap,
// or "".
func overlaps(ws []holdWindow) string {
	slices.SortFunc(ws, func(a, b holdWindow) int { return a.start.Compare(b.start) })
	var last holdWindow
	for i, w := range ws {
		if i > 0 && w.start.Before(last.end) {
			return fmt.Sprintf("%s held from %v to %v, %s from %v (overlap %v)", last.who, last.start.Format("15:04:05.000000"), last.end.Format("15:04:05.000000"), w.who, w.start.Format("15:04:05.000000"), last.end.Sub(w.start))
		}
		if w.end.After(last.end) {
			last = w
		}
	}
	return ""
}

// TestSkipReview2Stress (held): promises 1, 2, 3 and 5 across the skip,
// the cover, local hand-offs (the 16-in-a-row limit included: holders
// release at once, so chains are long), expiry and Unlock with WithValue
// from another Redsync. Two Redsyncs of one process (over the same
// clients) with many goroutines each, retry delay 1h: Lock with long or
// short contexts (5-150 ms), TryLock, holders with WithAutoExtend that
// hold past their expiry, holders that overrun their expiry, holders whose
// value another Redsync releases. A poller of a third Redsync (retry delay
// 20 ms) takes a lock that expired and releases it with notification (a
// release by expiry wakes nobody: the documented gap). Checked: no two
// holding windows overlap (each from Lock's return to the earlier of
// Until and the moment the holder stopped), the lock never free on every
// node for 2 s while a Lock that began before it waits, nothing left on
// the nodes, no goroutines left.
func TestSkipReview2Stress(t *testing.T) {
	if testing.Short() {
		t.Skip("stress")
	}
	servers := redistest.StartN(t, 3)
	goroutinesBefore := runtime.NumGoroutine()
	const (
		name     = "skip2-stress"
		duration = 8 * time.Second
		stuck    = 2 * time.Second
	)
	var (
		mu      sync.Mutex
		windows []holdWindow
		waiting sync.Map
		errs    = make(chan error, 100)
		wg      sync.WaitGroup
		handed  atomic.Int64
		locks   atomic.Int64
	)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	record := func(who string, start, end time.Time) {
		mu.Lock()
		windows = append(windows, holdWindow{who, start, end})
		mu.Unlock()
	}
	stop := time.Now().Add(duration)
	end, cancelAll := context.WithDeadline(context.Background(), stop.Add(4*time.Second))
	defer cancelAll()
	shared := realPools(t, servers)
	foreign := New(realPools(t, servers)...)
	for p, per := range []int{8, 5} {
		rs := New(shared...)
		for g := range per {
			wg.Add(1)
			go func() {
				defer wg.Done()
				who := fmt.Sprintf("R%d/g%d", p, g)
				rng := mathrand.New(mathrand.NewPCG(uint64(p)+7, uint64(g)))
				for time.Now().Before(stop) {
					expiry := time.Duration(800+rng.IntN(400)) * time.Millisecond
					opts := []Option{WithRetryDelay(time.Hour), WithTries(1000), WithExpiry(expiry)}
					auto := rng.IntN(60) == 0
					if auto {
						opts = append(opts, WithAutoExtend(expiry/4))
					}
					m := rs.NewMutex(name, opts...)
					var err error
					key := new(int)
					waiting.Store(key, time.Now())
					switch r := rng.IntN(10); {
					case r == 0:
						err = m.TryLock()
					case r < 3:
						ctx, cancel := context.WithTimeout(end, time.Duration(5+rng.IntN(145))*time.Millisecond)
						err = m.LockContext(ctx)
						cancel()
					default:
						err = m.LockContext(end)
					}
					waiting.Delete(key)
					if err != nil {
						var taken *ErrTaken
						if !errors.Is(err, context.DeadlineExceeded) && !errors.As(err, &taken) {
							report(fmt.Errorf("%s: %w", who, err))
						}
						if end.Err() != nil {
							report(errors.New("a Lock call still waited 4s after the end of the run"))
						}
						continue
					}
					start := time.Now()
					locks.Add(1)
					switch r := rng.IntN(50); {
					case auto:
						time.Sleep(expiry + time.Duration(rng.IntN(200))*time.Millisecond)
						record(who+" (auto-extend)", start, minTime(time.Now(), m.Until()))
						_, _ = m.Unlock()
					case r == 0:
						until := m.Until()
						record(who+" (overrun)", start, until)
						time.Sleep(time.Until(until) + 50*time.Millisecond)
						_, _ = m.Unlock()
					case r == 1:
						record(who+" (released with its value elsewhere)", start, minTime(time.Now(), m.Until()))
						_, _ = foreign.NewMutex(name, WithValue(m.Value())).Unlock()
					default:
						time.Sleep(time.Duration(rng.IntN(2)) * time.Millisecond)
						record(who, start, minTime(time.Now(), m.Until()))
						var tr nodeTrace
						if ok, err := m.unlock(context.Background(), &tr); !ok && !errors.Is(err, ErrLockAlreadyExpired) {
							report(fmt.Errorf("%s Unlock: %w", who, err))
						}
						if tr.handedOver {
							handed.Add(1)
						}
					}
					time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
				}
			}()
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		m := New(realPools(t, servers)...).NewMutex(name, WithRetryDelay(20*time.Millisecond), WithTries(1<<20), WithExpiry(time.Second))
		for time.Now().Before(stop) {
			ctx, cancel := context.WithDeadline(end, stop)
			err := m.LockContext(ctx)
			cancel()
			if err != nil {
				continue
			}
			start := time.Now()
			record("poller", start, minTime(time.Now(), m.Until()))
			_, _ = m.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	monitorDone := watchFreeWhileWaiting(servers, name, len(servers), stop, stuck, &waiting, report)
	wg.Wait()
	<-monitorDone
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d acquisitions by the Redsyncs' goroutines, %d by local hand-off", locks.Load(), handed.Load())
	if o := overlaps(windows); o != "" {
		t.Errorf("two holders at once: %s", o)
	}
	var gaps []string
	for i := 1; i < len(windows); i++ {
		if g := windows[i].start.Sub(windows[i-1].end); g > 300*time.Millisecond {
			gaps = append(gaps, fmt.Sprintf("%v before %s (after %s)", g.Round(time.Millisecond), windows[i].who, windows[i-1].who))
		}
	}
	t.Logf("gaps of more than 300 ms between holders: %d %q", len(gaps), gaps)
	settle(t, servers)
	for i, srv := range servers {
		if keys, _ := srv.Keys("*"); len(keys) != 0 {
			t.Errorf("node %d keeps %q after every call returned", i, keys)
		}
	}
	eventually(t, "the goroutines of the calls ended", func() bool {
		return runtime.NumGoroutine() <= goroutinesBefore+10
	})
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// TestSkipReview2TriesAndContextBehind (held): promise 4. A Lock that
// stands behind a listed waiter of its Redsync (which waits for a lock held
// by another process for the whole test) counts its skipped try: with
// WithTries(3) and a retry delay of 200 ms it gives up after two tries of
// its own, at about the time a Lock without notification gives up after
// three (400 ms plus the rounds), with a *ErrTaken; with a context that
// ends after 300 ms it returns then, with an error matching ErrFailed and
// context.DeadlineExceeded.
func TestSkipReview2TriesAndContextBehind(t *testing.T) {
	servers := redistest.StartN(t, 3)
	const name = "skip-tries"
	holder := New(realPools(t, servers)...).NewMutex(name)
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	defer holder.Unlock()
	rs := New(realPools(t, servers)...)
	m1 := rs.NewMutex(name, skipReview2Opts()...)
	startLock(t, m1)
	w1 := queuedWaiter(t, m1)
	queuedEverywhere(t, servers, w1)

	opts := []Option{WithTries(3), WithRetryDelay(200 * time.Millisecond), WithExpiry(time.Minute)}
	plain := New(realPools(t, servers)...).NewMutex(name, append(opts, WithReleaseNotification(false))...)
	start := time.Now()
	plainErr := plain.Lock()
	plainTook := time.Since(start)

	m2 := rs.NewMutex(name, opts...)
	lw := lockWait{m: m2}
	first := lw.begin(m2, 3)
	lw.close(context.Background())
	if first != 1 {
		t.Fatalf("begin() = %d, want 1: the Lock does not stand behind W1", first)
	}
	start = time.Now()
	err := m2.Lock()
	took := time.Since(start)
	var taken *ErrTaken
	if !errors.As(err, &taken) || !errors.As(plainErr, &taken) {
		t.Errorf("Lock() behind = %v, without notification = %v; want *ErrTaken for both", err, plainErr)
	}
	t.Logf("gave up after %v behind W1, %v without notification", took, plainTook)
	if d := took - plainTook; d > 150*time.Millisecond || d < -150*time.Millisecond {
		t.Errorf("gave up after %v behind W1, %v without notification: more than 150 ms apart", took, plainTook)
	}

	m3 := rs.NewMutex(name, skipReview2Opts()...)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	err = m3.LockContext(ctx)
	took = time.Since(start)
	if !errors.Is(err, ErrFailed) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("LockContext() behind W1 = %v, want ErrFailed and context.DeadlineExceeded", err)
	}
	if took > time.Second {
		t.Errorf("LockContext() with a 300 ms context returned after %v", took)
	}
}

// TestSkipReview2HandOffLimitLetsOthersIn (held): promise 2 across the
// 16-in-a-row limit of local hand-offs with the skip (only one or two of
// a Redsync's Lock calls are in the nodes' queues). Redsync A runs six
// goroutines that lock, hold 1 ms and unlock in a loop (the lock goes from
// one to the next by local hand-off); a Lock of Redsync B, retry delay
// 1 h, must still get the lock within a few seconds, each time, five
// times: the 16th hand-off releases, and the release's turn must reach B's
// entry rather than stay in A.
func TestSkipReview2HandOffLimitLetsOthersIn(t *testing.T) {
	servers := redistest.StartN(t, 3)
	const name = "skip-limit"
	rsA := New(realPools(t, servers)...)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var handed atomic.Int64
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				m := rsA.NewMutex(name, skipReview2Opts()...)
				ctx, cancel := context.WithCancel(context.Background())
				go func() {
					select {
					case <-stop:
					case <-ctx.Done():
					}
					cancel()
				}()
				err := m.LockContext(ctx)
				cancel()
				if err != nil {
					continue
				}
				time.Sleep(time.Millisecond)
				var tr nodeTrace
				_, _ = m.unlock(context.Background(), &tr)
				if tr.handedOver {
					handed.Add(1)
				}
			}
		}()
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()
	time.Sleep(time.Second)
	rsB := New(realPools(t, servers)...)
	for i := range 5 {
		mb := rsB.NewMutex(name, skipReview2Opts()...)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		start := time.Now()
		err := mb.LockContext(ctx)
		cancel()
		if err != nil {
			t.Fatalf("B's Lock %d did not get the lock within 5s while A's goroutines handed it among themselves (%d hand-offs so far): %v", i+1, handed.Load(), err)
		}
		t.Logf("B's Lock %d got the lock after %v (%d hand-offs in A so far)", i+1, time.Since(start), handed.Load())
		time.Sleep(time.Millisecond)
		mb.Unlock()
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSkipReview2ShortContextsStorm (held): promise 2 with many Lock calls
// of one Redsync that give up after 1-30 ms (each one may be the listed
// waiter, or the one the cover picked, when it gives up) among a few that
// wait for good, while a holder of another process takes the lock and
// releases it with notification every 50 ms. Every patient Lock (retry
// delay 1 h) must get the lock within 3 s of the lock being free on every
// node, and nothing may be left on the nodes.
func TestSkipReview2ShortContextsStorm(t *testing.T) {
	servers := redistest.StartN(t, 3)
	const (
		name     = "skip-short"
		duration = 6 * time.Second
	)
	rs := New(realPools(t, servers)...)
	stop := time.Now().Add(duration)
	end, cancelAll := context.WithDeadline(context.Background(), stop.Add(3*time.Second))
	defer cancelAll()
	var (
		wg       sync.WaitGroup
		patient  sync.Map // *int -> start
		errs     = make(chan error, 50)
		acquired atomic.Int64
	)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	for g := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := mathrand.New(mathrand.NewPCG(uint64(g), 99))
			for time.Now().Before(stop) {
				m := rs.NewMutex(name, skipReview2Opts()...)
				ctx, cancel := context.WithTimeout(end, time.Duration(1+rng.IntN(30))*time.Millisecond)
				key := new(int)
				if g < 3 {
					cancel()
					ctx, cancel = context.WithCancel(end)
					patient.Store(key, time.Now())
				}
				err := m.LockContext(ctx)
				patient.Delete(key)
				cancel()
				if err != nil {
					if g < 3 {
						report(fmt.Errorf("patient Lock: %w", err))
					}
					continue
				}
				acquired.Add(1)
				time.Sleep(time.Duration(rng.IntN(2)) * time.Millisecond)
				if ok, err := m.Unlock(); !ok {
					report(fmt.Errorf("Unlock: %w", err))
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		other := New(realPools(t, servers)...).NewMutex(name, WithRetryDelay(5*time.Millisecond), WithTries(1<<20), WithExpiry(time.Minute))
		for time.Now().Before(stop) {
			ctx, cancel := context.WithDeadline(end, stop)
			err := other.LockContext(ctx)
			cancel()
			if err == nil {
				time.Sleep(5 * time.Millisecond)
				other.Unlock()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	monitorDone := watchFreeWhileWaiting(servers, name, len(servers), stop, 3*time.Second, &patient, report)
	wg.Wait()
	<-monitorDone
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d acquisitions by the Redsync's goroutines", acquired.Load())
	settle(t, servers)
	for i, srv := range servers {
		if keys, _ := srv.Keys("*"); len(keys) != 0 {
			t.Errorf("node %d keeps %q after every call returned", i, keys)
		}
	}
}

// TestSkipReview2TurnedListedCancelledAfterTaking (held): promises 2, 3
// and 5. W1 (listed) and W2 (standing behind it) of one Redsync wait for a
// lock held by another process. The release gives W1 its turn; W1's try
// takes the free key on every node, but its replies are held 500 ms (a
// slow link), and W1's Lock is cancelled meanwhile: the try fails (ctx),
// W1 lapses and the cover makes W2 try while W1's value still holds the
// key; then W1's undo frees the key (and wakes W1 itself, put back first)
// and its withdrawal wakes the next. W2 must get the lock, and nothing be
// left.
func TestSkipReview2TurnedListedCancelledAfterTaking(t *testing.T) {
	for round := range 3 {
		t.Run(strconv.Itoa(round), func(t *testing.T) {
			servers := redistest.StartN(t, 3)
			const name = "skip-turned-cancel"
			holder := New(realPools(t, servers)...).NewMutex(name)
			if err := holder.Lock(); err != nil {
				t.Fatal(err)
			}
			var armed atomic.Bool
			pools := realPools(t, servers)
			for i, p := range pools {
				var sent atomic.Bool
				pools[i] = &delayPool{inner: p, armed: &armed, after: true, delay: func(s *redis.Script, args []any) time.Duration {
					if s == queueAcquireScript && len(args) > 0 && args[0] == name && !sent.Swap(true) {
						return 500 * time.Millisecond
					}
					return 0
				}}
			}
			rs := New(pools...)
			m1 := rs.NewMutex(name, skipReview2Opts()...)
			ctx1, cancel1 := context.WithCancel(context.Background())
			defer cancel1()
			d1 := make(chan error, 1)
			go func() { d1 <- m1.LockContext(ctx1) }()
			w1 := queuedWaiter(t, m1)
			queuedEverywhere(t, servers, w1)
			m2 := rs.NewMutex(name, WithRetryDelay(time.Second), WithTries(1000), WithExpiry(time.Minute))
			d2 := startLock(t, m2)
			otherWaiter(t, m2, w1)
			time.Sleep(200 * time.Millisecond)
			armed.Store(true)
			if ok, err := holder.Unlock(); !ok || err != nil {
				t.Fatalf("holder Unlock() = %v, %v", ok, err)
			}
			eventually(t, "W1's try took the key on every node", func() bool {
				free, _ := freeOn(servers, name)
				return free == 0
			})
			time.Sleep(time.Duration(100+100*round) * time.Millisecond)
			cancel1()
			err := <-d1
			t.Logf("W1 LockContext() = %v", err)
			if err == nil {
				// The try's replies came first: W1 holds; it hands over.
				m1.Unlock()
			}
			select {
			case err := <-d2:
				if err != nil {
					t.Fatalf("W2 Lock() = %v", err)
				}
				m2.Unlock()
			case <-time.After(5 * time.Second):
				free, _ := freeOn(servers, name)
				t.Fatalf("W2 did not get the lock within 5s after W1 (turned, its try holding the key) was cancelled: free on %d of %d nodes (W1: %v)", free, len(servers), err)
			}
			settle(t, servers)
			for i, srv := range servers {
				if n := srv.MustDo(t, "DBSIZE").Int; n != 0 {
					t.Errorf("node %d keeps %d keys", i, n)
				}
			}
		})
	}
}
