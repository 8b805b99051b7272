package redsync

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redlock/redsync/redis"
)

func TestLockQuorumTaken(t *testing.T) {
	for taken := 0; taken <= 5; taken++ {
		t.Run(fmt.Sprintf("taken=%d", taken), func(t *testing.T) {
			c := newFakeCluster(5)
			for i := range taken {
				c.nodes[i].set("k", "other")
			}
			m := c.mutex("k", WithTries(2))
			err := m.Lock()
			wantOK := 5-taken >= 3
			if (err == nil) != wantOK {
				t.Fatalf("Lock() = %v, want success %v", err, wantOK)
			}
			if wantOK {
				if got := c.holders("k", m.Value()); got != 5-taken {
					t.Errorf("nodes holding our value = %d, want %d", got, 5-taken)
				}
				return
			}
			if !errors.Is(err, ErrFailed) {
				t.Errorf("Lock() = %v, want it to match ErrFailed", err)
			}
			var te *ErrTaken
			if !errors.As(err, &te) {
				t.Fatalf("Lock() = %T %v, want *ErrTaken", err, err)
			}
			if want := []int{0, 1, 2, 3, 4}[:taken]; !slices.Equal(sortedCopy(te.Nodes), want) {
				t.Errorf("ErrTaken.Nodes = %v, want %v", te.Nodes, want)
			}
			// The failed tries were undone: only the other owner's keys remain.
			if got := c.keys("k"); got != taken {
				t.Errorf("nodes with the key after a failed Lock = %d, want %d", got, taken)
			}
			if m.Value() != "" {
				t.Errorf("Value() = %q after a failed Lock, want empty", m.Value())
			}
		})
	}
}

// TestFailedTryUndo: a failed try is undone on every node, unless every
// node answered that another owner holds the key: then it set no key, and
// sends no release.
func TestFailedTryUndo(t *testing.T) {
	c := newFakeCluster(3)
	for _, n := range c.nodes {
		n.set("k", "other")
	}
	m := c.mutex("k", WithTries(1))
	if err := m.Lock(); err == nil {
		t.Fatal("Lock() = nil with the key taken everywhere")
	}
	for i, n := range c.nodes {
		if ran := n.ran(); !slices.Equal(ran, []string{"acquire"}) {
			t.Errorf("taken everywhere: node %d ran %v, want [acquire] and no release", i, ran)
		}
	}
	// Taken on two nodes, ours on the third: undone everywhere.
	c = newFakeCluster(3)
	c.nodes[0].set("k", "other")
	c.nodes[1].set("k", "another")
	m = c.mutex("k", WithTries(1))
	if err := m.Lock(); err == nil {
		t.Fatal("Lock() = nil with the key taken on 2 of 3")
	}
	for i, n := range c.nodes {
		if ran := n.ran(); !slices.Equal(ran, []string{"acquire", "release"}) {
			t.Errorf("taken on 2 of 3: node %d ran %v, want [acquire release]", i, ran)
		}
	}
	if got := c.keys("k"); got != 2 {
		t.Errorf("%d nodes hold the key after the undo, want the other owners' 2", got)
	}
	// Taken on two nodes, the third failing: the failing one may have
	// taken it, so the try is undone.
	c = newFakeCluster(3)
	c.nodes[0].set("k", "other")
	c.nodes[1].set("k", "other")
	c.nodes[2].setErr(errors.New("boom"))
	m = c.mutex("k", WithTries(1))
	if err := m.Lock(); err == nil {
		t.Fatal("Lock() = nil with the key taken on 2 of 3")
	}
	if ran := c.nodes[2].ran(); !slices.Contains(ran, "release") {
		t.Errorf("taken on 2, node 2 failing: node 2 ran %v, want a release", ran)
	}
}

