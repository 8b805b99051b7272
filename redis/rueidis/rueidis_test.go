package rueidis_test

import (
	"context"
	"testing"
	"time"

	rueidislib "github.com/redis/rueidis"
	"go.uber.org/goleak"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/internal/adaptertest"
	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/rueidis"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// redistest forks every redis-server from one goroutine that lives
		// as long as the test binary (see its spawn_linux.go).
		goleak.IgnoreAnyFunction("github.com/go-redlock/redsync/internal/redistest.spawnLoop"))
}

// newPoolWith returns a NewPoolFunc making pools over rueidis clients with
// the options that set gives (InitAddress is filled in).
func newPoolWith(set func(*rueidislib.ClientOption)) adaptertest.NewPoolFunc {
	return func(t *testing.T, addr string) redis.Pool {
		t.Helper()
		return rueidis.NewPool(newClient(t, addr, set))
	}
}

// newClient connects a rueidis client to addr and closes it when the test
// ends.
func newClient(t *testing.T, addr string, set func(*rueidislib.ClientOption)) rueidislib.Client {
	t.Helper()
	opt := rueidislib.ClientOption{InitAddress: []string{addr}}
	if set != nil {
		set(&opt)
	}
	client, err := rueidislib.NewClient(opt)
	if err != nil {
		t.Fatalf("rueidis.NewClient(%s) = %v", addr, err)
	}
	t.Cleanup(client.Close)
	return client
}

// clientOptions are the client configurations the adapter is checked with.
var clientOptions = []struct {
	name string
	set  func(*rueidislib.ClientOption)
}{
	// The recommended one: no client-side caching.
	{"DisableCache", func(o *rueidislib.ClientOption) { o.DisableCache = true }},
	// rueidis's defaults: RESP3 with client-side caching (CLIENT TRACKING).
	{"Default", nil},
	// RESP2 connections, as to a server older than Redis 6.
	{"RESP2", func(o *rueidislib.ClientOption) { o.DisableCache, o.AlwaysRESP2 = true, true }},
	// One connection per command, without auto-pipelining.
	{"NoAutoPipelining", func(o *rueidislib.ClientOption) {
		o.DisableCache, o.DisableAutoPipelining = true, true
	}},
}

func TestConformance(t *testing.T) {
	for _, opt := range clientOptions {
		t.Run(opt.name, func(t *testing.T) {
			adaptertest.Run(t, newPoolWith(opt.set))
		})
	}
}

func TestLock(t *testing.T) {
	for _, opt := range clientOptions {
		t.Run(opt.name, func(t *testing.T) {
			adaptertest.RunLock(t, newPoolWith(opt.set))
		})
	}
}

func TestSetNXWithoutExpiry(t *testing.T) {
	srv := redistest.Start(t)
	pool := rueidis.NewPool(newClient(t, srv.Addr(), func(o *rueidislib.ClientOption) { o.DisableCache = true }))
	conn, err := pool.Get(context.Background())
	if err != nil {
		t.Fatalf("Get(ctx) = %v, want nil", err)
	}
	defer conn.Close()
	for _, expiry := range []time.Duration{0, -time.Second} {
		key := "rueidis:setnx:" + expiry.String()
		if ok, err := conn.SetNX(key, "v", expiry); !ok || err != nil {
			t.Errorf("SetNX(%v) = %v, %v; want true, nil", expiry, ok, err)
		}
		if ttl, err := conn.PTTL(key); ttl != -time.Millisecond || err != nil {
			t.Errorf("PTTL() after SetNX(%v) = %v, %v; want -1ms (no expiry), nil", expiry, ttl, err)
		}
	}
	if ok, err := conn.SetNX("rueidis:setnx:short", "v", time.Microsecond); !ok || err != nil {
		t.Errorf("SetNX(1µs) = %v, %v; want true, nil", ok, err)
	}
	if ttl, err := conn.PTTL("rueidis:setnx:missing"); ttl != -2*time.Millisecond || err != nil {
		t.Errorf("PTTL(missing) = %v, %v; want -2ms, nil", ttl, err)
	}
}

func TestEvalArguments(t *testing.T) {
	srv := redistest.Start(t)
	pool := rueidis.NewPool(newClient(t, srv.Addr(), func(o *rueidislib.ClientOption) { o.DisableCache = true }))
	conn, err := pool.Get(context.Background())
	if err != nil {
		t.Fatalf("Get(ctx) = %v, want nil", err)
	}
	defer conn.Close()
	// The script joins its keys, then its arguments, with spaces.
	join := redis.NewScript(-1, "return table.concat(KEYS, ' ') .. '|' .. table.concat(ARGV, ' ')", "")
	tests := []struct {
		name        string
		keysAndArgs []any
		want        any
		wantErr     bool
	}{
		{"Strings", []any{"2", "k1", "k2", "a"}, "k1 k2|a", false},
		{"IntCount", []any{1, "k", "a", "b"}, "k|a b", false},
		{"Int64Count", []any{int64(0), "a"}, "|a", false},
		{"Types", []any{0, []byte("bytes"), 7, int64(-8), 2.5, true, false, time.Second}, "|bytes 7 -8 2.5 1 0 1s", false},
		{"NoCount", nil, nil, true},
		{"BadCount", []any{"x", "k"}, nil, true},
		{"NegativeCount", []any{-1, "k"}, nil, true},
		{"CountTooLarge", []any{3, "k1", "k2"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := conn.Eval(join, tt.keysAndArgs...)
			if tt.wantErr {
				if err == nil {
					t.Errorf("Eval(%v) = %#v, nil; want an error", tt.keysAndArgs, got)
				}
				return
			}
			if got != tt.want || err != nil {
				t.Errorf("Eval(%v) = %#v, %v; want %#v, nil", tt.keysAndArgs, got, err, tt.want)
			}
		})
	}
}

// TestDefaultOptions locks with three pools made as the package comment
// tells users to make them.
func TestDefaultOptions(t *testing.T) {
	servers := redistest.StartN(t, 3)
	pools := make([]redis.Pool, len(servers))
	for i, srv := range servers {
		client, err := rueidislib.NewClient(rueidislib.ClientOption{
			InitAddress:  []string{srv.Addr()},
			DisableCache: true,
		})
		if err != nil {
			t.Fatalf("NewClient() = %v", err)
		}
		t.Cleanup(client.Close)
		pools[i] = rueidis.NewPool(client)
	}
	m := redsync.New(pools...).NewMutex("rueidis:default")
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil", err)
	}
	if ok, err := m.Unlock(); !ok || err != nil {
		t.Errorf("Unlock() = %v, %v; want true, nil", ok, err)
	}
}
