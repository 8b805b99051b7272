package goredis_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	goredislib "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/internal/adaptertest"
	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/goredis"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// redistest forks every redis-server from one goroutine that lives
		// as long as the test binary (see its spawn_linux.go).
		goleak.IgnoreAnyFunction("github.com/go-redlock/redsync/internal/redistest.spawnLoop"))
}

// closeClient closes client when the test ends.
func closeClient(t *testing.T, client goredislib.UniversalClient) {
	t.Cleanup(func() {
		if err := client.Close(); err != nil {
			t.Errorf("closing the go-redis client: %v", err)
		}
	})
}

// newClientPool makes a Pool over a plain go-redis client with default
// options, as a program written for redsync v4 makes it. Such a client
// ignores ctx deadlines (ContextTimeoutEnabled is off), which redis.Pool
// allows: the core enforces its per-node timeouts itself (see
// TestIntegrationSlowNode in the root package). So it runs the lock suite,
// and the conformance suite, whose paused-server check needs deadlines,
// runs on clients that honour them.
func newClientPool(t *testing.T, addr string) redis.Pool {
	client := goredislib.NewClient(&goredislib.Options{Addr: addr})
	closeClient(t, client)
	return goredis.NewPool(client)
}

// newContextTimeoutPool makes a Pool over a go-redis client that honours
// ctx deadlines (ContextTimeoutEnabled).
func newContextTimeoutPool(t *testing.T, addr string) redis.Pool {
	client := goredislib.NewClient(&goredislib.Options{Addr: addr, ContextTimeoutEnabled: true})
	closeClient(t, client)
	return goredis.NewPool(client)
}

// newUniversalPool makes a Pool over goredislib.NewUniversalClient with one
// address (a plain client behind the UniversalClient interface) that
// honours ctx deadlines.
func newUniversalPool(t *testing.T, addr string) redis.Pool {
	client := goredislib.NewUniversalClient(&goredislib.UniversalOptions{Addrs: []string{addr}, ContextTimeoutEnabled: true})
	closeClient(t, client)
	return goredis.NewPool(client)
}

func TestConformance(t *testing.T) {
	tests := []struct {
		name    string
		newPool adaptertest.NewPoolFunc
	}{
		{"ClientContextTimeout", newContextTimeoutPool},
		{"UniversalClient", newUniversalPool},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			adaptertest.Run(t, tt.newPool)
		})
	}
}

func TestLock(t *testing.T) {
	tests := []struct {
		name    string
		newPool adaptertest.NewPoolFunc
	}{
		{"Client", newClientPool},
		{"UniversalClient", newUniversalPool},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			adaptertest.RunLock(t, tt.newPool)
		})
	}
}

// TestListener drives the pool's redis.Subscriber directly. Without
// retries, the client reports the failure of the server at once.
func TestListener(t *testing.T) {
	t.Parallel()
	adaptertest.RunListener(t, func(t *testing.T, addr string) redis.Pool {
		client := goredislib.NewClient(&goredislib.Options{Addr: addr, MaxRetries: -1})
		closeClient(t, client)
		return goredis.NewPool(client)
	})
}

func TestReleaseNotification(t *testing.T) {
	t.Parallel()
	adaptertest.RunNotification(t, newClientPool)
}

// TestClusterClient locks through a go-redis cluster client used as ONE
// Redlock node (adaptertest.RunCluster).
func TestClusterClient(t *testing.T) {
	t.Parallel()
	adaptertest.RunCluster(t, func(t *testing.T, addrs []string) redis.Pool {
		client := goredislib.NewClusterClient(&goredislib.ClusterOptions{Addrs: addrs})
		closeClient(t, client)
		return goredis.NewPool(client)
	})
}

