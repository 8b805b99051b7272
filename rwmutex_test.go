package redsync

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-redlock/redsync/redis"
)

func TestRWKey(t *testing.T) {
	// Names with and without hash tags, with braces that make no tag, and
	// names that a derived key of another name could be confused with.
	names := []string{"doc", "{doc}", "{doc:7}:lock", "x{tag}y", "a{b", "{}x", "{}{x}", "a}b", "}",
		"doc:readers", "{doc}:readers", "redsync:rw:{x}:doc", ""}
	seen := map[string]string{}
	for _, name := range names {
		readers, waiting := rwKey(name, readersSuffix), rwKey(name, waitingSuffix)
		if want := rwKeyPrefix; !strings.HasPrefix(readers, want) || !strings.HasSuffix(readers, name+readersSuffix) ||
			!strings.HasPrefix(waiting, want) || !strings.HasSuffix(waiting, name+waitingSuffix) {
			t.Errorf("rwKey(%q) = %q and %q; want %s{tag}:NAME%s and ...%s", name, readers, waiting, want, readersSuffix, waitingSuffix)
		}
		slot := keySlot(name)
		if keySlot(readers) != slot || keySlot(waiting) != slot {
			t.Errorf("slots of %q, %q, %q = %d, %d, %d; want one slot", name, readers, waiting, slot, keySlot(readers), keySlot(waiting))
		}
		for _, k := range []string{readers, waiting} {
			if other, ok := seen[k]; ok {
				t.Errorf("%q and %q both derive %q", other, name, k)
			}
			seen[k] = name
		}
	}
	// No derived key is a name's own key.
	for k, name := range seen {
		if slices.Contains(names, k) {
			t.Errorf("%q derives %q, the writer's key of that name", name, k)
		}
	}
}

// TestRWMutexBadInput checks that a configuration an RWMutex refuses
// makes every method fail with ErrInvalidConfig, naming the problem, and
// sends nothing.
func TestRWMutexBadInput(t *testing.T) {
	tests := []struct {
		desc string
		name string
		opts []Option
		want string
	}{
		{"empty name", "", nil, "empty mutex name"},
		{"fencing", "doc", []Option{WithFencing()}, "WithFencing"},
		{"setNX on extend", "doc", []Option{WithSetNXOnExtend()}, "WithSetNXOnExtend"},
		{"value", "doc", []Option{WithValue("v")}, "WithValue"},
		{"expiry", "doc", []Option{WithExpiry(0)}, "expiry"},
		{"tries", "doc", []Option{WithTries(0)}, "tries"},
		{"restart guard shorter than expiry", "doc", []Option{WithRestartGuard(time.Second)}, "restart guard"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			c := newRWCluster(3)
			rw := c.rwmutex(tt.name, tt.opts...)
			check := func(call string, err error) {
				t.Helper()
				if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("%s = %v; want an error matching ErrInvalidConfig that names %q", call, err, tt.want)
				}
			}
			ctx := context.Background()
			check("Lock()", rw.Lock())
			check("TryLock()", rw.TryLock())
			check("RLock()", rw.RLock())
			check("TryRLock()", rw.TryRLock())
			_, err := rw.Unlock()
			check("Unlock()", err)
			_, err = rw.RUnlock()
			check("RUnlock()", err)
			_, err = rw.Extend()
			check("Extend()", err)
			_, err = rw.RExtend()
			check("RExtend()", err)
			ran := false
			run := func(context.Context) error { ran = true; return nil }
			check("Do()", rw.Do(ctx, run))
			check("RDo()", rw.RDo(ctx, run))
			if ran {
				t.Error("Do or RDo ran the function of a bad configuration")
			}
			if cause := context.Cause(rw.Context()); !errors.Is(cause, ErrInvalidConfig) {
				t.Errorf("context.Cause(Context()) = %v; want it to match ErrInvalidConfig", cause)
			}
			if n := c.commands(); n != 0 {
				t.Errorf("the nodes received %d commands; want none", n)
			}
		})
	}
}

