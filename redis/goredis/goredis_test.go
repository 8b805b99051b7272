package goredis_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
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

// freePort returns a port of 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// slotRanges are the hash slots of the three masters of startCluster.
var slotRanges = [3][2]int{{0, 5460}, {5461, 10922}, {10923, 16383}}

// startCluster starts a Redis Cluster of three masters, each owning one of
// slotRanges, and waits until every node reports cluster_state:ok.
func startCluster(t *testing.T) []*redistest.Server {
	t.Helper()
	servers := make([]*redistest.Server, len(slotRanges))
	busPorts := make([]string, len(slotRanges))
	for i := range servers {
		// The cluster bus listens on port+10000 unless told otherwise,
		// which may be above 65535 or taken: give it a free port.
		busPorts[i] = strconv.Itoa(freePort(t))
		servers[i] = redistest.Start(t,
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-port", busPorts[i])
	}
	for i, srv := range servers {
		r := slotRanges[i]
		srv.MustDo(t, "CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(r[0]), strconv.Itoa(r[1]))
	}
	for i, srv := range servers[1:] {
		servers[0].MustDo(t, "CLUSTER", "MEET", "127.0.0.1", strconv.Itoa(srv.Port()), busPorts[i+1])
	}

	deadline := time.Now().Add(15 * time.Second)
	for i := 0; i < len(servers); {
		info := servers[i].MustDo(t, "CLUSTER", "INFO").Str
		if strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:3") {
			i++
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d: no cluster_state:ok after 15s; CLUSTER INFO:\n%s", i, info)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return servers
}

// owner returns the index of the master of startCluster that owns key.
func owner(t *testing.T, srv *redistest.Server, key string) int {
	t.Helper()
	slot := int(srv.MustDo(t, "CLUSTER", "KEYSLOT", key).Int)
	for i, r := range slotRanges {
		if slot >= r[0] && slot <= r[1] {
			return i
		}
	}
	t.Fatalf("slot %d of %q is in no range", slot, key)
	return -1
}

// TestClusterClient locks through a go-redis cluster client used as ONE
// Redlock node: each lock key goes to the master owning its slot, and the
// scripts (EVALSHA with one key, EVAL after NOSCRIPT) follow it there.
func TestClusterClient(t *testing.T) {
	t.Parallel()
	servers := startCluster(t)
	addrs := make([]string, len(servers))
	for i, srv := range servers {
		addrs[i] = srv.Addr()
	}
	client := goredislib.NewClusterClient(&goredislib.ClusterOptions{Addrs: addrs})
	closeClient(t, client)
	rs := redsync.New(goredis.NewPool(client))

	// Pick lock names until each master owns one of them.
	names := make([]string, len(servers))
	for i, found := 0, 0; found < len(servers); i++ {
		name := fmt.Sprintf("cluster-lock-%d", i)
		if o := owner(t, servers[0], name); names[o] == "" {
			names[o] = name
			found++
		}
	}

	for node, name := range names {
		t.Run(name, func(t *testing.T) {
			m := rs.NewMutex(name, redsync.WithExpiry(5*time.Second))
			if err := m.Lock(); err != nil {
				t.Fatalf("Lock() = %v, want nil", err)
			}
			for i, srv := range servers {
				rep, err := srv.Do("GET", name)
				var se redistest.ServerError
				switch {
				case i == node && (err != nil || rep.Str != m.Value()):
					t.Errorf("owner node %d: GET = %s, %v; want %q", i, rep, err, m.Value())
				case i != node && !(errors.As(err, &se) && se.Prefix() == "MOVED"):
					t.Errorf("node %d (not the owner): GET = %s, %v; want a MOVED error", i, rep, err)
				}
			}

			other := rs.NewMutex(name)
			var taken *redsync.ErrTaken
			if err := other.TryLock(); !errors.As(err, &taken) {
				t.Errorf("TryLock() of a held lock = %v, want a *ErrTaken", err)
			}

			if ok, err := m.Extend(); !ok || err != nil {
				t.Errorf("Extend() = %v, %v; want true, nil", ok, err)
			}
			// Force the EVAL fallback on the owner.
			for _, srv := range servers {
				srv.MustDo(t, "SCRIPT", "FLUSH")
			}
			if ok, err := m.Unlock(); !ok || err != nil {
				t.Errorf("Unlock() after SCRIPT FLUSH = %v, %v; want true, nil", ok, err)
			}
			for i, srv := range servers {
				if n, err := srv.DBSize(); n != 0 || err != nil {
					t.Errorf("node %d: DBSIZE after Unlock() = %d, %v; want 0", i, n, err)
				}
			}
		})
	}

	t.Run("Concurrent", func(t *testing.T) {
		// Several locks at once on different slots, through one client.
		errs := make(chan error, len(names))
		for _, name := range names {
			go func() {
				m := rs.NewMutex(name)
				if err := m.LockContext(context.Background()); err != nil {
					errs <- fmt.Errorf("%s: Lock() = %w", name, err)
					return
				}
				if ok, err := m.Unlock(); !ok {
					errs <- fmt.Errorf("%s: Unlock() = %v, %w", name, ok, err)
					return
				}
				errs <- nil
			}()
		}
		for range names {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
	})
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
