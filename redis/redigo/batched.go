package redigo

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	redigolib "github.com/gomodule/redigo/redis"

	"github.com/go-redlock/redsync/redis"
)

var (
	_ redis.Pool           = (*BatchedPool)(nil)
	_ redis.ScriptRunner   = (*BatchedPool)(nil)
	_ redis.DeadlineKeeper = (*BatchedPool)(nil)
	_ redis.Pipeliner      = (*BatchedPool)(nil)
	_ redis.Subscriber     = (*BatchedPool)(nil)
	_ redis.PendingReply   = (*muxCall)(nil)
)

// redialDelay is how long a BatchedPool waits after a failed dial before
// it dials again; meanwhile its calls take connections of the redigo pool.
const redialDelay = 100 * time.Millisecond

// BatchedPool is a [redis.Pool] that lets concurrent calls share their
// writes to the server. A call that finds no other call of the pool in
// flight runs as on a pool made by [NewPool], on a connection of the
// redigo pool of its own; the calls that come while others are in flight
// go through one extra connection, dialled with the redigo pool's Dial
// function and kept by the BatchedPool: a writer goroutine writes every
// command queued since its last write in one write, and a reader goroutine
// reads the replies, in order, and hands each to its call. Each call still
// ends by its own deadline: a call that stops waiting has its reply
// dropped when it comes, and a command not yet written by then is never
// sent.
//
// Scripts (RunScript, and the rounds of a Redsync over several nodes,
// through [redis.Pipeliner]) are batched; the commands of a Conn from Get
// and the listening connections of Listen use the redigo pool as
// [NewPool] does. EVALSHA falls back to EVAL on NOSCRIPT on both paths.
//
// When the shared connection fails, every call in flight on it fails with
// the connection's error, and the next call that finds company dials a new
// one (no sooner than 100ms after a failed dial); calls in between use the
// redigo pool. The shared connection is also given up when the reply to
// its oldest command has not come one second past that command's deadline.
// The redigo pool's IdleTimeout and MaxConnLifetime apply to it: past
// either, it takes no more calls, closes once those in flight have ended,
// and a new one is dialled. A shared connection that the server closed
// while idle is noticed by the calls written on it next, which fail, as a
// dead idle connection of a redigo pool fails the call that takes it.
//
// All methods may be called from any goroutine. Close ends the goroutines
// and the shared connection; the pool keeps working after it, without
// batching. The shared connection does not count against the redigo
// pool's MaxActive. A BatchedPool must not be copied.
type BatchedPool struct {
	plain pool // the path of NewPool
	dial  func(ctx context.Context) (redigolib.Conn, error)

	// busy counts the calls in flight, to tell when a call is alone.
	busy atomic.Int32
	// alwaysShared sends calls alone through the shared connection too
	// (tests).
	alwaysShared bool

	// dialCtx bounds the dials; Close cancels it.
	dialCtx    context.Context
	cancelDial context.CancelFunc
	wg         sync.WaitGroup // the dialling goroutine and the mux's goroutines

	// idleTimeout and maxLifetime are the redigo pool's IdleTimeout and
	// MaxConnLifetime, applied to the shared connection.
	idleTimeout, maxLifetime time.Duration

	// current is the shared connection; nil or broken when there is none.
	// It changes under mu.
	current atomic.Pointer[mux]

	mu       sync.Mutex
	retiring []*mux // retired, maybe with calls still in flight
	dialing  bool
	retryAt  time.Time // no dial before
	closed   bool
}

// NewBatchedPool returns a BatchedPool that takes connections from
// delegate and dials its shared connection with delegate's DialContext
// (or Dial) function, so with the same address and options.
func NewBatchedPool(delegate *redigolib.Pool) *BatchedPool {
	ctx, cancel := context.WithCancel(context.Background())
	b := &BatchedPool{
		plain:       pool{delegate: delegate},
		dialCtx:     ctx,
		cancelDial:  cancel,
		idleTimeout: delegate.IdleTimeout,
		maxLifetime: delegate.MaxConnLifetime,
	}
	switch {
	case delegate.DialContext != nil:
		b.dial = delegate.DialContext
	case delegate.Dial != nil:
		b.dial = func(context.Context) (redigolib.Conn, error) { return delegate.Dial() }
	default:
		b.dial = func(context.Context) (redigolib.Conn, error) {
			return nil, errors.New("redigo: the pool has neither DialContext nor Dial")
		}
	}
	return b
}

