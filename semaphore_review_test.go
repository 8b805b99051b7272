package redsync

// Tests from a review that tried to break the promises of the Semaphore
// (docs/PRIMITIVES.md and the doc comments of semaphore.go): at most
// Permits valid holders at any instant, granting with a minority of the
// nodes down, clear errors for misuse, nothing left on the nodes. Those
// that pass are checks of promises that held; a test named ...Bug...
// shows a promise that did not.

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redlock/redsync/redis"
)

// countingPool counts the scripts a ttlNode receives, and can hold
// them back (see latePermitPool).
type countingPool struct {
	n    *ttlNode
	sent *atomic.Int64
}

func (p countingPool) Get(ctx context.Context) (redis.Conn, error) {
	c, err := p.n.Get(ctx)
	if err != nil {
		return nil, err
	}
	return countingConn{Conn: c, sent: p.sent}, nil
}

type countingConn struct {
	redis.Conn
	sent *atomic.Int64
}

func (c countingConn) Eval(script *redis.Script, keysAndArgs ...any) (any, error) {
	c.sent.Add(1)
	return c.Conn.Eval(script, keysAndArgs...)
}

// semReview is a set of ttlNodes on a fake clock, counting the scripts
// sent to them.
type semReview struct {
	clock *fakeClock
	nodes []*ttlNode
	pools []redis.Pool
	sent  atomic.Int64
}

func newSemReview(n int) *semReview {
	r := &semReview{clock: newFakeClock()}
	for range n {
		node := newTTLNode(r.clock)
		r.nodes = append(r.nodes, node)
		r.pools = append(r.pools, countingPool{n: node, sent: &r.sent})
	}
	return r
}

func (r *semReview) semaphore(name string, permits int, opts ...Option) *Semaphore {
	s := New(r.pools...).NewSemaphore(name, permits, append([]Option{WithRetryDelay(0), WithTimeoutFactor(0.5)}, opts...)...)
	s.now = r.clock.Now
	return s
}

// values returns the live value of key on each node ("" for none).
func (r *semReview) values(key string) []string {
	var vs []string
	for _, n := range r.nodes {
		n.mu.Lock()
		vs = append(vs, n.current(key))
		n.mu.Unlock()
	}
	return vs
}

func (r *semReview) keyCount() int { return liveKeys(r.nodes) }

// liveKeys counts the live keys on nodes.
func liveKeys(nodes []*ttlNode) int {
	total := 0
	for _, n := range nodes {
		n.mu.Lock()
		for k := range n.keys {
			if n.current(k) != "" {
				total++
			}
		}
		n.mu.Unlock()
	}
	return total
}

// TestReviewSemaphoreReleaseTwice: the second Release of a Permit sends
// nothing and says ErrLockAlreadyExpired, also when another holder took
// the slot since; an Extend after the Release fails and sends nothing.
func TestReviewSemaphoreReleaseTwice(t *testing.T) {
	r := newSemReview(3)
	s := r.semaphore("sem", 1)
	ctx := context.Background()
	p, err := s.TryAcquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := p.Release(ctx); !ok || err != nil {
		t.Fatalf("Release() = %v, %v", ok, err)
	}
	q, err := s.TryAcquire(ctx)
	if err != nil {
		t.Fatalf("TryAcquire() after the release = %v", err)
	}
	before := r.sent.Load()
	if ok, err := p.Release(ctx); ok || !errors.Is(err, ErrLockAlreadyExpired) {
		t.Errorf("second Release() = %v, %v; want false, ErrLockAlreadyExpired", ok, err)
	}
	if ok, err := p.Extend(ctx); ok || !errors.Is(err, ErrExtendFailed) || !errors.Is(err, ErrLockAlreadyExpired) {
		t.Errorf("Extend() after Release = %v, %v; want false, ErrExtendFailed and ErrLockAlreadyExpired", ok, err)
	}
	if n := r.sent.Load() - before; n != 0 {
		t.Errorf("the second Release and the Extend sent %d scripts; want none", n)
	}
	for i, v := range r.values(q.Key()) {
		if v != q.Value() {
			t.Errorf("node %d: the slot holds %q; want the new holder's %q", i, v, q.Value())
		}
	}
	if ok, err := q.Release(ctx); !ok || err != nil {
		t.Errorf("Release() = %v, %v", ok, err)
	}
	if n := r.keyCount(); n != 0 {
		t.Errorf("%d keys left; want none", n)
	}
}

