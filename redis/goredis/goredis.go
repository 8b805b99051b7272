// Package goredis makes a [redis.Pool] from a github.com/redis/go-redis/v9
// client: a plain client, a failover (Sentinel) client or a cluster client,
// anything that implements goredislib.UniversalClient.
//
// Commands go out as the client's own methods send them: scripts as its
// EvalSha and Eval methods build them ("evalsha" and "eval" in lower case,
// the key count as an int; see [redis.ScriptCall]), the other commands
// through those methods (Get, Set, SetNX, PTTL, ScriptLoad, Subscribe), so
// that expectations a go-redis mock (github.com/go-redis/redismock/v9) was
// given for go-redsync/redsync v4 keep matching where the command is the
// same.
package goredis

import (
	"context"
	"errors"
	"time"

	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync/redis"
)

var (
	_ redis.Pool           = (*pool)(nil)
	_ redis.ScriptRunner   = (*pool)(nil)
	_ redis.DeadlineKeeper = (*pool)(nil)
	_ redis.Clustered      = (*pool)(nil)
	_ redis.Conn           = (*conn)(nil)
)

type pool struct {
	client         goredislib.UniversalClient
	keepsDeadlines bool // the client's ContextTimeoutEnabled
}

// NewPool returns a Pool that sends its commands through client. The
// client's own options (pool size, timeouts, TLS, credentials) apply. Set
// the client's ContextTimeoutEnabled option: without it go-redis ignores
// context deadlines, so a command that redsync gave up on at its per-node
// timeout keeps its connection until the client's ReadTimeout.
func NewPool(client goredislib.UniversalClient) redis.Pool {
	return &pool{client: client, keepsDeadlines: contextTimeoutEnabled(client)}
}

// contextTimeoutEnabled reports whether client has the ContextTimeoutEnabled
// option set; false for a client of a type it does not know.
func contextTimeoutEnabled(client goredislib.UniversalClient) bool {
	switch c := client.(type) {
	case *goredislib.Client:
		return c.Options().ContextTimeoutEnabled
	case *goredislib.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	case *goredislib.Ring:
		return c.Options().ContextTimeoutEnabled
	}
	return false
}

// Clustered reports whether the client is a cluster client
// (*ClusterClient): the names of a multi-key lock must then share a hash
// slot (see redsync.NewMultiMutex).
func (p *pool) Clustered() bool {
	_, ok := p.client.(*goredislib.ClusterClient)
	return ok
}

// KeepsDeadlines reports whether the client ends its commands by their
// context's deadline: whether its ContextTimeoutEnabled option is set.
func (p *pool) KeepsDeadlines() bool {
	return p.keepsDeadlines
}

func (p *pool) Get(ctx context.Context) (redis.Conn, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	return &conn{client: p.client, ctx: ctx}, nil
}

// RunScript sends EVALSHA, and EVAL when the server answers NOSCRIPT.
func (p *pool) RunScript(ctx context.Context, call *redis.ScriptCall) (any, error) {
	return run(ctx, p.client, call)
}

func run(ctx context.Context, client goredislib.UniversalClient, call *redis.ScriptCall) (any, error) {
	cmd := goredislib.NewCmd(ctx, call.EvalSHA()...)
	err := client.Process(ctx, cmd)
	if isNoScript(err) {
		cmd = goredislib.NewCmd(ctx, call.Eval()...)
		err = client.Process(ctx, cmd)
	}
	if err != nil {
		return nil, noNil(err)
	}
	return cmd.Val(), nil
}

// isNoScript reports whether err is the server's NOSCRIPT error reply, as
// opposed to a network error whose text happens to mention it.
func isNoScript(err error) bool {
	return err != nil && goredislib.HasErrorPrefix(err, "NOSCRIPT")
}

// noNil turns the driver's nil reply into a nil error.
func noNil(err error) error {
	if errors.Is(err, goredislib.Nil) {
		return nil
	}
	return err
}

type conn struct {
	client goredislib.UniversalClient
	ctx    context.Context
}

func (c *conn) Get(name string) (string, error) {
	v, err := c.client.Get(c.ctx, name).Result()
	return v, noNil(err)
}

func (c *conn) Set(name string, value string) (bool, error) {
	v, err := c.client.Set(c.ctx, name, value, 0).Result()
	return v == "OK", noNil(err)
}

func (c *conn) SetNX(name string, value string, expiry time.Duration) (bool, error) {
	v, err := c.client.SetNX(c.ctx, name, value, expiry).Result()
	return v, noNil(err)
}

func (c *conn) PTTL(name string) (time.Duration, error) {
	v, err := c.client.PTTL(c.ctx, name).Result()
	return v, noNil(err)
}

func (c *conn) Eval(script *redis.Script, keysAndArgs ...any) (any, error) {
	call := redis.NewScriptCall(script, keysAndArgs...)
	return run(c.ctx, c.client, &call)
}

func (c *conn) ScriptLoad(script *redis.Script) error {
	hash, err := c.client.ScriptLoad(c.ctx, script.Src).Result()
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
