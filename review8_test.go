package redsync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/goredis"
	goredislib "github.com/redis/go-redis/v9"
)

// review8Scene sets up what every test of this file shares: on servers,
// a holder of key (another process) and two waiting Lock calls, W1 (on
// w1pools, its own process) at the head of every node's queue and W2
// (another process) behind it, all with opts (retry delay 1 h, entry life
// 1 min: no fallback within a test). The holder's key is then deleted on
// the last node (it expired there, say), so that its release wakes W1
// from the other nodes, a quorum, and no turn of it can come in during
// W1's try (a turn heard during the try is kept, and would make W1 try
// again a standby wait later). arm runs just before the holder's Unlock;
// the scene then asserts that one of the waiters gets the lock, free on
// the nodes, within 5 s. describe, when not nil, adds to the failure.
func review8Scene(t *testing.T, servers []*redistest.Server, key string, opts []Option, w1pools []redis.Pool, arm func(), describe func() string) {
	t.Helper()
	holder := New(realPools(t, servers)...).NewMutex(key, opts...)
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	// With WithFailFast, Lock returns at a quorum: the key is deleted on
	// the last node below, so it must be on every node first.
	eventually(t, "the holder's key on every node", func() bool {
		for _, srv := range servers {
			if srv.MustDo(t, "EXISTS", key).Int == 0 {
				return false
			}
		}
		return true
	})
	w1m := New(w1pools...).NewMutex(key, opts...)
	w1done := startLock(t, w1m)
	w1 := queuedWaiter(t, w1m)
	queuedEverywhere(t, servers, w1)

	w2m := New(realPools(t, servers)...).NewMutex(key, opts...)
	w2done := startLock(t, w2m)
	w2 := queuedWaiter(t, w2m)
	queuedEverywhere(t, servers, w2)

	servers[len(servers)-1].MustDo(t, "DEL", key)
	arm()
	released := time.Now()
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("holder Unlock() = %v, %v", ok, err)
	}
	select {
	case err := <-w2done:
		if err != nil {
			t.Fatalf("W2 Lock() = %v", err)
		}
		t.Logf("W2 got the lock %v after the release", time.Since(released))
		w2m.Unlock()
	case err := <-w1done:
		if err != nil {
			t.Fatalf("W1 Lock() = %v", err)
		}
		t.Logf("W1 got the lock %v after the release", time.Since(released))
		w1m.Unlock()
	case <-time.After(5 * time.Second):
		free := 0
		for _, srv := range servers {
			if srv.MustDo(t, "EXISTS", key).Int == 0 {
				free++
			}
		}
		more := ""
		if describe != nil {
			more = "; " + describe()
		}
		t.Fatalf("no waiter got the lock within 5s of the release, with the key free on %d of %d nodes; W1 queued on %d, W2 on %d (retry delay 1h, entry renewal after 30s)%s",
			free, len(servers), countQueued(t, servers, w1.member), countQueued(t, servers, w2.member), more)
	}
}

// connReset is the error a read on a connection that the peer reset
// returns (net.OpError wrapping ECONNRESET): not a timeout.
func connReset() error {
	return &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
}

// TestReview8ResetAfterRunNarrowTryStallsQueue guards the liveness
// promise ("waiters must not be stranded beyond a standby wait or two
// while the lock is free") against rules that ignore the turns of the
// undo of a waiter's own try (handoff.go lockWait.takeTurn). A first rule
// (d379c40) ignored them when done + timeouts < quorum ("narrow"); but a
// node error that is no timeout does not say that the script did not
// run: a connection reset after the command was written (a proxy, a load
// balancer, a server that drops the connection) leaves the try's value on
// the node. (A second, counting error replies, fell to the same through
// proxies and retrying clients: the TestReview9 tests.) Now such turns
// bring up to maxOwnTurns tries in a row forward, whatever the replies.
//
// W1 (head of the queue) and W2 (another process, behind it) wait (see
// review8Scene). The holder's Unlock gives W1 the turn (from nodes 0 and
// 1); W1's try takes the free key on all three nodes, but the replies of
// two are lost to a reset. The undo frees the key on all three nodes and
// wakes the head of the queue, W1 itself, from every node, naming the
// try: a turn from a quorum, which makes W1 try again at once
// (TestReview3TurnedWaiterSlowTryStallsQueue's fix). The first form
// ignored it; W2 heard nothing (the holder's turn reached W1, so nobody
// was named standby), and nobody tried until W1's entry renewal (30 s)
// or retry delay (1 h).
func TestReview8ResetAfterRunNarrowTryStallsQueue(t *testing.T) {
	servers := redistest.StartN(t, 3)
	var armed atomic.Bool
	pools := realPools(t, servers)
	for i, p := range pools {
		left := new(atomic.Int32)
		if i > 0 {
			left.Store(1) // nodes 1 and 2 lose the reply of one queue try
		}
		pools[i] = &scriptedPool{inner: p, armed: &armed, left: left, mode: "reset"}
	}
	opts := []Option{WithRetryDelay(time.Hour), WithTries(3), WithExpiry(time.Minute)}
	review8Scene(t, servers, "r8", opts, pools, func() { armed.Store(true) }, nil)
}

