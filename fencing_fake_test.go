package redsync

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/go-redlock/redsync/redis"
)

// evalFencing runs the logic of the fencing scripts on the fake node's map,
// as fence_acquire.lua (around acquire.lua, raising the counter to the
// proposed token where it takes the lock), fence_advance.lua (raising the
// counter where it is below the token, and failing where it is not) and
// guarded_write.lua do on a server. It reports false for other scripts.
// The guarded variant of the fenced acquire script is not emulated: the
// fake has no process start time (real-server tests cover it).
//
// A guarded-write resource is kept in two map entries, key+"\x00value" and
// key+"\x00fence", standing for the fields of the hash.
func (c *fakeConn) evalFencing(script *redis.Script, keysAndArgs []any) (reply any, handled bool, err error) {
	var name string
	switch script {
	case fencedAcquireScript:
		name = "fence-acquire"
	case fenceAdvanceScript:
		name = "fence-advance"
	case guardedWriteScript:
		name = "guarded-write"
	default:
		return nil, false, nil
	}
	n := c.node
	if err := n.enter(c.ctx, name); err != nil {
		return nil, true, err
	}
	args := make([]string, len(keysAndArgs))
	for i, a := range keysAndArgs {
		args[i] = a.(string)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	switch script {
	case fencedAcquireScript:
		key, counterKey, value, proposed := args[0], args[1], args[2], args[len(args)-1]
		counter, err := n.tokenLocked(counterKey)
		if err != nil {
			return nil, true, err
		}
		status := replyTaken
		if current, held := n.keys[key]; !held || current == value {
			n.keys[key] = value
			status = replyDone
			if counter < mustToken(proposed) {
				n.keys[counterKey] = proposed
			}
		}
		return []any{status, strconv.FormatUint(counter, 10)}, true, nil

	case fenceAdvanceScript:
		key, counterKey, value, token := args[0], args[1], args[2], args[3]
		current, held := n.keys[key]
		switch {
		case !held:
			return nil, true, errors.New("LOCKGONE the lock key expired before the fencing token was written")
		case current != value:
			return replyTaken, true, nil
		}
		stored, err := n.tokenLocked(counterKey)
		if err != nil {
			return nil, true, err
		}
		if stored >= mustToken(token) {
			return nil, true, fmt.Errorf("FENCED fencing counter %s is at %d, not below token %s: another holder took this node first", counterKey, stored, token)
		}
		n.keys[counterKey] = token
		return replyDone, true, nil

	default: // guarded write
		key, value, token := args[0], args[1], args[2]
		stored, err := n.tokenLocked(key + "\x00fence")
		if err != nil {
			return nil, true, err
		}
		if _, exists := n.keys[key+"\x00fence"]; exists && stored > mustToken(token) {
			return []any{int64(0), strconv.FormatUint(stored, 10)}, true, nil
		}
		n.keys[key+"\x00value"], n.keys[key+"\x00fence"] = value, token
		return []any{int64(1), token}, true, nil
	}
}

// tokenLocked returns the token stored at key, 0 when missing. The caller
// holds n.mu.
func (n *fakeNode) tokenLocked(key string) (uint64, error) {
	s, ok := n.keys[key]
	if !ok {
		return 0, nil
	}
	t, err := strconv.ParseUint(s, 10, 64)
	if err != nil || strconv.FormatUint(t, 10) != s {
		return 0, fmt.Errorf("ERR fencing counter %s holds %q, not a token", key, s)
	}
	return t, nil
}

// mustToken parses a token that the client formatted.
func mustToken(s string) uint64 {
	t, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		panic("fake: bad token on the wire: " + s)
	}
	return t
}

// counter returns the fencing counter of the lock name on the node, 0
// when missing.
func (n *fakeNode) counter(name string) uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	t, _ := n.tokenLocked(fenceCounter(name))
	return t
}

// wipe empties the node, as a restart without persistence does.
func (n *fakeNode) wipe() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.keys)
}

// A fault is what a faultPool does to one command.
type fault int

const (
	faultNone   fault = iota
	faultBefore       // the command fails without running on the node
	faultAfter        // the command runs on the node, and its reply is lost
)

// errFault is the error of a command that a faultPool failed.
var errFault = errors.New("fake: injected fault")

// faultPool is a view of a fake node through which each command can be
// failed before or after it runs. hook is called, from the goroutine
// sending the command, with the name of the command (as fakeNode.ran
// records it); it may block, to hold the command back, or change the node.
// ran, when not nil, is called on the same goroutine once the command has
// run on the node (or failed before it), so that a test can wait for a
// command it held back to land.
type faultPool struct {
	node *fakeNode
	hook func(cmd string) fault
	ran  func(cmd string)
}

func (p *faultPool) Get(ctx context.Context) (redis.Conn, error) {
	conn, err := p.node.Get(ctx)
	if err != nil {
		return nil, err
	}
	return &faultConn{Conn: conn, pool: p}, nil
}

type faultConn struct {
	redis.Conn
	pool *faultPool
}

func (c *faultConn) Eval(script *redis.Script, keysAndArgs ...any) (any, error) {
	cmd := scriptName(script)
	if c.pool.ran != nil {
		defer c.pool.ran(cmd)
	}
	switch c.pool.hook(cmd) {
	case faultBefore:
		return nil, errFault
	case faultAfter:
		if _, err := c.Conn.Eval(script, keysAndArgs...); err != nil {
			return nil, err
		}
		return nil, errFault
	}
	return c.Conn.Eval(script, keysAndArgs...)
}

// scriptName is the name under which the fake records a script.
func scriptName(script *redis.Script) string {
	switch script {
	case acquireScript:
		return "acquire"
	case releaseScript, releaseNotifyScript:
		return "release"
	case extendScript:
		return "extend"
	case fencedAcquireScript:
		return "fence-acquire"
	case fenceAdvanceScript:
		return "fence-advance"
	case guardedWriteScript:
		return "guarded-write"
	}
	return "other"
}

// faultPools returns a faultPool over each node of the cluster; hook gets
// the node's index too.
func (c *fakeCluster) faultPools(hook func(node int, cmd string) fault) []redis.Pool {
	pools := make([]redis.Pool, len(c.nodes))
	for i, n := range c.nodes {
		pools[i] = &faultPool{node: n, hook: func(cmd string) fault { return hook(i, cmd) }}
	}
	return pools
}

// lateFaultPools is faultPools with ran, which gets the node's index too
// (see faultPool).
func (c *fakeCluster) lateFaultPools(hook func(node int, cmd string) fault, ran func(node int, cmd string)) []redis.Pool {
	pools := c.faultPools(hook)
	for i, p := range pools {
		p.(*faultPool).ran = func(cmd string) { ran(i, cmd) }
	}
	return pools
}

// fencedMutex returns a fenced mutex over pools that reads the cluster's
// fake clock, tries once and does not wait for release notifications.
func (c *fakeCluster) fencedMutex(name string, pools []redis.Pool, opts ...Option) *Mutex {
	opts = append([]Option{WithFencing(), WithTries(1), WithRetryDelay(0), WithReleaseNotification(false)}, opts...)
	m := New(pools...).NewMutex(name, opts...)
	m.now = c.clock.Now
	return m
}
