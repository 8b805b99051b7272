package redsync_test

// Integration tests of the Semaphore against real redis-server processes.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/redis"
)

// semName is the semaphore every integration test uses.
const semName = "integration-sem"

// slotKey is the key of slot i of the semaphore called name.
func slotKey(name string, i int) string {
	return name + ":permit:" + strconv.Itoa(i)
}

func TestSemaphoreIntegrationBasics(t *testing.T) {
	forEach(t, []int{3, 5}, func(t *testing.T, d driver, n int) {
		ns := startNodes(t, d, n)
		const permits = 2
		s := ns.rs.NewSemaphore(semName, permits, roomy)
		if s.Name() != semName || s.Permits() != permits {
			t.Errorf("Name(), Permits() = %q, %d; want %q, %d", s.Name(), s.Permits(), semName, permits)
		}
		ctx := context.Background()

		before := time.Now()
		p1, err := s.Acquire(ctx)
		if err != nil {
			t.Fatalf("Acquire() = %v, want nil", err)
		}
		if p1.Slot() < 0 || p1.Slot() >= permits || p1.Key() != slotKey(semName, p1.Slot()) {
			t.Errorf("Slot(), Key() = %d, %q; want a slot in [0, %d) and its key", p1.Slot(), p1.Key(), permits)
		}
		if got := ns.holders(t, p1.Key(), p1.Value()); !slices.Equal(got, all(n)) {
			t.Errorf("nodes holding the permit = %v, want %v", got, all(n))
		}
		if u := p1.Until(); !u.After(time.Now()) || u.After(before.Add(redsync.DefaultExpiry)) {
			t.Errorf("Until() = %v, want after now and at most the expiry after Acquire was called", u)
		}
		held := p1.Context()
		if held.Err() != nil {
			t.Errorf("Context().Err() while held = %v, want nil", held.Err())
		}

		p2, err := s.TryAcquire(ctx)
		if err != nil {
			t.Fatalf("second TryAcquire() = %v, want nil", err)
		}
		if p2.Slot() == p1.Slot() {
			t.Errorf("two permits held at once have slot %d both", p1.Slot())
		}

		_, err = s.TryAcquire(ctx)
		var taken *redsync.ErrTaken
		if !errors.Is(err, redsync.ErrFailed) || !errors.As(err, &taken) || !strings.Contains(err.Error(), "all 2 permits are held") {
			t.Errorf("TryAcquire() with every permit held = %v, want ErrFailed, a *ErrTaken and \"all 2 permits are held\"", err)
		}

		until := p1.Until()
		time.Sleep(5 * time.Millisecond)
		if ok, err := p1.Extend(ctx); !ok || err != nil || !p1.Until().After(until) {
			t.Errorf("Extend() = %v, %v, Until() %v; want true, nil, after %v", ok, err, p1.Until(), until)
		}

		if ok, err := p1.Release(ctx); !ok || err != nil {
			t.Errorf("Release() = %v, %v; want true, nil", ok, err)
		}
		if held.Err() == nil || context.Cause(held) != context.Canceled {
			t.Errorf("Context() after Release: Err() %v, cause %v; want context.Canceled", held.Err(), context.Cause(held))
		}
		if ok, err := p1.Release(ctx); ok || !errors.Is(err, redsync.ErrLockAlreadyExpired) {
			t.Errorf("second Release() = %v, %v; want false, ErrLockAlreadyExpired", ok, err)
		}
		if ok, err := p1.Extend(ctx); ok || !errors.Is(err, redsync.ErrExtendFailed) || !errors.Is(err, redsync.ErrLockAlreadyExpired) {
			t.Errorf("Extend() after Release = %v, %v; want false, ErrExtendFailed and ErrLockAlreadyExpired", ok, err)
		}

		// The freed slot is taken again, with a fresh value; the released
		// Permit does not touch the new acquisition.
		p3, err := s.TryAcquire(ctx)
		if err != nil {
			t.Fatalf("TryAcquire() after a Release = %v, want nil", err)
		}
		if p3.Slot() != p1.Slot() || p3.Value() == p1.Value() {
			t.Errorf("TryAcquire() after a Release got slot %d, value %q; want slot %d with a fresh value", p3.Slot(), p3.Value(), p1.Slot())
		}
		if ok, err := p1.Release(ctx); ok || !errors.Is(err, redsync.ErrLockAlreadyExpired) {
			t.Errorf("Release() of the released permit = %v, %v; want false, ErrLockAlreadyExpired", ok, err)
		}
		if got := ns.holders(t, p3.Key(), p3.Value()); !slices.Equal(got, all(n)) {
			t.Errorf("nodes holding the new permit after the old one's Release = %v, want %v", got, all(n))
		}
		for _, p := range []*redsync.Permit{p2, p3} {
			if ok, err := p.Release(ctx); !ok || err != nil {
				t.Errorf("Release() of slot %d = %v, %v; want true, nil", p.Slot(), ok, err)
			}
		}
	})
}