// TestReviewSemaphoreLostPermitTakesNothingBack: a Permit that expired
// while its holder slept, whose slot another client then took (with a
// node down, on a bare quorum), cannot get it back: Extend fails (also
// with WithSetNXOnExtend, which sets the key only where it is missing,
// on a minority), Release fails and deletes nothing of the new holder's; at no instant are two Permits of the slot valid.
func TestReviewSemaphoreLostPermitTakesNothingBack(t *testing.T) {
	for _, setNX := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "SetNXOnExtend"}[setNX], func(t *testing.T) {
			r := newSemReview(3)
			var opts []Option
			if setNX {
				opts = append(opts, WithSetNXOnExtend())
			}
			s := r.semaphore("sem", 1, opts...)
			ctx := context.Background()
			old, err := s.TryAcquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			r.clock.Advance(DefaultExpiry)
			r.nodes[2].setDown(true)
			fresh, err := s.TryAcquire(ctx)
			if err != nil {
				t.Fatalf("TryAcquire() once the old permit expired, 1 node down = %v", err)
			}
			r.nodes[2].setDown(false)
			now := r.clock.Now()
			if old.Until().After(now) {
				t.Fatalf("the old permit is still valid (until %v) at the new grant %v", old.Until(), now)
			}
			if ok, err := old.Extend(ctx); ok || !errors.Is(err, ErrExtendFailed) {
				t.Errorf("Extend() of the lost permit = %v, %v; want false, ErrExtendFailed", ok, err)
			}
			if old.Until().After(r.clock.Now()) {
				t.Errorf("the lost permit's Until moved to %v", old.Until())
			}
			// (What Release of the lost permit says is
			// TestReviewSemaphoreBugReleaseOfRetakenSlot's.)
			if ok, _ := old.Release(ctx); ok {
				t.Error("Release() of the lost permit = true; want false")
			}
			held := 0
			for _, v := range r.values(fresh.Key()) {
				if v == fresh.Value() {
					held++
				}
			}
			if held < 2 {
				t.Errorf("the new holder's slot is held on %d nodes after the old permit's Extend and Release; want its quorum of 2", held)
			}
			if ok, err := fresh.Extend(ctx); !ok || err != nil {
				t.Errorf("the new holder's Extend() = %v, %v; want true, nil", ok, err)
			}
			if ok, err := fresh.Release(ctx); !ok || err != nil {
				t.Errorf("the new holder's Release() = %v, %v; want true, nil", ok, err)
			}
			// With SetNX, the lost permit's Extend may have set the key on
			// the node that was down: it is its own, and expires; a new
			// client still gets the slot on the other two.
			next, err := s.TryAcquire(ctx)
			if err != nil {
				t.Fatalf("TryAcquire() after both released = %v", err)
			}
			next.Release(ctx)
		})
	}
}

// TestReviewSemaphoreConcurrentBound: many goroutines of several clients
// acquire and release permits at once on a clock that does not move (no
// permit expires): at no instant do more than Permits of them hold one,
// two never hold one slot, and every permit taken is given back.
func TestReviewSemaphoreConcurrentBound(t *testing.T) {
	const permits, workers, rounds = 3, 12, 20
	r := newSemReview(5)
	var sems []*Semaphore
	for range 3 {
		sems = append(sems, r.semaphore("sem", permits, WithTries(1)))
	}
	var (
		inside, most atomic.Int32
		slots        [permits]atomic.Int32
		granted      atomic.Int64
		wg           sync.WaitGroup
		failures     = make(chan error, workers*rounds)
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := sems[w%len(sems)]
			ctx := context.Background()
			for range rounds {
				p, err := s.TryAcquire(ctx)
				if err != nil {
					if !errors.Is(err, ErrFailed) {
						failures <- err
					}
					runtime.Gosched()
					continue
				}
				granted.Add(1)
				n := inside.Add(1)
				for {
					m := most.Load()
					if n <= m || most.CompareAndSwap(m, n) {
						break
					}
				}
				if slots[p.Slot()].Add(1) != 1 {
					failures <- errors.New("two holders of one slot at once")
				}
				runtime.Gosched()
				slots[p.Slot()].Add(-1)
				inside.Add(-1)
				if ok, err := p.Release(ctx); !ok || err != nil {
					failures <- err
				}
			}
		}()
	}
	wg.Wait()
	close(failures)
	for err := range failures {
		t.Error(err)
	}
	if m := most.Load(); m > permits {
		t.Errorf("%d holders at once; want at most %d", m, permits)
	}
	if granted.Load() == 0 {
		t.Error("no permit was granted")
	}
	if n := r.keyCount(); n != 0 {
		t.Errorf("%d keys left; want none", n)
	}
}

