// Package valkeygo makes a [redis.Pool] from a github.com/valkey-io/valkey-go
// client, through its go-redis-like adapter
// github.com/valkey-io/valkey-go/valkeycompat: a standalone, Sentinel or
// cluster client wrapped by valkeycompat.NewAdapter.
//
// The package is a module of its own, so that programs that use another
// driver do not download valkey-go. Its import path and NewPool are those
// of go-redsync/redsync v4's adapter for valkey-go.
//
// valkey-go ends every command by the deadline of its ctx, so redsync's
// per-node timeouts bound each command without further setup. Commands go
// through the valkeycompat methods (Get, Set, SetNX, PTTL, EvalSha, Eval,
// ScriptLoad), as v4's adapter sent them. Release notification listens on
// dedicated connections of the valkey.Client behind the adapter (its
// Client method).
package valkeygo

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/valkey-io/valkey-go"
	"github.com/valkey-io/valkey-go/valkeycompat"

	"github.com/go-redlock/redsync/redis"
)

var (
	_ redis.Pool         = (*pool)(nil)
	_ redis.ScriptRunner = (*pool)(nil)
	_ redis.Conn         = (*conn)(nil)
)

type pool struct {
	cmd valkeycompat.Cmdable
}

// NewPool returns a Pool that sends its commands through delegate, usually
// valkeycompat.NewAdapter(client). The client's own options (addresses,
// TLS, credentials, timeouts) apply.
func NewPool(delegate valkeycompat.Cmdable) redis.Pool {
	return &pool{cmd: delegate}
}

// Get returns a Conn whose commands are bounded by ctx. It never fails: the
// commands borrow connections from the client.
func (p *pool) Get(ctx context.Context) (redis.Conn, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	return &conn{cmd: p.cmd, ctx: ctx}, nil
}

// RunScript sends EVALSHA, and EVAL when the server answers NOSCRIPT.
func (p *pool) RunScript(ctx context.Context, call *redis.ScriptCall) (any, error) {
	return run(ctx, p.cmd, call.Script(), call.KeysAndArgs())
}

func run(ctx context.Context, cmd valkeycompat.Cmdable, script *redis.Script, keysAndArgs []any) (any, error) {
	keys, args, err := split(script, keysAndArgs)
	if err != nil {
		return nil, err
	}
	v, err := cmd.EvalSha(ctx, script.Hash, keys, args...).Result()
	if isNoScript(err) {
		v, err = cmd.Eval(ctx, script.Src, keys, args...).Result()
	}
	if err != nil {
		return nil, noNil(err)
	}
	return v, nil
}

// split turns keysAndArgs, as Conn.Eval takes them, into the keys of the
// script, as strings, and its arguments. When the script's KeyCount is
// negative, the first element is the number of keys.
func split(script *redis.Script, keysAndArgs []any) (keys []string, args []any, err error) {
	n := script.KeyCount
	if n < 0 {
		if len(keysAndArgs) == 0 {
			return nil, nil, fmt.Errorf("redsync/valkeygo: script with KeyCount %d called without a key count", n)
		}
		count, err := strconv.Atoi(text(keysAndArgs[0]))
		if err != nil {
			return nil, nil, fmt.Errorf("redsync/valkeygo: bad key count %v: %w", keysAndArgs[0], err)
		}
		n, keysAndArgs = count, keysAndArgs[1:]
	}
	if n < 0 || n > len(keysAndArgs) {
		return nil, nil, fmt.Errorf("redsync/valkeygo: key count %d out of range for %d keys and arguments", n, len(keysAndArgs))
	}
	keys = make([]string, n)
	for i, k := range keysAndArgs[:n] {
		keys[i] = text(k)
	}
	return keys, keysAndArgs[n:], nil
}

// text formats a key, or a key count, as a string: in fmt's default format
// unless it is a string or a byte slice. (The arguments are formatted by
// valkeycompat.)
func text(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return fmt.Sprint(v)
}

// isNoScript reports whether err is the server's NOSCRIPT error reply, as
// opposed to a network error whose text happens to mention it.
func isNoScript(err error) bool {
	reply, ok := valkey.IsValkeyErr(err)
	return ok && reply.IsNoScript()
}

// noNil turns the driver's nil reply into a nil error.
func noNil(err error) error {
	if valkey.IsValkeyNil(err) {
		return nil
	}
	return err
}

type conn struct {
	cmd valkeycompat.Cmdable
	ctx context.Context
}

func (c *conn) Get(name string) (string, error) {
	v, err := c.cmd.Get(c.ctx, name).Result()
	return v, noNil(err)
}

func (c *conn) Set(name string, value string) (bool, error) {
	v, err := c.cmd.Set(c.ctx, name, value, 0).Result()
	return v == "OK", noNil(err)
}

func (c *conn) SetNX(name string, value string, expiry time.Duration) (bool, error) {
	v, err := c.cmd.SetNX(c.ctx, name, value, expiry).Result()
	return v, noNil(err)
}

func (c *conn) PTTL(name string) (time.Duration, error) {
	v, err := c.cmd.PTTL(c.ctx, name).Result()
	return v, noNil(err)
}

// Eval sends EVALSHA, and EVAL when the server answers NOSCRIPT.
func (c *conn) Eval(script *redis.Script, keysAndArgs ...any) (any, error) {
	return run(c.ctx, c.cmd, script, keysAndArgs)
}

func (c *conn) ScriptLoad(script *redis.Script) error {
	hash, err := c.cmd.ScriptLoad(c.ctx, script.Src).Result()
	if err != nil {
		return err
	}
	script.Hash = hash
	return nil
}

// Close does nothing: the commands borrow connections from the client.
func (c *conn) Close() error {
	return nil
}
