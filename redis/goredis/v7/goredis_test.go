package goredis_test

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"
	"time"

	goredislib "github.com/go-redis/redis/v7"
	"go.uber.org/goleak"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/internal/adaptertest"
	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	goredis "github.com/go-redlock/redsync/redis/goredis/v7"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// redistest forks every redis-server from one goroutine that lives
		// as long as the test binary (see its spawn_linux.go).
		goleak.IgnoreAnyFunction("github.com/go-redlock/redsync/internal/redistest.spawnLoop"),
		// go-redis v7's Ring never stops its heartbeat, even after Close.
		goleak.IgnoreTopFunction("github.com/go-redis/redis/v7.(*ringShards).Heartbeat"))
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
		client.EvalSha(script.Hash, []string{"k"}, "v").Args(),
		client.Eval(script.Src, []string{"k"}, "v").Args(),
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

// TestListener drives the pool's redis.Subscriber directly: confirmation,
// messages, unsubscription, and the failure of the connection.
func TestListener(t *testing.T) {
	srv := redistest.Start(t)
	client := goredislib.NewClient(&goredislib.Options{Addr: srv.Addr(), MaxRetries: -1})
	closeClient(t, client)
	sub, ok := goredis.NewPool(client).(redis.Subscriber)
	if !ok {
		t.Fatal("NewPool() is not a redis.Subscriber")
	}
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
		t.Logf("Close() after the failure = %v", err)
	}
	select {
	case m := <-msgs:
		t.Errorf("message %+v after the failure, want none", m)
	default:
	}
}

// waitSubscribed waits until every server has a subscriber on the release
// channel of the lock name.
func waitSubscribed(t *testing.T, servers []*redistest.Server, name string) {
	t.Helper()
	channel := "redsync:released:" + name
	deadline := time.Now().Add(10 * time.Second)
	for i, srv := range servers {
		for {
			rep := srv.MustDo(t, "PUBSUB", "NUMSUB", channel)
			if len(rep.Elems) == 2 && rep.Elems[1].Int > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d: no subscriber on %s after 10s", i, channel)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestReleaseNotification wakes a waiting Lock of another Redsync (another
// process, as far as the lock goes) through the release notification: its
// retry delay is a minute, so only the notification can wake it in time.
func TestReleaseNotification(t *testing.T) {
	servers := redistest.StartN(t, 3)
	redsyncOver := func() *redsync.Redsync {
		pools := make([]redis.Pool, len(servers))
		for i, srv := range servers {
			pools[i] = newClientPool(t, srv.Addr())
		}
		return redsync.New(pools...)
	}
	const name = "goredis-v7:notify"
	holder := redsyncOver().NewMutex(name, redsync.WithExpiry(30*time.Second))
	if err := holder.Lock(); err != nil {
		t.Fatalf("Lock() = %v", err)
	}
	waiter := redsyncOver().NewMutex(name, redsync.WithExpiry(30*time.Second), redsync.WithRetryDelay(time.Minute))
	done := make(chan error, 1)
	go func() { done <- waiter.Lock() }()
	waitSubscribed(t, servers, name)
	released := time.Now()
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
	t.Logf("woken %v after the release", time.Since(released).Round(time.Millisecond))
	if ok, err := waiter.Unlock(); !ok || err != nil {
		t.Errorf("waiter Unlock() = %v, %v", ok, err)
	}
}

// TestClusterClient locks through a cluster client used as ONE Redlock
// node: each lock goes to the master that owns its slot, scripts follow
// it there, and a waiter is woken by the release notification.
func TestClusterClient(t *testing.T) {
	servers := startCluster(t)
	addrs := make([]string, len(servers))
	for i, srv := range servers {
		addrs[i] = srv.Addr()
	}
	// go-redis v7 cannot parse the CLUSTER SLOTS reply of Redis 7 (four
	// elements per node): the slots are given to it, as ECOSYSTEM.md
	// advises.
	slots := make([]goredislib.ClusterSlot, len(servers))
	for i, r := range slotRanges {
		slots[i] = goredislib.ClusterSlot{Start: r[0], End: r[1], Nodes: []goredislib.ClusterNode{{Addr: addrs[i]}}}
	}
	newRedsync := func() *redsync.Redsync {
		client := goredislib.NewClusterClient(&goredislib.ClusterOptions{
			Addrs:        addrs,
			ClusterSlots: func() ([]goredislib.ClusterSlot, error) { return slots, nil },
		})
		closeClient(t, client)
		return redsync.New(goredis.NewPool(client))
	}
	rs := newRedsync()
	for master, name := range namesPerMaster(t, servers[0], "goredis-v7:cluster:") {
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

	const name = "goredis-v7:cluster:notify"
	holder := rs.NewMutex(name, redsync.WithExpiry(30*time.Second))
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	waiter := newRedsync().NewMutex(name, redsync.WithExpiry(30*time.Second), redsync.WithRetryDelay(time.Minute))
	done := make(chan error, 1)
	go func() { done <- waiter.Lock() }()
	waitClusterSubscribed(t, servers, name)
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

// waitClusterSubscribed waits until some node of a cluster has a
// subscriber on the release channel of the lock name.
func waitClusterSubscribed(t *testing.T, servers []*redistest.Server, name string) {
	t.Helper()
	channel := "redsync:released:" + name
	for deadline := time.Now().Add(10 * time.Second); ; {
		for _, srv := range servers {
			if rep := srv.MustDo(t, "PUBSUB", "NUMSUB", channel); len(rep.Elems) == 2 && rep.Elems[1].Int > 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no subscriber on %s after 10s", channel)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTLS(t *testing.T) {
	certFile, keyFile, roots := writeServerCert(t, t.TempDir())
	addrs := []string{startTLSServer(t, certFile, keyFile), startTLSServer(t, certFile, keyFile), startTLSServer(t, certFile, keyFile)}
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
			m := redsync.New(pools...).NewMutex("goredis-v7:tls:" + tt.name)
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
		err := redsync.New(goredis.NewPool(client)).NewMutex("goredis-v7:tls:untrusted", redsync.WithTries(1)).Lock()
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
	m := redsync.New(goredis.NewPool(client)).NewMutex("goredis-v7:inline",
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
