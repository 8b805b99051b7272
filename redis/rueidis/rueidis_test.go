package rueidis_test

import (
	"context"
	"crypto/tls"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	rueidislib "github.com/redis/rueidis"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/internal/adaptertest"
	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/rueidis"
)

// TestMain fails the run on goroutines left behind, after the grace the
// driver's delayed cluster refresh needs (see adaptertest.Main).
func TestMain(m *testing.M) {
	adaptertest.Main(m)
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
	// A standalone node without the CLUSTER SLOTS probe.
	{"ForceSingleClient", func(o *rueidislib.ClientOption) { o.DisableCache, o.ForceSingleClient = true, true }},
	// Commands on pooled connections instead of auto-pipelined ones.
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

// TestKeepsDeadlines: the pool vouches for ctx deadlines, which
// TestConformance's paused-server check holds it to, for every client
// option.
func TestKeepsDeadlines(t *testing.T) {
	srv := redistest.Start(t)
	pool := rueidis.NewPool(newClient(t, srv.Addr(), func(o *rueidislib.ClientOption) { o.DisableCache = true }))
	k, ok := pool.(redis.DeadlineKeeper)
	if !ok || !k.KeepsDeadlines() {
		t.Errorf("pool is a DeadlineKeeper: %v; want one that keeps deadlines", ok)
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

// aclRules are the permissions docs/ECOSYSTEM.md lists for Lock, Extend,
// Valid and Unlock with release notification.
var aclRules = []string{
	"resetkeys", "~*", "resetchannels", "&redsync:released:*", "&redsync:wake:*", "-@all",
	"+evalsha", "+eval", "+get", "+set", "+pexpire", "+del",
	"+publish", "+subscribe", "+unsubscribe", "+ping",
	"+time", "+pttl", "+zadd", "+zrem", "+zrange", "+zrangebyscore", "+exists",
}

// aclPools returns pools over servers whose clients authenticate as user
// with password, as docs/ECOSYSTEM.md advises for a standalone node.
func aclPools(t *testing.T, servers []*redistest.Server, user, password string) []redis.Pool {
	t.Helper()
	pools := make([]redis.Pool, len(servers))
	for i, srv := range servers {
		pools[i] = rueidis.NewPool(newClient(t, srv.Addr(), func(o *rueidislib.ClientOption) {
			o.Username, o.Password = user, password
			// No CLIENT TRACKING, and no CLUSTER SLOTS probe: the user
			// may run neither.
			o.DisableCache, o.ForceSingleClient = true, true
		}))
	}
	return pools
}

func TestACL(t *testing.T) {
	servers := redistest.StartN(t, 3)
	for _, srv := range servers {
		srv.MustDo(t, append([]string{"ACL", "SETUSER", "minimal", "reset", "on", ">pw"}, aclRules...)...)
		srv.MustDo(t, "ACL", "SETUSER", "noeval", "reset", "on", ">pw", "~*", "+@all", "-eval", "-evalsha")
	}

	t.Run("MinimalPermissions", func(t *testing.T) {
		m := redsync.New(aclPools(t, servers, "minimal", "pw")...).NewMutex("rueidis:acl")
		if err := m.Lock(); err != nil {
			t.Fatalf("Lock() = %v, want nil", err)
		}
		if ok, err := m.Extend(); !ok || err != nil {
			t.Errorf("Extend() = %v, %v; want true, nil", ok, err)
		}
		if ok, err := m.Unlock(); !ok || err != nil {
			t.Errorf("Unlock() = %v, %v; want true, nil", ok, err)
		}
		for i, srv := range servers {
			for _, entry := range srv.MustDo(t, "ACL", "LOG").Elems {
				// Entries are flat lists of field names and values.
				var user, object string
				for j := 0; j+1 < len(entry.Elems); j += 2 {
					switch entry.Elems[j].Text() {
					case "username":
						user = entry.Elems[j+1].Text()
					case "object":
						object = entry.Elems[j+1].Text()
					}
				}
				// rueidis ignores the failure of CLIENT SETINFO, whose
				// denial Redis 7.2 and later log.
				if user == "minimal" && object != "client|setinfo" {
					t.Errorf("node %d denied user minimal %q", i, object)
				}
			}
		}
	})

	t.Run("CacheNeedsClientTracking", func(t *testing.T) {
		// With client-side caching on, rueidis sends CLIENT TRACKING
		// when it connects, which the minimal user may not run.
		client, err := rueidislib.NewClient(rueidislib.ClientOption{
			InitAddress: []string{servers[0].Addr()},
			Username:    "minimal",
			Password:    "pw",
		})
		if err == nil {
			client.Close()
			t.Fatal("NewClient() with caching on as a user without CLIENT TRACKING = nil error, want one")
		}
		if !strings.Contains(err.Error(), "NOPERM") {
			t.Errorf("NewClient() with caching on as a user without CLIENT TRACKING = %v, want a NOPERM error", err)
		}
	})

	t.Run("NoEval", func(t *testing.T) {
		start := time.Now()
		err := redsync.New(aclPools(t, servers, "noeval", "pw")...).NewMutex("rueidis:acl").Lock()
		if elapsed := time.Since(start); elapsed >= time.Second {
			t.Errorf("Lock() as a user without EVAL took %v, want well under 1s (no retries)", elapsed)
		}
		if !errors.Is(err, redsync.ErrFailed) {
			t.Errorf("Lock() as a user without EVAL = %v, want ErrFailed", err)
		}
		for i := range servers {
			want := "node #" + strconv.Itoa(i) + ": NOPERM this user has no permissions to run the 'evalsha' command"
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Lock() as a user without EVAL = %v, want it to contain %q", err, want)
			}
		}
	})

	t.Run("WrongPassword", func(t *testing.T) {
		// rueidis connects in NewClient, so a wrong password shows there.
		client, err := rueidislib.NewClient(rueidislib.ClientOption{
			InitAddress:  []string{servers[0].Addr()},
			Username:     "minimal",
			Password:     "wrong",
			DisableCache: true,
		})
		if err == nil {
			client.Close()
			t.Fatal("NewClient() with a wrong password = nil error, want one")
		}
		if !strings.HasPrefix(err.Error(), "WRONGPASS") {
			t.Errorf("NewClient() with a wrong password = %v, want WRONGPASS first", err)
		}
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
		options func(t *testing.T, addr string) rueidislib.ClientOption
	}{
		{"TLSConfig", func(t *testing.T, addr string) rueidislib.ClientOption {
			return rueidislib.ClientOption{
				InitAddress:  []string{addr},
				TLSConfig:    &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
				DisableCache: true,
			}
		}},
		{"ParseURL", func(t *testing.T, addr string) rueidislib.ClientOption {
			opt, err := rueidislib.ParseURL("rediss://" + addr + "/0?client_cache=0")
			if err != nil {
				t.Fatalf("ParseURL() = %v", err)
			}
			if opt.TLSConfig == nil || !opt.DisableCache {
				t.Fatalf("ParseURL(rediss://...?client_cache=0) = TLSConfig %v, DisableCache %v; want TLS on and caching off", opt.TLSConfig, opt.DisableCache)
			}
			opt.TLSConfig.RootCAs = roots
			return opt
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pools := make([]redis.Pool, len(addrs))
			for i, addr := range addrs {
				client, err := rueidislib.NewClient(tt.options(t, addr))
				if err != nil {
					t.Fatalf("NewClient(%s) over TLS = %v", addr, err)
				}
				t.Cleanup(client.Close)
				pools[i] = rueidis.NewPool(client)
			}
			m := redsync.New(pools...).NewMutex("rueidis:tls:" + tt.name)
			if err := m.Lock(); err != nil {
				t.Fatalf("Lock() over TLS = %v, want nil", err)
			}
			if ok, err := m.Unlock(); !ok || err != nil {
				t.Errorf("Unlock() over TLS = %v, %v; want true, nil", ok, err)
			}
		})
	}
}
