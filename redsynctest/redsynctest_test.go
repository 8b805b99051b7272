package redsynctest_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/internal/adaptertest"
	"github.com/go-redlock/redsync/redsynctest"
)

// TestMain fails the run when a goroutine outlives the tests by more than
// adaptertest's grace: go-redis (v9.16.0) may still be retrying, a second
// apart, the dial of a node that a test stopped.
func TestMain(m *testing.M) { adaptertest.Main(m) }

// client returns a go-redis client of node n that fails at once rather
// than retrying, closed when the test ends.
func client(t *testing.T, n *redsynctest.Node) *goredislib.Client {
	c := goredislib.NewClient(&goredislib.Options{Addr: n.Addr(), MaxRetries: -1, DialerRetries: 1})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestStartNoNodes(t *testing.T) {
	for _, n := range []int{0, -1} {
		if nodes, rs, err := redsynctest.Start(n); err == nil || nodes != nil || rs != nil {
			t.Errorf("Start(%d) = %v, %v, %v; want an error", n, nodes, rs, err)
		}
	}
}

func TestNewRedsync(t *testing.T) {
	nodes, rs := redsynctest.New(t, 3)
	if len(nodes) != 3 {
		t.Fatalf("New(t, 3) made %d nodes", len(nodes))
	}
	for i, n := range nodes {
		if n.Index() != i || !n.Running() || n.Pool() == nil || n.Miniredis() == nil {
			t.Errorf("node %d: Index() = %d, Running() = %v, Pool() = %v", i, n.Index(), n.Running(), n.Pool())
		}
	}
	m := rs.NewMutex("lock", redsync.WithExpiry(time.Minute))
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v", err)
	}
	if got := nodes.Holders("lock", m.Value()); !slices.Equal(got, []int{0, 1, 2}) {
		t.Errorf("Holders() = %v, want [0 1 2]", got)
	}
	if got := nodes.Values("lock"); !slices.Equal(got, []string{m.Value(), m.Value(), m.Value()}) {
		t.Errorf("Values() = %q, want the lock's value thrice", got)
	}
	if ttl := nodes[1].TTL("lock"); ttl <= 0 || ttl > time.Minute {
		t.Errorf("TTL() = %v, want in (0, 1m]", ttl)
	}
	if n := nodes.ExpireNow("lock"); n != 3 {
		t.Errorf("ExpireNow() = %d, want 3", n)
	}
	if got := nodes.Values("lock"); !slices.Equal(got, []string{"", "", ""}) {
		t.Errorf("Values() after ExpireNow() = %q, want none", got)
	}
	if n := nodes.ExpireNow("lock"); n != 0 {
		t.Errorf("second ExpireNow() = %d, want 0", n)
	}
}

func TestStopRestart(t *testing.T) {
	nodes, _ := redsynctest.New(t, 1)
	n := nodes[0]
	c := client(t, n)
	ctx := context.Background()
	addr := n.Addr()
	if err := c.Set(ctx, "k", "v", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	hash, err := c.ScriptLoad(ctx, "return 1").Result()
	if err != nil {
		t.Fatal(err)
	}

	n.Stop()
	n.Stop() // no-op
	if n.Running() {
		t.Error("Running() after Stop() = true")
	}
	if err := c.Get(ctx, "k").Err(); err == nil {
		t.Error("GET on a stopped node succeeded")
	}
	if v, ok := n.Get("k"); !ok || v != "v" {
		t.Errorf("Get() on a stopped node = %q, %v; want its data", v, ok)
	}

	if err := n.Restart(); err != nil {
		t.Fatalf("Restart() = %v", err)
	}
	if n.Addr() != addr || !n.Running() {
		t.Errorf("after Restart(): Addr() = %s (was %s), Running() = %v", n.Addr(), addr, n.Running())
	}
	if v, err := c.Get(ctx, "k").Result(); v != "v" || err != nil {
		t.Errorf("GET after Restart() = %q, %v; want the data back", v, err)
	}
	if ttl := n.TTL("k"); ttl <= 0 || ttl > time.Minute {
		t.Errorf("TTL() after Restart() = %v, want in (0, 1m]", ttl)
	}
	// As after a restart of redis-server, the script cache is empty.
	exists, err := c.ScriptExists(ctx, hash).Result()
	if err != nil || len(exists) != 1 || exists[0] {
		t.Errorf("SCRIPT EXISTS after Restart() = %v, %v; want [false]", exists, err)
	}

	if err := n.RestartEmpty(); err != nil {
		t.Fatalf("RestartEmpty() = %v", err)
	}
	if err := c.Get(ctx, "k").Err(); !errors.Is(err, goredislib.Nil) {
		t.Errorf("GET after RestartEmpty() = %v, want no key", err)
	}
	if keys := n.Keys(); len(keys) != 0 {
		t.Errorf("Keys() after RestartEmpty() = %q, want none", keys)
	}
}

func TestSetDelay(t *testing.T) {
	nodes, _ := redsynctest.New(t, 1)
	n := nodes[0]
	c := client(t, n)
	ctx := context.Background()
	if err := c.Ping(ctx).Err(); err != nil { // dial before the delay
		t.Fatal(err)
	}
	const delay = 300 * time.Millisecond
	n.SetDelay(delay)
	start := time.Now()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET on a slow node = %v", err)
	}
	if took := time.Since(start); took < delay {
		t.Errorf("SET on a node with a delay of %v took %v", delay, took)
	}
	n.SetDelay(0)
	if v, _ := n.Get("k"); v != "v" {
		t.Errorf("Get() = %q, want v", v)
	}

	// A reply held back past the client's deadline: the command ran all
	// the same.
	n.SetDelay(time.Second)
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	tc := goredislib.NewClient(&goredislib.Options{Addr: n.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1})
	defer tc.Close()
	if err := tc.Set(short, "late", "v", 0).Err(); err == nil {
		t.Error("SET with a deadline shorter than the delay succeeded")
	}
	n.SetDelay(0)
}

