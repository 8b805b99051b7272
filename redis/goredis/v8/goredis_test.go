package goredis_test

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"
	"time"

	goredislib "github.com/go-redis/redis/v8"
	"go.uber.org/goleak"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/internal/adaptertest"
	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	goredis "github.com/go-redlock/redsync/redis/goredis/v8"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// redistest forks every redis-server from one goroutine that lives
		// as long as the test binary (see its spawn_linux.go).
		goleak.IgnoreAnyFunction("github.com/go-redlock/redsync/internal/redistest.spawnLoop"),
		// go-redis v8's Ring never stops its heartbeat, even after Close.
		goleak.IgnoreTopFunction("github.com/go-redis/redis/v8.(*ringShards).Heartbeat"))
}

// closeClient closes client when the test ends.
func closeClient(t *testing.T, client goredislib.UniversalClient) {
	t.Cleanup(func() {
		if err := client.Close(); err != nil {
			t.Errorf("closing the go-redis client: %v", err)
		}
	})
}

// newClientPool makes a Pool over a plain client with default options, as
// a program written for redsync v4 makes it.
func newClientPool(t *testing.T, addr string) redis.Pool {
	client := goredislib.NewClient(&goredislib.Options{Addr: addr})
	closeClient(t, client)
	return goredis.NewPool(client)
}

// newUniversalPool makes a Pool over NewUniversalClient with one address:
// a plain client behind the UniversalClient interface.
func newUniversalPool(t *testing.T, addr string) redis.Pool {
	client := goredislib.NewUniversalClient(&goredislib.UniversalOptions{Addrs: []string{addr}})
	closeClient(t, client)
	return goredis.NewPool(client)
}

var clients = []struct {
	name    string
	newPool adaptertest.NewPoolFunc
}{
	{"Client", newClientPool},
	{"UniversalClient", newUniversalPool},
}

func TestConformance(t *testing.T) {
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			adaptertest.Run(t, c.newPool)
		})
	}
}

func TestLock(t *testing.T) {
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			adaptertest.RunLock(t, c.newPool)
		})
	}
}

// TestMockWire checks that scripts go out as the client's own EvalSha and
// Eval methods send them, which is what mocks of go-redis compare.
func TestMockWire(t *testing.T) {
	srv := redistest.Start(t)
	client := goredislib.NewClient(&goredislib.Options{Addr: srv.Addr()})
	closeClient(t, client)
	var sent [][]any
	client.AddHook(recorder{&sent})
	conn, err := goredis.NewPool(client).Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	script := redis.NewScript(1, "return ARGV[1]", "")
	if got, err := conn.Eval(script, "k", "v"); got != "v" || err != nil {
		t.Fatalf(`Eval() = %#v, %v; want "v", nil`, got, err)
	}
	want := [][]any{
		client.EvalSha(context.Background(), script.Hash, []string{"k"}, "v").Args(),
		client.Eval(context.Background(), script.Src, []string{"k"}, "v").Args(),
	}
	sent = sent[:2] // the two calls above are recorded too
	for i := range want {
		if len(sent[i]) != len(want[i]) {
			t.Fatalf("command %d = %v, want %v", i, sent[i], want[i])
		}
		for j := range want[i] {
			if sent[i][j] != want[i][j] {
				t.Errorf("command %d = %#v, want %#v", i, sent[i], want[i])
				break
			}
		}
	}
}

// recorder is a go-redis hook that records the arguments of each command.
type recorder struct{ sent *[][]any }

func (r recorder) BeforeProcess(ctx context.Context, cmd goredislib.Cmder) (context.Context, error) {
	*r.sent = append(*r.sent, cmd.Args())
	return ctx, nil
}

func (r recorder) AfterProcess(context.Context, goredislib.Cmder) error { return nil }

func (r recorder) BeforeProcessPipeline(ctx context.Context, _ []goredislib.Cmder) (context.Context, error) {
	return ctx, nil
}

func (r recorder) AfterProcessPipeline(context.Context, []goredislib.Cmder) error { return nil }

// TestListener drives the pool's redis.Subscriber directly. Without
// retries, the client reports the failure of the server at once.
func TestListener(t *testing.T) {
	adaptertest.RunListener(t, func(t *testing.T, addr string) redis.Pool {
		client := goredislib.NewClient(&goredislib.Options{Addr: addr, MaxRetries: -1})
		closeClient(t, client)
		return goredis.NewPool(client)
	})
}

func TestReleaseNotification(t *testing.T) {
	adaptertest.RunNotification(t, newClientPool)
}