// scriptedPool runs, for the queue tries (queue_acquire.lua) while armed,
// up to left of them, the node's scripted behaviour: fail the try without
// sending it, run it then lose the reply to a connection reset, run it
// then report a driver timeout, or run it then hold the reply back.
type scriptedPool struct {
	inner redis.Pool
	armed *atomic.Bool
	left  *atomic.Int32 // queue tries still to script
	// mode: "refuse" (error, not sent), "reset" (runs, then the reply is
	// lost: a proxy, a load balancer or the server dropped the
	// connection), "drivertimeout" (runs, then an i/o timeout), "slow"
	// (runs, the reply comes after slow).
	mode string
	slow time.Duration
}

func (p *scriptedPool) Get(ctx context.Context) (redis.Conn, error) {
	c, err := p.inner.Get(ctx)
	if err != nil {
		return nil, err
	}
	return &scriptedConn{Conn: c, pool: p}, nil
}

func (p *scriptedPool) Listen(ctx context.Context, receive func(redis.Message)) (redis.Listener, error) {
	return p.inner.(redis.Subscriber).Listen(ctx, receive)
}

type scriptedConn struct {
	redis.Conn
	pool *scriptedPool
}

func (c *scriptedConn) Eval(script *redis.Script, keysAndArgs ...any) (any, error) {
	p := c.pool
	if script != queueAcquireScript || !p.armed.Load() || p.left.Add(-1) < 0 {
		return c.Conn.Eval(script, keysAndArgs...)
	}
	switch p.mode {
	case "refuse":
		return nil, errors.New("review8: redis: connection pool timeout")
	case "reset":
		_, _ = c.Conn.Eval(script, keysAndArgs...)
		return nil, connReset()
	case "drivertimeout":
		_, _ = c.Conn.Eval(script, keysAndArgs...)
		// What a driver whose read timeout is shorter than the round's
		// per-node timeout returns (go-redis ReadTimeout, redigo's
		// DialReadTimeout): "read tcp ...: i/o timeout".
		return nil, &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	default:
		reply, err := c.Conn.Eval(script, keysAndArgs...)
		time.Sleep(p.slow)
		return reply, err
	}
}

// TestReview8FailFastUnansweredNodeNarrowsTry is the same through
// WithFailFast: a round that returns once its outcome is decided counts
// nothing for the nodes that had not answered yet, so the first rule's
// done + timeouts < quorum held for a try that did take the key on a
// quorum.
//
// Three nodes, quorum 2. W1's turned try: node 0 refuses it (not sent),
// node 1 runs it and its driver reports a read timeout, node 2 runs it
// and answers 300 ms later (well within the per-node timeout). After
// nodes 0 and 1 the try cannot win and the round returns. W1's value is
// on nodes 1 and 2, a quorum: the undo (after node 2 settled) frees both
// and wakes W1 from both, naming the try, and W1 tries again at once. The
// first form ignored those turns, and W2, behind W1, heard nothing.
func TestReview8FailFastUnansweredNodeNarrowsTry(t *testing.T) {
	servers := redistest.StartN(t, 3)
	var armed atomic.Bool
	pools := realPools(t, servers)
	modes := []string{"refuse", "drivertimeout", "slow"}
	for i, p := range pools {
		left := new(atomic.Int32)
		left.Store(1)
		pools[i] = &scriptedPool{inner: p, armed: &armed, left: left, mode: modes[i], slow: 300 * time.Millisecond}
	}
	opts := []Option{WithRetryDelay(time.Hour), WithTries(3), WithExpiry(time.Minute), WithFailFast(true)}
	review8Scene(t, servers, "r8ff", opts, pools, func() { armed.Store(true) }, nil)
}

