package redsync

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// semaphore returns a semaphore over the cluster that reads the fake clock
// and retries without waiting.
func (c *fakeCluster) semaphore(name string, permits int, opts ...Option) *Semaphore {
	opts = append([]Option{WithRetryDelay(0)}, opts...)
	s := New(c.pools()...).NewSemaphore(name, permits, opts...)
	s.now = c.clock.Now
	return s
}

// acquires counts the acquire scripts each node received.
func (c *fakeCluster) acquires() []int {
	counts := make([]int, len(c.nodes))
	for i, n := range c.nodes {
		for _, cmd := range n.ran() {
			if cmd == "acquire" {
				counts[i]++
			}
		}
	}
	return counts
}

func TestSemaphoreSweepCost(t *testing.T) {
	const permits = 4
	c := newFakeCluster(3)
	s := c.semaphore("sem", permits)
	ctx := context.Background()
	held := map[int]*Permit{}
	for range permits {
		p, err := s.TryAcquire(ctx)
		if err != nil {
			t.Fatalf("TryAcquire() = %v, want nil", err)
		}
		if held[p.Slot()] != nil {
			t.Fatalf("TryAcquire() took slot %d twice", p.Slot())
		}
		held[p.Slot()] = p
	}
	// Filling P permits one by one costs between P and P(P+1)/2 rounds.
	for i, n := range c.acquires() {
		if n < permits || n > permits*(permits+1)/2 {
			t.Errorf("node %d got %d acquire scripts while %d permits were taken, want %d to %d", i, n, permits, permits, permits*(permits+1)/2)
		}
	}

	// Full: one sweep is one round per slot, and nothing to undo.
	for _, n := range c.nodes {
		n.mu.Lock()
		n.scripts = nil
		n.mu.Unlock()
	}
	_, err := s.TryAcquire(ctx)
	if !errors.Is(err, ErrFailed) || !errors.As(err, new(*ErrTaken)) || err.Error() != `redsync: no permit of semaphore "sem" acquired: all 4 permits are held` {
		t.Errorf("TryAcquire() when full = %v, want ErrFailed, *ErrTaken, all 4 permits held", err)
	}
	for i, n := range c.nodes {
		if got := strings.Join(n.ran(), ","); got != "acquire,acquire,acquire,acquire" {
			t.Errorf("node %d ran %s for a sweep of a full semaphore, want 4 acquire scripts", i, got)
		}
	}

	// Acquire makes WithTries sweeps.
	s3 := c.semaphore("sem", permits, WithTries(3))
	for _, n := range c.nodes {
		n.mu.Lock()
		n.scripts = nil
		n.mu.Unlock()
	}
	if _, err := s3.Acquire(ctx); !errors.Is(err, ErrFailed) {
		t.Errorf("Acquire() when full = %v, want ErrFailed", err)
	}
	if got := c.acquires(); got[0] != 3*permits {
		t.Errorf("Acquire() with 3 tries when full sent %d acquire scripts to node 0, want %d", got[0], 3*permits)
	}

	// A free slot stops the sweep: at most one round per slot, one
	// permit taken.
	if ok, err := held[2].Release(ctx); !ok || err != nil {
		t.Fatalf("Release() = %v, %v; want true, nil", ok, err)
	}
	for _, n := range c.nodes {
		n.mu.Lock()
		n.scripts = nil
		n.mu.Unlock()
	}
	p, err := s.TryAcquire(ctx)
	if err != nil || p.Slot() != 2 || p.Key() != "sem:permit:2" {
		t.Fatalf("TryAcquire() with slot 2 free = %v, %v; want slot 2 (sem:permit:2)", p, err)
	}
	if got := c.acquires()[0]; got < 1 || got > permits {
		t.Errorf("TryAcquire() with one slot free sent %d acquire scripts, want 1 to %d", got, permits)
	}
}

