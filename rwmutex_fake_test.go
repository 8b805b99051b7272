package redsync

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/go-redlock/redsync/redis"
)

// rwNode is an in-memory node that runs the scripts of an RWMutex (the
// rw_*.lua files, and release.lua and extend.lua on the writer's key) on
// keys that expire by a fake clock, as the Lua does on Redis: a string key
// set with a TTL lives while the node's time is at most its end; a read
// share lives while the time is before its score; the readers' key lives
// while the time is at most its own end, and goes when its last share is
// removed. Every command reads the clock once, as the scripts read TIME.
type rwNode struct {
	clock *fakeClock

	mu      sync.Mutex
	strings map[string]rwString
	sets    map[string]rwSet
	fault   rwFault
	latency time.Duration // added to the clock by every command that runs
	sent    int           // commands received
}

type rwString struct {
	value string
	end   time.Time
}

type rwSet struct {
	shares map[string]time.Time // member (a reader's value) -> end of its life
	end    time.Time            // the key's own expiry
}

// rwFault is what a node does with the commands it receives.
type rwFault int

const (
	rwUp    rwFault = iota
	rwDown          // fails them without running them
	rwLossy         // runs them, then fails them: the reply is lost
)

var (
	errRWDown = errors.New("fake: node down")
	errRWLost = errors.New("fake: reply lost")
)

func newRWNode(clock *fakeClock) *rwNode {
	return &rwNode{clock: clock, strings: map[string]rwString{}, sets: map[string]rwSet{}}
}

func (n *rwNode) Get(context.Context) (redis.Conn, error) {
	return &rwConn{n: n}, nil
}

func (n *rwNode) setFault(f rwFault) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.fault = f
}

func (n *rwNode) commands() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.sent
}

// get returns the live value of the string key, or "".
func (n *rwNode) get(key string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.expire(n.clock.Now())
	return n.strings[key].value
}

// live returns the live shares of the readers' key, by member.
func (n *rwNode) live(key string) map[string]time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := n.clock.Now()
	n.expire(now)
	shares := map[string]time.Time{}
	for member, end := range n.sets[key].shares {
		if end.After(now) {
			shares[member] = end
		}
	}
	return shares
}

// keyCount returns how many keys the node holds.
func (n *rwNode) keyCount() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.expire(n.clock.Now())
	return len(n.strings) + len(n.sets)
}

// expire drops the keys whose expiry has passed at now. The caller holds
// n.mu.
func (n *rwNode) expire(now time.Time) {
	for k, s := range n.strings {
		if now.After(s.end) {
			delete(n.strings, k)
		}
	}
	for k, s := range n.sets {
		if now.After(s.end) || len(s.shares) == 0 {
			delete(n.sets, k)
		}
	}
}

type rwConn struct {
	n *rwNode
}

func (c *rwConn) Get(string) (string, error)                        { return "", errUnsupported }
func (c *rwConn) Set(string, string) (bool, error)                  { return false, errUnsupported }
func (c *rwConn) SetNX(string, string, time.Duration) (bool, error) { return false, errUnsupported }
func (c *rwConn) PTTL(string) (time.Duration, error)                { return 0, errUnsupported }
func (c *rwConn) ScriptLoad(*redis.Script) error                    { return errUnsupported }
func (c *rwConn) Close() error                                      { return nil }

// Eval runs the logic of an RWMutex's script on the node.
func (c *rwConn) Eval(script *redis.Script, keysAndArgs ...any) (any, error) {
	n := c.n
	n.mu.Lock()
	defer n.mu.Unlock()
	n.sent++
	if n.fault == rwDown {
		return nil, errRWDown
	}
	if n.latency > 0 {
		n.clock.Advance(n.latency)
	}
	now := n.clock.Now()
	n.expire(now)
	str := func(i int) string { return keysAndArgs[i].(string) }
	ms := func(i int) time.Duration {
		v, err := strconv.Atoi(str(i))
		if err != nil {
			panic(err)
		}
		return time.Duration(v) * time.Millisecond
	}
	var reply int64
	switch script {
	case rwWriteAcquireScripts[0]:
		reply = n.writeAcquire(now, str(0), str(1), str(2), str(3), ms(4), str(5))
	case rwReadAcquireScripts[0]:
		reply = n.readAcquire(now, str(0), str(1), str(2), str(3), ms(4))
	case rwReadReleaseScript:
		reply = n.readRelease(now, str(0), str(1))
	case rwReadExtendScript:
		if str(3) == "1" {
			return nil, errors.New("ERR a read share cannot be set again where it is missing")
		}
		reply = n.readExtend(now, str(0), str(1), ms(2))
	case rwWithdrawScript:
		reply = replyTaken
		if n.strings[str(0)].value == str(1) {
			delete(n.strings, str(0))
			reply = replyDone
		}
	case rwWriteReleaseScript:
		reply = n.release(str(0), str(2))
		if n.strings[str(1)].value == str(3) {
			delete(n.strings, str(1))
		}
	case releaseScript:
		reply = n.release(str(0), str(1))
	case extendScript:
		switch current, ok := n.strings[str(0)]; {
		case !ok:
			reply = replyMissing
		case current.value == str(1):
			n.strings[str(0)] = rwString{value: str(1), end: now.Add(ms(2))}
			reply = replyDone
		default:
			reply = replyTaken
		}
	default:
		return nil, errUnsupported
	}
	if n.fault == rwLossy {
		return nil, errRWLost
	}
	return reply, nil
}