// TestRWMutexSides checks the engine's hooks for the sides of an RWMutex:
// no SET NX shortcut, no release notification, no hand-off, no Valid.
func TestRWMutexSides(t *testing.T) {
	c := newRWCluster(3)
	rw := c.rwmutex("doc")
	for _, side := range []struct {
		name    string
		m       *Mutex
		acquire *redis.Script
		release *redis.Script
		undo    *redis.Script // nil: release
	}{
		{"writer", rw.w, rwWriteAcquireScripts[0], rwWriteReleaseScript, releaseScript},
		{"reader", rw.newSide(rw.read), rwReadAcquireScripts[0], rwReadReleaseScript, nil},
	} {
		t.Run(side.name, func(t *testing.T) {
			m := side.m
			calls := m.makeCalls("v")
			if calls.setNX != nil {
				t.Errorf("makeCalls: setNX = %v; want none", calls.setNX)
			}
			if calls.acquire.Script() != side.acquire || calls.release.Script() != side.release || calls.undo.Script() != side.undo {
				t.Errorf("makeCalls: acquire, release and undo scripts are not the %s's", side.name)
			}
			if m.listens() || m.canHandOver() || m.canTakeOver() {
				t.Errorf("listens, canHandOver, canTakeOver = %v, %v, %v; want false", m.listens(), m.canHandOver(), m.canTakeOver())
			}
			if ok, err := m.Valid(); ok || !errors.Is(err, errNoValid) {
				t.Errorf("Valid() = %v, %v; want false, errNoValid", ok, err)
			}
		})
	}
}