// TestReviewSemaphoreMinorityDown: with two of five nodes down the
// semaphore grants every permit, no more, and says so; with three down
// it says that nodes failed, not that the permits are held, and gives up
// at once for good only when the errors are permanent.
func TestReviewSemaphoreMinorityDown(t *testing.T) {
	r := newSemReview(5)
	r.nodes[0].setDown(true)
	r.nodes[3].setDown(true)
	s := r.semaphore("sem", 3)
	ctx := context.Background()
	seen := map[int]bool{}
	var held []*Permit
	for range 3 {
		p, err := s.TryAcquire(ctx)
		if err != nil {
			t.Fatalf("TryAcquire() with 2 of 5 nodes down = %v", err)
		}
		if seen[p.Slot()] {
			t.Fatalf("slot %d granted twice", p.Slot())
		}
		seen[p.Slot()] = true
		held = append(held, p)
	}
	_, err := s.TryAcquire(ctx)
	var taken *ErrTaken
	if !errors.Is(err, ErrFailed) || !errors.As(err, &taken) {
		t.Errorf("TryAcquire() with every permit held = %v; want ErrFailed and *ErrTaken", err)
	}
	r.nodes[1].setDown(true)
	_, err = s.TryAcquire(ctx)
	var re *RedisError
	if !errors.Is(err, ErrFailed) || !errors.As(err, &re) || errors.As(err, &taken) {
		t.Errorf("TryAcquire() with 3 of 5 nodes down = %v; want ErrFailed with node errors, no *ErrTaken", err)
	}
	r.nodes[1].setDown(false)
	for _, p := range held {
		if ok, err := p.Release(ctx); !ok || err != nil {
			t.Errorf("Release() = %v, %v", ok, err)
		}
	}
	if n := r.keyCount(); n != 0 {
		t.Errorf("%d keys left; want none", n)
	}
}

// cancelTTLPool wraps a ttlNode as a driver does a node: a command whose
// ctx has ended is not sent. Once armed, the first script sent lands and
// then cancels the caller's ctx (its reply is lost); checks and sends
// are serialized.
type cancelTTLPool struct {
	n     *ttlNode
	state *cancelState
}

func (p cancelTTLPool) Get(ctx context.Context) (redis.Conn, error) {
	c, err := p.n.Get(ctx)
	if err != nil {
		return nil, err
	}
	return cancelTTLConn{Conn: c, ctx: ctx, state: p.state}, nil
}

type cancelTTLConn struct {
	redis.Conn
	ctx   context.Context
	state *cancelState
}