// TestClusterClient locks through a cluster client used as ONE Redlock
// node (adaptertest.RunCluster).
func TestClusterClient(t *testing.T) {
	adaptertest.RunCluster(t, func(t *testing.T, addrs []string) redis.Pool {
		// go-redis v8 cannot parse the CLUSTER SLOTS reply of Redis 7 (four
		// elements per node): the slots are given to it, as ECOSYSTEM.md
		// advises.
		slots := make([]goredislib.ClusterSlot, len(addrs))
		for i, r := range redistest.ClusterSlots {
			slots[i] = goredislib.ClusterSlot{Start: r[0], End: r[1], Nodes: []goredislib.ClusterNode{{Addr: addrs[i]}}}
		}
		client := goredislib.NewClusterClient(&goredislib.ClusterOptions{
			Addrs:        addrs,
			ClusterSlots: func(context.Context) ([]goredislib.ClusterSlot, error) { return slots, nil },
		})
		closeClient(t, client)
		return goredis.NewPool(client)
	})
}

func TestTLS(t *testing.T) {
	files := redistest.WriteTLSFiles(t)
	roots := files.Roots
	addrs := make([]string, 3)
	for i := range addrs {
		_, addrs[i] = redistest.StartTLS(t, files)
	}
	tests := []struct {
		name    string
		options func(t *testing.T, addr string) *goredislib.Options
	}{
		{"TLSConfig", func(t *testing.T, addr string) *goredislib.Options {
			return &goredislib.Options{Addr: addr, TLSConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}
		}},
		{"ParseURL", func(t *testing.T, addr string) *goredislib.Options {
			opts, err := goredislib.ParseURL("rediss://" + addr + "/0")
			if err != nil || opts.TLSConfig == nil {
				t.Fatalf("ParseURL(rediss://...) = %+v, %v; want TLS on", opts, err)
			}
			opts.TLSConfig.RootCAs = roots
			return opts
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pools := make([]redis.Pool, len(addrs))
			for i, addr := range addrs {
				client := goredislib.NewClient(tt.options(t, addr))
				closeClient(t, client)
				pools[i] = goredis.NewPool(client)
			}
			m := redsync.New(pools...).NewMutex("goredis-v8:tls:" + tt.name)
			if err := m.Lock(); err != nil {
				t.Fatalf("Lock() over TLS = %v, want nil", err)
			}
			if ok, err := m.Unlock(); !ok || err != nil {
				t.Errorf("Unlock() over TLS = %v, %v; want true, nil", ok, err)
			}
		})
	}

	t.Run("UntrustedCertificate", func(t *testing.T) {
		client := goredislib.NewClient(&goredislib.Options{Addr: addrs[0], MaxRetries: -1, TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12}})
		closeClient(t, client)
		err := redsync.New(goredis.NewPool(client)).NewMutex("goredis-v8:tls:untrusted", redsync.WithTries(1)).Lock()
		if !errors.Is(err, redsync.ErrFailed) {
			t.Errorf("Lock() with an untrusted certificate = %v, want ErrFailed", err)
		}
	})
}

// TestKeepsDeadlines checks which clients the pool vouches for.
func TestKeepsDeadlines(t *testing.T) {
	type wrapped struct{ goredislib.UniversalClient }
	plain := goredislib.NewClient(&goredislib.Options{Addr: "127.0.0.1:1"})
	closeClient(t, plain)
	cluster := goredislib.NewClusterClient(&goredislib.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	closeClient(t, cluster)
	ring := goredislib.NewRing(&goredislib.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1"}})
	closeClient(t, ring)
	for _, tc := range []struct {
		name   string
		client goredislib.UniversalClient
		want   bool
	}{
		{"Client", plain, true},
		{"ClusterClient", cluster, true},
		{"Ring", ring, true},
		{"Wrapper", wrapped{plain}, false},
	} {
		k, ok := goredis.NewPool(tc.client).(redis.DeadlineKeeper)
		if !ok || k.KeepsDeadlines() != tc.want {
			t.Errorf("%s: DeadlineKeeper %v, KeepsDeadlines() = %v; want %v", tc.name, ok, ok && k.KeepsDeadlines(), tc.want)
		}
	}
}

// TestSingleNodeKeepsDeadline locks one paused node: the core runs the
// commands on the caller's goroutine, and the client ends them at the
// per-node timeout rather than at its 3 s ReadTimeout.
func TestSingleNodeKeepsDeadline(t *testing.T) {
	srv := redistest.Start(t)
	client := goredislib.NewClient(&goredislib.Options{Addr: srv.Addr(), MaxRetries: -1})
	closeClient(t, client)
	m := redsync.New(goredis.NewPool(client)).NewMutex("goredis-v8:inline",
		redsync.WithExpiry(2*time.Second), redsync.WithTries(1)) // per-node timeout 100ms
	if err := m.Lock(); err != nil {
		t.Fatal(err)
	}
	if ok, err := m.Unlock(); !ok || err != nil {
		t.Fatalf("Unlock() = %v, %v", ok, err)
	}
	srv.MustDo(t, "CLIENT", "PAUSE", "2000", "ALL")
	start := time.Now()
	err := m.Lock()
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Lock() on a paused node = %v, want the per-node timeout (context.DeadlineExceeded)", err)
	}
	// Well under the 3 s ReadTimeout the client would wait without the
	// deadline, with room for a loaded machine.
	if took > 1500*time.Millisecond {
		t.Errorf("Lock() on a paused node took %v, want about 200ms", took)
	}
}
