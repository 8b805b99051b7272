package redsynctest_test

// The two kinds of nodes the conformance scenarios run on: redis-server
// processes (internal/redistest) and the kit's in-process nodes.

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync/internal/chaos"
	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/goredis"
	"github.com/go-redlock/redsync/redsynctest"
)

// A backend is a set of Redlock nodes with the controls of the kit. Its
// methods are called from the test goroutine.
type backend interface {
	// pools returns a pool per node over clients of their own, as a
	// process of its own would have.
	pools(t *testing.T) []redis.Pool
	stop(t *testing.T, i int)
	restart(t *testing.T, i int)
	restartEmpty(t *testing.T, i int)
	setDelay(i int, d time.Duration)
	pause(t *testing.T, i int)
	resume(t *testing.T, i int)
	fastForward(t *testing.T, d time.Duration)
	expireNow(t *testing.T, key string)
	// get returns the string held by running node i under key.
	get(t *testing.T, i int, key string) (string, bool)
	// ttl returns key's time to live on running node i, 0 for none.
	ttl(t *testing.T, i int, key string) time.Duration
	keys(t *testing.T, i int) []string
	// pushList makes key a list on node i.
	pushList(t *testing.T, i int, key string)
	// restartGuard reports whether the nodes run WithRestartGuard's
	// script.
	restartGuard() bool
}

// newClientPool makes a pool over a go-redis client with the options the
// kit gives its own, closed when the test ends.
func newClientPool(t *testing.T, addr string) redis.Pool {
	client := goredislib.NewClient(&goredislib.Options{Addr: addr, ContextTimeoutEnabled: true, DialerRetries: 1})
	t.Cleanup(func() { client.Close() })
	return goredis.NewPool(client)
}

// kitBackend is the kit's nodes.
type kitBackend struct {
	nodes    redsynctest.Nodes
	kitPools bool // the kit's own pools were handed out
}

func newKitBackend(t *testing.T, n int) backend {
	nodes, _ := redsynctest.New(t, n)
	return &kitBackend{nodes: nodes}
}

// pools returns the kit's own pools the first time, then pools over
// clients of their own.
func (b *kitBackend) pools(t *testing.T) []redis.Pool {
	if !b.kitPools {
		b.kitPools = true
		return b.nodes.Pools()
	}
	pools := make([]redis.Pool, len(b.nodes))
	for i, n := range b.nodes {
		pools[i] = newClientPool(t, n.Addr())
	}
	return pools
}

func (b *kitBackend) stop(t *testing.T, i int) { b.nodes[i].Stop() }

func (b *kitBackend) restart(t *testing.T, i int) {
	if err := b.nodes[i].Restart(); err != nil {
		t.Fatalf("node %d: Restart() = %v", i, err)
	}
}

func (b *kitBackend) restartEmpty(t *testing.T, i int) {
	if err := b.nodes[i].RestartEmpty(); err != nil {
		t.Fatalf("node %d: RestartEmpty() = %v", i, err)
	}
}

func (b *kitBackend) setDelay(i int, d time.Duration)           { b.nodes[i].SetDelay(d) }
func (b *kitBackend) pause(t *testing.T, i int)                 { b.nodes[i].Pause() }
func (b *kitBackend) resume(t *testing.T, i int)                { b.nodes[i].Resume() }
func (b *kitBackend) fastForward(t *testing.T, d time.Duration) { b.nodes.FastForward(d) }
func (b *kitBackend) expireNow(t *testing.T, key string)        { b.nodes.ExpireNow(key) }

func (b *kitBackend) get(t *testing.T, i int, key string) (string, bool) {
	return b.nodes[i].Get(key)
}

func (b *kitBackend) ttl(t *testing.T, i int, key string) time.Duration {
	return b.nodes[i].TTL(key)
}

func (b *kitBackend) keys(t *testing.T, i int) []string { return b.nodes[i].Keys() }
func (b *kitBackend) restartGuard() bool                { return false }

func (b *kitBackend) pushList(t *testing.T, i int, key string) {
	if _, err := b.nodes[i].Miniredis().Push(key, "item"); err != nil {
		t.Fatalf("node %d: Push() = %v", i, err)
	}
}