func (c cancelTTLConn) Eval(script *redis.Script, keysAndArgs ...any) (any, error) {
	s := c.state
	s.mu.Lock()
	if err := c.ctx.Err(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	reply, err := c.Conn.Eval(script, keysAndArgs...)
	if s.cancel != nil {
		s.cancel()
		s.cancel = nil
	}
	s.mu.Unlock()
	if cerr := c.ctx.Err(); cerr != nil {
		return nil, cerr
	}
	return reply, err
}

// TestReviewSemaphoreCancelMidSweep: a ctx that ends while a slot's try
// is on the nodes (the script landed on one, the others not sent) leaves
// no key, for Acquire, TryAcquire and Do, with free and with held slots,
// and leaves no goroutine behind.
func TestReviewSemaphoreCancelMidSweep(t *testing.T) {
	before := runtime.NumGoroutine()
	clock := newFakeClock()
	state := &cancelState{}
	var nodes []*ttlNode
	var pools []redis.Pool
	for range 3 {
		n := newTTLNode(clock)
		nodes = append(nodes, n)
		pools = append(pools, cancelTTLPool{n: n, state: state})
	}
	s := New(pools...).NewSemaphore("sem", 3, WithRetryDelay(0))
	s.now = clock.Now
	keys := func() int { return liveKeys(nodes) }
	calls := []struct {
		desc string
		call func(ctx context.Context) error
	}{
		{"Acquire", func(ctx context.Context) error { _, err := s.Acquire(ctx); return err }},
		{"TryAcquire", func(ctx context.Context) error { _, err := s.TryAcquire(ctx); return err }},
		{"Do", func(ctx context.Context) error {
			return s.Do(ctx, func(context.Context) error { return errors.New("ran") })
		}},
	}
	for _, tc := range calls {
		ctx, cancel := context.WithCancel(context.Background())
		state.arm(cancel)
		err := tc.call(ctx)
		if !errors.Is(err, ErrFailed) || !errors.Is(err, context.Canceled) {
			t.Errorf("%s cancelled mid-round = %v; want ErrFailed and context.Canceled", tc.desc, err)
		}
		if k := keys(); k != 0 {
			t.Errorf("%s cancelled mid-round left %d keys", tc.desc, k)
		}
	}
	// Two slots held by someone else: the sweep is cut on the free one.
	held := New(nodes[0], nodes[1], nodes[2]).NewSemaphore("sem", 3)
	held.now = clock.Now
	var permits []*Permit
	for len(permits) < 2 {
		p, err := held.TryAcquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		permits = append(permits, p)
	}
	for _, tc := range calls {
		ctx, cancel := context.WithCancel(context.Background())
		state.arm(cancel)
		if err := tc.call(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("%s cancelled mid-round with 2 of 3 held = %v; want context.Canceled", tc.desc, err)
		}
		if k := keys(); k != 2*3 {
			t.Errorf("%s cancelled mid-round with 2 permits held: %d keys; want the holders' 6", tc.desc, k)
		}
	}
	for _, p := range permits {
		p.Release(context.Background())
	}
	if k := keys(); k != 0 {
		t.Errorf("%d keys left; want none", k)
	}
	deadline := time.Now().Add(20 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines after the calls; %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

// TestReviewSemaphoreBadInput: bad configurations are refused with
// ErrInvalidConfig before anything is sent, and so is a value generator
// that returns a bad value, once per sweep, not once per slot.
func TestReviewSemaphoreBadInput(t *testing.T) {
	r := newSemReview(3)
	ctx := context.Background()
	for _, s := range []*Semaphore{
		r.semaphore("sem", 0),
		r.semaphore("sem", -5),
		r.semaphore("", 2),
		r.semaphore("sem", 2, WithValue("v")),
		r.semaphore("sem", 2, WithFencing()),
		r.semaphore("sem", 2, WithTries(0)),
		r.semaphore("sem", 2, WithDriftFactor(2)),
	} {
		if _, err := s.Acquire(ctx); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Acquire() of NewSemaphore(%q, %d) = %v; want ErrInvalidConfig", s.Name(), s.Permits(), err)
		}
		ran := false
		if err := s.Do(ctx, func(context.Context) error { ran = true; return nil }); !errors.Is(err, ErrInvalidConfig) || ran {
			t.Errorf("Do() of NewSemaphore(%q, %d) = %v (ran: %t); want ErrInvalidConfig", s.Name(), s.Permits(), err, ran)
		}
	}
	if n := r.sent.Load(); n != 0 {
		t.Errorf("bad configurations sent %d scripts; want none", n)
	}
	bad := r.semaphore("sem", 4, WithTries(3), WithGenValueFunc(func() (string, error) { return "", nil }))
	if _, err := bad.Acquire(ctx); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Acquire() with a value generator returning \"\" = %v; want ErrInvalidConfig", err)
	}
	if n := r.sent.Load(); n != 0 {
		t.Errorf("a value generator returning \"\" sent %d scripts; want none", n)
	}
}

