// Package redis defines the small interfaces through which redsync talks to
// a Redis server. The core package imports no Redis driver; adapter packages
// (redis/goredis, redis/redigo) translate these interfaces to a driver.
//
// Pool, Conn, Script and NewScript keep the signatures of
// github.com/go-redsync/redsync/v4/redis, so a Pool written for v4 works here
// unchanged. A Pool may also implement the optional interfaces of this
// package (such as [ScriptRunner]); the core detects them at run time and
// falls back to Pool and Conn when they are absent.
package redis

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"time"
)

// Pool hands out connections to one Redis server (or to one Redis
// deployment, such as a cluster). Each Redlock node is one Pool.
//
// Get is called concurrently from several goroutines. The ctx should bound
// the commands sent on the returned Conn, so that they fail when it is done;
// where the driver cannot honour it (go-redis without its
// ContextTimeoutEnabled option), the core still bounds each node by its
// per-node timeout and stops waiting for the reply.
type Pool interface {
	Get(ctx context.Context) (Conn, error)
}

// Conn is a connection to a Redis server, used by one goroutine at a time
// and closed after use.
//
// Get returns "" and a nil error for a missing key. SetNX reports whether
// the key was set. Eval runs a script (EVALSHA, falling back to EVAL when
// the server does not know the script) and returns its reply; a nil reply
// is returned as a nil value and a nil error. Error replies of the server
// are returned as errors whose text is the server's error line.
type Conn interface {
	Get(name string) (string, error)
	Set(name string, value string) (bool, error)
	SetNX(name string, value string, expiry time.Duration) (bool, error)
	Eval(script *Script, keysAndArgs ...any) (any, error)
	ScriptLoad(script *Script) error
	PTTL(name string) (time.Duration, error)
	Close() error
}

// Script is a Lua script with the number of keys it takes and the SHA1 hash
// of its source, as used by EVALSHA.
type Script struct {
	KeyCount int
	Src      string
	Hash     string
}

// NewScript returns a Script. If keyCount is zero or more, Eval puts it in
// the EVAL argument list; if it is negative, the caller passes the key
// count as the first of keysAndArgs. When hash is empty, NewScript computes
// the SHA1 hash of src.
func NewScript(keyCount int, src, hash string) *Script {
	if hash == "" {
		sum := sha1.Sum([]byte(src))
		hash = hex.EncodeToString(sum[:])
	}
	return &Script{KeyCount: keyCount, Src: src, Hash: hash}
}

// ScriptCall is a script with its keys and arguments, ready to send: the
// argument list of EVALSHA is built once, so that the same call can go to
// every node, and on every retry, without further allocation. A ScriptCall
// is immutable after NewScriptCall and safe for concurrent use.
//
// The command names in its argument lists are in lower case ("evalsha",
// "eval"), and the key count is an int, as go-redis's EvalSha and Eval
// methods build them: a go-redis mock compares the arguments as sent, name
// included. Redis itself reads command names in any case; a driver that
// takes the name apart from the arguments (redigo) passes its own.
type ScriptCall struct {
	script  *Script
	evalsha []any // "evalsha", hash, [key count], keys and args
	skip    int   // index of the first key or arg in evalsha
}

// NewScriptCall returns a call of script with keysAndArgs, as [Conn.Eval]
// takes them.
func NewScriptCall(script *Script, keysAndArgs ...any) ScriptCall {
	skip := 2
	if script.KeyCount >= 0 {
		skip = 3
	}
	evalsha := make([]any, skip, skip+len(keysAndArgs))
	evalsha[0], evalsha[1] = "evalsha", script.Hash
	if skip == 3 {
		evalsha[2] = script.KeyCount
	}
	return ScriptCall{script: script, evalsha: append(evalsha, keysAndArgs...), skip: skip}
}

// Script returns the script called.
func (c *ScriptCall) Script() *Script { return c.script }

// KeysAndArgs returns the keys and arguments, as [Conn.Eval] takes them.
// The slice must not be modified.
func (c *ScriptCall) KeysAndArgs() []any { return c.evalsha[c.skip:] }