// release deletes the string key w if it holds value, as release.lua
// does. The caller holds n.mu.
func (n *rwNode) release(w, value string) int64 {
	switch current, ok := n.strings[w]; {
	case !ok:
		return replyMissing
	case current.value == value:
		delete(n.strings, w)
		return replyDone
	}
	return replyTaken
}

// purge removes the expired shares of the readers' key r, as
// ZREMRANGEBYSCORE r -inf now does. The caller holds n.mu.
func (n *rwNode) purge(now time.Time, r string) {
	set, ok := n.sets[r]
	if !ok {
		return
	}
	for member, end := range set.shares {
		if !end.After(now) {
			delete(set.shares, member)
		}
	}
	if len(set.shares) == 0 {
		delete(n.sets, r)
	}
}

// addShare sets the share of value in r to end now+ttl, and keeps r's own
// expiry at least as late. The caller holds n.mu.
func (n *rwNode) addShare(now time.Time, r, value string, ttl time.Duration) {
	set, ok := n.sets[r]
	if !ok {
		set = rwSet{shares: map[string]time.Time{}}
	}
	end := now.Add(ttl)
	set.shares[value] = end
	if set.end.Before(end) {
		set.end = end
	}
	n.sets[r] = set
}

func (n *rwNode) writeAcquire(now time.Time, w, r, q, value string, ttl time.Duration, intent string) int64 {
	n.purge(now, r)
	dropMark := func() {
		if n.strings[q].value == intent {
			delete(n.strings, q)
		}
	}
	current, held := n.strings[w]
	switch {
	case held && current.value == value:
		n.strings[w] = rwString{value: value, end: now.Add(ttl)}
		dropMark()
		return replyDone
	case held:
		n.strings[q] = rwString{value: intent, end: now.Add(ttl)}
		return fakeHolder(current.value)
	case len(n.sets[r].shares) > 0:
		n.strings[q] = rwString{value: intent, end: now.Add(ttl)}
		return replyTaken
	}
	n.strings[w] = rwString{value: value, end: now.Add(ttl)}
	dropMark()
	return replyDone
}

func (n *rwNode) readAcquire(now time.Time, w, r, q, value string, ttl time.Duration) int64 {
	if current, held := n.strings[w]; held {
		return fakeHolder(current.value)
	}
	if _, waiting := n.strings[q]; waiting {
		return replyTaken
	}
	// Expired shares keep no reader out; as in rw_read_acquire.lua, they
	// are removed when the readers' key was there before.
	if _, existed := n.sets[r]; existed {
		n.purge(now, r)
	}
	n.addShare(now, r, value, ttl)
	return replyDone
}

// readRelease removes the expired shares of r, then the share of value,
// as rw_read_release.lua does: the share was live when it is still there.
func (n *rwNode) readRelease(now time.Time, r, value string) int64 {
	n.purge(now, r)
	if _, ok := n.sets[r].shares[value]; !ok {
		return replyMissing
	}
	delete(n.sets[r].shares, value)
	if len(n.sets[r].shares) == 0 {
		delete(n.sets, r)
	}
	return replyDone
}

func (n *rwNode) readExtend(now time.Time, r, value string, ttl time.Duration) int64 {
	end, ok := n.sets[r].shares[value]
	switch {
	case !ok:
		return replyMissing
	case !end.After(now):
		delete(n.sets[r].shares, value)
		if len(n.sets[r].shares) == 0 {
			delete(n.sets, r)
		}
		return replyMissing
	}
	n.purge(now, r)
	n.addShare(now, r, value, ttl)
	return replyDone
}

// rwCluster is a set of rwNodes sharing one clock.
type rwCluster struct {
	clock *fakeClock
	nodes []*rwNode
	rs    *Redsync
}

func newRWCluster(n int) *rwCluster {
	c := &rwCluster{clock: newFakeClock()}
	pools := make([]redis.Pool, n)
	for i := range n {
		c.nodes = append(c.nodes, newRWNode(c.clock))
		pools[i] = c.nodes[i]
	}
	c.rs = New(pools...)
	return c
}

// rwmutex returns an RWMutex over the cluster that reads the fake clock
// and retries without waiting.
func (c *rwCluster) rwmutex(name string, opts ...Option) *RWMutex {
	opts = append([]Option{WithRetryDelay(0)}, opts...)
	rw := c.rs.NewRWMutex(name, opts...)
	rw.now = c.clock.Now
	rw.w.now = c.clock.Now
	return rw
}

func (c *rwCluster) commands() int {
	total := 0
	for _, n := range c.nodes {
		total += n.commands()
	}
	return total
}

func (c *rwCluster) keyCount() int {
	total := 0
	for _, n := range c.nodes {
		total += n.keyCount()
	}
	return total
}