// Reproductions of findings of the review, each fixed since (see each
// test's comment for the interleaving and the fix).

// TestReviewSemaphoreBugReleaseOfRetakenSlot: a Permit that expired, and
// whose slot another client then took, is released. Permit.Release's doc
// says that when the slot's key had expired on so many nodes that no
// quorum could release it, the error matches ErrLockAlreadyExpired, and
// that only a Release that failed on node errors can be called again.
// But the nodes answer "taken" (another value is in the key), not
// "missing", and releaseResult reports ErrLockAlreadyExpired only for
// missing keys: Release returns the bare ErrNodeTaken errors ("node #0:
// lock already taken"), which match no sentinel, and unlock gives the
// acquisition back, so every further Release (and Extend) of the dead
// Permit goes to the nodes again, forever failing. Semaphore slots are
// retaken at once by waiting clients, so this is the common way for a
// permit to be lost. (The writer of an RWMutex and a Mutex share it.)
//
// Fixed: releaseResult counts the nodes that answered taken with the
// missing ones (tally.lost: our value is gone
// from too many nodes for a quorum) as expired, so that the error
// matches ErrLockAlreadyExpired and the acquisition is not given back.
func TestReviewSemaphoreBugReleaseOfRetakenSlot(t *testing.T) {
	r := newSemReview(3)
	s := r.semaphore("sem", 1)
	ctx := context.Background()
	old, err := s.TryAcquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(DefaultExpiry)
	fresh, err := s.TryAcquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Release(ctx)
	ok, err := old.Release(ctx)
	if ok || !errors.Is(err, ErrLockAlreadyExpired) {
		t.Errorf("Release() of a permit whose slot another client took = %v, %q; want false and an error matching ErrLockAlreadyExpired", ok, err)
	}
	before := r.sent.Load()
	old.Release(ctx)
	if n := r.sent.Load() - before; n != 0 {
		t.Errorf("a second Release() of the lost permit sent %d scripts; want none (the first one's outcome was final)", n)
	}
}

// TestReviewSemaphoreBugCancelledSweepLeavesGhostPermit: an Acquire whose
// ctx ends while its slot's try is on the nodes returns the cancellation
// ("nothing is left locked"), but the undo is sent before the round's
// goroutines that already passed their driver's ctx check have written
// the try; it runs first and the try lands after it, on a majority. The
// slot is then held by nobody for a whole TTL: a semaphore of one permit
// grants none, though no one holds a permit. The cause and the fix are
// those of TestReviewRWMutexBugCancelledTryLandsAfterUndo (the engine
// sends the undo without waiting for the round's goroutines unless
// WithFailFast made lockCalls.settled).
func TestReviewSemaphoreBugCancelledSweepLeavesGhostPermit(t *testing.T) {
	clock := newFakeClock()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var checked, landed sync.WaitGroup
	checked.Add(2)
	landed.Add(2)
	var nodes []*ttlNode
	var pools []redis.Pool
	for i := range 3 {
		n := newTTLNode(clock)
		nodes = append(nodes, n)
		pools = append(pools, &latePool{pool: n, acquire: func(s *redis.Script) bool { return s == acquireScript }, late: i > 0, cancel: cancel, checked: &checked, undone: make(chan struct{}), landed: &landed})
	}
	s := New(pools...).NewSemaphore("sem", 1)
	s.now = clock.Now
	if _, err := s.Acquire(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire() = %v; want context.Canceled", err)
	}
	landed.Wait()
	plain := New(nodes[0], nodes[1], nodes[2]).NewSemaphore("sem", 1)
	plain.now = clock.Now
	p, err := plain.TryAcquire(context.Background())
	if err != nil {
		t.Errorf("TryAcquire() of a semaphore of 1 permit after a cancelled Acquire, nobody holding it = %v; want a permit", err)
		return
	}
	p.Release(context.Background())
}
