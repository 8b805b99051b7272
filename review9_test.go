package redsync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	goredislib "github.com/redis/go-redis/v9"
)

// errAfterRunPool runs the queue tries (queue_acquire.lua) while armed,
// up to left of them, and then reports reply in place of the script's
// reply: what a proxy answers when its own timeout toward the server ran
// out after it forwarded the command (twemproxy: "-ERR Connection timed
// out"), or what a client that retried after a lost reply reports when
// the retry found the node LOADING or READONLY.
type errAfterRunPool struct {
	inner redis.Pool
	armed *atomic.Bool
	left  *atomic.Int32
	reply string
	did   atomic.Int32
}

func (p *errAfterRunPool) Get(ctx context.Context) (redis.Conn, error) {
	c, err := p.inner.Get(ctx)
	if err != nil {
		return nil, err
	}
	return &errAfterRunConn{Conn: c, pool: p}, nil
}

func (p *errAfterRunPool) Listen(ctx context.Context, receive func(redis.Message)) (redis.Listener, error) {
	return p.inner.(redis.Subscriber).Listen(ctx, receive)
}

type errAfterRunConn struct {
	redis.Conn
	pool *errAfterRunPool
}

func (c *errAfterRunConn) Eval(script *redis.Script, keysAndArgs ...any) (any, error) {
	p := c.pool
	if script != queueAcquireScript || !p.armed.Load() || p.left.Add(-1) < 0 {
		return c.Conn.Eval(script, keysAndArgs...)
	}
	reply, err := c.Conn.Eval(script, keysAndArgs...)
	if err != nil {
		return reply, err
	}
	p.did.Add(1)
	return nil, errors.New(p.reply)
}

// TestReview9ErrReplyAfterRunStrandsQueue guards the liveness promise
// ("a waiter is not stranded beyond a standby wait or two while the lock
// is free on a quorum"), which the rule of 35a3d4a broke: a try was
// "narrow" (the turns of its undo ignored) when other owners and error
// replies left too few nodes for a quorum. An error reply does not prove that
// the script did not run: a proxy whose timeout toward the server ran out
// after it forwarded the command answers "ERR Connection timed out"
// (twemproxy's server_timeout), and a client that retried a command whose
// reply was lost reports the retry's error (go-redis retries LOADING,
// READONLY, MASTERDOWN...). The first run's write stays.
//
// Scene as in review8: W1 (head) and W2 (another process, behind it).
// The holder's Unlock gives W1 the turn; W1's try takes the free key on
// all three nodes, but nodes 1 and 2 report an error reply. The try counts
// as narrow under that rule (3 - 0 taken - 2 refused < 2). Its undo
// frees the key on the three nodes and wakes the head, W1, from all
// three, naming the try: W1 ignored the turns as an echo, and W2 heard
// nothing (the turn reached W1): nobody tried until the retry delay (1 h)
// or the entries' renewal (30 s). Now such turns bring up to maxOwnTurns
// tries in a row forward, whatever the replies (lockWait.takeTurn).
func TestReview9ErrReplyAfterRunStrandsQueue(t *testing.T) {
	for _, reply := range []string{
		"ERR Connection timed out",
		"LOADING Redis is loading the dataset in memory",
	} {
		t.Run(reply[:bytes.IndexByte([]byte(reply), ' ')], func(t *testing.T) {
			servers := redistest.StartN(t, 3)
			var armed atomic.Bool
			pools := realPools(t, servers)
			scripted := make([]*errAfterRunPool, len(pools))
			for i, p := range pools {
				left := new(atomic.Int32)
				if i > 0 {
					left.Store(1) // nodes 1 and 2: one queue try each
				}
				scripted[i] = &errAfterRunPool{inner: p, armed: &armed, left: left, reply: reply}
				pools[i] = scripted[i]
			}
			opts := []Option{WithRetryDelay(time.Hour), WithTries(3), WithExpiry(time.Minute)}
			review8Scene(t, servers, "r9e", opts, pools, func() { armed.Store(true) }, func() string {
				did := 0
				for _, p := range scripted {
					did += int(p.did.Load())
				}
				return fmt.Sprintf("%d of W1's queue tries ran and were answered %q", did, reply)
			})
		})
	}
}

// TestReview9ProxyErrAfterRunStrandsQueue is
// TestReview9ErrReplyAfterRunStrandsQueue with nothing simulated in the
// pool: W1 talks to the servers through TCP proxies with a go-redis
// client as the README builds it (default options), and the proxies of
// nodes 1 and 2 answer W1's turned queue try, which the server ran,
// "-ERR Connection timed out" once.
func TestReview9ProxyErrAfterRunStrandsQueue(t *testing.T) {
	proxyScene(t, "r9p", "err", goredislib.Options{}, "the proxies answered %d of W1's queue tries (which ran) with ERR")
}

