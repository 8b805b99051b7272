package redsync_test

// Integration tests of RWMutex: its scripts on real redis-server processes.

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redlock/redsync"
)

// rwName is the name of the RWMutex of the integration tests, and
// rwReaders and rwWaiting are the keys it derives.
const rwName = "integration-rw"

var (
	rwReaders = redsync.RWKeyForTest(rwName, ":readers")
	rwWaiting = redsync.RWKeyForTest(rwName, ":writer-waiting")
)

// count returns, per running node, the integer reply of the command args.
func (ns *nodes) count(t *testing.T, args ...string) []int64 {
	t.Helper()
	var got []int64
	for _, srv := range ns.servers {
		if srv.Running() {
			got = append(got, srv.MustDo(t, args...).Int)
		}
	}
	return got
}

// each reports whether every value of got is want.
func each(got []int64, want int64) bool {
	for _, v := range got {
		if v != want {
			return false
		}
	}
	return true
}

// await waits until cond holds, polling; it fails the test after a bound
// that no loaded machine reaches (it measures nothing).
func await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s after 30s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rlockAll takes n read shares of rw at once, each from a goroutine.
func rlockAll(t *testing.T, rw *redsync.RWMutex, n int) {
	t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = rw.RLock()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("RLock() #%d = %v; want nil", i, err)
		}
	}
}

// runlockAll gives back n read shares of rw at once.
func runlockAll(t *testing.T, rw *redsync.RWMutex, n int) {
	t.Helper()
	oks := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			oks[i], errs[i] = rw.RUnlock()
		}()
	}
	wg.Wait()
	for i := range n {
		if !oks[i] || errs[i] != nil {
			t.Errorf("RUnlock() #%d = %v, %v; want true, nil", i, oks[i], errs[i])
		}
	}
}

func TestRWMutexIntegrationReadersAndWriters(t *testing.T) {
	forEach(t, []int{3}, func(t *testing.T, d driver, n int) {
		ns := startNodes(t, d, n)
		a := ns.rs.NewRWMutex(rwName, roomy)
		b := ns.rs.NewRWMutex(rwName, roomy)
		rlockAll(t, a, 8)
		rlockAll(t, b, 2)
		if got := ns.count(t, "ZCARD", rwReaders); !each(got, 10) {
			t.Errorf("ZCARD of the readers' key per node = %v; want 10 on each", got)
		}
		for i := range n {
			if ms := ns.pttl(t, i, rwReaders); ms <= 0 || ms > redsync.DefaultExpiry.Milliseconds() {
				t.Errorf("node %d: PTTL of the readers' key = %d ms; want (0, %d]", i, ms, redsync.DefaultExpiry.Milliseconds())
			}
		}
		var taken *redsync.ErrTaken
		if err := b.TryLock(); !errors.As(err, &taken) {
			t.Errorf("TryLock() with readers in = %v; want *ErrTaken", err)
		}
		if got := ns.count(t, "EXISTS", rwWaiting); !each(got, 0) {
			t.Errorf("waiting-writer marks per node after TryLock gave up = %v; want none", got)
		}
		if ok, err := a.RExtend(); !ok || err != nil {
			t.Errorf("RExtend() = %v, %v; want true, nil", ok, err)
		}
		if _, err := a.Unlock(); !errors.Is(err, redsync.ErrNotLocked) {
			t.Errorf("Unlock() with only read shares = %v; want ErrNotLocked", err)
		}
		runlockAll(t, a, 8)
		runlockAll(t, b, 2)
		if _, err := a.RUnlock(); !errors.Is(err, redsync.ErrNotLocked) {
			t.Errorf("RUnlock() of no share = %v; want ErrNotLocked", err)
		}
		if got := ns.count(t, "EXISTS", rwReaders); !each(got, 0) {
			t.Errorf("readers' keys per node after the last RUnlock = %v; want none", got)
		}

		if err := a.Lock(); err != nil {
			t.Fatalf("Lock() = %v; want nil", err)
		}
		if got := ns.holders(t, rwName, a.Value()); len(got) != n {
			t.Errorf("nodes holding the writer's value = %v; want all %d", got, n)
		}
		if err := b.TryRLock(); !errors.As(err, &taken) {
			t.Errorf("TryRLock() under a writer = %v; want *ErrTaken", err)
		}
		if err := b.TryLock(); !errors.As(err, &taken) {
			t.Errorf("TryLock() under a writer = %v; want *ErrTaken", err)
		}
		if ok, err := a.Extend(); !ok || err != nil {
			t.Errorf("Extend() = %v, %v; want true, nil", ok, err)
		}
		if ok, err := a.Unlock(); !ok || err != nil {
			t.Errorf("Unlock() = %v, %v; want true, nil", ok, err)
		}
		// The writer's waiting mark of b's TryLock under a writer was
		// taken back too: a reader gets in at once.
		if err := b.TryRLock(); err != nil {
			t.Errorf("TryRLock() after the writer = %v; want nil", err)
		}
		if ok, err := b.RUnlock(); !ok || err != nil {
			t.Errorf("RUnlock() = %v, %v; want true, nil", ok, err)
		}
	})
}