func TestSemaphoreIntegrationLost(t *testing.T) {
	ns := startNodes(t, drivers[0], 3)
	ctx := context.Background()
	s := ns.rs.NewSemaphore(semName, 1, roomy)
	p, err := s.Acquire(ctx)
	if err != nil {
		t.Fatalf("Acquire() = %v, want nil", err)
	}
	// The nodes lose the permit (as if it expired) on a majority.
	for _, srv := range ns.servers[:2] {
		srv.MustDo(t, "DEL", p.Key())
	}
	if ok, err := p.Extend(ctx); ok || !errors.Is(err, redsync.ErrExtendFailed) || !errors.Is(err, redsync.ErrLockAlreadyExpired) {
		t.Errorf("Extend() of a lost permit = %v, %v; want false, ErrExtendFailed and ErrLockAlreadyExpired", ok, err)
	}
	if ok, err := p.Release(ctx); ok || !errors.Is(err, redsync.ErrLockAlreadyExpired) {
		t.Errorf("Release() of a lost permit = %v, %v; want false, ErrLockAlreadyExpired", ok, err)
	}

	// With automatic extension, the permit's context ends with a cause
	// matching ErrLockLost once an extension finds it gone.
	s = ns.rs.NewSemaphore(semName, 1, redsync.WithExpiry(2*time.Second), redsync.WithTimeoutFactor(0.2), redsync.WithAutoExtend(100*time.Millisecond))
	p, err = s.Acquire(ctx)
	if err != nil {
		t.Fatalf("Acquire() with WithAutoExtend = %v, want nil", err)
	}
	held := p.Context()
	for _, srv := range ns.servers {
		srv.MustDo(t, "DEL", p.Key())
	}
	select {
	case <-held.Done():
		if !errors.Is(context.Cause(held), redsync.ErrLockLost) {
			t.Errorf("cause of the lost permit's context = %v, want ErrLockLost", context.Cause(held))
		}
	case <-time.After(2*time.Second + callSlack):
		t.Errorf("the context of a permit deleted on every node has not ended")
	}
	if ok, err := p.Release(ctx); ok || !errors.Is(err, redsync.ErrLockAlreadyExpired) {
		t.Errorf("Release() of a lost permit = %v, %v; want false, ErrLockAlreadyExpired", ok, err)
	}
}

// permitGauge counts the permits whose validity lasts, over one monotonic
// clock: a permit counts from its Acquire's return to the earlier of its
// Until and the call of its Release.
type permitGauge struct {
	mu   sync.Mutex
	live map[*redsync.Permit]time.Time // the permits, with their Until
	most int                           // the most permits counted at a grant
	over []string                      // grants that found more than the bound, or a slot held twice
}

// grant counts p, just acquired, and records a violation when more than
// bound permits, or two of one slot, are valid now.
func (g *permitGauge) grant(p *redsync.Permit, bound int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.live == nil {
		g.live = map[*redsync.Permit]time.Time{}
	}
	now := time.Now()
	g.live[p] = p.Until()
	var keys []string
	for q, until := range g.live {
		if !until.After(now) {
			delete(g.live, q)
			continue
		}
		keys = append(keys, q.Key())
	}
	slices.Sort(keys)
	g.most = max(g.most, len(keys))
	if len(keys) > bound || len(slices.Compact(slices.Clone(keys))) < len(keys) {
		g.over = append(g.over, fmt.Sprintf("%d permits valid at once: %v", len(keys), keys))
	}
}

// extended moves the end of p's validity after a successful Extend.
func (g *permitGauge) extended(p *redsync.Permit) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.live[p]; ok {
		g.live[p] = p.Until()
	}
}

// released stops counting p; call it before Release.
func (g *permitGauge) released(p *redsync.Permit) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.live, p)
}