func sortedCopy(s []int) []int {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestLockNodeErrors(t *testing.T) {
	boom := errors.New("boom")
	for failing := 0; failing <= 3; failing++ {
		t.Run(fmt.Sprintf("failing=%d", failing), func(t *testing.T) {
			c := newFakeCluster(5)
			for i := range failing {
				c.nodes[4-i].setErr(boom)
			}
			m := c.mutex("k", WithTries(1))
			err := m.Lock()
			if failing <= 2 {
				if err != nil {
					t.Fatalf("Lock() = %v, want nil with %d of 5 nodes failing", err, failing)
				}
				return
			}
			if !errors.Is(err, ErrFailed) || !errors.Is(err, boom) {
				t.Fatalf("Lock() = %v, want it to match ErrFailed and the node error", err)
			}
			var re *RedisError
			if !errors.As(err, &re) || re.Node < 2 {
				t.Fatalf("Lock() = %v, want a *RedisError naming a failing node", err)
			}
			if got := c.keys("k"); got != 0 {
				t.Errorf("nodes with the key after a failed Lock = %d, want 0", got)
			}
			// Release was sent to every node, also the failing ones.
			for i, n := range c.nodes {
				if ran := n.ran(); !slices.Contains(ran, "release") {
					t.Errorf("node %d ran %v, want a release", i, ran)
				}
			}
		})
	}
}

func TestLockValidity(t *testing.T) {
	tests := []struct {
		name    string
		latency time.Duration // per node, 5 nodes in parallel add up on the fake clock
		wantOK  bool
	}{
		{"fast", time.Millisecond, true},
		{"just inside", 1500 * time.Millisecond, true},    // 7.5s elapsed < 8s - 82ms
		{"past validity", 1590 * time.Millisecond, false}, // 7.95s elapsed > 8s - 82ms
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeCluster(5)
			for _, n := range c.nodes {
				n.latency = tt.latency
			}
			m := c.mutex("k", WithTries(1))
			start := c.clock.Now()
			err := m.Lock()
			if (err == nil) != tt.wantOK {
				t.Fatalf("Lock() = %v, want success %v", err, tt.wantOK)
			}
			if !tt.wantOK {
				if !errors.Is(err, ErrFailed) {
					t.Errorf("Lock() = %v, want ErrFailed", err)
				}
				if got := c.keys("k"); got != 0 {
					t.Errorf("nodes with the key = %d, want 0 (the late grant must be undone)", got)
				}
				return
			}
			drift := time.Duration(float64(DefaultExpiry)*DefaultDriftFactor) + 2*time.Millisecond
			if want := start.Add(DefaultExpiry - drift); !m.Until().Equal(want) {
				t.Errorf("Until() = %v, want %v", m.Until(), want)
			}
		})
	}
}

func TestLockRetriesUntilFree(t *testing.T) {
	c := newFakeCluster(3)
	for _, n := range c.nodes {
		n.set("k", "other")
	}
	var tries atomic.Int32
	m := c.mutex("k", WithTries(5), WithRetryDelayFunc(func(try int) time.Duration {
		if tries.Add(1) == 2 {
			for _, n := range c.nodes {
				n.mu.Lock()
				delete(n.keys, "k")
				n.mu.Unlock()
			}
		}
		return 0
	}))
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil once the other owner left", err)
	}
	if got := tries.Load(); got != 2 {
		t.Errorf("retries = %d, want 2", got)
	}
}

func TestLockPermanentErrorStopsRetrying(t *testing.T) {
	c := newFakeCluster(3)
	wrongType := errors.New("WRONGTYPE the key holds a value that is not a string")
	c.nodes[0].setErr(wrongType)
	c.nodes[1].setErr(wrongType)
	m := c.mutex("k", WithTries(10))
	err := m.Lock()
	if !errors.Is(err, ErrWrongType) || !errors.Is(err, ErrFailed) {
		t.Fatalf("Lock() = %v, want ErrWrongType and ErrFailed", err)
	}
	var re *RedisError
	if !errors.As(err, &re) || (re.Node != 0 && re.Node != 1) {
		t.Errorf("Lock() = %v, want a *RedisError naming node 0 or 1", err)
	}
	// One acquire and one release per node: no retries.
	if got := c.calls(); got != 6 {
		t.Errorf("commands sent = %d, want 6 (one try)", got)
	}
}

