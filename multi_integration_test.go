package redsync_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
)

// TestIntegrationMultiMutex: a multi-key Mutex takes every name on every
// node, excludes overlapping sets and single names, and Extend, Valid and
// Unlock act on the whole set.
func TestIntegrationMultiMutex(t *testing.T) {
	forEach(t, []int{1, 3}, func(t *testing.T, d driver, n int) {
		ns := startNodes(t, d, n)
		names := []string{"multi-a", "multi-b", "multi-c"}
		m := ns.rs.NewMultiMutex(names, roomy)
		if m.Name() != "multi-a,multi-b,multi-c" {
			t.Errorf("Name() = %q, want the names joined by commas", m.Name())
		}
		if err := m.Lock(); err != nil {
			t.Fatalf("Lock() = %v, want nil", err)
		}
		for _, name := range names {
			if got := ns.holders(t, name, m.Value()); !slices.Equal(got, all(n)) {
				t.Errorf("nodes where %s holds the value = %v, want %v", name, got, all(n))
			}
			for i := range n {
				if ms := ns.pttl(t, i, name); ms <= 0 || ms > redsync.DefaultExpiry.Milliseconds() {
					t.Errorf("node %d: PTTL %s = %d ms, want (0, %d]", i, name, ms, redsync.DefaultExpiry.Milliseconds())
				}
			}
		}

		overlapping := ns.rs.NewMultiMutex([]string{"multi-c", "multi-d"}, redsync.WithTries(1), roomy)
		var taken *redsync.ErrTaken
		if err := overlapping.Lock(); !errors.As(err, &taken) || !errors.Is(err, redsync.ErrFailed) {
			t.Errorf("Lock() of an overlapping set = %v, want *ErrTaken matching ErrFailed", err)
		}
		if err := ns.rs.NewMutex("multi-b", redsync.WithTries(1), roomy).Lock(); !errors.As(err, &taken) {
			t.Errorf("Lock() of one of the names = %v, want *ErrTaken", err)
		}
		// The refused set wrote nothing: multi-d is free.
		for i, srv := range ns.servers {
			if rep := srv.MustDo(t, "EXISTS", "multi-d"); rep.Int != 0 {
				t.Errorf("node %d: multi-d exists after a refused Lock", i)
			}
		}
		disjoint := ns.rs.NewMultiMutex([]string{"multi-d", "multi-e"}, roomy)
		if err := disjoint.Lock(); err != nil {
			t.Errorf("Lock() of a disjoint set = %v, want nil", err)
		}

		until := m.Until()
		time.Sleep(5 * time.Millisecond)
		if ok, err := m.Extend(); !ok || err != nil || !m.Until().After(until) {
			t.Errorf("Extend() = %v, %v (Until %v, before %v), want true, nil and a later Until", ok, err, m.Until(), until)
		}
		if ok, err := m.Valid(); !ok || err != nil {
			t.Errorf("Valid() = %v, %v, want true, nil", ok, err)
		}
		for _, mm := range []*redsync.Mutex{m, disjoint} {
			if ok, err := mm.Unlock(); !ok || err != nil {
				t.Errorf("%s: Unlock() = %v, %v, want true, nil", mm.Name(), ok, err)
			}
		}
		if err := overlapping.Lock(); err != nil {
			t.Errorf("Lock() of the overlapping set after Unlock = %v, want nil", err)
		}
		if ok, err := overlapping.Unlock(); !ok || err != nil {
			t.Errorf("Unlock() = %v, %v, want true, nil", ok, err)
		}
	})
}

