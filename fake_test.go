package redsync

import (
	"context"
	"errors"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redlock/redsync/redis"
)

// fakeClock is a clock that moves only when told to. The fake nodes advance
// it by their latency, so validity and drift can be tested without sleeping.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fakeNode is an in-memory Redis node that understands the lock scripts.
// It implements redis.Pool and hands out fakeConns.
type fakeNode struct {
	clock *fakeClock

	mu      sync.Mutex
	keys    map[string]string
	err     error         // returned by every command when set
	latency time.Duration // added to the fake clock by every command
	slow    string        // when set, only commands of this name add latency or block
	block   chan struct{} // when set, commands wait for it to close (or ctx)
	deaf    chan struct{} // when set, commands wait for it to close, ignoring ctx
	calls   atomic.Int32  // commands received
	scripts []string      // names of the commands received, in order
	served  []string      // names of the commands served (not cancelled), in order
	// queues are the queues of waiters, by lock key (queue_fake_test.go);
	// subs are the listening sides that PUBLISH reaches.
	queues map[string][]fakeEntry
	subs   []*fakeSubNode
}

func newFakeNode(clock *fakeClock) *fakeNode {
	return &fakeNode{clock: clock, keys: map[string]string{}}
}

func (n *fakeNode) Get(ctx context.Context) (redis.Conn, error) {
	return &fakeConn{node: n, ctx: ctx}, nil
}

func (n *fakeNode) set(key, value string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.keys[key] = value
}

func (n *fakeNode) value(key string) (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	v, ok := n.keys[key]
	return v, ok
}

func (n *fakeNode) setErr(err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.err = err
}

func (n *fakeNode) servedCommands() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.served...)
}

func (n *fakeNode) ran() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.scripts...)
}

// enter is the common start of every command: count it, wait when
// blocked, advance the clock, and return the injected error.
func (n *fakeNode) enter(ctx context.Context, name string) error {
	n.calls.Add(1)
	n.mu.Lock()
	n.scripts = append(n.scripts, name)
	block, deaf, latency, err := n.block, n.deaf, n.latency, n.err
	if n.slow != "" && n.slow != name {
		latency, block = 0, nil
	}
	n.mu.Unlock()
	if deaf == nil && block == nil && ctx.Err() != nil {
		// A driver sends no command whose context has ended (go-redis
		// and redigo check it before they write).
		return ctx.Err()
	}
	if deaf != nil {
		<-deaf
	}
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	n.mu.Lock()
	n.served = append(n.served, name)
	n.mu.Unlock()
	if n.clock != nil && latency > 0 {
		n.clock.Advance(latency)
	}
	return err
}

type fakeConn struct {
	node *fakeNode
	ctx  context.Context
}

var errUnsupported = errors.New("fake: unsupported command")

func (c *fakeConn) Get(name string) (string, error) {
	if err := c.node.enter(c.ctx, "GET"); err != nil {
		return "", err
	}
	v, _ := c.node.value(name)
	return v, nil
}

func (c *fakeConn) Set(name, value string) (bool, error) { return false, errUnsupported }

func (c *fakeConn) SetNX(name, value string, expiry time.Duration) (bool, error) {
	return false, errUnsupported
}

func (c *fakeConn) PTTL(name string) (time.Duration, error) { return 0, errUnsupported }

func (c *fakeConn) ScriptLoad(script *redis.Script) error { return errUnsupported }

func (c *fakeConn) Close() error { return nil }

