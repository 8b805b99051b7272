package redsynctest

import (
	"bufio"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/alicebob/miniredis/v2/server"
	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync/redis"
)

// A Node is one Redlock node: an in-process Redis server (miniredis) on a
// port of 127.0.0.1, and a [redis.Pool] over a go-redis client of it.
//
// All methods are safe for concurrent use, also while locks are taken.
// The methods that read the node's data (Get, TTL, Keys) work while it is
// stopped too: they show what a restart with its data brings back.
type Node struct {
	index  int
	mr     *miniredis.Miniredis
	client *goredislib.Client
	pool   redis.Pool

	// passing holds the peers whose command the hook is running itself
	// (see hook), so that it lets them through.
	passing sync.Map

	mu      sync.Mutex
	running bool
	delay   time.Duration
	resumed chan struct{} // not nil while paused; closed by Resume
	stopped chan struct{} // closed by Stop, a new one at each start
}

// startLocked starts (or restarts) the server on its port and installs the hook
// that delays and pauses commands. The caller holds n.mu.
func (n *Node) startLocked() error {
	if err := n.mr.Start(); err != nil {
		return err
	}
	// A restarted redis-server has no scripts: each restart starts with
	// an empty script cache, whatever happens to the data. The command
	// runs in-process, before the hook is installed.
	srv := n.mr.Server()
	srv.Dispatch(server.NewPeer(bufio.NewWriter(io.Discard)), []string{"SCRIPT", "FLUSH"})
	n.running, n.resumed, n.stopped = true, nil, make(chan struct{})
	srv.SetPreHook(func(p *server.Peer, cmd string, args ...string) bool {
		return n.hook(srv, p, cmd, args)
	})
	return nil
}

// hook runs before every command of a peer. While the node is paused it
// holds the command until Resume (a command still held when the node
// stops never runs). With a delay, it runs the command itself and holds
// its reply back for the delay, as a slow network would. It returns
// whether it dealt with the command.
func (n *Node) hook(srv *server.Server, p *server.Peer, cmd string, args []string) bool {
	if _, ok := n.passing.Load(p); ok {
		return false
	}
	n.mu.Lock()
	resumed, stopped := n.resumed, n.stopped
	n.mu.Unlock()
	if resumed != nil {
		select {
		case <-resumed:
		case <-stopped:
			p.Close()
			return true
		}
	}
	n.mu.Lock()
	delay := n.delay
	n.mu.Unlock()
	if delay <= 0 {
		return false
	}
	n.passing.Store(p, struct{}{})
	srv.Dispatch(p, append([]string{cmd}, args...))
	n.passing.Delete(p)
	timer := time.NewTimer(delay)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-stopped:
	}
	return true
}

// Index returns the node's position in [Nodes] and in the Redsync's pools:
// the number that redsync's errors name as "node #i".
func (n *Node) Index() int { return n.index }

// Addr returns the node's address, "127.0.0.1:PORT", for a client of
// another driver. It stays the same across restarts.
func (n *Node) Addr() string { return n.mr.Addr() }

// Pool returns the node's pool: the redis/goredis adapter over a go-redis
// v9 client of the node. The client honours ctx deadlines
// (ContextTimeoutEnabled) and dials once per attempt (DialerRetries 1), so
// that a stopped node fails at once with "connection refused".
func (n *Node) Pool() redis.Pool { return n.pool }

// Miniredis returns the server behind the node, for what the kit does not
// offer. Its Close, Start and Restart bypass the kit: use Stop and Restart.
func (n *Node) Miniredis() *miniredis.Miniredis { return n.mr }

// Running reports whether the node is running: started and not stopped.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.running
}

// Stop stops the node as a crash would: its port refuses connections, the
// open ones are closed (subscribers included), and commands held by Pause
// are dropped unrun. The data stays in memory for [Node.Restart]. Stop on
// a stopped node does nothing.
func (n *Node) Stop() {
	n.mu.Lock()
	if !n.running {
		n.mu.Unlock()
		return
	}
	n.running = false
	close(n.stopped)
	n.mu.Unlock()
	// Close waits for every connection's goroutine, which hook has let go.
	n.mr.Close()
}

// Restart starts the node again on the same port, as redis-server restarts
// with persistence (AOF or RDB): the keys and their remaining time to live
// are kept, the time it was down counted. The script cache starts empty,
// as on redis-server, so the next script of each kind is answered NOSCRIPT
// and sent again as EVAL. A running node is stopped first. The node is no
// longer paused; its delay stays.
func (n *Node) Restart() error {
	return n.restart(false)
}

// RestartEmpty is Restart without the data, as redis-server restarts
// without persistence: the node comes back with no keys.
func (n *Node) RestartEmpty() error {
	return n.restart(true)
}

func (n *Node) restart(empty bool) error {
	n.Stop()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.running {
		return errors.New("redsynctest: node restarted concurrently")
	}
	if empty {
		n.mr.FlushAll()
	}
	return n.startLocked()
}

// SetDelay makes the node slow: every command runs when it arrives, and
// its reply is sent d later (0 ends the delay). A delay longer than
// redsync's per-node timeout (5% of the expiry by default) makes the node
// count as failed for each round, though it ran the command. Messages
// published to subscribers are not delayed.
func (n *Node) SetDelay(d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.delay = d
}

// Pause makes the node unresponsive, as redis-server is when stopped with
// SIGSTOP or cut off by a network partition that TCP outlives: it accepts
// connections but holds every command, which runs only at Resume, late.
// Clients give up at their deadline: for redsync, at the per-node timeout.
// Pause on a paused node does nothing.
func (n *Node) Pause() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.resumed == nil {
		n.resumed = make(chan struct{})
	}
}

// Resume ends a Pause: the commands held run, in order per connection, and
// their replies go to whichever client still waits.
func (n *Node) Resume() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.resumed != nil {
		close(n.resumed)
		n.resumed = nil
	}
}

// FastForward moves the node's time forward by d: every time to live
// shrinks by d, and the keys whose time runs out are gone. Time also
// passes by itself, as on redis-server; FastForward is for not waiting.
func (n *Node) FastForward(d time.Duration) {
	n.mr.FastForward(d)
}

// ExpireNow removes key, as its expiry would, and reports whether the
// node held it.
func (n *Node) ExpireNow(key string) bool {
	return n.mr.Del(key)
}

// Get returns the string value of key and whether the node holds key as a
// string.
func (n *Node) Get(key string) (value string, ok bool) {
	v, err := n.mr.Get(key)
	return v, err == nil
}

// TTL returns the time key has left to live: 0 when the key has no
// expiry or does not exist.
func (n *Node) TTL(key string) time.Duration {
	// Reading through the server's accessor first expires what is due.
	if !n.mr.Exists(key) {
		return 0
	}
	return n.mr.TTL(key)
}

// Keys returns every key the node holds, sorted.
func (n *Node) Keys() []string {
	return n.mr.Keys()
}

// close stops the node and closes its client, for the end of the test.
func (n *Node) close() error {
	n.Stop()
	return n.client.Close()
}
