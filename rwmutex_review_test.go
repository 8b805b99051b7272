package redsync

// Tests from a review that tried to break the promises of the RWMutex
// (docs/PRIMITIVES.md and the doc comments of rwmutex.go). Those that
// pass are checks of promises that held; a test named ...Bug... shows a
// promise that did not.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/goredis"
)

// TestReviewRWMutexExpiredShareStaysDead: a share that expired on the
// nodes while its reader slept is not brought back by RExtend or by
// RUnlock, and neither touches the writer that was admitted meanwhile.
func TestReviewRWMutexExpiredShareStaysDead(t *testing.T) {
	c := newRWCluster(5)
	reader, writer, other := c.rwmutex("doc"), c.rwmutex("doc"), c.rwmutex("doc")
	readers := rwKey("doc", readersSuffix)
	if err := reader.TryRLock(); err != nil {
		t.Fatalf("TryRLock() = %v", err)
	}
	share := reader.shares[0]
	if err := writer.TryLock(); err == nil {
		t.Fatal("TryLock() with a live share = nil; want an error")
	}
	// The share's end on the nodes is now + expiry; its validity ends
	// earlier, by the drift. Just before the end on the nodes, the share
	// is still live: no writer.
	c.clock.Advance(DefaultExpiry - time.Millisecond)
	if !share.Until().Before(c.clock.Now()) {
		t.Fatalf("the share's validity %v has not ended at %v, 1 ms before its end on the nodes", share.Until(), c.clock.Now())
	}
	if err := writer.TryLock(); err == nil {
		t.Fatal("TryLock() 1 ms before the share's end on the nodes = nil; want an error")
	}
	c.clock.Advance(time.Millisecond)
	if err := writer.TryLock(); err != nil {
		t.Fatalf("TryLock() at the share's end = %v; want nil", err)
	}
	start := c.clock.Now()
	if !share.Until().Before(start) {
		t.Errorf("a writer was admitted at %v, within the share's validity (until %v)", start, share.Until())
	}
	value := writer.Value()
	if ok, err := reader.RExtend(); ok || !errors.Is(err, ErrExtendFailed) || !errors.Is(err, ErrLockAlreadyExpired) {
		t.Errorf("RExtend() of an expired share = %v, %v; want false, ErrExtendFailed and ErrLockAlreadyExpired", ok, err)
	}
	if err := other.TryRLock(); err == nil {
		t.Error("TryRLock() under the writer = nil; want an error")
	}
	if ok, err := reader.RUnlock(); ok || !errors.Is(err, ErrLockAlreadyExpired) {
		t.Errorf("RUnlock() of the expired share = %v, %v; want false, ErrLockAlreadyExpired", ok, err)
	}
	for i, n := range c.nodes {
		if got := n.get("doc"); got != value {
			t.Errorf("node %d: W = %q; want the writer's %q", i, got, value)
		}
		if live := n.live(readers); len(live) != 0 {
			t.Errorf("node %d: %d live shares under the writer", i, len(live))
		}
	}
	if ok, err := writer.Unlock(); !ok || err != nil {
		t.Errorf("Unlock() = %v, %v; want true, nil", ok, err)
	}
	if n := c.keyCount(); n != 0 {
		t.Errorf("%d keys left; want none", n)
	}
}