// TestRWMutexIntegrationWaitingWriter checks that a waiting writer keeps
// new readers out, gets the lock when the readers leave, and takes its
// mark back when it gives up.
func TestRWMutexIntegrationWaitingWriter(t *testing.T) {
	t.Parallel()
	ns := startNodes(t, drivers[0], 3)
	opts := []redsync.Option{roomy, redsync.WithRetryDelay(5 * time.Millisecond), redsync.WithTries(1 << 20)}
	reader := ns.rs.NewRWMutex(rwName, opts...)
	writer := ns.rs.NewRWMutex(rwName, opts...)
	late := ns.rs.NewRWMutex(rwName, opts...)
	marked := func() bool { return each(ns.count(t, "EXISTS", rwWaiting), 1) }
	unmarked := func() bool { return each(ns.count(t, "EXISTS", rwWaiting), 0) }

	if err := reader.RLock(); err != nil {
		t.Fatalf("RLock() = %v; want nil", err)
	}
	locked := make(chan error, 1)
	go func() { locked <- writer.Lock() }()
	await(t, "the writer's mark on every node", marked)
	var taken *redsync.ErrTaken
	if err := late.TryRLock(); !errors.As(err, &taken) {
		t.Errorf("TryRLock() with a writer waiting = %v; want *ErrTaken", err)
	}
	if ok, err := reader.RExtend(); !ok || err != nil {
		t.Errorf("RExtend() of a share held before the writer came = %v, %v; want true, nil", ok, err)
	}
	if ok, err := reader.RUnlock(); !ok || err != nil {
		t.Errorf("RUnlock() = %v, %v; want true, nil", ok, err)
	}
	if err := <-locked; err != nil {
		t.Fatalf("Lock() once the reader left = %v; want nil", err)
	}
	if err := late.TryRLock(); !errors.As(err, &taken) {
		t.Errorf("TryRLock() under the writer = %v; want *ErrTaken", err)
	}
	if ok, err := writer.Unlock(); !ok || err != nil {
		t.Errorf("Unlock() = %v, %v; want true, nil", ok, err)
	}
	// The try that took the lock deleted the mark where it did; a try
	// that ran while the reader left may have left one on a node where
	// the share was still in: Unlock deletes it.
	if !unmarked() {
		t.Errorf("the writer's mark is left after its Unlock: %v", ns.count(t, "EXISTS", rwWaiting))
	}

	// A writer that gives up takes its mark back.
	if err := reader.RLock(); err != nil {
		t.Fatalf("RLock() = %v; want nil", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { locked <- writer.LockContext(ctx) }()
	await(t, "the writer's mark on every node", marked)
	cancel()
	if err := <-locked; !errors.Is(err, redsync.ErrFailed) || !errors.Is(err, context.Canceled) {
		t.Errorf("LockContext() cancelled = %v; want ErrFailed and context.Canceled", err)
	}
	if !unmarked() {
		t.Errorf("the mark of a writer that gave up is left: %v", ns.count(t, "EXISTS", rwWaiting))
	}
	if err := late.TryRLock(); err != nil {
		t.Errorf("TryRLock() after the writer gave up = %v; want nil", err)
	}
	late.RUnlock()
	reader.RUnlock()
}

// TestRWMutexIntegrationShareExpires checks that the share of a reader that
// never gives it back expires by itself: a writer gets the lock after it,
// and the readers' key disappears.
func TestRWMutexIntegrationShareExpires(t *testing.T) {
	t.Parallel()
	ns := startNodes(t, drivers[0], 3)
	opts := []redsync.Option{redsync.WithExpiry(500 * time.Millisecond), redsync.WithTimeoutFactor(0.4), redsync.WithRetryDelay(20 * time.Millisecond), redsync.WithTries(1 << 20)}
	gone := ns.rs.NewRWMutex(rwName, opts...)
	if err := gone.RLock(); err != nil {
		t.Fatalf("RLock() = %v; want nil", err)
	}
	writer := ns.rs.NewRWMutex(rwName, opts...)
	if err := writer.Lock(); err != nil {
		t.Fatalf("Lock() after a share that nobody gives back = %v; want nil once it expired", err)
	}
	if ok, err := writer.Unlock(); !ok || err != nil {
		t.Errorf("Unlock() = %v, %v; want true, nil", ok, err)
	}
	if err := gone.RLock(); err != nil {
		t.Fatalf("RLock() = %v; want nil", err)
	}
	// Nobody comes after this share: R disappears by its own expiry.
	await(t, "the readers' key to expire", func() bool { return each(ns.count(t, "EXISTS", rwReaders), 0) })
	if ok, err := gone.RUnlock(); ok || !errors.Is(err, redsync.ErrLockAlreadyExpired) {
		t.Errorf("RUnlock() of an expired share = %v, %v; want false, ErrLockAlreadyExpired", ok, err)
	}
}

// TestRWMutexIntegrationDeadSharesGo checks that the shares of readers
// that died without RUnlock do not pile up in the readers' key while
// other readers keep it alive: an RLock that finds the key removes them.
func TestRWMutexIntegrationDeadSharesGo(t *testing.T) {
	t.Parallel()
	ns := startNodes(t, drivers[0], 3)
	live := ns.rs.NewRWMutex(rwName)
	if err := live.RLock(); err != nil {
		t.Fatalf("RLock() = %v; want nil", err)
	}
	// Shares of dead readers: their ends (node time, ms) are long past.
	for _, srv := range ns.servers {
		srv.MustDo(t, "ZADD", rwReaders, "1", "dead-1", "2", "dead-2")
	}
	next := ns.rs.NewRWMutex(rwName)
	if err := next.RLock(); err != nil {
		t.Fatalf("RLock() = %v; want nil", err)
	}
	if got := ns.count(t, "ZCARD", rwReaders); !each(got, 2) {
		t.Errorf("shares per node after an RLock = %v; want 2 (the live ones, the dead ones gone)", got)
	}
	for _, rw := range []*redsync.RWMutex{live, next} {
		if ok, err := rw.RUnlock(); !ok || err != nil {
			t.Errorf("RUnlock() = %v, %v; want true, nil", ok, err)
		}
	}
	if got := ns.count(t, "EXISTS", rwReaders); !each(got, 0) {
		t.Errorf("readers' key after the last RUnlock on the nodes: %v; want none", got)
	}
}

// TestRWMutexIntegrationMinorityDown checks that readers and writers work
// with a minority of the nodes down.
func TestRWMutexIntegrationMinorityDown(t *testing.T) {
	t.Parallel()
	// Over redigo, whose dial to a killed node fails at once (go-redis
	// retries it until the per-node timeout).
	ns := startNodes(t, drivers[1], 5)
	ns.servers[1].Kill()
	ns.servers[3].Kill()
	a := ns.rs.NewRWMutex(rwName, roomy)
	b := ns.rs.NewRWMutex(rwName, roomy)
	if err := a.RLock(); err != nil {
		t.Fatalf("RLock() with 2 of 5 nodes down = %v; want nil", err)
	}
	if err := b.RLock(); err != nil {
		t.Fatalf("RLock() with 2 of 5 nodes down = %v; want nil", err)
	}
	if err := b.TryLock(); !errors.Is(err, redsync.ErrFailed) {
		t.Errorf("TryLock() with readers in = %v; want ErrFailed", err)
	}
	for _, rw := range []*redsync.RWMutex{a, b} {
		if ok, err := rw.RUnlock(); !ok {
			t.Errorf("RUnlock() with 2 of 5 nodes down = %v, %v; want true", ok, err)
		}
	}
	if err := a.Lock(); err != nil {
		t.Fatalf("Lock() with 2 of 5 nodes down = %v; want nil", err)
	}
	if err := b.TryRLock(); !errors.Is(err, redsync.ErrFailed) {
		t.Errorf("TryRLock() under a writer = %v; want ErrFailed", err)
	}
	if ok, err := a.Unlock(); !ok {
		t.Errorf("Unlock() with 2 of 5 nodes down = %v, %v; want true", ok, err)
	}
}

// TestRWMutexIntegrationWrongType checks the scripts' answer when a key of
// the lock holds a value of another type.
func TestRWMutexIntegrationWrongType(t *testing.T) {
	t.Parallel()
	ns := startNodes(t, drivers[0], 3)
	rw := ns.rs.NewRWMutex(rwName, roomy, redsync.WithTries(1))
	for _, key := range []string{rwReaders, rwName} {
		for _, srv := range ns.servers {
			srv.MustDo(t, "SADD", key, "x")
		}
		if err := rw.TryRLock(); !errors.Is(err, redsync.ErrWrongType) {
			t.Errorf("TryRLock() with a set in %s = %v; want ErrWrongType", key, err)
		}
		if err := rw.TryLock(); !errors.Is(err, redsync.ErrWrongType) {
			t.Errorf("TryLock() with a set in %s = %v; want ErrWrongType", key, err)
		}
		for _, srv := range ns.servers {
			srv.MustDo(t, "DEL", key)
		}
	}
}

// TestRWMutexIntegrationDo checks Do and RDo: the function runs under the
// lock, and the lock is released when it returns or panics.
func TestRWMutexIntegrationDo(t *testing.T) {
	t.Parallel()
	ns := startNodes(t, drivers[0], 3)
	rw := ns.rs.NewRWMutex(rwName, roomy)
	other := ns.rs.NewRWMutex(rwName, roomy)
	ctx := context.Background()
	var taken *redsync.ErrTaken

	err := rw.RDo(ctx, func(ctx context.Context) error {
		if m := redsync.MutexFromContext(ctx); m != nil {
			t.Errorf("MutexFromContext() in RDo = %v; want nil", m)
		}
		if _, ok := ctx.Deadline(); !ok {
			t.Error("the context of RDo's function has no deadline; want the validity's end")
		}
		if err := other.TryLock(); !errors.As(err, &taken) {
			t.Errorf("TryLock() during RDo = %v; want *ErrTaken", err)
		}
		if err := other.TryRLock(); err != nil {
			t.Errorf("TryRLock() during RDo = %v; want nil", err)
		}
		other.RUnlock()
		return nil
	})
	if err != nil {
		t.Errorf("RDo() = %v; want nil", err)
	}
	if _, err := rw.RUnlock(); !errors.Is(err, redsync.ErrNotLocked) {
		t.Errorf("RUnlock() after RDo = %v; want ErrNotLocked: RDo's share is its own", err)
	}

	errWork := errors.New("work failed")
	err = rw.Do(ctx, func(ctx context.Context) error {
		if err := other.TryRLock(); !errors.As(err, &taken) {
			t.Errorf("TryRLock() during Do = %v; want *ErrTaken", err)
		}
		if err := other.TryLock(); !errors.As(err, &taken) {
			t.Errorf("TryLock() during Do = %v; want *ErrTaken", err)
		}
		return errWork
	})
	if !errors.Is(err, errWork) {
		t.Errorf("Do() = %v; want the function's error", err)
	}

	func() {
		defer func() {
			if recover() == nil {
				t.Error("RDo did not pass the function's panic on")
			}
		}()
		rw.RDo(ctx, func(context.Context) error { panic("boom") })
	}()

	// Do that cannot get the lock: fn does not run, the mark is taken back.
	if err := other.Lock(); err != nil {
		t.Fatalf("Lock() = %v; want nil", err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	ran := false
	if err := rw.Do(short, func(context.Context) error { ran = true; return nil }); !errors.Is(err, redsync.ErrFailed) || ran {
		t.Errorf("Do() with the lock held elsewhere = %v, ran %v; want ErrFailed, not run", err, ran)
	}
	if ok, err := other.Unlock(); !ok || err != nil {
		t.Errorf("Unlock() = %v, %v; want true, nil", ok, err)
	}
}

// TestRWMutexIntegrationRestartGuard checks that WithRestartGuard's check
// runs in the acquire scripts of readers and writers: nodes started just
// now do not vote.
func TestRWMutexIntegrationRestartGuard(t *testing.T) {
	t.Parallel()
	ns := startNodes(t, drivers[0], 3)
	rw := ns.rs.NewRWMutex(rwName, roomy, redsync.WithTries(1), redsync.WithRestartGuard(time.Hour))
	if err := rw.TryRLock(); !errors.Is(err, redsync.ErrNodeRestarted) {
		t.Errorf("TryRLock() on young nodes = %v; want ErrNodeRestarted", err)
	}
	if err := rw.TryLock(); !errors.Is(err, redsync.ErrNodeRestarted) {
		t.Errorf("TryLock() on young nodes = %v; want ErrNodeRestarted", err)
	}
	for i, srv := range ns.servers {
		markers, err := srv.Keys("redsync:restart-guard:*")
		if err != nil {
			t.Fatalf("node %d: KEYS: %v", i, err)
		}
		for _, m := range markers {
			ns.keep(i, m)
		}
	}
}

// TestRWMutexIntegrationExclusion runs readers and writers of several
// RWMutexes at once, each in a goroutine, and checks on the resource's
// side that a writer is alone: a writer enters only an empty section, a
// reader only one without a writer.
func TestRWMutexIntegrationExclusion(t *testing.T) {
	t.Parallel()
	ns := startNodes(t, drivers[0], 3)
	const workers, rounds = 4, 12
	var (
		section  atomic.Int64 // readers inside, or -1 for a writer
		breaches atomic.Int64
		writes   atomic.Int64
		wg       sync.WaitGroup
	)
	errs := make(chan error, workers*rounds)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rw := ns.rs.NewRWMutex(rwName, roomy, redsync.WithRetryDelay(2*time.Millisecond), redsync.WithTries(1<<20))
			for i := range rounds {
				if (w+i)%3 == 0 {
					if err := rw.Lock(); err != nil {
						errs <- err
						return
					}
					if !section.CompareAndSwap(0, -1) {
						breaches.Add(1)
					}
					writes.Add(1)
					section.Store(0)
					if ok, err := rw.Unlock(); !ok {
						errs <- err
					}
					continue
				}
				if err := rw.RLock(); err != nil {
					errs <- err
					return
				}
				if section.Add(1) <= 0 {
					breaches.Add(1)
				}
				section.Add(-1)
				if ok, err := rw.RUnlock(); !ok {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a worker failed: %v", err)
	}
	if n := breaches.Load(); n != 0 {
		t.Errorf("%d entries found a writer with someone else in the section; want none", n)
	}
	if writes.Load() == 0 {
		t.Error("no writer entered the section")
	}
}