func TestRWMutexFake(t *testing.T) {
	c := newRWCluster(3)
	a, b := c.rwmutex("doc"), c.rwmutex("doc")
	readers := rwKey("doc", readersSuffix)
	waiting := rwKey("doc", waitingSuffix)

	if _, err := a.RUnlock(); !errors.Is(err, ErrNotLocked) {
		t.Errorf("RUnlock() without RLock = %v; want ErrNotLocked", err)
	}
	if _, err := a.RExtend(); !errors.Is(err, ErrNotLocked) {
		t.Errorf("RExtend() without RLock = %v; want ErrNotLocked", err)
	}
	for _, rw := range []*RWMutex{a, a, b} {
		if err := rw.TryRLock(); err != nil {
			t.Fatalf("TryRLock() = %v; want nil", err)
		}
	}
	for i, n := range c.nodes {
		if got := len(n.live(readers)); got != 3 {
			t.Errorf("node %d: %d live shares; want 3", i, got)
		}
	}
	if _, err := a.Unlock(); !errors.Is(err, ErrNotLocked) {
		t.Errorf("Unlock() with only read shares = %v; want ErrNotLocked", err)
	}
	var taken *ErrTaken
	if err := b.Lock(); !errors.As(err, &taken) {
		t.Errorf("Lock() with readers = %v; want *ErrTaken", err)
	}
	for i, n := range c.nodes {
		if mark := n.get(waiting); mark != "" {
			t.Errorf("node %d: the waiting-writer mark %q is left after Lock gave up", i, mark)
		}
	}
	if ok, err := a.RExtend(); !ok || err != nil {
		t.Errorf("RExtend() = %v, %v; want true, nil", ok, err)
	}
	for range 2 {
		if ok, err := a.RUnlock(); !ok || err != nil {
			t.Errorf("RUnlock() = %v, %v; want true, nil", ok, err)
		}
	}
	if _, err := a.RUnlock(); !errors.Is(err, ErrNotLocked) {
		t.Errorf("a third RUnlock() of two shares = %v; want ErrNotLocked", err)
	}
	if ok, err := b.RUnlock(); !ok || err != nil {
		t.Errorf("RUnlock() = %v, %v; want true, nil", ok, err)
	}

	if err := a.Lock(); err != nil {
		t.Fatalf("Lock() = %v; want nil", err)
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
	if n := c.keyCount(); n != 0 {
		t.Errorf("%d keys left on the nodes; want none", n)
	}
}

// TestRWMutexWaitingWriter checks that the mark of a waiting writer keeps
// new readers out, and readers that hold the lock in.
func TestRWMutexWaitingWriter(t *testing.T) {
	c := newRWCluster(3)
	reader, writer, late := c.rwmutex("doc"), c.rwmutex("doc"), c.rwmutex("doc")
	waiting := rwKey("doc", waitingSuffix)
	if err := reader.TryRLock(); err != nil {
		t.Fatalf("TryRLock() = %v; want nil", err)
	}
	// A writer that is still waiting: its try left the mark.
	calls := writer.w.makeCalls("w")
	if _, _, _, err := writer.w.acquire(context.Background(), calls, nil); err == nil {
		t.Fatal("a writer's try with a reader in = nil; want an error")
	}
	var taken *ErrTaken
	if err := late.TryRLock(); !errors.As(err, &taken) {
		t.Errorf("TryRLock() with a writer waiting = %v; want *ErrTaken", err)
	}
	if ok, err := reader.RExtend(); !ok || err != nil {
		t.Errorf("RExtend() of a share held before the writer came = %v, %v; want true, nil", ok, err)
	}
	if ok, err := reader.RUnlock(); !ok || err != nil {
		t.Errorf("RUnlock() = %v, %v; want true, nil", ok, err)
	}
	if err := writer.TryLock(); err != nil {
		t.Fatalf("TryLock() once the reader left = %v; want nil", err)
	}
	for i, n := range c.nodes {
		if mark := n.get(waiting); mark != "" {
			t.Errorf("node %d: the writer's mark %q is left after it took the lock", i, mark)
		}
	}
	if ok, err := writer.Unlock(); !ok || err != nil {
		t.Errorf("Unlock() = %v, %v; want true, nil", ok, err)
	}
	if err := late.TryRLock(); err != nil {
		t.Errorf("TryRLock() after the writer = %v; want nil", err)
	}
	late.RUnlock()

	// A writer that gives up takes its mark back.
	if err := reader.TryRLock(); err != nil {
		t.Fatalf("TryRLock() = %v; want nil", err)
	}
	if err := writer.TryLock(); !errors.As(err, &taken) {
		t.Errorf("TryLock() with a reader in = %v; want *ErrTaken", err)
	}
	if err := late.TryRLock(); err != nil {
		t.Errorf("TryRLock() after the writer gave up = %v; want nil", err)
	}
	late.RUnlock()

	// A writer that crashed while it waited does not: its mark expires
	// after its TTL.
	if _, _, _, err := writer.w.acquire(context.Background(), writer.w.makeCalls("w2"), nil); err == nil {
		t.Fatal("a writer's try with a reader in = nil; want an error")
	}
	if ok, err := reader.RUnlock(); !ok || err != nil {
		t.Errorf("RUnlock() = %v, %v; want true, nil", ok, err)
	}
	if err := late.TryRLock(); !errors.As(err, &taken) {
		t.Errorf("TryRLock() with a crashed writer's mark = %v; want *ErrTaken", err)
	}
	c.clock.Advance(DefaultExpiry + time.Millisecond)
	if err := late.TryRLock(); err != nil {
		t.Errorf("TryRLock() once the crashed writer's mark expired = %v; want nil", err)
	}
	late.RUnlock()
	if n := c.keyCount(); n != 0 {
		t.Errorf("%d keys left on the nodes; want none", n)
	}
}

// TestRWMutexRUnlockAgain checks that a share whose release failed on node
// errors stays held for the next RUnlock, and that an expired one does not.
func TestRWMutexRUnlockAgain(t *testing.T) {
	c := newRWCluster(3)
	rw := c.rwmutex("doc")
	if err := rw.TryRLock(); err != nil {
		t.Fatalf("TryRLock() = %v; want nil", err)
	}
	c.nodes[0].setFault(rwDown)
	c.nodes[1].setFault(rwDown)
	if ok, err := rw.RUnlock(); ok || err == nil || errors.Is(err, ErrLockAlreadyExpired) {
		t.Errorf("RUnlock() with two nodes down = %v, %v; want false and the nodes' errors", ok, err)
	}
	c.nodes[0].setFault(rwUp)
	c.nodes[1].setFault(rwUp)
	if ok, err := rw.RUnlock(); !ok || err != nil {
		t.Errorf("RUnlock() again = %v, %v; want true, nil", ok, err)
	}

	if err := rw.TryRLock(); err != nil {
		t.Fatalf("TryRLock() = %v; want nil", err)
	}
	c.clock.Advance(DefaultExpiry)
	if ok, err := rw.RExtend(); ok || !errors.Is(err, ErrLockAlreadyExpired) || !errors.Is(err, ErrExtendFailed) {
		t.Errorf("RExtend() of an expired share = %v, %v; want false, ErrExtendFailed and ErrLockAlreadyExpired", ok, err)
	}
	if ok, err := rw.RUnlock(); ok || !errors.Is(err, ErrLockAlreadyExpired) {
		t.Errorf("RUnlock() of an expired share = %v, %v; want false, ErrLockAlreadyExpired", ok, err)
	}
	if _, err := rw.RUnlock(); !errors.Is(err, ErrNotLocked) {
		t.Errorf("RUnlock() after the expired share was given up = %v; want ErrNotLocked", err)
	}
	if n := c.keyCount(); n != 0 {
		t.Errorf("%d keys left on the nodes; want none", n)
	}
}

// TestRWMutexLostReplies checks that tries whose replies were lost are
// undone: the script ran on the node, and the key must not outlive the
// try.
func TestRWMutexLostReplies(t *testing.T) {
	c := newRWCluster(3)
	rw := c.rwmutex("doc", WithTries(2))
	c.nodes[0].setFault(rwLossy)
	c.nodes[1].setFault(rwLossy)
	if err := rw.RLock(); !errors.Is(err, ErrFailed) {
		t.Errorf("RLock() with two replies lost = %v; want ErrFailed", err)
	}
	if err := rw.Lock(); !errors.Is(err, ErrFailed) {
		t.Errorf("Lock() with two replies lost = %v; want ErrFailed", err)
	}
	if n := c.keyCount(); n != 0 {
		t.Errorf("%d keys left on the nodes; want none", n)
	}
}

// gatedExtendPool holds every RExtend script sent to its node until gate
// closes, and counts them in arrived.
type gatedExtendPool struct {
	n       *rwNode
	gate    chan struct{}
	arrived *sync.WaitGroup
}

func (p *gatedExtendPool) Get(context.Context) (redis.Conn, error) {
	return &gatedExtendConn{rwConn: &rwConn{n: p.n}, p: p}, nil
}

type gatedExtendConn struct {
	*rwConn
	p *gatedExtendPool
}

func (c *gatedExtendConn) Eval(script *redis.Script, keysAndArgs ...any) (any, error) {
	if script == rwReadExtendScript {
		c.p.arrived.Done()
		<-c.p.gate
	}
	return c.rwConn.Eval(script, keysAndArgs...)
}

// TestRWMutexRExtendWhileRUnlock: an RUnlock that gives a share back while
// an RExtend of all shares is on the nodes does not make the RExtend fail:
// the share given back was not its to extend, and the other one was
// extended.
func TestRWMutexRExtendWhileRUnlock(t *testing.T) {
	c := newRWCluster(3)
	gate := make(chan struct{})
	var arrived sync.WaitGroup
	pools := make([]redis.Pool, len(c.nodes))
	for i, n := range c.nodes {
		pools[i] = &gatedExtendPool{n: n, gate: gate, arrived: &arrived}
	}
	rw := New(pools...).NewRWMutex("doc")
	rw.now = c.clock.Now
	for range 2 {
		if err := rw.RLock(); err != nil {
			t.Fatal(err)
		}
	}
	arrived.Add(2 * len(c.nodes)) // two shares on each node
	type result struct {
		ok  bool
		err error
	}
	done := make(chan result, 1)
	go func() {
		ok, err := rw.RExtend()
		done <- result{ok, err}
	}()
	arrived.Wait()
	if ok, err := rw.RUnlock(); !ok || err != nil {
		t.Fatalf("RUnlock() during RExtend = %v, %v; want true, nil", ok, err)
	}
	close(gate)
	if r := <-done; !r.ok || r.err != nil {
		t.Errorf("RExtend() while a share was given back = %v, %v; want true, nil (the share still held was extended)", r.ok, r.err)
	}
	if ok, err := rw.RUnlock(); !ok || err != nil {
		t.Errorf("RUnlock() of the extended share = %v, %v; want true, nil", ok, err)
	}
	if n := c.keyCount(); n != 0 {
		t.Errorf("%d keys left on the nodes; want none", n)
	}
}
