// Package redigo makes a [redis.Pool] from a github.com/gomodule/redigo pool.
//
// [NewPool] takes a connection of the redigo pool for each command (or
// each round of a Redsync over several nodes, pipelined to every node).
// [NewBatchedPool] does the same for a call alone, and lets calls that
// run at the same time share one connection per node and its writes: many
// goroutines locking at once then cost the servers and the client far
// less (see benchmarks/README.md).
package redigo

import (
	"context"
	"errors"
	"strings"
	"time"

	redigolib "github.com/gomodule/redigo/redis"

	"github.com/go-redlock/redsync/redis"
)

// Pool is the part of *redigolib.Pool that the adapter uses.
type Pool interface {
	Get() redigolib.Conn
	GetContext(ctx context.Context) (redigolib.Conn, error)
}

var (
	_ redis.Pool           = (*pool)(nil)
	_ redis.ScriptRunner   = (*pool)(nil)
	_ redis.DeadlineKeeper = (*pool)(nil)
	_ redis.Pipeliner      = (*pool)(nil)
	_ redis.Conn           = (*conn)(nil)
	_ Pool                 = (*redigolib.Pool)(nil)
)

type pool struct {
	delegate Pool
}

// NewPool returns a Pool that takes its connections from delegate, usually
// a *redigolib.Pool.
func NewPool(delegate Pool) redis.Pool {
	return &pool{delegate: delegate}
}

// Get takes a connection from the pool. Redigo connections have no
// per-command context, so the commands on it are bounded by ctx's deadline
// through redigo's DoContext.
func (p *pool) Get(ctx context.Context) (redis.Conn, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	c, err := p.delegate.GetContext(ctx)
	if err != nil {
		return nil, err
	}
	return &conn{delegate: c, ctx: ctx}, nil
}

// RunScript takes a connection, sends EVALSHA (EVAL when the server
// answers NOSCRIPT) bounded by ctx, and returns the connection.
func (p *pool) RunScript(ctx context.Context, call *redis.ScriptCall) (any, error) {
	c, err := p.delegate.GetContext(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	evalsha := call.EvalSHA()
	v, err := doBounded(ctx, c, "EVALSHA", evalsha[1:]...)
	if isNoScript(err) {
		eval := call.Eval()
		v, err = doBounded(ctx, c, "EVAL", eval[1:]...)
	}
	return v, noNil(err)
}

// doBounded runs one command on c bounded by ctx; it sends nothing when
// ctx has ended. With a deadline (the core always gives one), the deadline
// becomes the read timeout of the command: redigo's DoContext would start
// a goroutine per command to watch ctx. Without one, it is DoContext.
func doBounded(ctx context.Context, c redigolib.Conn, cmd string, args ...any) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		return redigolib.DoContext(c, ctx, cmd, args...)
	}
	timeout := time.Until(deadline)
	if timeout <= 0 {
		return nil, context.DeadlineExceeded
	}
	v, err := redigolib.DoWithTimeout(c, timeout, cmd, args...)
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return v, err
}

// idleCounter is the part of *redigolib.Pool that tells whether a
// connection is open and idle.
type idleCounter interface {
	IdleCount() int
}

// SendScript writes call's EVALSHA on an idle connection of the pool, when
// it has one (and is a *redigolib.Pool, which can tell).
func (p *pool) SendScript(ctx context.Context, call *redis.ScriptCall) (redis.PendingReply, bool, error) {
	evalsha := call.EvalSHA()
	return pending(p.sendIdle(ctx, call, "EVALSHA", evalsha[1:]))
}

// SendCommand writes a plain command on an idle connection of the pool,
// when it has one.
func (p *pool) SendCommand(ctx context.Context, args ...any) (redis.PendingReply, bool, error) {
	name, _ := args[0].(string)
	return pending(p.sendIdle(ctx, nil, name, args[1:]))
}

// pending returns r as a redis.PendingReply: nil when there is none.
func pending(r *pendingReply, ok bool, err error) (redis.PendingReply, bool, error) {
	if r == nil {
		return nil, ok, err
	}
	return r, ok, err
}