func TestSemaphoreIntegrationContention(t *testing.T) {
	// Several clients (a Redsync each, with pools of its own), several
	// goroutines each, over one semaphore: never more than permits valid
	// at once, counted at every grant.
	const clients, workers, rounds, permits = 3, 3, 4, 2
	forEach(t, []int{3, 5}, func(t *testing.T, d driver, n int) {
		ns := startNodes(t, d, n)
		var gauge permitGauge
		var sections atomic.Int64
		var wg sync.WaitGroup
		for c := range clients {
			rs := ns.rs
			if c > 0 {
				pools := make([]redis.Pool, n)
				for i, srv := range ns.servers {
					pools[i] = d.newPool(t, srv.Addr())
				}
				rs = redsync.New(pools...)
			}
			// An expiry of 30 s gives the per-node timeout 1.5 s, which a
			// loaded machine keeps; 1 ms between sweeps spins hard.
			s := rs.NewSemaphore(semName, permits, redsync.WithExpiry(30*time.Second), redsync.WithRetryDelay(time.Millisecond), redsync.WithTries(100000))
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for r := range rounds {
						p, err := s.Acquire(context.Background())
						if err != nil {
							t.Errorf("client %d, worker %d, round %d: Acquire() = %v, want nil", c, w, r, err)
							return
						}
						gauge.grant(p, permits)
						time.Sleep(time.Millisecond)
						if r%2 == 0 {
							if ok, err := p.Extend(context.Background()); !ok || err != nil {
								t.Errorf("client %d, worker %d, round %d: Extend() = %v, %v; want true, nil", c, w, r, ok, err)
							} else {
								gauge.extended(p)
							}
						}
						sections.Add(1)
						gauge.released(p)
						if ok, err := p.Release(context.Background()); !ok || err != nil {
							t.Errorf("client %d, worker %d, round %d: Release() = %v, %v; want true, nil", c, w, r, ok, err)
						}
					}
				}()
			}
		}
		wg.Wait()
		if len(gauge.over) > 0 {
			t.Errorf("the bound of %d permits was broken %d times; first: %s", permits, len(gauge.over), gauge.over[0])
		}
		if got := sections.Load(); got != clients*workers*rounds {
			t.Errorf("%d permits were held, want %d", got, clients*workers*rounds)
		}
		t.Logf("at most %d permits valid at a grant", gauge.most)
	})
}

func TestSemaphoreIntegrationNodesDown(t *testing.T) {
	tests := []struct {
		n      int
		killed []int
	}{
		{3, []int{1}},
		{5, []int{0, 3}},
		{3, []int{0, 2}},
		{5, []int{1, 2, 4}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%dof%d", len(tt.killed), tt.n), func(t *testing.T) {
			t.Parallel()
			// redigo: a killed node refuses the connection at once, where
			// go-redis retries its dials for the whole per-node timeout,
			// which a sweep would pay once per slot.
			ns := startNodes(t, drivers[1], tt.n)
			for _, i := range tt.killed {
				if err := ns.servers[i].Kill(); err != nil {
					t.Fatalf("Kill() node %d: %v", i, err)
				}
			}
			const permits = 3
			var log acquireLog
			// A per-node timeout of 1 s, which every live node answers
			// within, and an expiry that outlasts the test.
			s := ns.rs.NewSemaphore(semName, permits, redsync.WithExpiry(30*time.Second), redsync.WithTimeoutFactor(1.0/30), redsync.WithObserver(&log))
			ctx := context.Background()
			quorum := len(tt.killed) < tt.n/2+1
			if !quorum {
				_, err := s.TryAcquire(ctx)
				var taken *redsync.ErrTaken
				if !errors.Is(err, redsync.ErrFailed) || errors.As(err, &taken) {
					t.Errorf("TryAcquire() with %v of %d nodes down = %v, want ErrFailed and no *ErrTaken", tt.killed, tt.n, err)
				}
				if got := redisErrorNodes(err); !slices.Equal(got, tt.killed) {
					t.Errorf("the *RedisErrors of TryAcquire() name nodes %v, want the killed %v", got, tt.killed)
				}
				// The first slot's failure shows that no slot can get a
				// quorum: the sweep stops there.
				log.mu.Lock()
				tried := len(log.events)
				log.mu.Unlock()
				if tried != 1 {
					t.Errorf("TryAcquire() with a majority down tried %d slots, want 1", tried)
				}
				return
			}
			var held []*redsync.Permit
			for range permits {
				p, err := s.TryAcquire(ctx)
				if err != nil {
					t.Fatalf("TryAcquire() with %v of %d nodes down = %v, want nil", tt.killed, tt.n, err)
				}
				want := slices.DeleteFunc(all(tt.n), func(i int) bool { return slices.Contains(tt.killed, i) })
				if got := ns.holders(t, p.Key(), p.Value()); !slices.Equal(got, want) {
					t.Errorf("nodes holding the permit = %v, want %v", got, want)
				}
				held = append(held, p)
			}
			if _, err := s.TryAcquire(ctx); !errors.Is(err, redsync.ErrFailed) || !strings.Contains(err.Error(), "all 3 permits are held") {
				t.Errorf("TryAcquire() with every permit held = %v, want ErrFailed and \"all 3 permits are held\"", err)
			}
			for _, p := range held {
				if ok, err := p.Extend(ctx); !ok {
					t.Errorf("Extend() = %v, %v; want true", ok, err)
				}
				if ok, err := p.Release(ctx); !ok {
					t.Errorf("Release() = %v, %v; want true", ok, err)
				}
			}
		})
	}
}

