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

// TestListener drives the pool's redis.Subscriber directly: confirmation,
// messages, unsubscription, and the failure of the connection.
func TestListener(t *testing.T) {
	for _, c := range clientOptions {
		t.Run(c.name, func(t *testing.T) {
			srv := redistest.Start(t)
			sub, ok := newPoolWith(c.opt)(t, srv.Addr()).(redis.Subscriber)
			if !ok {
				t.Fatal("NewPool() is not a redis.Subscriber")
			}
			testListener(t, srv, sub)
		})
	}
}

func testListener(t *testing.T, srv *redistest.Server, sub redis.Subscriber) {
	msgs := make(chan redis.Message, 16)
	l, err := sub.Listen(context.Background(), func(m redis.Message) { msgs <- m })
	if err != nil {
		t.Fatalf("Listen() = %v", err)
	}
	defer l.Close()
	next := func(what string) redis.Message {
		t.Helper()
		select {
		case m := <-msgs:
			return m
		case <-time.After(10 * time.Second):
			t.Fatalf("no message within 10s, want %s", what)
			return redis.Message{}
		}
	}

	ctx := context.Background()
	if err := l.Subscribe(ctx, "ch1", "ch2"); err != nil {
		t.Fatalf("Subscribe() = %v", err)
	}
	for _, ch := range []string{"ch1", "ch2"} {
		if m := next("a confirmation"); !m.Subscribed || m.Channel != ch || m.Err != nil {
			t.Errorf("message %+v, want the confirmation of %s", m, ch)
		}
	}
	srv.MustDo(t, "PUBLISH", "ch2", "hello")
	if m := next("a message"); m.Channel != "ch2" || m.Payload != "hello" || m.Subscribed {
		t.Errorf("message %+v, want hello on ch2", m)
	}
	if err := l.Unsubscribe(ctx); err != nil {
		t.Errorf("Unsubscribe() of no channel = %v, want nil", err)
	}
	if err := l.Unsubscribe(ctx, "ch2"); err != nil {
		t.Fatalf("Unsubscribe() = %v", err)
	}
	// PUBLISH answers how many clients received the message.
	for deadline := time.Now().Add(10 * time.Second); srv.MustDo(t, "PUBLISH", "ch2", "gone").Int != 0; {
		if time.Now().After(deadline) {
			t.Fatal("ch2 still has a subscriber 10s after Unsubscribe()")
		}
		time.Sleep(10 * time.Millisecond)
	}
	srv.MustDo(t, "PUBLISH", "ch1", "still")
	if m := next("a message"); m.Channel != "ch1" || m.Payload != "still" {
		t.Errorf("message %+v, want still on ch1", m)
	}

	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if m := next("the failure"); m.Err == nil {
		t.Errorf("message %+v after the server died, want one with Err set", m)
	}
	if err := l.Close(); err != nil {
		t.Errorf("Close() after the failure = %v, want nil", err)
	}
	select {
	case m := <-msgs:
		t.Errorf("message %+v after the failure, want none", m)
	default:
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

// waitSubscribed waits until one of servers has a subscriber on the
// release channel of the lock name, for each group of servers.
func waitSubscribed(t *testing.T, groups [][]*redistest.Server, name string) {
	t.Helper()
	channel := "redsync:released:" + name
	deadline := time.Now().Add(10 * time.Second)
	for i, group := range groups {
	poll:
		for {
			for _, srv := range group {
				if rep := srv.MustDo(t, "PUBSUB", "NUMSUB", channel); len(rep.Elems) == 2 && rep.Elems[1].Int > 0 {
					break poll
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d: no subscriber on %s after 10s", i, channel)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// testNotification wakes a waiting Lock of a second Redsync (another
// process, as far as the lock goes) through the release notification: its
// retry delay is a minute, so only the notification can wake it in time.
// newRedsync makes a Redsync with clients of its own; groups are the
// servers of each node.
func testNotification(t *testing.T, newRedsync func() *redsync.Redsync, groups [][]*redistest.Server, name string) {
	t.Helper()
	holder := newRedsync().NewMutex(name, redsync.WithExpiry(30*time.Second))
	if err := holder.Lock(); err != nil {
		t.Fatalf("Lock() = %v", err)
	}
	waiter := newRedsync().NewMutex(name, redsync.WithExpiry(30*time.Second), redsync.WithRetryDelay(time.Minute))
	done := make(chan error, 1)
	go func() { done <- waiter.Lock() }()
	waitSubscribed(t, groups, name)
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("Unlock() = %v, %v", ok, err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("waiter Lock() = %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the waiter was not woken by the release (its retry delay is a minute)")
	}
	if ok, err := waiter.Unlock(); !ok || err != nil {
		t.Errorf("waiter Unlock() = %v, %v", ok, err)
	}
}

func TestReleaseNotification(t *testing.T) {
	servers := redistest.StartN(t, 3)
	groups := make([][]*redistest.Server, len(servers))
	for i, srv := range servers {
		groups[i] = []*redistest.Server{srv}
	}
	newRedsync := func() *redsync.Redsync {
		pools := make([]redis.Pool, len(servers))
		for i, srv := range servers {
			pools[i] = newPoolWith(valkey.ClientOption{DisableCache: true})(t, srv.Addr())
		}
		return redsync.New(pools...)
	}
	testNotification(t, newRedsync, groups, "valkeygo:notify")
}

// TestClusterClient locks through a cluster client used as ONE Redlock
// node: each lock goes to the master that owns its slot, scripts follow it
// there, and a waiter is woken by the release notification.
func TestClusterClient(t *testing.T) {
	servers := startCluster(t)
	addrs := make([]string, len(servers))
	for i, srv := range servers {
		addrs[i] = srv.Addr()
	}
	newRedsync := func() *redsync.Redsync {
		client := newClient(t, "", valkey.ClientOption{InitAddress: addrs, DisableCache: true})
		if mode := client.Mode(); mode != valkey.ClientModeCluster {
			t.Fatalf("client mode %v, want cluster", mode)
		}
		return redsync.New(valkeygo.NewPool(valkeycompat.NewAdapter(client)))
	}
	rs := newRedsync()
	for master, name := range namesPerMaster(t, servers[0], "valkeygo:cluster:") {
		m := rs.NewMutex(name, redsync.WithExpiry(10*time.Second))
		if err := m.Lock(); err != nil {
			t.Fatalf("Lock(%s) = %v", name, err)
		}
		if rep := servers[master].MustDo(t, "GET", name); rep.Str != m.Value() {
			t.Errorf("master %d, owner of %s, holds %s; want %q", master, name, rep, m.Value())
		}
		for _, srv := range servers {
			srv.MustDo(t, "SCRIPT", "FLUSH")
		}
		if ok, err := m.Extend(); !ok || err != nil {
			t.Errorf("Extend(%s) after SCRIPT FLUSH = %v, %v; want true, nil", name, ok, err)
		}
		if ok, err := m.Unlock(); !ok || err != nil {
			t.Errorf("Unlock(%s) = %v, %v; want true, nil", name, ok, err)
		}
	}
	testNotification(t, newRedsync, [][]*redistest.Server{servers}, "valkeygo:cluster:notify")
}

func TestTLS(t *testing.T) {
	certFile, keyFile, roots := writeServerCert(t, t.TempDir())
	addrs := []string{startTLSServer(t, certFile, keyFile), startTLSServer(t, certFile, keyFile), startTLSServer(t, certFile, keyFile)}
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