// EvalSHA returns the whole EVALSHA command: "evalsha", the hash, the key
// count (unless the script's KeyCount is negative), keys and args. The
// slice is shared and must not be modified.
func (c *ScriptCall) EvalSHA() []any { return c.evalsha }

// Eval returns a new slice with the whole EVAL command ("eval", the
// source, then as EvalSHA), to send when the server answers EVALSHA with
// NOSCRIPT.
func (c *ScriptCall) Eval() []any {
	eval := append([]any(nil), c.evalsha...)
	eval[0], eval[1] = "eval", c.script.Src
	return eval
}

// ScriptRunner is an optional interface of a Pool: it runs a script call
// without handing out a Conn, and without copying the call's arguments.
// RunScript has the semantics of [Conn.Eval] on a Conn obtained with
// Get(ctx): EVALSHA, then EVAL when the server answers NOSCRIPT.
type ScriptRunner interface {
	RunScript(ctx context.Context, call *ScriptCall) (any, error)
}

// DeadlineKeeper is an optional interface of a Pool: KeepsDeadlines
// reports whether every command of the pool ends by the deadline of the
// context it is given (go-redis does only with its ContextTimeoutEnabled
// option). The core enforces each node's timeout itself, which takes a
// goroutine per node; with a single node whose pool keeps deadlines, it
// runs the command on the caller's goroutine instead, which saves a
// goroutine switch per command.
type DeadlineKeeper interface {
	KeepsDeadlines() bool
}

// Pipeliner is an optional interface of a Pool whose connections can send
// a command and read its reply later. When every node's pool is one, the
// core sends a round's script to all nodes from one goroutine, writing to
// every node before reading any reply, instead of waiting on each node in
// a goroutine of its own.
type Pipeliner interface {
	// SendScript writes call's EVALSHA on a connection of the pool and
	// returns the reply to read. ok is false, and nothing is sent, when
	// the pool has no open connection to spare: getting one may mean
	// dialling, which must not hold up the other nodes.
	SendScript(ctx context.Context, call *ScriptCall) (reply PendingReply, ok bool, err error)
	// SendCommand is SendScript for a plain command: args[0] is its name
	// (a string), the rest its arguments. Its reply is what the driver
	// returns for the command (nil for a nil reply).
	SendCommand(ctx context.Context, args ...any) (reply PendingReply, ok bool, err error)
}

// PendingReply is the reply of a script sent by a [Pipeliner].
type PendingReply interface {
	// Receive reads the reply, waiting at most until deadline, sends EVAL
	// when the server answered NOSCRIPT, and gives the connection back.
	// It must be called once for every reply sent, possibly from another
	// goroutine than the one that sent it (never from two at once).
	Receive(deadline time.Time) (any, error)
}

// Subscriber is an optional interface of a Pool: it opens connections that
// listen for messages published on the server (Redis pub/sub). The core
// uses it to learn at once that a lock was released instead of polling;
// a Pool without it still works, by polling.
//
// Listen opens one listening connection and returns at once or after
// dialling; it subscribes to nothing yet. receive is called, from a
// goroutine of the Listener and never concurrently, with every message
// published on a subscribed channel, every confirmation of a
// subscription, and finally, if the connection fails, with a Message whose
// Err is set; nothing follows that, and the Listener must still be closed.
// receive must not block: it should only hand the message on.
type Subscriber interface {
	Listen(ctx context.Context, receive func(Message)) (Listener, error)
}

// A Listener is one connection in subscribe mode, made by
// [Subscriber.Listen]. Subscribe and Unsubscribe send the commands and
// return without waiting for the server's confirmation, which arrives
// through the receive function as a Message with Subscribed set. Close
// ends the connection (or hands it back to its pool, out of subscribe
// mode); once it returns, receive is no longer called, except that an
// adapter may deliver messages it had already read. All methods may be
// called from any goroutine.
type Listener interface {
	Subscribe(ctx context.Context, channels ...string) error
	Unsubscribe(ctx context.Context, channels ...string) error
	Close() error
}

// Message is what a [Listener] receives: a message published on Channel
// (Payload is its text), the server's confirmation that Channel is now
// subscribed (Subscribed is true), or the failure of the connection (Err
// is set, and no message follows).
type Message struct {
	Channel    string
	Payload    string
	Subscribed bool
	Err        error
}