func TestSemaphoreFakeNodesFailing(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		err       error
		tries     int
		wantSweep int // acquire scripts each working node gets
	}{
		// One slot's try shows that no slot can get a quorum: each sweep
		// stops there, and Acquire tries again.
		{"transient", errors.New("connection reset by peer"), 3, 3},
		// Errors that another try does not cure end Acquire.
		{"permanent", errors.New("NOAUTH Authentication required."), 3, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeCluster(3)
			c.nodes[0].setErr(tt.err)
			c.nodes[1].setErr(tt.err)
			s := c.semaphore("sem", 5, WithTries(tt.tries))
			_, err := s.Acquire(ctx)
			var re *RedisError
			if !errors.Is(err, ErrFailed) || !errors.As(err, &re) || errors.As(err, new(*ErrTaken)) {
				t.Errorf("Acquire() with 2 of 3 nodes failing = %v, want ErrFailed, a *RedisError and no *ErrTaken", err)
			}
			if !strings.Contains(err.Error(), "0 of 5 permits held, 1 failed, 4 not tried") {
				t.Errorf("Acquire() = %q, want it to say that 1 slot failed and 4 were not tried", err)
			}
			if got := c.acquires()[2]; got != tt.wantSweep {
				t.Errorf("the working node got %d acquire scripts, want %d", got, tt.wantSweep)
			}
		})
	}

	t.Run("minority", func(t *testing.T) {
		c := newFakeCluster(3)
		c.nodes[1].setErr(errors.New("connection refused"))
		s := c.semaphore("sem", 2)
		for range 2 {
			if _, err := s.TryAcquire(ctx); err != nil {
				t.Fatalf("TryAcquire() with 1 of 3 nodes failing = %v, want nil", err)
			}
		}
	})
}

func TestSemaphoreNodeFailures(t *testing.T) {
	s := New(newFakeCluster(5).pools()...).NewSemaphore("sem", 2)
	wrongType := &RedisError{Node: 0, Err: fmt.Errorf("%w: WRONGTYPE Operation against a key", ErrWrongType)}
	reset := func(node int) error { return &RedisError{Node: node, Err: errors.New("connection reset")} }
	noAuth := func(node int) error {
		return &RedisError{Node: node, Err: errors.New("NOAUTH Authentication required.")}
	}
	tests := []struct {
		name          string
		err           error
		wantFailed    int
		wantPermanent bool
	}{
		{"taken", &ErrTaken{Nodes: []int{0, 1, 2}}, 0, false},
		{"two resets", errors.Join(ErrFailed, reset(1), reset(3)), 2, false},
		{"a node counted once", errors.Join(ErrFailed, reset(1), fmt.Errorf("again: %w", reset(1))), 1, false},
		{"wrong type is the key's", errors.Join(ErrFailed, wrongType, reset(1)), 1, false},
		{"three denied", errors.Join(ErrFailed, noAuth(0), noAuth(2), noAuth(4)), 3, true},
		{"wrong type everywhere", errors.Join(ErrFailed, wrongType,
			&RedisError{Node: 1, Err: wrongType.Err}, &RedisError{Node: 2, Err: wrongType.Err}), 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			failed, permanent := s.nodeFailures(tt.err)
			if failed != tt.wantFailed || permanent != tt.wantPermanent {
				t.Errorf("nodeFailures(%v) = %d, %t; want %d, %t", tt.err, failed, permanent, tt.wantFailed, tt.wantPermanent)
			}
		})
	}
}

func TestSemaphoreBadConfigSendsNothing(t *testing.T) {
	c := newFakeCluster(3)
	for _, s := range []*Semaphore{
		c.semaphore("sem", 0),
		c.semaphore("", 1),
		c.semaphore("sem", 1, WithValue("v")),
		c.semaphore("sem", 1, WithFencing()),
		c.semaphore("sem", 1, WithExpiry(0)),
		New().NewSemaphore("sem", 1),
		new(Semaphore), // the zero Semaphore
	} {
		ctx := context.Background()
		if _, err := s.Acquire(ctx); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Acquire() of NewSemaphore(%q, %d) = %v, want ErrInvalidConfig", s.Name(), s.Permits(), err)
		}
		if _, err := s.TryAcquire(ctx); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("TryAcquire() = %v, want ErrInvalidConfig", err)
		}
		if err := s.Do(ctx, func(context.Context) error { return nil }); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Do() = %v, want ErrInvalidConfig", err)
		}
	}
	if n := c.calls(); n != 0 {
		t.Errorf("badly configured semaphores sent %d commands, want none", n)
	}

	// A value generator whose value is refused ends Acquire at once.
	s := c.semaphore("sem", 3, WithGenValueFunc(func() (string, error) { return "", nil }), WithTries(5))
	if _, err := s.Acquire(context.Background()); !errors.Is(err, ErrInvalidConfig) || !errors.Is(err, ErrFailed) {
		t.Errorf("Acquire() with a value generator that returns \"\" = %v, want ErrInvalidConfig within ErrFailed", err)
	}
	if n := c.calls(); n != 0 {
		t.Errorf("Acquire() with a refused value sent %d commands, want none", n)
	}
}