func TestLockContext(t *testing.T) {
	t.Run("already cancelled sends nothing", func(t *testing.T) {
		c := newFakeCluster(3)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := c.mutex("k").LockContext(ctx)
		if !errors.Is(err, ErrFailed) || !errors.Is(err, context.Canceled) {
			t.Fatalf("LockContext() = %v, want ErrFailed and context.Canceled", err)
		}
		if got := c.calls(); got != 0 {
			t.Errorf("commands sent = %d, want 0", got)
		}
	})
	t.Run("deadline while retrying", func(t *testing.T) {
		c := newFakeCluster(3)
		for _, n := range c.nodes {
			n.set("k", "other")
		}
		// The deadline passes once the first try failed, however late
		// the scheduler ran it: the delay function ends the context.
		ctx := newDeadlineCtx()
		m := New(c.pools()...).NewMutex("k", WithTries(1000), WithRetryDelayFunc(func(int) time.Duration {
			ctx.expire()
			return 10 * time.Millisecond
		}))
		err := m.LockContext(ctx)
		if !errors.Is(err, ErrFailed) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("LockContext() = %v, want ErrFailed and context.DeadlineExceeded", err)
		}
		var te *ErrTaken
		if !errors.As(err, &te) {
			t.Errorf("LockContext() = %v, want the last try's *ErrTaken too", err)
		}
	})
	t.Run("cancel cause", func(t *testing.T) {
		c := newFakeCluster(1)
		c.nodes[0].set("k", "other")
		cause := errors.New("shutting down")
		ctx, cancel := context.WithCancelCause(context.Background())
		m := New(c.pools()...).NewMutex("k", WithRetryDelay(time.Millisecond), WithTries(1000))
		time.AfterFunc(20*time.Millisecond, func() { cancel(cause) })
		err := m.LockContext(ctx)
		if !errors.Is(err, ErrFailed) || !errors.Is(err, cause) {
			t.Fatalf("LockContext() = %v, want ErrFailed and the cause", err)
		}
	})
	t.Run("cancel during a try undoes it", func(t *testing.T) {
		c := newFakeCluster(3)
		block := make(chan struct{})
		c.nodes[2].block = block
		ctx, cancel := context.WithCancel(context.Background())
		m := New(c.pools()...).NewMutex("k", WithExpiry(time.Hour))
		time.AfterFunc(20*time.Millisecond, cancel)
		// The undo is sent without ctx; let the blocked node answer it.
		time.AfterFunc(40*time.Millisecond, func() { close(block) })
		// Nodes 0 and 1 grant; node 2 blocks until ctx ends. Two grants are
		// a quorum, so to make the try fail node 1 must refuse.
		c.nodes[1].set("k", "other")
		err := m.LockContext(ctx)
		if !errors.Is(err, ErrFailed) || !errors.Is(err, context.Canceled) {
			t.Fatalf("LockContext() = %v, want ErrFailed and context.Canceled", err)
		}
		if v, ok := c.nodes[0].value("k"); ok {
			t.Errorf("node 0 still holds %q after a cancelled Lock", v)
		}
	})
}

// deadlineCtx is a context whose deadline passes when the test calls
// expire: at a point of the test's choosing, not of the scheduler's.
type deadlineCtx struct {
	context.Context // Background: no values, no deadline to tell
	done            chan struct{}
	once            sync.Once
}

func newDeadlineCtx() *deadlineCtx {
	return &deadlineCtx{Context: context.Background(), done: make(chan struct{})}
}

func (c *deadlineCtx) Done() <-chan struct{} { return c.done }

func (c *deadlineCtx) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

func (c *deadlineCtx) expire() { c.once.Do(func() { close(c.done) }) }

