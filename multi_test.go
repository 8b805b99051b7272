package redsync

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// multiMutex is fakeCluster.mutex for NewMultiMutex.
func (c *fakeCluster) multiMutex(names []string, opts ...Option) *Mutex {
	opts = append([]Option{WithRetryDelay(0)}, opts...)
	m := New(c.pools()...).NewMultiMutex(names, opts...)
	m.now = c.clock.Now
	return m
}

// clusteredNode is a fake node whose pool says it is a cluster client.
type clusteredNode struct{ *fakeNode }

func (clusteredNode) Clustered() bool { return true }

func TestMultiMutexBadInput(t *testing.T) {
	tests := []struct {
		name  string
		names []string
		opts  []Option
		want  string
	}{
		{"no names", nil, nil, "no names"},
		{"empty name", []string{"a", ""}, nil, "name #1 is empty"},
		{"repeated name", []string{"a", "b", "a"}, nil, `name "a" is given twice (#0 and #2)`},
		{"fencing with SetNX", []string{"a", "b"}, []Option{WithFencing(), WithSetNXOnExtend()}, "cannot be combined"},
		{"short restart guard", []string{"a", "b"}, []Option{WithRestartGuard(time.Millisecond)}, "restart guard maxTTL"},
		{"bad option", []string{"a", "b"}, []Option{WithTries(0)}, "tries is 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeCluster(3)
			m := c.multiMutex(tt.names, tt.opts...)
			for _, call := range []struct {
				name string
				err  error
			}{
				{"Lock", m.Lock()},
				{"TryLock", m.TryLock()},
				{"Extend", second(m.Extend())},
				{"Unlock", second(m.Unlock())},
			} {
				if !errors.Is(call.err, ErrInvalidConfig) || !strings.Contains(call.err.Error(), tt.want) {
					t.Errorf("%s() = %v, want an error matching ErrInvalidConfig that says %q", call.name, call.err, tt.want)
				}
			}
			if n := c.calls(); n != 0 {
				t.Errorf("commands sent = %d, want 0", n)
			}
		})
	}
}

func TestMultiMutexClusterSlots(t *testing.T) {
	c := newFakeCluster(3)
	pools := c.pools()
	pools[1] = clusteredNode{c.nodes[1]}
	rs := New(pools...)

	m := rs.NewMultiMutex([]string{"order:42:stock", "order:42:payment"})
	err := m.Lock()
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "pool #1 is a Redis Cluster client") || !strings.Contains(err.Error(), "hash tag") {
		t.Errorf("Lock() of names in different slots = %v, want an error matching ErrInvalidConfig naming pool #1 and hash tags", err)
	}
	if n := c.calls(); n != 0 {
		t.Errorf("commands sent = %d, want 0", n)
	}

	tagged := rs.NewMultiMutex([]string{"{order:42}:stock", "{order:42}:payment"})
	if err := tagged.Lock(); err != nil {
		t.Fatalf("Lock() of names with a common hash tag = %v, want nil", err)
	}
	if ok, err := tagged.Unlock(); !ok || err != nil {
		t.Errorf("Unlock() = %v, %v, want true, nil", ok, err)
	}

	// Without a cluster client, any names do.
	plain := New(c.pools()...).NewMultiMutex([]string{"order:42:stock", "order:42:payment"})
	if err := plain.Lock(); err != nil {
		t.Fatalf("Lock() without a cluster client = %v, want nil", err)
	}
	if ok, err := plain.Unlock(); !ok || err != nil {
		t.Errorf("Unlock() = %v, %v, want true, nil", ok, err)
	}
}

// TestMultiMutexOverlap: sets that share a name exclude each other, and
// a single name excludes the sets that hold it; disjoint ones do not.
func TestMultiMutexOverlap(t *testing.T) {
	c := newFakeCluster(5)
	ab := c.multiMutex([]string{"a", "b"})
	bc := c.multiMutex([]string{"b", "c"}, WithTries(2))
	b := c.mutex("b", WithTries(2))
	cd := c.multiMutex([]string{"c", "d"})

	if err := ab.Lock(); err != nil {
		t.Fatalf("{a,b}.Lock() = %v, want nil", err)
	}
	if got := c.holders("a", ab.Value()) + c.holders("b", ab.Value()); got != 10 {
		t.Errorf("nodes x names holding {a,b}'s value = %d, want 10", got)
	}
	var taken *ErrTaken
	if err := bc.Lock(); !errors.As(err, &taken) {
		t.Errorf("{b,c}.Lock() while {a,b} is held = %v, want *ErrTaken", err)
	}
	if err := b.Lock(); !errors.As(err, &taken) {
		t.Errorf("b.Lock() while {a,b} is held = %v, want *ErrTaken", err)
	}
	// The failed tries wrote nothing: c is free, and {c,d} gets it.
	if got := c.keys("c"); got != 0 {
		t.Errorf("nodes with key c after the failed {b,c} Lock = %d, want 0", got)
	}
	if err := cd.Lock(); err != nil {
		t.Fatalf("{c,d}.Lock() = %v, want nil", err)
	}
	if ok, err := ab.Unlock(); !ok || err != nil {
		t.Fatalf("{a,b}.Unlock() = %v, %v, want true, nil", ok, err)
	}
	if got := c.keys("a") + c.keys("b"); got != 0 {
		t.Errorf("nodes with keys a or b after Unlock = %d, want 0", got)
	}
	if err := b.Lock(); err != nil {
		t.Errorf("b.Lock() after {a,b}.Unlock = %v, want nil", err)
	}
	for _, m := range []*Mutex{b, cd} {
		if ok, err := m.Unlock(); !ok || err != nil {
			t.Errorf("%s.Unlock() = %v, %v, want true, nil", m.Name(), ok, err)
		}
	}
}