// TestReviewRWMutexSharesOfDifferentExpiries: readers of one name with
// different expiries. The readers' key lives as long as the longest
// share, so a short share's release or extension does not cut the long
// one short, and a writer stays out until the long one ends.
func TestReviewRWMutexSharesOfDifferentExpiries(t *testing.T) {
	c := newRWCluster(3)
	long := c.rwmutex("doc", WithExpiry(10*time.Second))
	short := c.rwmutex("doc", WithExpiry(time.Second))
	writer := c.rwmutex("doc")
	if err := long.TryRLock(); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := short.TryRLock(); err != nil {
			t.Fatal(err)
		}
		c.clock.Advance(500 * time.Millisecond)
		if ok, err := short.RExtend(); !ok || err != nil {
			t.Fatalf("RExtend() = %v, %v", ok, err)
		}
		if ok, err := short.RUnlock(); !ok || err != nil {
			t.Fatalf("RUnlock() = %v, %v", ok, err)
		}
	}
	until := long.shares[0].Until()
	for c.clock.Now().Before(until) {
		if err := writer.TryLock(); err == nil {
			t.Fatalf("a writer was admitted at %v, within the long share's validity (until %v)", c.clock.Now(), until)
		}
		c.clock.Advance(min(700*time.Millisecond, until.Sub(c.clock.Now())))
	}
	if err := writer.TryLock(); err == nil {
		t.Fatalf("a writer was admitted at the end of the long share's validity, before its end on the nodes")
	}
	if ok, err := long.RUnlock(); !ok || err != nil {
		t.Errorf("RUnlock() of the long share = %v, %v; want true, nil", ok, err)
	}
	if err := writer.TryLock(); err != nil {
		t.Errorf("TryLock() once every share is gone = %v", err)
	}
	writer.Unlock()
	if n := c.keyCount(); n != 0 {
		t.Errorf("%d keys left; want none", n)
	}
}

// TestReviewRWMutexConcurrentRUnlock: RUnlock from many goroutines at
// once on one RWMutex gives back each share exactly once.
func TestReviewRWMutexConcurrentRUnlock(t *testing.T) {
	const n = 16
	c := newRWCluster(3)
	rw := c.rwmutex("doc")
	readers := rwKey("doc", readersSuffix)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = rw.TryRLock()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("TryRLock() %d = %v", i, err)
		}
	}
	values := map[string]bool{}
	for _, m := range rw.shares {
		values[m.Value()] = true
	}
	if len(values) != n {
		t.Fatalf("%d distinct share values; want %d", len(values), n)
	}
	oks := make([]bool, n+4)
	errs = make([]error, n+4)
	for i := range n + 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			oks[i], errs[i] = rw.RUnlock()
		}()
	}
	wg.Wait()
	released, notLocked := 0, 0
	for i := range n + 4 {
		switch {
		case oks[i] && errs[i] == nil:
			released++
		case errors.Is(errs[i], ErrNotLocked):
			notLocked++
		default:
			t.Errorf("RUnlock() = %v, %v", oks[i], errs[i])
		}
	}
	if released != n || notLocked != 4 {
		t.Errorf("%d RUnlocks released and %d found no share; want %d and 4", released, notLocked, n)
	}
	for i, node := range c.nodes {
		if live := node.live(readers); len(live) != 0 {
			t.Errorf("node %d: %d shares left", i, len(live))
		}
	}
	if k := c.keyCount(); k != 0 {
		t.Errorf("%d keys left; want none", k)
	}
}

// TestReviewRWMutexMarksAreOwn: a writer that fails or gives up takes
// back its own state only: the holding writer's key and another waiting
// writer's mark stay; and a writer's Unlock does not take another
// RWMutex's mark.
func TestReviewRWMutexMarksAreOwn(t *testing.T) {
	c := newRWCluster(3)
	holder, waiter, quitter, reader := c.rwmutex("doc"), c.rwmutex("doc"), c.rwmutex("doc"), c.rwmutex("doc")
	waiting := rwKey("doc", waitingSuffix)
	if err := holder.TryLock(); err != nil {
		t.Fatal(err)
	}
	value := holder.Value()
	// waiter's try leaves its mark, as a Lock still waiting does.
	if _, _, _, err := waiter.w.acquire(context.Background(), waiter.w.makeCalls("w1"), nil); err == nil {
		t.Fatal("a try under a writer succeeded")
	}
	waiterMark := c.nodes[0].get(waiting)
	if waiterMark == "" {
		t.Fatal("the waiting writer left no mark")
	}
	var taken *ErrTaken
	if err := quitter.TryLock(); !errors.As(err, &taken) {
		t.Errorf("TryLock() under a writer = %v; want *ErrTaken", err)
	}
	for i, n := range c.nodes {
		if got := n.get("doc"); got != value {
			t.Errorf("node %d: W = %q after another writer's failed try; want %q", i, got, value)
		}
		// quitter's try overwrote the mark with its own, and its
		// withdraw took its own back: the mark is gone, not another's
		// deleted by value. What must hold is that no node keeps
		// quitter's mark.
		if got := n.get(waiting); got != "" && got != waiterMark {
			t.Errorf("node %d: mark %q left by the writer that gave up", i, got)
		}
	}
	// The waiter tries again (its mark back on every node), then the
	// holder unlocks: the holder's Unlock must leave the waiter's mark.
	if _, _, _, err := waiter.w.acquire(context.Background(), waiter.w.makeCalls("w2"), nil); err == nil {
		t.Fatal("a try under a writer succeeded")
	}
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("Unlock() = %v, %v", ok, err)
	}
	for i, n := range c.nodes {
		if got := n.get(waiting); got != waiterMark {
			t.Errorf("node %d: the waiting writer's mark = %q after another writer's Unlock; want %q", i, got, waiterMark)
		}
	}
	if err := reader.TryRLock(); !errors.As(err, &taken) {
		t.Errorf("TryRLock() with a writer waiting = %v; want *ErrTaken", err)
	}
	if err := waiter.TryLock(); err != nil {
		t.Fatalf("the waiting writer's TryLock() = %v", err)
	}
	waiter.Unlock()
	if n := c.keyCount(); n != 0 {
		t.Errorf("%d keys left; want none", n)
	}
}