// serverBackend is redis-server processes with the append-only file
// written at every command (so that a restart keeps the data), each behind
// a proxy that can delay its replies.
type serverBackend struct {
	servers []*redistest.Server
	proxies []*chaos.Proxy
}

func newServerBackend(t *testing.T, n int) backend {
	b := serverBackend{servers: redistest.StartN(t, n, "--appendonly", "yes", "--appendfsync", "always")}
	for _, srv := range b.servers {
		p, err := chaos.StartProxy(srv.Addr())
		if err != nil {
			t.Fatalf("starting a proxy: %v", err)
		}
		t.Cleanup(func() { p.Close() })
		b.proxies = append(b.proxies, p)
	}
	return b
}

func (b serverBackend) pools(t *testing.T) []redis.Pool {
	pools := make([]redis.Pool, len(b.proxies))
	for i, p := range b.proxies {
		pools[i] = newClientPool(t, p.Addr())
	}
	return pools
}

func (b serverBackend) stop(t *testing.T, i int) {
	if err := b.servers[i].Kill(); err != nil {
		t.Fatalf("node %d: Kill() = %v", i, err)
	}
}

func (b serverBackend) restart(t *testing.T, i int) {
	if err := b.servers[i].Kill(); err != nil {
		t.Fatalf("node %d: Kill() = %v", i, err)
	}
	if err := b.servers[i].Restart(); err != nil {
		t.Fatalf("node %d: Restart() = %v", i, err)
	}
}

func (b serverBackend) restartEmpty(t *testing.T, i int) {
	srv := b.servers[i]
	if err := srv.Kill(); err != nil {
		t.Fatalf("node %d: Kill() = %v", i, err)
	}
	if err := os.RemoveAll(filepath.Join(srv.Dir(), "appendonlydir")); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatalf("node %d: Restart() = %v", i, err)
	}
}

func (b serverBackend) setDelay(i int, d time.Duration) { b.proxies[i].SetLatency(d) }

func (b serverBackend) pause(t *testing.T, i int) {
	if err := b.servers[i].Pause(); err != nil {
		t.Fatalf("node %d: Pause() = %v", i, err)
	}
}

func (b serverBackend) resume(t *testing.T, i int) {
	if err := b.servers[i].Resume(); err != nil {
		t.Fatalf("node %d: Resume() = %v", i, err)
	}
}

// fastForward shortens the time to live of every key by d, deleting the
// keys whose time runs out: what waiting d would do.
func (b serverBackend) fastForward(t *testing.T, d time.Duration) {
	for i, srv := range b.servers {
		if !srv.Running() {
			continue
		}
		for _, key := range b.keys(t, i) {
			ms := srv.MustDo(t, "PTTL", key).Int
			switch {
			case ms < 0:
			case ms <= d.Milliseconds():
				srv.MustDo(t, "DEL", key)
			default:
				srv.MustDo(t, "PEXPIRE", key, strconv.FormatInt(ms-d.Milliseconds(), 10))
			}
		}
	}
}

func (b serverBackend) expireNow(t *testing.T, key string) {
	for _, srv := range b.servers {
		if srv.Running() {
			srv.MustDo(t, "DEL", key)
		}
	}
}

func (b serverBackend) get(t *testing.T, i int, key string) (string, bool) {
	rep := b.servers[i].MustDo(t, "GET", key)
	return rep.Str, rep.Kind == redistest.KindBulk
}

func (b serverBackend) ttl(t *testing.T, i int, key string) time.Duration {
	ms := b.servers[i].MustDo(t, "PTTL", key).Int
	return time.Duration(max(ms, 0)) * time.Millisecond
}

func (b serverBackend) keys(t *testing.T, i int) []string {
	keys, err := b.servers[i].Keys("*")
	if err != nil {
		t.Fatalf("node %d: KEYS: %v", i, err)
	}
	return keys
}

func (b serverBackend) restartGuard() bool { return true }

func (b serverBackend) pushList(t *testing.T, i int, key string) {
	b.servers[i].MustDo(t, "RPUSH", key, "item")
}