func TestFailFast(t *testing.T) {
	c := newFakeCluster(5)
	block := make(chan struct{})
	c.nodes[4].block = block
	// A per-node timeout of 30 s: a Lock that waited for the blocked node
	// would return only then, far later than the 10 s a loaded machine
	// may need for one without it.
	m := c.mutex("k", WithFailFast(true), WithExpiry(time.Minute), WithTimeoutFactor(0.5))
	done := make(chan error, 1)
	go func() { done <- m.Lock() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Lock() = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Lock() with WithFailFast waited for the blocked node")
	}
	ok, err := m.Unlock()
	if !ok || err != nil {
		t.Fatalf("Unlock() = %v, %v, want true, nil", ok, err)
	}
	// The blocked node's commands are still in flight, not cancelled: once
	// it answers, it serves both.
	close(block)
	deadline := time.Now().Add(10 * time.Second)
	for len(c.nodes[4].servedCommands()) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("blocked node served %v, want acquire and release", c.nodes[4].servedCommands())
		}
		time.Sleep(5 * time.Millisecond)
	}
	served := c.nodes[4].servedCommands()
	slices.Sort(served)
	if !slices.Equal(served, []string{"acquire", "release"}) {
		t.Errorf("blocked node served %v, want acquire and release", served)
	}
}

// TestNodeTimeoutEnforced checks that a node whose driver ignores the
// context (as go-redis does by default) still costs only the per-node
// timeout, and is reported as a timeout naming the node.
func TestNodeTimeoutEnforced(t *testing.T) {
	c := newFakeCluster(3)
	deaf := make(chan struct{})
	defer close(deaf)
	c.nodes[1].deaf = deaf
	// The deaf node answers nothing until the test ends: that Lock and
	// Unlock return at all shows that the per-node timeout ended its
	// commands.
	m := c.mutex("k", WithExpiry(time.Second)) // per-node timeout 50ms
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil with 2 of 3 nodes answering", err)
	}
	ok, err := m.Unlock()
	if !ok || err != nil {
		t.Fatalf("Unlock() = %v, %v, want true, nil", ok, err)
	}

	c.nodes[2].deaf = deaf
	err = c.mutex("k2", WithExpiry(time.Second), WithTries(1)).Lock()
	var re *RedisError
	if !errors.Is(err, ErrFailed) || !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &re) {
		t.Fatalf("Lock() = %v, want ErrFailed with a *RedisError timeout", err)
	}
	if re.Node != 1 && re.Node != 2 {
		t.Errorf("RedisError.Node = %d, want 1 or 2", re.Node)
	}
	if !contains(err.Error(), "per-node timeout") {
		t.Errorf("Lock() = %q, want it to mention the per-node timeout", err)
	}
}

func TestUnlock(t *testing.T) {
	t.Run("before lock sends nothing", func(t *testing.T) {
		c := newFakeCluster(3)
		m := c.mutex("k")
		if ok, err := m.Unlock(); ok || !errors.Is(err, ErrNotLocked) {
			t.Fatalf("Unlock() = %v, %v, want false, ErrNotLocked", ok, err)
		}
		if ok, err := m.Extend(); ok || !errors.Is(err, ErrNotLocked) {
			t.Fatalf("Extend() = %v, %v, want false, ErrNotLocked", ok, err)
		}
		if ok, err := m.Valid(); ok || !errors.Is(err, ErrNotLocked) {
			t.Fatalf("Valid() = %v, %v, want false, ErrNotLocked", ok, err)
		}
		if got := c.calls(); got != 0 {
			t.Errorf("commands sent = %d, want 0", got)
		}
	})
	t.Run("expired", func(t *testing.T) {
		c := newFakeCluster(3)
		m := c.mutex("k")
		if err := m.Lock(); err != nil {
			t.Fatal(err)
		}
		for _, n := range c.nodes {
			n.mu.Lock()
			delete(n.keys, "k")
			n.mu.Unlock()
		}
		ok, err := m.Unlock()
		if ok || !errors.Is(err, ErrLockAlreadyExpired) {
			t.Fatalf("Unlock() = %v, %v, want false, ErrLockAlreadyExpired", ok, err)
		}
	})
	t.Run("failed nodes are not an expiry", func(t *testing.T) {
		c := newFakeCluster(3)
		m := c.mutex("k")
		if err := m.Lock(); err != nil {
			t.Fatal(err)
		}
		c.nodes[0].mu.Lock()
		delete(c.nodes[0].keys, "k")
		c.nodes[0].mu.Unlock()
		boom := errors.New("connection reset")
		c.nodes[1].setErr(boom)
		c.nodes[2].setErr(boom)
		ok, err := m.Unlock()
		if ok || !errors.Is(err, boom) || errors.Is(err, ErrLockAlreadyExpired) {
			t.Fatalf("Unlock() = %v, %v, want false and the node errors, not ErrLockAlreadyExpired", ok, err)
		}
	})
	t.Run("with value from elsewhere", func(t *testing.T) {
		c := newFakeCluster(3)
		owner := c.mutex("k")
		if err := owner.Lock(); err != nil {
			t.Fatal(err)
		}
		other := c.mutex("k", WithValue(owner.Value()))
		if ok, err := other.Unlock(); !ok || err != nil {
			t.Fatalf("Unlock() = %v, %v, want true, nil", ok, err)
		}
		if got := c.keys("k"); got != 0 {
			t.Errorf("nodes with the key = %d, want 0", got)
		}
	})
	t.Run("taken by another", func(t *testing.T) {
		c := newFakeCluster(3)
		m := c.mutex("k", WithValue("mine"))
		for _, n := range c.nodes {
			n.set("k", "other")
		}
		ok, err := m.Unlock()
		var nt *ErrNodeTaken
		if ok || !errors.As(err, &nt) {
			t.Fatalf("Unlock() = %v, %v, want false and *ErrNodeTaken", ok, err)
		}
		if got := c.holders("k", "other"); got != 3 {
			t.Errorf("the other owner's keys = %d, want 3 untouched", got)
		}
	})
}