// Eval runs the lock scripts' logic on the node's map.
func (c *fakeConn) Eval(script *redis.Script, keysAndArgs ...any) (any, error) {
	n := c.node
	keysAndArgs = withoutQueueKeys(script, keysAndArgs)
	var name string
	switch script {
	case acquireScript:
		name = "acquire"
	case releaseScript:
		name = "release"
	case releaseNotifyScript:
		return c.evalReleaseNotify(keysAndArgs)
	case queueAcquireScript, queueLeaveScript:
		return c.evalQueue(script, keysAndArgs)
	case extendScript:
		name = "extend"
	case transferScript:
		return c.evalTransfer(keysAndArgs)
	case multiAcquireScript, multiReleaseScript, multiExtendScript:
		return c.evalMulti(script, keysAndArgs)
	default:
		// The fencing scripts (fencing_fake_test.go).
		if reply, handled, err := c.evalFencing(script, keysAndArgs); handled {
			return reply, err
		}
		return nil, errUnsupported
	}
	if err := n.enter(c.ctx, name); err != nil {
		return nil, err
	}
	key, value := keysAndArgs[0].(string), keysAndArgs[1].(string)
	if value == "" {
		return nil, errors.New("fake: empty value on the wire")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	current, ok := n.keys[key]
	switch script {
	case acquireScript:
		if !ok || current == value {
			n.keys[key] = value
			return replyDone, nil
		}
		return fakeHolder(current), nil
	case releaseScript:
		switch {
		case !ok:
			return replyMissing, nil
		case current == value:
			delete(n.keys, key)
			return replyDone, nil
		}
		return replyTaken, nil
	default: // extend
		switch {
		case current == value && ok:
			return replyDone, nil
		case !ok && keysAndArgs[3] == "1":
			n.keys[key] = value
			return replyDone, nil
		case !ok:
			return replyMissing, nil
		}
		return replyTaken, nil
	}
}

// withoutQueueKeys returns the keys and arguments of a call of script
// without the keys that the queue scripts take after the lock key (the
// fakes keep their queues by lock key).
func withoutQueueKeys(script *redis.Script, keysAndArgs []any) []any {
	switch script {
	case releaseNotifyScript, queueAcquireScript, queueLeaveScript, transferScript:
		if len(keysAndArgs) >= script.KeyCount {
			return append([]any{keysAndArgs[0]}, keysAndArgs[script.KeyCount:]...)
		}
	}
	return keysAndArgs
}

// fakeHolder is acquire.lua's reply when value holds the key: replyTakenBy
// plus a fingerprint of value (here FNV-1a, 48 bits, rather than SHA1).
func fakeHolder(value string) int64 {
	h := fnv.New64a()
	h.Write([]byte(value))
	return replyTakenBy + int64(h.Sum64()>>16)
}

// evalTransfer runs transfer.lua's logic on the node's map.
func (c *fakeConn) evalTransfer(keysAndArgs []any) (any, error) {
	n := c.node
	key, old, next, mode := keysAndArgs[0].(string), keysAndArgs[1].(string), keysAndArgs[2].(string), keysAndArgs[4].(string)
	name := "transfer"
	if mode == "undo" {
		name = "transfer-undo"
	}
	if err := n.enter(c.ctx, name); err != nil {
		return nil, err
	}
	if old == "" || next == "" {
		return nil, errors.New("fake: empty value on the wire")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	current, ok := n.keys[key]
	if len(keysAndArgs) > 6 && mode != "undo" {
		member := keysAndArgs[5].(string)
		n.leaveQueue(key, member)
		if len(keysAndArgs) > 8 && keysAndArgs[7].(string) != "" {
			n.leaveQueue(key, keysAndArgs[7].(string))
		}
	}
	switch {
	case ok && current != old && current != next:
		return replyTaken, nil
	case mode == "undo" && !ok:
		return replyMissing, nil
	case mode == "undo":
		delete(n.keys, key)
		return replyDone, nil
	case !ok:
		n.keys[key] = next
		return replyTookOver, nil
	}
	n.keys[key] = next
	return replyDone, nil
}

// fakeCluster is a set of fake nodes sharing one clock.
type fakeCluster struct {
	clock *fakeClock
	nodes []*fakeNode
}

func newFakeCluster(n int) *fakeCluster {
	c := &fakeCluster{clock: newFakeClock()}
	for range n {
		c.nodes = append(c.nodes, newFakeNode(c.clock))
	}
	return c
}

func (c *fakeCluster) pools() []redis.Pool {
	pools := make([]redis.Pool, len(c.nodes))
	for i, n := range c.nodes {
		pools[i] = n
	}
	return pools
}

// mutex returns a mutex over the cluster that reads the fake clock and
// retries without waiting.
func (c *fakeCluster) mutex(name string, opts ...Option) *Mutex {
	opts = append([]Option{WithRetryDelay(0)}, opts...)
	m := New(c.pools()...).NewMutex(name, opts...)
	m.now = c.clock.Now
	return m
}

// holders counts the nodes where key holds value.
func (c *fakeCluster) holders(key, value string) int {
	count := 0
	for _, n := range c.nodes {
		if v, ok := n.value(key); ok && v == value {
			count++
		}
	}
	return count
}

// keys counts the nodes where key is held.
func (c *fakeCluster) keys(key string) int {
	count := 0
	for _, n := range c.nodes {
		if _, ok := n.value(key); ok {
			count++
		}
	}
	return count
}

func (c *fakeCluster) calls() int {
	total := 0
	for _, n := range c.nodes {
		total += int(n.calls.Load())
	}
	return total
}

// evalMulti runs the logic of the multi-key scripts on the node's map.
func (c *fakeConn) evalMulti(script *redis.Script, keysAndArgs []any) (any, error) {
	n := c.node
	name := map[*redis.Script]string{multiAcquireScript: "acquire", multiReleaseScript: "release", multiExtendScript: "extend"}[script]
	if err := n.enter(c.ctx, name); err != nil {
		return nil, err
	}
	count := keysAndArgs[0].(int)
	keys, args := keysAndArgs[1:1+count], keysAndArgs[1+count:]
	value := args[0].(string)
	wakes := script == multiReleaseScript && args[1] == "1"
	if wakes {
		keys = keys[:count/2] // then the names' queues
	}
	var msgs []redis.Message // the release's wake-ups, sent unlocked
	defer func() { n.publish(msgs) }()
	n.mu.Lock()
	defer n.mu.Unlock()
	held, missing := 0, 0
	var other string
	for _, k := range keys {
		switch current, ok := n.keys[k.(string)]; {
		case !ok:
			missing++
		case current == value:
			held++
		default:
			other = current
		}
	}
	switch script {
	case multiAcquireScript:
		if other != "" {
			return fakeHolder(other), nil
		}
	case multiReleaseScript:
		for _, k := range keys {
			if n.keys[k.(string)] == value {
				delete(n.keys, k.(string))
				if wakes {
					msgs = append(msgs, n.wakeFirst(k.(string), value, true)...)
				}
			}
		}
		switch {
		case held > 0:
			return replyDone, nil
		case other != "":
			return replyTaken, nil
		}
		return replyMissing, nil
	default: // extend
		switch {
		case other != "":
			return replyTaken, nil
		case missing > 0 && args[2] != "1":
			return replyMissing, nil
		}
	}
	for _, k := range keys {
		n.keys[k.(string)] = value
	}
	return replyDone, nil
}
