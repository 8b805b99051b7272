package chaos

import (
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// A Proxy forwards TCP connections from a port of 127.0.0.1 to one Redis
// node and injects network faults on the way: latency on the replies, a
// blackhole (nothing forwarded until healed), and connection resets in the
// middle of a command. Its methods are safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	target string

	latency   atomic.Int64  // added to every chunk of reply bytes, ns
	resetRate atomic.Uint64 // probability of a reset per chunk, x 1e9

	mu        sync.Mutex
	healed    *sync.Cond // signalled when the blackhole ends or on Close
	blackhole bool
	closed    bool
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup
	resets    atomic.Int64
}

// StartProxy listens on a free port of 127.0.0.1 and forwards every
// connection to target. The caller must Close it.
func StartProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.healed = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the address clients connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetLatency delays every chunk of bytes the node sends back by d (0 to
// stop): a slow node, or a slow network.
func (p *Proxy) SetLatency(d time.Duration) { p.latency.Store(int64(d)) }

// SetBlackhole stops (true) or resumes (false) all forwarding. Bytes sent
// meanwhile are held, as by a network partition that TCP retransmission
// outlives, and delivered when the blackhole ends, if the connection is
// still open.
func (p *Proxy) SetBlackhole(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blackhole = on
	if !on {
		p.healed.Broadcast()
	}
}

// SetResetRate makes each chunk of bytes, in either direction, reset both
// connections instead of being forwarded, with probability rate. A reset
// of a reply loses the outcome of a command that ran.
func (p *Proxy) SetResetRate(rate float64) { p.resetRate.Store(uint64(rate * 1e9)) }

// Resets returns how many connections the proxy reset so far.
func (p *Proxy) Resets() int64 { return p.resets.Load() }

// Close stops listening, closes every connection and waits for the
// forwarding goroutines to end.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	p.closed = true
	p.healed.Broadcast()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		// A blackholed node accepts nothing: new connections wait in the
		// kernel's backlog, as SYNs to an unreachable host would, and hold
		// no descriptor of this process.
		if !p.waitHealed() {
			return
		}
		client, err := p.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// Out of descriptors, for one: try again, never give up
			// serving the node.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if !p.track(client) {
			client.Close()
			return
		}
		p.wg.Add(1)
		go p.serve(client)
	}
}

// track registers c so that Close closes it; false after Close.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
}

// waitHealed blocks while the blackhole is on; false after Close.
func (p *Proxy) waitHealed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.blackhole && !p.closed {
		p.healed.Wait()
	}
	return !p.closed
}

func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	defer p.untrack(client)
	defer client.Close()
	if !p.waitHealed() {
		return
	}
	server, err := net.DialTimeout("tcp", p.target, time.Second)
	if err != nil {
		// The node is down: the client sees its connection closed.
		return
	}
	if !p.track(server) {
		server.Close()
		return
	}
	defer p.untrack(server)
	defer server.Close()
	// Either direction ending ends the connection, as a real one would: a
	// client that gave up on a paused node must not leave the proxy
	// waiting for the node's reply with two descriptors open.
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.forward(server, client, false)
		client.Close()
		server.Close()
	}()
	p.forward(client, server, true)
	client.Close()
	server.Close()
	<-done
}

// forward copies src to dst until either fails, injecting the faults.
// reply tells that src is the node.
func (p *Proxy) forward(dst, src net.Conn, reply bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.waitHealed() {
				return
			}
			if d := p.latency.Load(); reply && d > 0 {
				time.Sleep(time.Duration(d))
			}
			if rate := p.resetRate.Load(); rate > 0 && rand.Uint64N(1e9) < rate {
				p.resets.Add(1)
				reset(src)
				reset(dst)
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// reset closes c with an RST rather than a FIN, as a crashed peer or a
// middlebox would.
func reset(c net.Conn) {
	if tcp, ok := c.(*net.TCPConn); ok {
		tcp.SetLinger(0)
	}
	c.Close()
}