// TestIntegrationMultiMutexExclusion: goroutines locking overlapping sets
// (and single names) never hold a name at the same time.
func TestIntegrationMultiMutexExclusion(t *testing.T) {
	forEach(t, []int{3}, func(t *testing.T, d driver, n int) {
		ns := startNodes(t, d, n)
		sets := [][]string{{"x-0", "x-1"}, {"x-1", "x-2"}, {"x-2", "x-0"}, {"x-1"}, {"x-0", "x-1", "x-2"}}
		var (
			inUse [3]atomic.Int32
			held  atomic.Int32
			wg    sync.WaitGroup
		)
		for w, set := range sets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m := ns.rs.NewMultiMutex(set, redsync.WithRetryDelay(time.Millisecond), redsync.WithTries(1000), roomy)
				for range 10 {
					if err := m.Lock(); err != nil {
						t.Errorf("worker %d: Lock() = %v", w, err)
						return
					}
					for _, name := range set {
						i := int(name[2] - '0')
						if inUse[i].Add(1) != 1 {
							t.Errorf("worker %d: %s held by two holders at once", w, name)
						}
					}
					held.Add(1)
					time.Sleep(time.Millisecond)
					for _, name := range set {
						inUse[int(name[2]-'0')].Add(-1)
					}
					if ok, err := m.Unlock(); !ok || err != nil {
						t.Errorf("worker %d: Unlock() = %v, %v", w, ok, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if got := held.Load(); got != int32(10*len(sets)) {
			t.Errorf("acquisitions = %d, want %d", got, 10*len(sets))
		}
	})
}

// TestIntegrationMultiMutexLifetime: Context, WithAutoExtend and WithValue
// work on a set as on one name.
func TestIntegrationMultiMutexLifetime(t *testing.T) {
	ns := startNodes(t, drivers[0], 3)
	names := []string{"life-a", "life-b"}
	m := ns.rs.NewMultiMutex(names, redsync.WithExpiry(2*time.Second), redsync.WithAutoExtend(200*time.Millisecond), roomy)
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil", err)
	}
	ctx := m.Context()
	// Auto-extension keeps the keys past the expiry.
	time.Sleep(2500 * time.Millisecond)
	if ctx.Err() != nil {
		t.Fatalf("Context() ended while extended: %v", context.Cause(ctx))
	}
	for _, name := range names {
		if got := ns.holders(t, name, m.Value()); len(got) < 2 {
			t.Errorf("nodes where %s holds the value after 1.25 expiries = %v, want a quorum", name, got)
		}
	}
	// Another Mutex takes over the acquisition by its value and releases it.
	other := ns.rs.NewMultiMutex(names, redsync.WithValue(m.Value()), roomy)
	if ok, err := other.Unlock(); !ok || err != nil {
		t.Fatalf("Unlock() by WithValue = %v, %v, want true, nil", ok, err)
	}
	// The extender finds the keys gone: the lock is lost.
	select {
	case <-ctx.Done():
		if !errors.Is(context.Cause(ctx), redsync.ErrLockLost) {
			t.Errorf("Context() cause = %v, want ErrLockLost", context.Cause(ctx))
		}
	case <-time.After(2*time.Second + callSlack):
		t.Fatalf("Context() did not end after the keys were released by another Mutex")
	}
	if ok, err := m.Unlock(); ok || !errors.Is(err, redsync.ErrLockAlreadyExpired) {
		t.Errorf("Unlock() after the loss = %v, %v, want false, ErrLockAlreadyExpired", ok, err)
	}
}

// TestIntegrationMultiMutexFencing: a set's token is greater than the
// tokens of every earlier holder of any of its names, single or set, and
// later holders of any of its names get greater tokens still; the nodes'
// counters carry the order, not the Redsync's hints.
func TestIntegrationMultiMutexFencing(t *testing.T) {
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			servers := redistest.StartN(t, 3)
			newRedsync := func() *redsync.Redsync {
				pools := make([]redis.Pool, len(servers))
				for i, srv := range servers {
					pools[i] = d.newPool(t, srv.Addr())
				}
				return redsync.New(pools...)
			}
			one, other := newRedsync(), newRedsync()
			last := map[string]uint64{} // per name, the token of its last holder
			steps := []struct {
				rs    *redsync.Redsync
				names []string
			}{
				{one, []string{"f-a"}},
				{other, []string{"f-a", "f-b"}},
				{one, []string{"f-b"}},
				{other, []string{"f-c"}},
				{one, []string{"f-b", "f-c"}},
				{other, []string{"f-a", "f-b", "f-c"}},
				{one, []string{"f-c"}},
				{one, []string{"f-a", "f-c"}},
			}
			for i, st := range steps {
				m := st.rs.NewMultiMutex(st.names, redsync.WithFencing(), roomy)
				if err := m.Lock(); err != nil {
					t.Fatalf("step %d %v: Lock() = %v, want nil", i, st.names, err)
				}
				token := m.FencingToken()
				for _, name := range st.names {
					if token <= last[name] {
						t.Errorf("step %d %v: token %d, want more than %d (the token of the last holder of %s)", i, st.names, token, last[name], name)
					}
					last[name] = token
				}
				if ok, err := m.Unlock(); !ok || err != nil {
					t.Fatalf("step %d: Unlock() = %v, %v, want true, nil", i, ok, err)
				}
			}
			// Every name's counter is at the last token that covered it.
			for i, srv := range servers {
				if keys, err := srv.Keys("redsync:fence:*"); err != nil || len(keys) != 3 {
					t.Errorf("node %d: fencing counters = %q, %v, want one per name", i, keys, err)
				}
			}
		})
	}
}

// TestIntegrationMultiMutexRestartGuard: with the restart guard, a set is
// refused by nodes too young to vote, and granted once they are old
// enough.
func TestIntegrationMultiMutexRestartGuard(t *testing.T) {
	servers := redistest.StartN(t, 3)
	pools := make([]redis.Pool, len(servers))
	for i, srv := range servers {
		pools[i] = newGoredisPool(t, srv.Addr())
	}
	rs := redsync.New(pools...)
	const span = 1500 * time.Millisecond
	m := rs.NewMultiMutex([]string{"g-a", "g-b"}, redsync.WithExpiry(time.Second), redsync.WithTimeoutFactor(0.2), redsync.WithRestartGuard(span))
	started := time.Now()
	err := m.TryLock()
	if time.Since(started) < span-100*time.Millisecond { // the nodes are younger than the span
		if !errors.Is(err, redsync.ErrNodeRestarted) {
			t.Fatalf("TryLock() on nodes started just now = %v, want ErrNodeRestarted", err)
		}
	}
	deadline := time.Now().Add(span + callSlack)
	for err != nil {
		if time.Now().After(deadline) {
			t.Fatalf("TryLock() = %v, want nil once the nodes are older than %v", err, span)
		}
		time.Sleep(50 * time.Millisecond)
		err = m.TryLock()
	}
	// The nodes started one after the other: the last one may still be
	// too young to vote when the others grant the lock. A quorum holds
	// both names.
	for _, name := range []string{"g-a", "g-b"} {
		held := 0
		for _, srv := range servers {
			if rep := srv.MustDo(t, "GET", name); rep.Str == m.Value() {
				held++
			}
		}
		if held < 2 {
			t.Errorf("%d of 3 nodes hold %s with the lock's value, want a quorum", held, name)
		}
	}
	if ok, err := m.Unlock(); !ok || err != nil {
		t.Errorf("Unlock() = %v, %v, want true, nil", ok, err)
	}
}
