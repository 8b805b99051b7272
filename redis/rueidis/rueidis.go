// Package rueidis makes a [redis.Pool] from a github.com/redis/rueidis
// client: a standalone, Sentinel or cluster client, anything that
// implements rueidislib.Client.
//
// The package is a module of its own, so that programs that use another
// driver do not download rueidis.
//
// rueidis honours the deadline of the ctx given to each command, so the
// ctx of Pool.Get (and of RunScript) bounds every command. Client-side
// caching is never used by the adapter: create the client with
// DisableCache: true unless the program caches elsewhere, because with
// caching on, rueidis sends CLIENT TRACKING when it connects, which needs a
// server that speaks RESP3 (Redis 6 or later) and, with ACLs, the
// permission to run CLIENT TRACKING.
package rueidis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	rueidislib "github.com/redis/rueidis"

	"github.com/go-redlock/redsync/redis"
)

var (
	_ redis.Pool           = (*pool)(nil)
	_ redis.ScriptRunner   = (*pool)(nil)
	_ redis.DeadlineKeeper = (*pool)(nil)
	_ redis.Conn           = (*conn)(nil)
)

type pool struct {
	client rueidislib.Client
}

// NewPool returns a Pool that sends its commands through client. The
// client's own options (addresses, TLS, credentials, timeouts) apply.
func NewPool(client rueidislib.Client) redis.Pool {
	return &pool{client: client}
}

// Get returns a Conn whose commands are bounded by ctx. It never fails:
// the commands borrow connections from the client.
func (p *pool) Get(ctx context.Context) (redis.Conn, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	return &conn{client: p.client, ctx: ctx}, nil
}

// KeepsDeadlines reports true: rueidis ends every command by its
// context's deadline, with or without auto-pipelining (the adapter suite's
// paused-server check holds for every client option the tests use). With
// one node, the core then runs each command on the caller's goroutine.
func (p *pool) KeepsDeadlines() bool {
	return true
}

// RunScript sends EVALSHA, and EVAL when the server answers NOSCRIPT.
func (p *pool) RunScript(ctx context.Context, call *redis.ScriptCall) (any, error) {
	return run(ctx, p.client, call.Script(), call.KeysAndArgs())
}

func run(ctx context.Context, client rueidislib.Client, script *redis.Script, keysAndArgs []any) (any, error) {
	keys, args, err := split(script, keysAndArgs)
	if err != nil {
		return nil, err
	}
	numkeys := int64(len(keys))
	v, err := client.Do(ctx, client.B().Evalsha().Sha1(script.Hash).Numkeys(numkeys).Key(keys...).Arg(args...).Build()).ToAny()
	if isNoScript(err) {
		v, err = client.Do(ctx, client.B().Eval().Script(script.Src).Numkeys(numkeys).Key(keys...).Arg(args...).Build()).ToAny()
	}
	if err != nil {
		return nil, noNil(err)
	}
	return v, nil
}

// split turns keysAndArgs, as Conn.Eval takes them, into the keys and the
// arguments of the script, as strings. When the script's KeyCount is
// negative, the first element is the number of keys.
func split(script *redis.Script, keysAndArgs []any) (keys, args []string, err error) {
	n := script.KeyCount
	if n < 0 {
		if len(keysAndArgs) == 0 {
			return nil, nil, fmt.Errorf("redsync/rueidis: script with KeyCount %d called without a key count", n)
		}
		count, err := strconv.Atoi(text(keysAndArgs[0]))
		if err != nil {
			return nil, nil, fmt.Errorf("redsync/rueidis: bad key count %v: %w", keysAndArgs[0], err)
		}
		n, keysAndArgs = count, keysAndArgs[1:]
	}
	if n < 0 || n > len(keysAndArgs) {
		return nil, nil, fmt.Errorf("redsync/rueidis: key count %d out of range for %d keys and arguments", n, len(keysAndArgs))
	}
	all := make([]string, len(keysAndArgs))
	for i, v := range keysAndArgs {
		all[i] = text(v)
	}
	return all[:n], all[n:], nil
}

// text formats a key or argument the way other Redis drivers send it.
func text(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		// go-redis and redigo both send booleans as 1 and 0.
		if v {
			return "1"
		}
		return "0"
	case fmt.Stringer:
		return v.String()
	default:
		return fmt.Sprint(v)
	}
}

// isNoScript reports whether err is the server's NOSCRIPT error reply, as
// opposed to a network error whose text happens to mention it.
func isNoScript(err error) bool {
	reply, ok := rueidislib.IsRedisErr(err)
	return ok && reply.IsNoScript()
}

// noNil turns the driver's nil reply into a nil error.
func noNil(err error) error {
	if rueidislib.IsRedisNil(err) {
		return nil
	}
	return err
}

type conn struct {
	client rueidislib.Client
	ctx    context.Context
}

func (c *conn) Get(name string) (string, error) {
	v, err := c.client.Do(c.ctx, c.client.B().Get().Key(name).Build()).ToString()
	return v, noNil(err)
}

func (c *conn) Set(name string, value string) (bool, error) {
	v, err := c.client.Do(c.ctx, c.client.B().Set().Key(name).Value(value).Build()).ToString()
	return v == "OK", noNil(err)
}

// SetNX sends SET NX PX, or SET NX without an expiry when expiry is zero
// or less (as go-redis does); a positive expiry under a millisecond counts
// as one.
func (c *conn) SetNX(name string, value string, expiry time.Duration) (bool, error) {
	// The builder appends to one buffer: choose before building.
	set := c.client.B().Set().Key(name).Value(value).Nx()
	var cmd rueidislib.Completed
	if expiry > 0 {
		cmd = set.PxMilliseconds(max(expiry.Milliseconds(), 1)).Build()
	} else {
		cmd = set.Build()
	}
	v, err := c.client.Do(c.ctx, cmd).ToString()
	return v == "OK", noNil(err)
}

// PTTL returns the key's time to live; like the server, it returns -1ms
// for a key without one and -2ms for a missing key.
func (c *conn) PTTL(name string) (time.Duration, error) {
	v, err := c.client.Do(c.ctx, c.client.B().Pttl().Key(name).Build()).AsInt64()
	return time.Duration(v) * time.Millisecond, noNil(err)
}

// Eval sends EVALSHA, and EVAL when the server answers NOSCRIPT.
func (c *conn) Eval(script *redis.Script, keysAndArgs ...any) (any, error) {
	return run(c.ctx, c.client, script, keysAndArgs)
}

func (c *conn) ScriptLoad(script *redis.Script) error {
	hash, err := c.client.Do(c.ctx, c.client.B().ScriptLoad().Script(script.Src).Build()).ToString()
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