func TestPauseResume(t *testing.T) {
	nodes, _ := redsynctest.New(t, 1)
	n := nodes[0]
	c := client(t, n)
	ctx := context.Background()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	n.Pause()
	n.Pause() // no-op
	done := make(chan error, 1)
	go func() { done <- c.Set(ctx, "k", "v", 0).Err() }()
	select {
	case err := <-done:
		t.Fatalf("SET on a paused node returned %v, want it held", err)
	case <-time.After(200 * time.Millisecond):
	}
	if _, ok := n.Get("k"); ok {
		t.Error("the held SET ran before Resume()")
	}
	n.Resume()
	n.Resume() // no-op
	if err := <-done; err != nil {
		t.Errorf("SET held by a pause = %v after Resume(), want nil", err)
	}
	if v, _ := n.Get("k"); v != "v" {
		t.Errorf("Get() after Resume() = %q, want v", v)
	}
}

// TestStopWhilePaused stops a paused node: the held command never runs,
// and Stop does not wait for it.
func TestStopWhilePaused(t *testing.T) {
	nodes, _ := redsynctest.New(t, 1)
	n := nodes[0]
	c := client(t, n)
	ctx := context.Background()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	n.Pause()
	done := make(chan error, 1)
	go func() { done <- c.Set(ctx, "k", "v", 0).Err() }()
	time.Sleep(100 * time.Millisecond) // the SET is held
	n.Stop()
	if err := <-done; err == nil {
		t.Error("SET held by a pause succeeded after Stop()")
	}
	if err := n.Restart(); err != nil {
		t.Fatal(err)
	}
	if _, ok := n.Get("k"); ok {
		t.Error("the SET held when the node stopped ran")
	}
	// The restarted node is not paused.
	if err := c.Set(ctx, "k2", "v", 0).Err(); err != nil {
		t.Errorf("SET after Restart() = %v", err)
	}
}

func TestTime(t *testing.T) {
	nodes, _ := redsynctest.New(t, 2)
	c := client(t, nodes[0])
	ctx := context.Background()
	if err := c.Set(ctx, "hour", "v", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "short", "v", 200*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if err := c.Get(ctx, "short").Err(); !errors.Is(err, goredislib.Nil) {
		t.Errorf("GET of a key whose time ran out = %v, want no key: keys expire with the clock", err)
	}
	nodes.FastForward(59 * time.Minute)
	if ttl := nodes[0].TTL("hour"); ttl <= 0 || ttl > time.Minute {
		t.Errorf("TTL() after FastForward(59m) = %v, want at most a minute", ttl)
	}
	pttl, err := c.PTTL(ctx, "hour").Result()
	if err != nil || pttl <= 0 || pttl > time.Minute {
		t.Errorf("PTTL after FastForward(59m) = %v, %v; want at most a minute", pttl, err)
	}
	nodes[0].FastForward(time.Minute)
	if keys := nodes[0].Keys(); len(keys) != 0 {
		t.Errorf("Keys() after the hour = %q, want none", keys)
	}
	if ttl := nodes[0].TTL("hour"); ttl != 0 {
		t.Errorf("TTL() of a missing key = %v, want 0", ttl)
	}
}