func TestExtend(t *testing.T) {
	t.Run("moves until", func(t *testing.T) {
		c := newFakeCluster(3)
		m := c.mutex("k")
		if err := m.Lock(); err != nil {
			t.Fatal(err)
		}
		before := m.Until()
		c.clock.Advance(time.Second)
		if ok, err := m.Extend(); !ok || err != nil {
			t.Fatalf("Extend() = %v, %v, want true, nil", ok, err)
		}
		if got := m.Until().Sub(before); got != time.Second {
			t.Errorf("Until moved by %v, want 1s", got)
		}
	})
	t.Run("expired", func(t *testing.T) {
		c := newFakeCluster(3)
		m := c.mutex("k")
		if err := m.Lock(); err != nil {
			t.Fatal(err)
		}
		for _, n := range c.nodes[:2] {
			n.mu.Lock()
			delete(n.keys, "k")
			n.mu.Unlock()
		}
		ok, err := m.Extend()
		if ok || !errors.Is(err, ErrExtendFailed) || !errors.Is(err, ErrLockAlreadyExpired) {
			t.Fatalf("Extend() = %v, %v, want false, ErrExtendFailed and ErrLockAlreadyExpired", ok, err)
		}
		var te *ErrTaken
		if errors.As(err, &te) {
			t.Errorf("Extend() = %v, must not report the expired lock as taken", err)
		}
	})
	t.Run("lost to another owner", func(t *testing.T) {
		c := newFakeCluster(3)
		m := c.mutex("k")
		if err := m.Lock(); err != nil {
			t.Fatal(err)
		}
		for _, n := range c.nodes[:2] {
			n.set("k", "thief")
		}
		ok, err := m.Extend()
		var nt *ErrNodeTaken
		if ok || !errors.Is(err, ErrExtendFailed) || errors.Is(err, ErrLockAlreadyExpired) || !errors.As(err, &nt) {
			t.Fatalf("Extend() = %v, %v, want false, ErrExtendFailed with *ErrNodeTaken", ok, err)
		}
	})
	t.Run("set nx on extend", func(t *testing.T) {
		c := newFakeCluster(3)
		m := c.mutex("k", WithSetNXOnExtend())
		if err := m.Lock(); err != nil {
			t.Fatal(err)
		}
		for _, n := range c.nodes[:2] {
			n.mu.Lock()
			delete(n.keys, "k")
			n.mu.Unlock()
		}
		if ok, err := m.Extend(); !ok || err != nil {
			t.Fatalf("Extend() = %v, %v, want true, nil", ok, err)
		}
		if got := c.holders("k", m.Value()); got != 3 {
			t.Errorf("nodes holding the value = %d, want 3", got)
		}
	})
	t.Run("slow quorum is not an extension", func(t *testing.T) {
		c := newFakeCluster(1)
		m := c.mutex("k")
		if err := m.Lock(); err != nil {
			t.Fatal(err)
		}
		before := m.Until()
		c.nodes[0].latency = DefaultExpiry
		ok, err := m.Extend()
		if ok || !errors.Is(err, ErrExtendFailed) {
			t.Fatalf("Extend() = %v, %v, want false, ErrExtendFailed", ok, err)
		}
		if !m.Until().Equal(before) {
			t.Errorf("Until() moved to %v after a failed Extend", m.Until())
		}
	})
}