// cancelPool wraps an rwNode as a driver does a node: a command whose
// ctx has ended is not sent. Once armed, the first script sent lands on
// its node and then cancels the caller's ctx, so that its reply is lost;
// the other nodes' scripts of that round, sent after, are not sent.
// Checks and sends are serialized, so the outcome does not depend on the
// scheduling of the round's goroutines.
type cancelPool struct {
	n     *rwNode
	state *cancelState
}

type cancelState struct {
	mu     sync.Mutex
	cancel context.CancelFunc
}

func (s *cancelState) arm(cancel context.CancelFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cancel = cancel
}

func (p cancelPool) Get(ctx context.Context) (redis.Conn, error) {
	return &cancelConn{rwConn: &rwConn{n: p.n}, ctx: ctx, state: p.state}, nil
}

type cancelConn struct {
	*rwConn
	ctx   context.Context
	state *cancelState
}

func (c *cancelConn) Eval(script *redis.Script, keysAndArgs ...any) (any, error) {
	s := c.state
	s.mu.Lock()
	if err := c.ctx.Err(); err != nil {
		s.mu.Unlock()
		return nil, err // not sent
	}
	reply, err := c.rwConn.Eval(script, keysAndArgs...)
	if s.cancel != nil {
		s.cancel()
		s.cancel = nil
	}
	s.mu.Unlock()
	if cerr := c.ctx.Err(); cerr != nil {
		return nil, cerr // landed, reply lost
	}
	return reply, err
}

