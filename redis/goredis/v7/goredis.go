// Package goredis makes a [redis.Pool] from a github.com/go-redis/redis/v7
// client: a plain client, a failover (Sentinel) client, a cluster client or
// a ring, anything that implements goredislib.UniversalClient.
//
// The package is a module of its own, so that programs that use another
// driver do not download go-redis v7. Its import path and NewPool are those
// of go-redsync/redsync v4's adapter for go-redis v7.
//
// go-redis v7 ends a command by the deadline of its context, so redsync's
// per-node timeouts bound each command of the client types of go-redis
// (Client, ClusterClient, Ring). Scripts are sent as the client's EvalSha
// and Eval methods send them ("evalsha" and "eval" in lower case, the key
// count as an int), and the other commands through those methods, so that
// expectations a go-redis mock was given for v4 keep matching.
package goredis

import (
	"context"
	"errors"
	"strings"
	"time"

	goredislib "github.com/go-redis/redis/v7"

	"github.com/go-redlock/redsync/redis"
)

var (
	_ redis.Pool           = (*pool)(nil)
	_ redis.ScriptRunner   = (*pool)(nil)
	_ redis.DeadlineKeeper = (*pool)(nil)
	_ redis.Conn           = (*conn)(nil)
)

type pool struct {
	client goredislib.UniversalClient
}

// NewPool returns a Pool that sends its commands through delegate. The
// client's own options (pool size, timeouts, retries, TLS, credentials)
// apply.
func NewPool(delegate goredislib.UniversalClient) redis.Pool {
	return &pool{client: delegate}
}

// withContext returns client bound to ctx, for the client types of
// go-redis; a client of another type (a wrapper, a mock) is returned as it
// is, and its commands are not bounded by ctx.
func withContext(client goredislib.UniversalClient, ctx context.Context) goredislib.UniversalClient {
	switch c := client.(type) {
	case *goredislib.Client:
		return c.WithContext(ctx)
	case *goredislib.ClusterClient:
		return c.WithContext(ctx)
	case *goredislib.Ring:
		return c.WithContext(ctx)
	}
	return client
}

// KeepsDeadlines reports whether the client is one of go-redis's own
// types, which end every command by its context's deadline.
func (p *pool) KeepsDeadlines() bool {
	switch p.client.(type) {
	case *goredislib.Client, *goredislib.ClusterClient, *goredislib.Ring:
		return true
	}
	return false
}

// Get returns a Conn whose commands are bounded by ctx. It never fails: the
// commands borrow connections from the client's own pool.
func (p *pool) Get(ctx context.Context) (redis.Conn, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	return &conn{client: withContext(p.client, ctx), ctx: ctx}, nil
}

// RunScript sends EVALSHA, and EVAL when the server answers NOSCRIPT.
func (p *pool) RunScript(ctx context.Context, call *redis.ScriptCall) (any, error) {
	return run(ctx, p.client, call.Script(), call.KeysAndArgs())
}

func run(ctx context.Context, client goredislib.UniversalClient, script *redis.Script, keysAndArgs []any) (any, error) {
	cmd := goredislib.NewCmd(scriptArgs("evalsha", script.Hash, script, keysAndArgs)...)
	err := client.ProcessContext(ctx, cmd)
	if isNoScript(err) {
		cmd = goredislib.NewCmd(scriptArgs("eval", script.Src, script, keysAndArgs)...)
		err = client.ProcessContext(ctx, cmd)
	}
	if err != nil {
		return nil, noNil(err)
	}
	return cmd.Val(), nil
}

// scriptArgs returns the command that the client's EvalSha (name
// "evalsha", with the hash) or Eval (name "eval", with the source) method
// would build: the key count comes from the script, or, when its KeyCount
// is negative, first in keysAndArgs.
func scriptArgs(name, hashOrSrc string, script *redis.Script, keysAndArgs []any) []any {
	args := make([]any, 0, 3+len(keysAndArgs))
	args = append(args, name, hashOrSrc)
	if script.KeyCount >= 0 {
		args = append(args, script.KeyCount)
	}
	return append(args, keysAndArgs...)
}

// isNoScript reports whether err is the server's NOSCRIPT error reply, as
// opposed to a network error whose text happens to mention it.
func isNoScript(err error) bool {
	var reply goredislib.Error
	return errors.As(err, &reply) && strings.HasPrefix(reply.Error(), "NOSCRIPT")
}

// noNil turns the driver's nil reply into a nil error.
func noNil(err error) error {
	if errors.Is(err, goredislib.Nil) {
		return nil
	}
	return err
}

// conn sends its commands through client, bound to ctx where the client
// can be.
type conn struct {
	client goredislib.UniversalClient
	ctx    context.Context
}

func (c *conn) Get(name string) (string, error) {
	v, err := c.client.Get(name).Result()
	return v, noNil(err)
}

func (c *conn) Set(name string, value string) (bool, error) {
	v, err := c.client.Set(name, value, 0).Result()
	return v == "OK", noNil(err)
}

func (c *conn) SetNX(name string, value string, expiry time.Duration) (bool, error) {
	v, err := c.client.SetNX(name, value, expiry).Result()
	return v, noNil(err)
}

func (c *conn) PTTL(name string) (time.Duration, error) {
	v, err := c.client.PTTL(name).Result()
	return v, noNil(err)
}

// Eval sends EVALSHA, and EVAL when the server answers NOSCRIPT.
func (c *conn) Eval(script *redis.Script, keysAndArgs ...any) (any, error) {
	return run(c.ctx, c.client, script, keysAndArgs)
}

func (c *conn) ScriptLoad(script *redis.Script) error {
	hash, err := c.client.ScriptLoad(script.Src).Result()
	if err != nil {
		return err
	}
	script.Hash = hash
	return nil
}

// Close does nothing: the commands borrow connections from the client's
// own pool.
func (c *conn) Close() error {
	return nil
}
