package redsync

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"

	"github.com/go-redlock/redsync/redis"
)

var (
	//go:embed lua/guarded_write.lua
	guardedWriteSrc string

	guardedWriteScript = redis.NewScript(1, guardedWriteSrc, "")
)

// errNoToken is the error of a guarded write without a token.
var errNoToken = errors.New("redsync: guarded write with fencing token 0: the Mutex holds no token (is WithFencing set, and the lock held?)")

// GuardedSet writes value to the resource key on the Redis server of pool,
// if token is at least the fencing token of the last write it accepted,
// and records token as the resource's fence. A holder of a lock made with
// [WithFencing] passes [Mutex.FencingToken]; the same holder may write
// several times with its token (no two holders have the same token, see
// docs/FENCING.md). When a later holder has already written with a
// greater token, the write is not made and the error is a
// *[StaleTokenError] that matches [ErrStaleToken].
//
// The check and the write are one Lua script, so they are atomic on the
// server. The resource is a hash with two fields, "value" and "fence"
// (the token, in decimal): read it with HGET key value. A resource that
// exists as another type fails with an error matching WRONGTYPE in its
// text. GuardedSet needs no lock: it is safe however late it runs, which
// is the point. A token of 0 (no fencing, or no lock held) is refused
// without contacting the server.
//
// pool is any Redis server; a resource kept on the lock nodes themselves
// is fine too, but the check does not need Redlock's quorum: one server
// that keeps the resource and its fence together is enough. ctx bounds the
// call as far as the pool's driver honours it.
func GuardedSet(ctx context.Context, pool redis.Pool, key, value string, token uint64) error {
	if token == 0 {
		return errNoToken
	}
	if ctx == nil {
		ctx = context.Background()
	}
	call := redis.NewScriptCall(guardedWriteScript, key, value, strconv.FormatUint(token, 10))
	runner, _ := pool.(redis.ScriptRunner)
	reply, err := evalScript(ctx, pool, runner, &call)
	if err != nil {
		return fmt.Errorf("redsync: guarded write of %q: %w", key, err)
	}
	written, stored, err := parseFenceReply(reply, "guarded write")
	if err != nil {
		return err
	}
	if written != 1 {
		return &StaleTokenError{Key: key, Stored: stored, Offered: token}
	}
	return nil
}