// sendIdle takes an idle connection of the pool, writes cmd with args and
// returns the reply to read; ok is false, and nothing is sent, when the
// pool has no idle connection. call, when not nil, is the script to send
// again with EVAL when the server answers NOSCRIPT.
func (p *pool) sendIdle(ctx context.Context, call *redis.ScriptCall, cmd string, args []any) (*pendingReply, bool, error) {
	ic, ok := p.delegate.(idleCounter)
	if !ok || ic.IdleCount() == 0 {
		return nil, false, nil
	}
	c, err := p.delegate.GetContext(ctx)
	if err != nil {
		return nil, true, err
	}
	if err := c.Send(cmd, args...); err != nil {
		c.Close()
		return nil, true, err
	}
	if err := c.Flush(); err != nil {
		c.Close()
		return nil, true, err
	}
	return &pendingReply{conn: c, call: call}, true, nil
}

// pendingReply is a script sent by SendScript.
type pendingReply struct {
	conn redigolib.Conn
	call *redis.ScriptCall
	// batched, when not nil, is the BatchedPool that counts the command
	// as busy until its reply is read.
	batched *BatchedPool
}

// Receive reads the reply by deadline. A reply not read in time breaks
// the connection, which the pool then drops rather than reuse.
func (r *pendingReply) Receive(deadline time.Time) (any, error) {
	if r.batched != nil {
		defer r.batched.done()
	}
	defer r.conn.Close()
	// A timeout of 0 would mean none: at least a nanosecond.
	v, err := redigolib.ReceiveWithTimeout(r.conn, max(time.Until(deadline), time.Nanosecond))
	if r.call != nil && isNoScript(err) {
		timeout := time.Until(deadline)
		if timeout <= 0 {
			return nil, context.DeadlineExceeded
		}
		eval := r.call.Eval()
		v, err = redigolib.DoWithTimeout(r.conn, timeout, "EVAL", eval[1:]...)
	}
	return v, noNil(err)
}

// KeepsDeadlines reports true: RunScript ends each command by its
// context's deadline, the read timeout of the command.
func (p *pool) KeepsDeadlines() bool {
	return true
}

type conn struct {
	delegate redigolib.Conn
	ctx      context.Context
}

// do runs one command bounded by the connection's context. A context that
// has ended fails the command without sending it: redigo's DoContext sends
// it anyway and then picks at random between its reply and ctx.Done.
func (c *conn) do(cmd string, args ...any) (any, error) {
	if err := c.ctx.Err(); err != nil {
		return nil, err
	}
	return redigolib.DoContext(c.delegate, c.ctx, cmd, args...)
}

func (c *conn) Get(name string) (string, error) {
	v, err := redigolib.String(c.do("GET", name))
	return v, noNil(err)
}

func (c *conn) Set(name string, value string) (bool, error) {
	v, err := redigolib.String(c.do("SET", name, value))
	return v == "OK", noNil(err)
}

func (c *conn) SetNX(name string, value string, expiry time.Duration) (bool, error) {
	v, err := redigolib.String(c.do("SET", name, value, "NX", "PX", expiry.Milliseconds()))
	return v == "OK", noNil(err)
}

func (c *conn) PTTL(name string) (time.Duration, error) {
	v, err := redigolib.Int64(c.do("PTTL", name))
	return time.Duration(v) * time.Millisecond, noNil(err)
}

// Eval sends EVALSHA, and EVAL when the server answers NOSCRIPT.
func (c *conn) Eval(script *redis.Script, keysAndArgs ...any) (any, error) {
	args := make([]any, 0, 2+len(keysAndArgs))
	args = append(args, script.Hash)
	if script.KeyCount >= 0 {
		args = append(args, script.KeyCount)
	}
	args = append(args, keysAndArgs...)
	v, err := c.do("EVALSHA", args...)
	if isNoScript(err) {
		args[0] = script.Src
		v, err = c.do("EVAL", args...)
	}
	return v, noNil(err)
}

func (c *conn) ScriptLoad(script *redis.Script) error {
	hash, err := redigolib.String(c.do("SCRIPT", "LOAD", script.Src))
	if err != nil {
		return err
	}
	script.Hash = hash
	return nil
}

func (c *conn) Close() error {
	return c.delegate.Close()
}

// isNoScript reports whether err is the server's NOSCRIPT error reply (a
// redigolib.Error), as opposed to a network error mentioning it.
func isNoScript(err error) bool {
	var reply redigolib.Error
	return errors.As(err, &reply) && strings.HasPrefix(strings.TrimSpace(string(reply)), "NOSCRIPT")
}

// noNil turns the driver's nil reply into a nil error.
func noNil(err error) error {
	if errors.Is(err, redigolib.ErrNil) {
		return nil
	}
	return err
}