func TestSemaphoreIntegrationExpiry(t *testing.T) {
	// Holders that die without releasing: their permits come free when
	// their keys expire.
	ns := startNodes(t, drivers[0], 3)
	const permits, expiry = 2, time.Second
	opts := []redsync.Option{redsync.WithExpiry(expiry), redsync.WithTimeoutFactor(0.2), redsync.WithRetryDelay(20 * time.Millisecond), redsync.WithTries(1000)}
	dead := ns.rs.NewSemaphore(semName, permits, opts...)
	ctx := context.Background()
	var untils []time.Time
	for range permits {
		p, err := dead.Acquire(ctx)
		if err != nil {
			t.Fatalf("Acquire() = %v, want nil", err)
		}
		untils = append(untils, p.Until())
	}

	// Another client finds them held while they are valid.
	pools := make([]redis.Pool, len(ns.servers))
	for i, srv := range ns.servers {
		pools[i] = drivers[0].newPool(t, srv.Addr())
	}
	s := redsync.New(pools...).NewSemaphore(semName, permits, opts...)
	_, err := s.TryAcquire(ctx)
	if stillValid := time.Now().Before(slices.MinFunc(untils, time.Time.Compare)); stillValid && !errors.Is(err, redsync.ErrFailed) {
		t.Errorf("TryAcquire() while both permits are valid = %v, want ErrFailed", err)
	}
	var got []*redsync.Permit
	for range permits {
		p, err := s.Acquire(ctx)
		if err != nil {
			t.Fatalf("Acquire() after the holders died = %v, want nil", err)
		}
		got = append(got, p)
	}
	for _, p := range got {
		if ok, err := p.Release(ctx); !ok || err != nil {
			t.Errorf("Release() = %v, %v; want true, nil", ok, err)
		}
	}
}

func TestSemaphoreIntegrationContext(t *testing.T) {
	ns := startNodes(t, drivers[0], 3)
	s := ns.rs.NewSemaphore(semName, 1, roomy)
	holder, err := s.Acquire(context.Background())
	if err != nil {
		t.Fatalf("Acquire() = %v, want nil", err)
	}

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Acquire(cancelled); !errors.Is(err, redsync.ErrFailed) || !errors.Is(err, context.Canceled) {
		t.Errorf("Acquire(cancelled) = %v, want ErrFailed and context.Canceled", err)
	}

	ctx, stop := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer stop()
	_, err = s.Acquire(ctx)
	var taken *redsync.ErrTaken
	if !errors.Is(err, redsync.ErrFailed) || !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &taken) {
		t.Errorf("Acquire() while the permit is held, until a deadline = %v, want ErrFailed, context.DeadlineExceeded and a *ErrTaken", err)
	}
	if got := ns.holders(t, holder.Key(), holder.Value()); !slices.Equal(got, all(3)) {
		t.Errorf("nodes holding the holder's permit = %v, want %v", got, all(3))
	}
	if ok, err := holder.Release(context.Background()); !ok || err != nil {
		t.Errorf("Release() = %v, %v; want true, nil", ok, err)
	}
	// The cleanup finds no key: the tries cut short left nothing.
}