// TestMultiMutexQuorum: the set is held when a quorum of nodes granted
// every name; a node where another owner holds one name grants none.
func TestMultiMutexQuorum(t *testing.T) {
	for blocked := 0; blocked <= 5; blocked++ {
		t.Run(fmt.Sprintf("blocked=%d", blocked), func(t *testing.T) {
			c := newFakeCluster(5)
			for i := range blocked {
				c.nodes[i].set("y", "other") // one name of the set, taken
			}
			m := c.multiMutex([]string{"x", "y", "z"}, WithTries(1))
			err := m.Lock()
			if wantOK := 5-blocked >= 3; (err == nil) != wantOK {
				t.Fatalf("Lock() = %v, want success %v", err, wantOK)
			}
			if err == nil {
				for _, name := range []string{"x", "y", "z"} {
					if got := c.holders(name, m.Value()); got != 5-blocked {
						t.Errorf("nodes where %s holds the value = %d, want %d", name, got, 5-blocked)
					}
				}
				if ok, err := m.Unlock(); !ok || err != nil {
					t.Errorf("Unlock() = %v, %v, want true, nil", ok, err)
				}
			}
			// Nothing of ours is left, and the other owner's keys are.
			if got := c.keys("x") + c.keys("z"); got != 0 {
				t.Errorf("nodes with x or z = %d, want 0", got)
			}
			if got := c.holders("y", "other"); got != blocked {
				t.Errorf("nodes where y holds the other owner's value = %d, want %d", got, blocked)
			}
		})
	}
}

// TestMultiMutexExtendAndValid: Extend and Valid need every name on a
// quorum of nodes.
func TestMultiMutexExtendAndValid(t *testing.T) {
	c := newFakeCluster(3)
	m := c.multiMutex([]string{"x", "y"})
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil", err)
	}
	if ok, err := m.Extend(); !ok || err != nil {
		t.Errorf("Extend() = %v, %v, want true, nil", ok, err)
	}
	if ok, err := m.Valid(); !ok || err != nil {
		t.Errorf("Valid() = %v, %v, want true, nil", ok, err)
	}
	// y vanishes on two nodes (eviction, say): the set is no longer held
	// on a quorum.
	for _, n := range c.nodes[:2] {
		n.mu.Lock()
		delete(n.keys, "y")
		n.mu.Unlock()
	}
	if ok, err := m.Valid(); ok || err != nil {
		t.Errorf("Valid() with y gone on 2 of 3 nodes = %v, %v, want false, nil", ok, err)
	}
	ok, err := m.Extend()
	if ok || !errors.Is(err, ErrExtendFailed) || !errors.Is(err, ErrLockAlreadyExpired) {
		t.Errorf("Extend() with y gone on 2 of 3 nodes = %v, %v, want false and an error matching ErrExtendFailed and ErrLockAlreadyExpired", ok, err)
	}
	// The failed extension wrote nothing: x is still there, and Unlock
	// removes it.
	if ok, err := m.Unlock(); !ok || err != nil {
		t.Errorf("Unlock() = %v, %v, want true, nil (x still held on every node)", ok, err)
	}
	if got := c.keys("x") + c.keys("y"); got != 0 {
		t.Errorf("keys left = %d, want 0", got)
	}
}

// TestMultiMutexSetNXOnExtend: with WithSetNXOnExtend, Extend sets the
// names that are missing.
func TestMultiMutexSetNXOnExtend(t *testing.T) {
	c := newFakeCluster(3)
	m := c.multiMutex([]string{"x", "y"}, WithSetNXOnExtend())
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil", err)
	}
	for _, n := range c.nodes {
		n.mu.Lock()
		delete(n.keys, "y")
		n.mu.Unlock()
	}
	if ok, err := m.Extend(); !ok || err != nil {
		t.Errorf("Extend() = %v, %v, want true, nil", ok, err)
	}
	if got := c.holders("y", m.Value()); got != 3 {
		t.Errorf("nodes where y holds the value after Extend = %d, want 3", got)
	}
	if ok, err := m.Unlock(); !ok || err != nil {
		t.Errorf("Unlock() = %v, %v, want true, nil", ok, err)
	}
}

// TestMultiMutexOneName: NewMultiMutex of one name is NewMutex.
func TestMultiMutexOneName(t *testing.T) {
	c := newFakeCluster(3)
	m := c.multiMutex([]string{"x"}, WithFencing())
	if m.names != nil || m.Name() != "x" {
		t.Fatalf("NewMultiMutex of one name: names %v, Name() %q; want a Mutex of name x", m.names, m.Name())
	}
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil", err)
	}
	if m.FencingToken() == 0 {
		t.Errorf("FencingToken() = 0, want a token: options of a Mutex of one name apply")
	}
	if ok, err := m.Unlock(); !ok || err != nil {
		t.Errorf("Unlock() = %v, %v, want true, nil", ok, err)
	}
}