func TestValid(t *testing.T) {
	c := newFakeCluster(3)
	m := c.mutex("k")
	if err := m.Lock(); err != nil {
		t.Fatal(err)
	}
	if ok, err := m.Valid(); !ok || err != nil {
		t.Fatalf("Valid() = %v, %v, want true, nil", ok, err)
	}
	c.nodes[0].set("k", "other")
	c.nodes[1].set("k", "other")
	if ok, _ := m.Valid(); ok {
		t.Fatal("Valid() = true with the lock taken on 2 of 3 nodes")
	}
}

func TestConfigErrors(t *testing.T) {
	node := newFakeNode(nil)
	tests := []struct {
		name  string
		pools []redis.Pool
		mutex string
		opts  []Option
		want  string // part of the error text
	}{
		{"no pools", nil, "k", nil, "no Redis pools"},
		{"nil pool", []redis.Pool{node, nil}, "k", nil, "pool #1 is nil"},
		{"empty name", []redis.Pool{node}, "", nil, "empty mutex name"},
		{"zero expiry", []redis.Pool{node}, "k", []Option{WithExpiry(0)}, "expiry is 0s"},
		{"negative expiry", []redis.Pool{node}, "k", []Option{WithExpiry(-time.Second)}, "expiry is -1s"},
		{"expiry below node timeout", []redis.Pool{node}, "k", []Option{WithExpiry(10 * time.Millisecond)}, "per-node timeout"},
		{"expiry without validity", []redis.Pool{node}, "k", []Option{WithExpiry(20 * time.Millisecond), WithTimeoutFactor(0.9)}, "leave no validity"},
		{"zero tries", []redis.Pool{node}, "k", []Option{WithTries(0)}, "tries is 0"},
		{"drift factor 1", []redis.Pool{node}, "k", []Option{WithDriftFactor(1)}, "drift factor is 1"},
		{"negative drift", []redis.Pool{node}, "k", []Option{WithDriftFactor(-0.1)}, "drift factor is -0.1"},
		{"NaN drift", []redis.Pool{node}, "k", []Option{WithDriftFactor(math.NaN())}, "drift factor is NaN"},
		{"timeout factor 1", []redis.Pool{node}, "k", []Option{WithTimeoutFactor(1)}, "timeout factor is 1"},
		{"nil delay func", []redis.Pool{node}, "k", []Option{WithRetryDelayFunc(nil)}, "nil retry delay"},
		{"nil value func", []redis.Pool{node}, "k", []Option{WithGenValueFunc(nil)}, "nil value generator"},
		{"huge value", []redis.Pool{node}, "k", []Option{WithValue(string(make([]byte, 5000)))}, "5000 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(tt.pools...).NewMutex(tt.mutex, tt.opts...)
			calls := []struct {
				method string
				err    error
			}{
				{"Lock", m.Lock()},
				{"TryLock", m.TryLock()},
				{"Unlock", second(m.Unlock())},
				{"Extend", second(m.Extend())},
				{"Valid", second(m.Valid())},
			}
			for _, c := range calls {
				if !errors.Is(c.err, ErrInvalidConfig) {
					t.Errorf("%s() = %v, want ErrInvalidConfig", c.method, c.err)
					continue
				}
				if got := c.err.Error(); !contains(got, tt.want) {
					t.Errorf("%s() = %q, want it to mention %q", c.method, got, tt.want)
				}
			}
			if got := node.calls.Load(); got != 0 {
				t.Errorf("commands sent = %d, want 0", got)
			}
		})
	}
}