func TestSemaphoreIntegrationDo(t *testing.T) {
	ns := startNodes(t, drivers[0], 3)
	s := ns.rs.NewSemaphore(semName, 2, redsync.WithExpiry(3*time.Second), redsync.WithTimeoutFactor(0.2))
	ctx := context.Background()
	var inner error
	err := s.Do(ctx, func(ctx context.Context) error {
		p := redsync.PermitFromContext(ctx)
		if p == nil {
			return errors.New("no Permit in the context")
		}
		if m := redsync.MutexFromContext(ctx); m != nil {
			return fmt.Errorf("MutexFromContext() = %v, want nil: the slot's Mutex is the Permit's", m.Name())
		}
		// Read around Deadline: an automatic extension may come between.
		before := p.Until()
		d, ok := ctx.Deadline()
		if after := p.Until(); !ok || !d.Equal(before) && !d.Equal(after) {
			return fmt.Errorf("Deadline() = %v, %v; want the permit's Until %v", d, ok, after)
		}
		// Both permits held: the other is free for one more.
		inner = s.Do(ctx, func(ctx context.Context) error {
			if q := redsync.PermitFromContext(ctx); q == nil || q.Slot() == p.Slot() {
				return errors.New("the inner Do holds no permit of its own")
			}
			_, err := s.TryAcquire(ctx)
			if !errors.Is(err, redsync.ErrFailed) {
				return fmt.Errorf("TryAcquire() with both permits held by Do = %v, want ErrFailed", err)
			}
			return nil
		})
		return nil
	})
	if err != nil || inner != nil {
		t.Errorf("Do() = %v, inner Do() = %v; want nil, nil", err, inner)
	}
	if redsync.PermitFromContext(ctx) != nil {
		t.Errorf("PermitFromContext(ctx without a permit) != nil")
	}

	want := errors.New("job failed")
	if err := s.Do(ctx, func(context.Context) error { return want }); err != want {
		t.Errorf("Do() of a failing function = %v, want its error", err)
	}

	// Full: Do does not call the function.
	var held []*redsync.Permit
	for range 2 {
		p, err := s.Acquire(ctx)
		if err != nil {
			t.Fatalf("Acquire() = %v, want nil", err)
		}
		held = append(held, p)
	}
	full := ns.rs.NewSemaphore(semName, 2, redsync.WithTries(2), redsync.WithRetryDelay(time.Millisecond))
	called := false
	if err := full.Do(ctx, func(context.Context) error { called = true; return nil }); !errors.Is(err, redsync.ErrFailed) || called {
		t.Errorf("Do() with every permit held = %v, function called %t; want ErrFailed, false", err, called)
	}
	for _, p := range held {
		if ok, err := p.Release(ctx); !ok || err != nil {
			t.Errorf("Release() = %v, %v; want true, nil", ok, err)
		}
	}
}

func TestSemaphoreIntegrationBadConfig(t *testing.T) {
	ns := startNodes(t, drivers[0], 3)
	tests := []struct {
		name    string
		sem     string
		permits int
		opts    []redsync.Option
		want    string
	}{
		{"no permits", semName, 0, nil, "it must have at least 1"},
		{"negative permits", semName, -2, nil, "it must have at least 1"},
		{"empty name", "", 2, nil, "empty semaphore name"},
		{"WithValue", semName, 2, []redsync.Option{redsync.WithValue("v")}, "WithValue"},
		{"WithFencing", semName, 2, []redsync.Option{redsync.WithFencing()}, "WithFencing"},
		{"bad option", semName, 2, []redsync.Option{redsync.WithTries(0)}, "tries is 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ns.rs.NewSemaphore(tt.sem, tt.permits, tt.opts...)
			ctx := context.Background()
			if _, err := s.Acquire(ctx); !errors.Is(err, redsync.ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Acquire() = %v, want ErrInvalidConfig saying %q", err, tt.want)
			}
			if _, err := s.TryAcquire(ctx); !errors.Is(err, redsync.ErrInvalidConfig) {
				t.Errorf("TryAcquire() = %v, want ErrInvalidConfig", err)
			}
			called := false
			if err := s.Do(ctx, func(context.Context) error { called = true; return nil }); !errors.Is(err, redsync.ErrInvalidConfig) || called {
				t.Errorf("Do() = %v, function called %t; want ErrInvalidConfig, false", err, called)
			}
			ns.checkNoKeys(t)
		})
	}
}