// tryProxy is a TCP proxy in front of a redis-server for the review
// tests. It forwards everything; while armed, for up to left of W1's
// queue tries (EVALSHA of queue_acquire.lua), it acts by mode:
//   - "reset": the try runs on the server, and the proxy resets (RST)
//     the client's connection in place of the integer reply, as a proxy
//     or load balancer that drops a connection ("connection reset by
//     peer");
//   - "err": the try runs, and the client gets "-ERR Connection timed
//     out" in place of the integer reply, twemproxy's answer when its
//     server_timeout ran out after it had forwarded the request;
//   - "restart": a node that crashed right after it ran the try and came
//     back loading its data (AOF with appendfsync always keeps the
//     write): the reply is replaced by a reset, and the next three queue
//     tries, on any connection, get "-LOADING ..." without being
//     forwarded (go-redis, MaxRetries 3, retries after the reset and each
//     LOADING, then returns LOADING).
//
// did counts what it did: resets, ERR answers, LOADING answers.
type tryProxy struct {
	ln      net.Listener
	target  string
	mode    string
	armed   *atomic.Bool
	left    atomic.Int32
	loading atomic.Int32
	did     atomic.Int32
}

func startTryProxy(t *testing.T, target, mode string, armed *atomic.Bool) *tryProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tryProxy{ln: ln, target: target, mode: mode, armed: armed}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *tryProxy) Addr() string { return p.ln.Addr().String() }

func (p *tryProxy) serve(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	var marked atomic.Bool // the command in flight is a queue try
	sha := []byte(queueAcquireScript.Hash)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := client.Read(buf)
			if n > 0 {
				if p.armed.Load() && bytes.Contains(buf[:n], sha) {
					if p.mode == "restart" && p.loading.Add(-1) >= 0 {
						p.did.Add(1)
						if _, werr := client.Write([]byte("-LOADING Redis is loading the dataset in memory\r\n")); werr != nil {
							break
						}
						continue
					}
					marked.Store(true)
				}
				if _, werr := server.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		server.Close()
		client.Close()
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 {
			out := buf[:n]
			if marked.Swap(false) && p.armed.Load() && out[0] == ':' && p.left.Add(-1) >= 0 {
				if p.mode == "err" {
					p.did.Add(1)
					out = []byte("-ERR Connection timed out\r\n")
				} else {
					if p.mode == "restart" {
						p.loading.Store(3)
					} else {
						p.did.Add(1)
					}
					_ = client.(*net.TCPConn).SetLinger(0)
					client.Close()
					server.Close()
					return
				}
			}
			if _, werr := client.Write(out); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	client.Close()
	server.Close()
}

// proxyScene is review8Scene with W1 on go-redis clients (options, with
// Addr set) through a tryProxy of mode in front of each node; the
// proxies of nodes 1 and 2 act on one queue try each. what words the
// proxies' count ("%d") for a failure.
func proxyScene(t *testing.T, key, mode string, options goredislib.Options, what string) {
	servers := redistest.StartN(t, 3)
	var armed atomic.Bool
	pools := make([]redis.Pool, len(servers))
	proxies := make([]*tryProxy, len(servers))
	for i, srv := range servers {
		p := startTryProxy(t, srv.Addr(), mode, &armed)
		proxies[i] = p
		if i > 0 {
			p.left.Store(1)
		}
		o := options
		o.Addr = p.Addr()
		client := goredislib.NewClient(&o)
		t.Cleanup(func() { client.Close() })
		pools[i] = goredis.NewPool(client)
	}
	opts := []Option{WithRetryDelay(time.Hour), WithTries(3), WithExpiry(time.Minute)}
	review8Scene(t, servers, key, opts, pools, func() { armed.Store(true) }, func() string {
		did := 0
		for _, p := range proxies {
			did += int(p.did.Load())
		}
		return fmt.Sprintf(what, did)
	})
}

// TestReview8ProxyResetAfterRunStallsQueue is
// TestReview8ResetAfterRunNarrowTryStallsQueue with nothing simulated in
// the pool: W1 talks to the servers through TCP proxies with a plain
// go-redis client (the pool as it ships, EVALSHA through RunScript), and
// the proxies of nodes 1 and 2 reset W1's connection once, in place of
// the reply to its turned queue try. go-redis returns "read: connection
// reset by peer" (not a timeout), the first rule took the try for "narrow", and the quorum of
// turns its undo sends W1 is ignored.
func TestReview8ProxyResetAfterRunStallsQueue(t *testing.T) {
	proxyScene(t, "r8p", "reset", goredislib.Options{MaxRetries: -1}, "the proxies reset %d of W1's connections in place of a queue try's reply")
}