// countPool counts the queue tries (queue_acquire.lua) sent through it.
type countPool struct {
	inner redis.Pool
	n     *atomic.Int64
}

func (p *countPool) Get(ctx context.Context) (redis.Conn, error) {
	c, err := p.inner.Get(ctx)
	if err != nil {
		return nil, err
	}
	return &countConn{Conn: c, n: p.n}, nil
}

func (p *countPool) Listen(ctx context.Context, receive func(redis.Message)) (redis.Listener, error) {
	return p.inner.(redis.Subscriber).Listen(ctx, receive)
}

type countConn struct {
	redis.Conn
	n *atomic.Int64
}

func (c *countConn) Eval(script *redis.Script, keysAndArgs ...any) (any, error) {
	if script == queueAcquireScript {
		c.n.Add(1)
	}
	return c.Conn.Eval(script, keysAndArgs...)
}

// TestReview9ReplicaWithDownNodeStorms: the promise "WithTries bounds the
// counted tries (extra tries brought forward by turns do not count, but
// must not go on without end)", and "no storm of useless tries", for the
// input that d379c40/35a3d4a meant to cover (replicas given as nodes echo
// their primary's wake-ups, TestReadonlyReplicasTriesCounted), with one
// replica and one node that is down instead of two replicas.
//
// Nodes: a primary P, a read-only replica R of P, and a node C that does
// not answer (stopped: connection refused). Quorum 2. Each queue try
// takes P, is refused by R (READONLY, an error reply) and fails on C
// (a transport error, which 35a3d4a's rule counted as "may have"), so the
// try was not narrow. Its undo frees P and wakes the
// head, the waiter itself; R delivers P's PUBLISH too: a turn naming the
// try from a quorum (P and R) brings the next try forward at once, which
// does not count, for as long as the counted tries' schedule lasts: a
// storm of useless tries. Now at most maxOwnTurns tries in a row come
// from such turns (lockWait.takeTurn): a Lock with WithTries(3) and a
// retry delay of 500 ms makes a handful of tries in about a second.
func TestReview9ReplicaWithDownNodeStorms(t *testing.T) {
	primary := redistest.Start(t, "--repl-diskless-sync-delay", "0")
	replica := redistest.Start(t, "--replicaof", "127.0.0.1", fmt.Sprint(primary.Port()))
	down := redistest.Start(t)
	eventually(t, "the replication link", func() bool {
		rep, err := replica.Do("INFO", "replication")
		return err == nil && bytes.Contains([]byte(rep.Str), []byte("master_link_status:up"))
	})
	if err := down.Stop(); err != nil {
		t.Fatal(err)
	}
	var queueTries atomic.Int64
	pools := realPools(t, []*redistest.Server{primary, replica, down})
	pools[0] = &countPool{inner: pools[0], n: &queueTries}
	m := New(pools...).NewMutex("r9storm", WithTries(3), WithRetryDelay(500*time.Millisecond), WithExpiry(time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err := m.LockContext(ctx)
	took := time.Since(start)
	t.Logf("Lock() = %v after %v, %d queue tries", err, took, queueTries.Load())
	if err == nil {
		t.Fatal("Lock() took a lock that no quorum can hold")
	}
	if ctx.Err() != nil || queueTries.Load() > 10 {
		t.Fatalf("Lock with WithTries(3) and a retry delay of 500ms went on for %v (ctx ended: %v) and made %d queue tries: each try's undo woke the waiter from P and, echoed, from R, a quorum, bringing an uncounted try forward",
			took.Round(time.Millisecond), ctx.Err() != nil, queueTries.Load())
	}
}

// TestReview9RetriedIntoLoadingStrandsQueue: the error reply that made
// the try narrow under 35a3d4a's rule is go-redis's own, with the options the README shows
// (ContextTimeoutEnabled, MaxRetries left at its default of 3). Nodes 1
// and 2 run W1's turned queue try and "crash" before the reply (reset);
// go-redis retries and hears LOADING until its retries are used up, and
// returns "LOADING ...": an error reply, so the try counts as refused
// there, though it set the key on all three nodes. The undo frees the
// three and wakes W1 from all three, naming the try: ignored then, news
// now (lockWait.takeTurn).
func TestReview9RetriedIntoLoadingStrandsQueue(t *testing.T) {
	proxyScene(t, "r9l", "restart", goredislib.Options{ContextTimeoutEnabled: true}, "the proxies reset W1's connection after its queue try ran and answered %d of go-redis's retries LOADING")
}
