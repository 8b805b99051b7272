package valkeygo_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/valkey-io/valkey-go"
	"github.com/valkey-io/valkey-go/valkeycompat"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/internal/adaptertest"
	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/valkeygo"
)

// TestMain fails the run on goroutines left behind, after the grace the
// driver's delayed cluster refresh needs (see adaptertest.Main).
func TestMain(m *testing.M) {
	adaptertest.Main(m)
}

// newClient connects a valkey-go client with opt (InitAddress is filled
// in when empty) and closes it when the test ends.
func newClient(t *testing.T, addr string, opt valkey.ClientOption) valkey.Client {
	t.Helper()
	if len(opt.InitAddress) == 0 {
		opt.InitAddress = []string{addr}
	}
	client, err := valkey.NewClient(opt)
	if err != nil {
		t.Fatalf("valkey.NewClient(%s) = %v", addr, err)
	}
	t.Cleanup(client.Close)
	return client
}

// clientOptions are the client configurations the adapter is checked with.
var clientOptions = []struct {
	name string
	opt  valkey.ClientOption
}{
	// The recommended one: no client-side caching.
	{"DisableCache", valkey.ClientOption{DisableCache: true}},
	// valkey-go's defaults: RESP3 with client-side caching.
	{"Default", valkey.ClientOption{}},
	// RESP2 connections, as to a server older than Redis 6.
	{"RESP2", valkey.ClientOption{DisableCache: true, AlwaysRESP2: true}},
}

func newPoolWith(opt valkey.ClientOption) adaptertest.NewPoolFunc {
	return func(t *testing.T, addr string) redis.Pool {
		t.Helper()
		return valkeygo.NewPool(valkeycompat.NewAdapter(newClient(t, addr, opt)))
	}
}

func TestConformance(t *testing.T) {
	for _, c := range clientOptions {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			adaptertest.Run(t, newPoolWith(c.opt))
		})
	}
}

func TestLock(t *testing.T) {
	for _, c := range clientOptions {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			adaptertest.RunLock(t, newPoolWith(c.opt))
		})
	}
}

func TestEvalArguments(t *testing.T) {
	srv := redistest.Start(t)
	conn, err := newPoolWith(valkey.ClientOption{DisableCache: true})(t, srv.Addr()).Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
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
		{"Types", []any{1, []byte("key"), 7, int64(-8), 2.5, true}, "key|7 -8 2.5 1", false},
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

// TestListener drives the pool's redis.Subscriber directly.
func TestListener(t *testing.T) {
	for _, c := range clientOptions {
		t.Run(c.name, func(t *testing.T) {
			adaptertest.RunListener(t, newPoolWith(c.opt))
		})
	}
}

// TestListenerClose closes a listener whose connection is fine: nothing
// is received after Close returns, and the server sees the connection go.
func TestListenerClose(t *testing.T) {
	srv := redistest.Start(t)
	sub := newPoolWith(valkey.ClientOption{DisableCache: true})(t, srv.Addr()).(redis.Subscriber)
	msgs := make(chan redis.Message, 16)
	l, err := sub.Listen(context.Background(), func(m redis.Message) { msgs <- m })
	if err != nil {
		t.Fatalf("Listen() = %v", err)
	}
	if err := l.Subscribe(context.Background(), "ch"); err != nil {
		t.Fatalf("Subscribe() = %v", err)
	}
	if m := <-msgs; !m.Subscribed {
		t.Fatalf("message %+v, want the confirmation", m)
	}
	if err := l.Close(); err != nil {
		t.Errorf("Close() = %v, want nil", err)
	}
	if n := srv.MustDo(t, "PUBLISH", "ch", "after").Int; n != 0 {
		t.Errorf("PUBLISH after Close() reached %d subscribers, want 0", n)
	}
	select {
	case m := <-msgs:
		t.Errorf("message %+v after Close(), want none", m)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestReleaseNotification(t *testing.T) {
	adaptertest.RunNotification(t, newPoolWith(valkey.ClientOption{DisableCache: true}))
}

// TestClusterClient locks through a cluster client used as ONE Redlock
// node (adaptertest.RunCluster).
func TestClusterClient(t *testing.T) {
	adaptertest.RunCluster(t, func(t *testing.T, addrs []string) redis.Pool {
		client := newClient(t, "", valkey.ClientOption{InitAddress: addrs, DisableCache: true})
		if mode := client.Mode(); mode != valkey.ClientModeCluster {
			t.Fatalf("client mode %v, want cluster", mode)
		}
		return valkeygo.NewPool(valkeycompat.NewAdapter(client))
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
		options func(t *testing.T, addr string) valkey.ClientOption
	}{
		{"TLSConfig", func(t *testing.T, addr string) valkey.ClientOption {
			return valkey.ClientOption{
				InitAddress:  []string{addr},
				TLSConfig:    &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
				DisableCache: true,
			}
		}},
		{"ParseURL", func(t *testing.T, addr string) valkey.ClientOption {
			opt, err := valkey.ParseURL("rediss://" + addr + "/0?client_cache=0")
			if err != nil || opt.TLSConfig == nil || !opt.DisableCache {
				t.Fatalf("ParseURL(rediss://...?client_cache=0) = %+v, %v; want TLS on and caching off", opt, err)
			}
			opt.TLSConfig.RootCAs = roots
			return opt
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pools := make([]redis.Pool, len(addrs))
			for i, addr := range addrs {
				pools[i] = valkeygo.NewPool(valkeycompat.NewAdapter(newClient(t, addr, tt.options(t, addr))))
			}
			m := redsync.New(pools...).NewMutex("valkeygo:tls:" + tt.name)
			if err := m.Lock(); err != nil {
				t.Fatalf("Lock() over TLS = %v, want nil", err)
			}
			if ok, err := m.Unlock(); !ok || err != nil {
				t.Errorf("Unlock() over TLS = %v, %v; want true, nil", ok, err)
			}
		})
	}

	t.Run("UntrustedCertificate", func(t *testing.T) {
		// valkey-go connects in NewClient, so the handshake fails there.
		client, err := valkey.NewClient(valkey.ClientOption{
			InitAddress:  addrs[:1],
			TLSConfig:    &tls.Config{MinVersion: tls.VersionTLS12},
			DisableCache: true,
		})
		if err == nil {
			client.Close()
			t.Fatal("NewClient() with an untrusted certificate = nil error, want one")
		}
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Errorf("NewClient() with an untrusted certificate = %v, want an x509.UnknownAuthorityError", err)
		}
	})
}