// TestReviewRWMutexCancelMidRound: a ctx that ends while a round is on
// the nodes (every script landed, no reply came back) leaves no key: the
// reader's try is undone, the writer's try is undone and its mark taken
// back; and no goroutine is left behind.
func TestReviewRWMutexCancelMidRound(t *testing.T) {
	before := runtime.NumGoroutine()
	clock := newFakeClock()
	nodes := make([]*rwNode, 3)
	pools := make([]redis.Pool, 3)
	state := &cancelState{}
	for i := range nodes {
		nodes[i] = newRWNode(clock)
		pools[i] = cancelPool{n: nodes[i], state: state}
	}
	rs := New(pools...)
	mk := func() *RWMutex {
		rw := rs.NewRWMutex("doc", WithRetryDelay(0))
		rw.now, rw.w.now = clock.Now, clock.Now
		return rw
	}
	keys := func() int {
		total := 0
		for _, n := range nodes {
			total += n.keyCount()
		}
		return total
	}
	rw := mk()

	for _, tc := range []struct {
		desc string
		call func(ctx context.Context) error
	}{
		{"RLockContext", rw.RLockContext},
		{"TryRLockContext", rw.TryRLockContext},
		{"LockContext", rw.LockContext},
		{"TryLockContext", rw.TryLockContext},
		{"RDo", func(ctx context.Context) error {
			return rw.RDo(ctx, func(context.Context) error { return errors.New("ran") })
		}},
		{"Do", func(ctx context.Context) error {
			return rw.Do(ctx, func(context.Context) error { return errors.New("ran") })
		}},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		state.arm(cancel)
		err := tc.call(ctx)
		if !errors.Is(err, ErrFailed) || !errors.Is(err, context.Canceled) {
			t.Errorf("%s cancelled mid-round = %v; want ErrFailed and context.Canceled", tc.desc, err)
		}
		if k := keys(); k != 0 {
			var left []string
			for i, n := range nodes {
				n.mu.Lock()
				for key, v := range n.strings {
					left = append(left, fmt.Sprintf("node %d: %s=%s", i, key, v.value))
				}
				for key, v := range n.sets {
					left = append(left, fmt.Sprintf("node %d: %s=%v", i, key, v.shares))
				}
				n.mu.Unlock()
			}
			t.Errorf("%s cancelled mid-round left %d keys: %v", tc.desc, k, left)
		}
	}

	// A writer cancelled mid-round while a reader is in: its mark is
	// taken back, and new readers get in.
	reader := mk()
	if err := reader.TryRLock(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	state.arm(cancel)
	if err := rw.LockContext(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("LockContext() cancelled mid-round = %v; want context.Canceled", err)
	}
	waiting := rwKey("doc", waitingSuffix)
	for i, n := range nodes {
		if mark := n.get(waiting); mark != "" {
			t.Errorf("node %d: the cancelled writer's mark %q is left", i, mark)
		}
	}
	if err := mk().TryRLock(); err != nil {
		t.Errorf("TryRLock() after the writer was cancelled = %v; want nil", err)
	}

	// No goroutine outlives the calls (the rounds' stragglers end with
	// their replies; allow them a moment on a loaded machine).
	deadline := time.Now().Add(20 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines after the calls; %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

// TestReviewRWMutexDoesNotLeakGoroutines: Do and RDo with automatic
// extension, a panicking function, RExtend of many shares: no goroutine
// is left once they return.
func TestReviewRWMutexDoesNotLeakGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	c := newRWCluster(3)
	rw := c.rwmutex("doc", WithAutoExtend(time.Second))
	ctx := context.Background()
	for range 3 {
		if err := rw.Do(ctx, func(context.Context) error { return nil }); err != nil {
			t.Fatalf("Do() = %v", err)
		}
		if err := rw.RDo(ctx, func(context.Context) error { return nil }); err != nil {
			t.Fatalf("RDo() = %v", err)
		}
		func() {
			defer func() { recover() }()
			rw.RDo(ctx, func(context.Context) error { panic("boom") })
		}()
		for range 4 {
			if err := rw.TryRLock(); err != nil {
				t.Fatal(err)
			}
		}
		if ok, err := rw.RExtend(); !ok || err != nil {
			t.Fatalf("RExtend() = %v, %v", ok, err)
		}
		for range 4 {
			if ok, err := rw.RUnlock(); !ok || err != nil {
				t.Fatalf("RUnlock() = %v, %v", ok, err)
			}
		}
	}
	if n := c.keyCount(); n != 0 {
		t.Errorf("%d keys left; want none", n)
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

// TestReviewRWMutexBadInputOnServers: misuse gets the documented
// sentinels and leaves nothing on real nodes.
func TestReviewRWMutexBadInputOnServers(t *testing.T) {
	servers, pools := reviewServers(t, 3)
	rs := New(pools...)
	rw := rs.NewRWMutex("review-bad")
	if _, err := rw.RUnlock(); !errors.Is(err, ErrNotLocked) {
		t.Errorf("RUnlock() without RLock = %v; want ErrNotLocked", err)
	}
	if _, err := rw.Unlock(); !errors.Is(err, ErrNotLocked) {
		t.Errorf("Unlock() without Lock = %v; want ErrNotLocked", err)
	}
	if _, err := rw.Extend(); !errors.Is(err, ErrNotLocked) {
		t.Errorf("Extend() without Lock = %v; want ErrNotLocked", err)
	}
	if _, err := rw.RExtend(); !errors.Is(err, ErrNotLocked) {
		t.Errorf("RExtend() without RLock = %v; want ErrNotLocked", err)
	}
	if err := rw.RLock(); err != nil {
		t.Fatal(err)
	}
	if _, err := rw.Unlock(); !errors.Is(err, ErrNotLocked) {
		t.Errorf("Unlock() of a read lock = %v; want ErrNotLocked", err)
	}
	if ok, err := rw.RUnlock(); !ok || err != nil {
		t.Errorf("RUnlock() = %v, %v", ok, err)
	}
	if err := rw.Lock(); err != nil {
		t.Fatal(err)
	}
	if _, err := rw.RUnlock(); !errors.Is(err, ErrNotLocked) {
		t.Errorf("RUnlock() of a write lock = %v; want ErrNotLocked", err)
	}
	if ok, err := rw.Unlock(); !ok || err != nil {
		t.Errorf("Unlock() = %v, %v", ok, err)
	}
	if _, err := rw.Unlock(); !errors.Is(err, ErrLockAlreadyExpired) {
		t.Errorf("a second Unlock() = %v; want ErrLockAlreadyExpired", err)
	}
	if _, err := rw.Extend(); !errors.Is(err, ErrExtendFailed) {
		t.Errorf("Extend() after Unlock = %v; want ErrExtendFailed", err)
	}
	for _, bad := range []*RWMutex{
		rs.NewRWMutex(""),
		rs.NewRWMutex("review-bad", WithValue("v")),
		rs.NewRWMutex("review-bad", WithFencing()),
		rs.NewRWMutex("review-bad", WithSetNXOnExtend()),
	} {
		if err := bad.RLock(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("RLock() of %q with a bad configuration = %v; want ErrInvalidConfig", bad.Name(), err)
		}
		if err := bad.Lock(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Lock() of %q with a bad configuration = %v; want ErrInvalidConfig", bad.Name(), err)
		}
	}
	for i, s := range servers {
		if n, err := s.DBSize(); err != nil || n != 0 {
			t.Errorf("server %d: %d keys left (%v); want none", i, n, err)
		}
	}
}

// reviewServers starts n redis-server nodes and returns go-redis pools
// over them.
func reviewServers(t *testing.T, n int) ([]*redistest.Server, []redis.Pool) {
	t.Helper()
	servers := redistest.StartN(t, n)
	pools := make([]redis.Pool, n)
	for i, s := range servers {
		client := goredislib.NewClient(&goredislib.Options{Addr: s.Addr(), MaxRetries: -1})
		t.Cleanup(func() { client.Close() })
		pools[i] = goredis.NewPool(client)
	}
	return servers, pools
}

// TestReviewRWMutexReadersKeyOutlivesSharesOnServers: on real nodes,
// after readers of different expiries take, extend and release shares,
// the readers' key lives at least as long as its latest live share
// (PTTL against the scores, by the node's TIME), so that no share
// vanishes with the key before its end.
func TestReviewRWMutexReadersKeyOutlivesSharesOnServers(t *testing.T) {
	servers, pools := reviewServers(t, 3)
	rs := New(pools...)
	const name = "review-rw-ttl"
	readers := rwKey(name, readersSuffix)
	long := rs.NewRWMutex(name, WithExpiry(20*time.Second))
	short := rs.NewRWMutex(name, WithExpiry(3*time.Second))
	check := func(when string) {
		t.Helper()
		for i, s := range servers {
			// One script reads TIME, PTTL and the scores at once.
			r, err := s.Do("EVAL", `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if #top == 0 then return {-1, -1} end
return {redis.call('PTTL', KEYS[1]), tonumber(top[2]) - now}`, "1", readers)
			if err != nil {
				t.Fatalf("server %d: %v", i, err)
			}
			if len(r.Elems) != 2 {
				t.Fatalf("server %d: reply %+v", i, r)
			}
			pttl, left := r.Elems[0].Int, r.Elems[1].Int
			if left > 0 && pttl+1 < left {
				// 1 ms: PTTL counts from the script's start, TIME from
				// its call.
				t.Errorf("%s: server %d: the readers' key ends in %d ms, its latest share in %d ms", when, i, pttl, left)
			}
		}
	}
	if err := long.RLock(); err != nil {
		t.Fatal(err)
	}
	check("one long share")
	for i := range 3 {
		if err := short.RLock(); err != nil {
			t.Fatal(err)
		}
		if ok, err := short.RExtend(); !ok || err != nil {
			t.Fatalf("RExtend() = %v, %v", ok, err)
		}
		check("short share " + strconv.Itoa(i))
		if ok, err := short.RUnlock(); !ok || err != nil {
			t.Fatalf("RUnlock() = %v, %v", ok, err)
		}
	}
	if ok, err := long.RExtend(); !ok || err != nil {
		t.Fatalf("RExtend() = %v, %v", ok, err)
	}
	check("long share extended")
	if ok, err := long.RUnlock(); !ok || err != nil {
		t.Fatal(ok, err)
	}
	for i, s := range servers {
		if n, err := s.DBSize(); err != nil || n != 0 {
			t.Errorf("server %d: %d keys left (%v); want none", i, n, err)
		}
	}
}

// Reproductions of findings of the review, each fixed since (see each
// test's comment for the interleaving and the fix).

// TestReviewRWMutexBugBraceNameSharesKeys: two RWMutexes of different
// names, "doc" and "{doc}", derive the same readers' key and the same
// waiting-writer key (rwKey wraps a name without a hash tag in braces,
// and "{doc}" already is that wrapping), though their writers' keys
// differ. So they are not independent locks: a reader of "{doc}" keeps
// the writer of "doc" out, and a waiting writer of "doc" keeps the
// readers of "{doc}" out, while the writer of "{doc}" does not keep the
// readers of "doc" out (they look at W = "doc"). Nothing documents that
// these two names interfere; "RWMutexes of the same name exclude each
// other" implies that others do not.
//
// It failed before the fix: rwKey("doc") == rwKey("{doc}") and the TryLock of "doc"
// with only a reader of "{doc}" in is refused with ErrTaken.
func TestReviewRWMutexBugBraceNameSharesKeys(t *testing.T) {
	plainR := rwKey("doc", readersSuffix)
	tagR := rwKey("{doc}", readersSuffix)
	plainQ := rwKey("doc", waitingSuffix)
	tagQ := rwKey("{doc}", waitingSuffix)
	if plainR == tagR || plainQ == tagQ {
		t.Errorf("RWMutex %q and RWMutex %q share derived keys: readers %q and %q, waiting %q and %q", "doc", "{doc}", plainR, tagR, plainQ, tagQ)
	}

	c := newRWCluster(3)
	plain, tagged := c.rwmutex("doc"), c.rwmutex("{doc}")
	if err := tagged.TryRLock(); err != nil {
		t.Fatalf("TryRLock() of %q = %v; want nil", "{doc}", err)
	}
	if err := plain.TryLock(); err != nil {
		t.Errorf("TryLock() of %q with only a reader of the other RWMutex %q in = %v; want nil (a different lock)", "doc", "{doc}", err)
	} else {
		plain.Unlock()
	}
	tagged.RUnlock()
}

// TestReviewRWMutexBugBraceNameOnServers is the brace-name collision of
// TestReviewRWMutexBugBraceNameSharesKeys on real nodes: a reader of
// "{review}" makes TryLock of the different RWMutex "review" fail.
func TestReviewRWMutexBugBraceNameOnServers(t *testing.T) {
	_, pools := reviewServers(t, 3)
	rs := New(pools...)
	tagged, plain := rs.NewRWMutex("{review}"), rs.NewRWMutex("review")
	if err := tagged.RLock(); err != nil {
		t.Fatal(err)
	}
	defer tagged.RUnlock()
	if err := plain.TryLock(); err != nil {
		t.Errorf("TryLock() of %q with only a reader of %q in = %v; want nil", "review", "{review}", err)
	} else {
		plain.Unlock()
	}
}

// latePool wraps a fake node (an rwNode, a ttlNode) for the tests of a
// try that lands after its undo. Node "trigger" runs the acquire script,
// then cancels the caller's ctx (its reply is lost). A "late" node's
// acquire passed the driver's ctx check before the cancellation, and its
// goroutine is then held up (a preemption on a busy machine, a slow
// write) until the undo of the try has run on that node, or for 100 ms,
// whichever comes first: then it lands.
type latePool struct {
	pool    redis.Pool
	acquire func(*redis.Script) bool // the scripts that take the lock
	late    bool
	cancel  context.CancelFunc
	checked *sync.WaitGroup // the late nodes passed their ctx check
	undone  chan struct{}   // closed when the undo ran on this node
	once    sync.Once
	landed  *sync.WaitGroup // the late acquires ran
}

func (p *latePool) Get(ctx context.Context) (redis.Conn, error) {
	c, err := p.pool.Get(ctx)
	if err != nil {
		return nil, err
	}
	return &lateConn{Conn: c, ctx: ctx, p: p}, nil
}

type lateConn struct {
	redis.Conn
	ctx context.Context
	p   *latePool
}

func isRWAcquire(s *redis.Script) bool {
	return s == rwReadAcquireScripts[0] || s == rwWriteAcquireScripts[0]
}

func (c *lateConn) Eval(script *redis.Script, keysAndArgs ...any) (any, error) {
	p := c.p
	if !p.acquire(script) {
		reply, err := c.Conn.Eval(script, keysAndArgs...)
		p.once.Do(func() { close(p.undone) })
		return reply, err
	}
	if !p.late {
		p.checked.Wait()
		c.Conn.Eval(script, keysAndArgs...)
		p.cancel()
		return nil, c.ctx.Err()
	}
	// Checked ctx: alive. Then held up until the undo ran here.
	p.checked.Done()
	select {
	case <-p.undone:
	case <-time.After(100 * time.Millisecond):
		// Held up for less than the per-node timeout (400 ms): a round
		// that waited for its goroutines before the undo would see this
		// one land first.
	}
	c.Conn.Eval(script, keysAndArgs...)
	p.landed.Done()
	return nil, c.ctx.Err()
}

// TestReviewRWMutexBugCancelledTryLandsAfterUndo: RLockContext (and
// LockContext) whose ctx ends while the try is on the nodes. Broadcast
// stops collecting at ctx.Done, and without WithFailFast no
// lockCalls.settled is made, so the undo is sent at once, while the
// goroutines of the round that already passed their driver's ctx check
// have not written their script yet. The undo runs first on those nodes,
// finds nothing, and the try lands after it: a share (or W) that nobody
// holds stays on a majority of the nodes for a whole TTL, though the call
// reported failure and "nothing is left locked". A stray share on a
// quorum keeps every writer out for the TTL; a stray W keeps everyone out.
// (The same engine path serves Mutex.LockContext.)
//
// Fixed: every try's round that returns before all nodes answered gives
// a calls.settled (not only with WithFailFast), which is awaited (bounded
// by the per-node timeout) before the undo, as the fail-fast path already
// did.
func TestReviewRWMutexBugCancelledTryLandsAfterUndo(t *testing.T) {
	for _, write := range []bool{false, true} {
		name := "RLockContext"
		if write {
			name = "LockContext"
		}
		t.Run(name, func(t *testing.T) {
			clock := newFakeClock()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var checked, landed sync.WaitGroup
			checked.Add(2)
			landed.Add(2)
			nodes := make([]*rwNode, 3)
			pools := make([]redis.Pool, 3)
			for i := range nodes {
				nodes[i] = newRWNode(clock)
				pools[i] = &latePool{pool: nodes[i], acquire: isRWAcquire, late: i > 0, cancel: cancel, checked: &checked, undone: make(chan struct{}), landed: &landed}
			}
			rw := New(pools...).NewRWMutex("doc", WithTries(1))
			rw.now, rw.w.now = clock.Now, clock.Now
			var err error
			if write {
				err = rw.LockContext(ctx)
			} else {
				err = rw.RLockContext(ctx)
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("%s = %v; want context.Canceled", name, err)
			}
			landed.Wait()
			readers := rwKey("doc", readersSuffix)
			stray := 0
			for _, n := range nodes {
				if n.get("doc") != "" || len(n.live(readers)) > 0 {
					stray++
				}
			}
			if stray > 0 {
				t.Errorf("%s failed with context.Canceled, yet %d of 3 nodes hold its try's key (a quorum is 2) until the TTL ends", name, stray)
			}
		})
	}
}