// TestClusterMultiMutex: over a cluster client, a multi-key Mutex whose
// names are in different hash slots is refused before anything is sent,
// and one whose names share a hash tag locks them all.
func TestClusterMultiMutex(t *testing.T) {
	t.Parallel()
	servers := redistest.StartCluster(t)
	addrs := make([]string, len(servers))
	for i, s := range servers {
		addrs[i] = s.Addr()
	}
	client := goredislib.NewClusterClient(&goredislib.ClusterOptions{Addrs: addrs})
	closeClient(t, client)
	rs := redsync.New(goredis.NewPool(client))

	err := rs.NewMultiMutex([]string{"order:42:stock", "order:42:payment"}).Lock()
	if !errors.Is(err, redsync.ErrInvalidConfig) || !strings.Contains(err.Error(), "hash slot") {
		t.Errorf("Lock() of names in different slots = %v, want ErrInvalidConfig naming hash slots", err)
	}
	m := rs.NewMultiMutex([]string{"{order:42}:stock", "{order:42}:payment"})
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() of names with a common hash tag = %v, want nil", err)
	}
	if ok, err := m.Unlock(); !ok || err != nil {
		t.Errorf("Unlock() = %v, %v, want true, nil", ok, err)
	}
}

// TestKeepsDeadlines checks that the pool reports the client's
// ContextTimeoutEnabled option, for the client types that have it.
func TestKeepsDeadlines(t *testing.T) {
	for _, tc := range []struct {
		name   string
		client goredislib.UniversalClient
		want   bool
	}{
		{"Client", goredislib.NewClient(&goredislib.Options{Addr: "127.0.0.1:1"}), false},
		{"Client/ContextTimeoutEnabled", goredislib.NewClient(&goredislib.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true}), true},
		{"ClusterClient/ContextTimeoutEnabled", goredislib.NewClusterClient(&goredislib.ClusterOptions{Addrs: []string{"127.0.0.1:1"}, ContextTimeoutEnabled: true}), true},
		{"Ring/ContextTimeoutEnabled", goredislib.NewRing(&goredislib.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1"}, ContextTimeoutEnabled: true}), true},
	} {
		closeClient(t, tc.client)
		k, ok := goredis.NewPool(tc.client).(redis.DeadlineKeeper)
		if !ok || k.KeepsDeadlines() != tc.want {
			t.Errorf("%s: DeadlineKeeper %v, KeepsDeadlines() = %v; want %v", tc.name, ok, ok && k.KeepsDeadlines(), tc.want)
		}
	}
}

// TestSingleNodeKeepsDeadline locks one paused node through a client with
// ContextTimeoutEnabled: the core runs the commands on the caller's
// goroutine, and the client ends them at the per-node timeout.
func TestSingleNodeKeepsDeadline(t *testing.T) {
	srv := redistest.Start(t)
	client := goredislib.NewClient(&goredislib.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1})
	closeClient(t, client)
	rs := redsync.New(goredis.NewPool(client))
	m := rs.NewMutex("inline", redsync.WithExpiry(2*time.Second), redsync.WithTries(1)) // per-node timeout 100ms
	if err := m.Lock(); err != nil {
		t.Fatal(err)
	}
	if ok, err := m.Unlock(); !ok || err != nil {
		t.Fatalf("Unlock() = %v, %v", ok, err)
	}
	srv.MustDo(t, "CLIENT", "PAUSE", "1500", "ALL")
	start := time.Now()
	err := m.Lock()
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "per-node timeout of 100ms") {
		t.Fatalf("Lock() on a paused node = %#v (%v), want the per-node timeout named", err, err)
	}
	// The try and its undo, each ended by the client at 100ms; without the
	// deadline the client would wait for its 3s ReadTimeout.
	if took > time.Second {
		t.Errorf("Lock() on a paused node took %v, want about 200ms", took)
	}
	time.Sleep(time.Until(start.Add(1600 * time.Millisecond)))
	if keys, err := srv.Keys("*"); len(keys) != 0 || err != nil {
		t.Errorf("keys %q (%v) after the pause, want none", keys, err)
	}
}