func second[T any](_ T, err error) error { return err }

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func TestGenValueErrors(t *testing.T) {
	boom := errors.New("entropy exhausted")
	tests := []struct {
		name string
		gen  func() (string, error)
		want error
	}{
		{"error", func() (string, error) { return "", boom }, boom},
		{"empty", func() (string, error) { return "", nil }, ErrInvalidConfig},
		{"huge", func() (string, error) { return string(make([]byte, maxValueLen+1)), nil }, ErrInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeCluster(3)
			err := c.mutex("k", WithGenValueFunc(tt.gen)).Lock()
			if !errors.Is(err, tt.want) {
				t.Fatalf("Lock() = %v, want %v", err, tt.want)
			}
			if got := c.calls(); got != 0 {
				t.Errorf("commands sent = %d, want 0", got)
			}
		})
	}
}

func TestGenValue(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		v, err := genValue()
		if err != nil {
			t.Fatal(err)
		}
		if len(v) != 24 { // 16 bytes, base64
			t.Fatalf("genValue() = %q, want 24 characters", v)
		}
		if seen[v] {
			t.Fatalf("genValue() repeated %q", v)
		}
		seen[v] = true
	}
}

// TestMutexConcurrentUse shares one Mutex between goroutines: Lock in one
// must wait while another holds the lock, and -race must stay quiet. The
// fake nodes answer at once, so only the scheduler can make a command late:
// with an expiry of an hour, the per-node timeout is 3 minutes, which no
// scheduler reaches.
func TestMutexConcurrentUse(t *testing.T) {
	c := newFakeCluster(3)
	m := New(c.pools()...).NewMutex("k", WithExpiry(time.Hour), WithRetryDelay(50*time.Microsecond), WithTries(1_000_000))
	var inside, overlaps, total atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if err := m.Lock(); err != nil {
					t.Errorf("Lock() = %v", err)
					return
				}
				if inside.Add(1) != 1 {
					overlaps.Add(1)
				}
				total.Add(1)
				_ = m.Value()
				_ = m.Until()
				time.Sleep(100 * time.Microsecond)
				inside.Add(-1)
				if ok, err := m.Unlock(); !ok || err != nil {
					t.Errorf("Unlock() = %v, %v", ok, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if overlaps.Load() != 0 {
		t.Errorf("overlapping holders = %d, want 0", overlaps.Load())
	}
	if total.Load() != 160 {
		t.Errorf("critical sections = %d, want 160", total.Load())
	}
}

func TestShufflePools(t *testing.T) {
	c := newFakeCluster(5)
	rs := New(c.pools()...)
	orders := map[string]bool{}
	for range 50 {
		m := rs.NewMutex("k", WithShufflePools(true))
		order := ""
		for _, p := range m.nodes.pools {
			order += fmt.Sprintf("%p,", p)
		}
		orders[order] = true
	}
	if len(orders) < 2 {
		t.Errorf("50 shuffled mutexes used %d node orders, want several", len(orders))
	}
	// The Redsync's own order is untouched.
	for i, p := range rs.nodes.pools {
		if p != redis.Pool(c.nodes[i]) {
			t.Fatalf("Redsync pool %d changed by shuffling", i)
		}
	}
}

// TestLockCutShortKeepsLastError: when ctx's deadline cuts a try short,
// LockContext's error carries the error of the try before it (here
// ErrTaken), not the timeouts of the try that the deadline ended.
func TestLockCutShortKeepsLastError(t *testing.T) {
	c := newFakeCluster(3)
	for _, n := range c.nodes {
		n.set("k", "other")
	}
	hold := make(chan struct{})
	defer close(hold)
	m := c.mutex("k", WithTries(100), WithRetryDelayFunc(func(int) time.Duration {
		// After the first try: every command now waits until ctx ends.
		for _, n := range c.nodes {
			n.mu.Lock()
			n.block = hold
			n.mu.Unlock()
		}
		return 0
	}), WithExpiry(2*time.Second), WithTimeoutFactor(0.5))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := m.LockContext(ctx)
	var taken *ErrTaken
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &taken) {
		t.Errorf("LockContext() = %v, want an error matching DeadlineExceeded and *ErrTaken (the try before the deadline)", err)
	}
}