// Close stops batching: it fails the calls in flight on the shared
// connection with an error, closes the connection and waits for the
// pool's goroutines to end (a dial in progress through a Dial function
// without a context ends by its own timeout). It does not close the redigo
// pool. Calls after Close run as on a pool made by [NewPool].
func (b *BatchedPool) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	muxes := append(b.retiring, b.current.Swap(nil))
	b.retiring = nil
	b.mu.Unlock()
	b.cancelDial()
	for _, m := range muxes {
		if m != nil {
			m.close()
		}
	}
	b.wg.Wait()
	return nil
}

// Get takes a connection from the redigo pool, as [NewPool]'s Get does.
func (b *BatchedPool) Get(ctx context.Context) (redis.Conn, error) {
	return b.plain.Get(ctx)
}

// Listen opens a listening connection from the redigo pool, as [NewPool]'s
// Listen does.
func (b *BatchedPool) Listen(ctx context.Context, receive func(redis.Message)) (redis.Listener, error) {
	return b.plain.Listen(ctx, receive)
}

// KeepsDeadlines reports true: every call ends by its context's deadline.
func (b *BatchedPool) KeepsDeadlines() bool {
	return true
}

// shared returns the shared connection when the call just counted in busy
// has company and the connection is up; otherwise nil, and the call takes
// the path of NewPool. Finding company and no shared connection, it starts
// dialling one. A shared connection unused for the redigo pool's
// IdleTimeout, or older than its MaxConnLifetime, is retired: the calls in
// flight on it end as usual, and a new one is dialled.
func (b *BatchedPool) shared() *mux {
	if b.busy.Add(1) == 1 && !b.alwaysShared {
		return nil
	}
	m := b.current.Load()
	if m != nil && !m.broken.Load() {
		if b.idleTimeout <= 0 && b.maxLifetime <= 0 {
			return m
		}
		now := time.Now()
		if !b.expired(m, now) {
			m.lastUsed.Store(now.UnixNano())
			return m
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if m := b.current.Load(); m != nil {
		if !m.broken.Load() && !b.expired(m, time.Now()) {
			return m
		}
		b.current.Store(nil)
		m.retire()
		b.retiring = slices.DeleteFunc(b.retiring, func(m *mux) bool { return m.broken.Load() })
		b.retiring = append(b.retiring, m)
	}
	if !b.dialing && !b.closed && !time.Now().Before(b.retryAt) {
		b.dialing = true
		b.wg.Add(1)
		go b.connect()
	}
	return nil
}

// expired reports whether m has been unused for the idle timeout, or
// lived its lifetime, at now.
func (b *BatchedPool) expired(m *mux, now time.Time) bool {
	return b.idleTimeout > 0 && now.Sub(time.Unix(0, m.lastUsed.Load())) > b.idleTimeout ||
		b.maxLifetime > 0 && now.Sub(m.created) > b.maxLifetime
}

// connect dials the shared connection and starts its goroutines.
func (b *BatchedPool) connect() {
	defer b.wg.Done()
	conn, err := b.dial(b.dialCtx)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.dialing = false
	switch {
	case err != nil:
		b.retryAt = time.Now().Add(redialDelay)
	case b.closed:
		_ = conn.Close()
	default:
		b.current.Store(newMux(conn, &b.wg))
	}
}

// done ends a call counted in busy.
func (b *BatchedPool) done() {
	b.busy.Add(-1)
}

// RunScript runs call bounded by ctx: EVALSHA, then EVAL when the server
// answers NOSCRIPT. A ctx without a deadline takes the path of NewPool.
func (b *BatchedPool) RunScript(ctx context.Context, call *redis.ScriptCall) (any, error) {
	m := b.shared()
	defer b.done()
	deadline, ok := ctx.Deadline()
	if m == nil || !ok {
		return b.plain.RunScript(ctx, call)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	evalsha := call.EvalSHA()
	v, err := b.runShared(ctx, m, newMuxCall("EVALSHA", evalsha[1:], deadline, call))
	if isNoScript(err) {
		eval := call.Eval()
		v, err = b.runShared(ctx, m, newMuxCall("EVAL", eval[1:], deadline, nil))
	}
	return v, noNil(err)
}

// runShared sends c through m and waits for its reply until ctx ends. When
// m broke before c was queued, c runs on the path of NewPool instead.
func (b *BatchedPool) runShared(ctx context.Context, m *mux, c *muxCall) (any, error) {
	if err := m.enqueue(c); err != nil {
		cmd, args := c.cmd, c.args
		c.recycle()
		return doPlain(ctx, b.plain.delegate, cmd, args)
	}
	v, err := c.wait(ctx.Done())
	if errors.Is(err, errAbandoned) {
		return nil, deadlineError(ctx)
	}
	return v, err
}

// doPlain runs one command on a connection of the redigo pool, bounded by
// ctx.
func doPlain(ctx context.Context, delegate Pool, cmd string, args []any) (any, error) {
	c, err := delegate.GetContext(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return doBounded(ctx, c, cmd, args...)
}

// SendScript writes call's EVALSHA through the shared connection, or, for
// a call alone, on an idle connection of the redigo pool as [NewPool]'s
// SendScript does. ok is false when neither is at hand, or ctx has no
// deadline.
func (b *BatchedPool) SendScript(ctx context.Context, call *redis.ScriptCall) (redis.PendingReply, bool, error) {
	evalsha := call.EvalSHA()
	return b.send(ctx, call, "EVALSHA", evalsha[1:])
}

// SendCommand is SendScript for a plain command.
func (b *BatchedPool) SendCommand(ctx context.Context, args ...any) (redis.PendingReply, bool, error) {
	name, _ := args[0].(string)
	return b.send(ctx, nil, name, args[1:])
}

func (b *BatchedPool) send(ctx context.Context, call *redis.ScriptCall, cmd string, args []any) (redis.PendingReply, bool, error) {
	m := b.shared()
	if deadline, ok := ctx.Deadline(); m != nil && ok {
		if err := ctx.Err(); err != nil {
			b.done()
			return nil, true, err
		}
		c := newMuxCall(cmd, args, deadline, call)
		c.pool = b
		if m.enqueue(c) == nil {
			return c, true, nil
		}
		// The shared connection broke meanwhile.
		c.recycle()
	}
	p, ok, err := b.plain.sendIdle(ctx, call, cmd, args)
	if !ok || err != nil {
		b.done()
		return nil, ok, err
	}
	p.batched = b
	return p, true, nil
}

// Receive reads the reply of a command sent by SendScript or SendCommand
// through the shared connection, waiting at most until deadline, and sends
// EVAL when the server answered NOSCRIPT to a script.
func (c *muxCall) Receive(deadline time.Time) (any, error) {
	b, script := c.pool, c.script
	defer b.done()
	v, err := c.waitUntil(deadline)
	if script != nil && isNoScript(err) {
		eval := script.Eval()
		v, err = b.evalUntil(eval[1:], deadline)
	}
	if errors.Is(err, errAbandoned) {
		return nil, context.DeadlineExceeded
	}
	return v, noNil(err)
}

// evalUntil sends EVAL with args through the shared connection, or on a
// connection of the redigo pool when there is none, and waits for its
// reply until deadline.
func (b *BatchedPool) evalUntil(args []any, deadline time.Time) (any, error) {
	if m := b.current.Load(); m != nil {
		e := newMuxCall("EVAL", args, deadline, nil)
		if m.enqueue(e) == nil {
			return e.waitUntil(deadline)
		}
		e.recycle()
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	return doPlain(ctx, b.plain.delegate, "EVAL", args)
}
