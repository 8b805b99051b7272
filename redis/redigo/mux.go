package redigo

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	redigolib "github.com/gomodule/redigo/redis"

	"github.com/go-redlock/redsync/redis"
)

// staleAfter is how long past the deadline of the oldest command in flight
// a multiplexed connection waits for its reply before it gives the
// connection up as dead (a half-open TCP connection, a node stopped for
// good). Until then a late reply is only discarded: the calls behind it,
// whose deadlines are later, may still get theirs in time.
const staleAfter = time.Second

// maxInFlight bounds the commands written on one multiplexed connection
// whose replies have not been read yet; the writer waits beyond it.
const maxInFlight = 1024

var errMuxClosed = errors.New("redigo: batched pool closed")

// mux is one connection shared by the concurrent calls of a [BatchedPool].
// A call queues its command (enqueue) and waits for its reply. The writer
// goroutine writes every command queued since its last write, then flushes
// them in one write; the reader goroutine reads the replies, which come in
// the order of the commands, and hands each to its call. A call that stops
// waiting (its deadline passed) is abandoned: if it was not written yet it
// never is, otherwise its reply is read and dropped.
//
// Once the connection fails (a write or a read fails, or no reply comes
// for staleAfter past the deadline of the oldest command), every call
// queued or in flight fails with that error and the mux is broken for
// good; the pool dials a new one. Both goroutines end then, and on close.
type mux struct {
	conn     redigolib.Conn
	created  time.Time
	lastUsed atomic.Int64  // UnixNano of the last call given the mux; kept by the pool
	wake     chan struct{} // one token: the queue is no longer empty
	written  chan *muxCall // calls written (or being written), in order: the writer's to the reader
	quit     chan struct{} // closed when the mux breaks or closes
	broken   atomic.Bool   // quit is closed

	mu      sync.Mutex
	queue   []*muxCall // queued, not yet taken by the writer
	spare   []*muxCall // the writer's last batch, emptied, to be the next queue
	err     error      // why the mux broke; nil while it works
	retired bool       // takes no more calls; closes once those in flight ended
}

// newMux starts the goroutines of a mux over conn; wg counts them.
func newMux(conn redigolib.Conn, wg *sync.WaitGroup) *mux {
	m := &mux{
		conn:    conn,
		created: time.Now(),
		wake:    make(chan struct{}, 1),
		written: make(chan *muxCall, maxInFlight),
		quit:    make(chan struct{}),
	}
	m.lastUsed.Store(m.created.UnixNano())
	wg.Add(2)
	go func() {
		defer wg.Done()
		m.write()
	}()
	go func() {
		defer wg.Done()
		m.read()
	}()
	return m
}

var errMuxRetired = errors.New("redigo: shared connection retired")

// enqueue queues c for the writer. It fails, and c is not queued, once the
// mux is broken or retired.
func (m *mux) enqueue(c *muxCall) error {
	m.mu.Lock()
	if m.err != nil || m.retired {
		err := m.err
		if err == nil {
			err = errMuxRetired
		}
		m.mu.Unlock()
		return err
	}
	m.queue = append(m.queue, c)
	first := len(m.queue) == 1
	m.mu.Unlock()
	if first {
		select {
		case m.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// retire makes m take no more calls. The writer writes those queued, then
// ends; the reader reads their replies, then closes the connection.
func (m *mux) retire() {
	m.mu.Lock()
	m.retired = true
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// fail breaks the mux with err (the first error wins): it closes the
// connection, which ends a read or write in progress, and fails the calls
// still queued. The writer fails the calls of the batch it holds, the
// reader those written.
func (m *mux) fail(err error) {
	m.mu.Lock()
	if m.err != nil {
		m.mu.Unlock()
		return
	}
	m.err = err
	queued := m.queue
	m.queue = nil
	m.broken.Store(true)
	close(m.quit)
	m.mu.Unlock()
	_ = m.conn.Close()
	for _, c := range queued {
		c.finish(nil, err)
	}
}

// failure returns why the mux broke.
func (m *mux) failure() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// write is the writer goroutine. It ends when the mux breaks, or once it
// has written the last calls of a retired mux, closing written so that the
// reader ends once it has read (or failed) the calls in it.
func (m *mux) write() {
	defer close(m.written)
	for {
		select {
		case <-m.wake:
		case <-m.quit:
			return
		}
		// The goroutines that the reader just handed replies to are
		// about to queue their next commands: letting them run first
		// makes the batch larger (on 2 cores, 64 goroutines locking
		// keys of their own over one node: about 13 commands per write
		// instead of 1.6), and every write saved is a syscall saved on
		// both sides.
		runtime.Gosched()
		m.mu.Lock()
		batch := m.queue
		m.queue, m.spare = m.spare, nil
		m.mu.Unlock()
		if !m.writeBatch(batch) {
			return
		}
		clear(batch)
		m.mu.Lock()
		if m.err == nil {
			m.spare = batch[:0]
		}
		done := m.retired && len(m.queue) == 0
		m.mu.Unlock()
		if done {
			return
		}
	}
}

// writeBatch writes the calls of batch that are still awaited and flushes
// them. A call goes to the reader before its command is written: the
// buffered writer may send part of a batch before the flush. It reports
// false, having failed the rest of the batch, when the mux broke.
func (m *mux) writeBatch(batch []*muxCall) bool {
	unflushed := 0
	for i, c := range batch {
		if c.state.Load() == callAbandoned {
			c.recycle()
			continue
		}
		// Once handed to the reader, c may be finished (when the
		// connection fails) and recycled: its command is read first.
		cmd, args := c.cmd, c.args
		select {
		case m.written <- c:
		default:
			// The reader is maxInFlight replies behind: flush, so that
			// the replies it waits for can come, then wait for room.
			if unflushed > 0 {
				if err := m.conn.Flush(); err != nil {
					m.fail(err)
					m.failBatch(batch[i:])
					return false
				}
				unflushed = 0
			}
			switch m.awaitRoom(c) {
			case roomStopped:
				m.failBatch(batch[i:])
				return false
			case roomExpired:
				continue // c's deadline passed: it is not sent
			}
		}
		if err := m.conn.Send(cmd, args...); err != nil {
			m.fail(err)
			m.failBatch(batch[i+1:])
			return false
		}
		unflushed++
	}
	if unflushed > 0 {
		if err := m.conn.Flush(); err != nil {
			m.fail(err)
			return false
		}
	}
	return true
}

// awaitRoom hands c to the reader once there is room (roomHanded). It
// gives up when the mux stops (roomStopped: c is left as it is), and when
// c's caller stopped waiting, or its deadline passed, first (roomExpired):
// c is then finished with DeadlineExceeded (or recycled, when its caller
// stopped waiting) and must not be sent, since its caller was told that
// it failed (found by review: it used to be sent once room came).
func (m *mux) awaitRoom(c *muxCall) roomResult {
	// The caller may stop waiting before c's deadline (a PendingReply's
	// Receive has a deadline of its own). So c is handed over only right
	// after its state was looked at, every millisecond until there is
	// room, never by a select that may pick the send after the caller
	// gave up. This runs only with maxInFlight replies outstanding.
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		if c.state.Load() == callAbandoned || !c.deadline.IsZero() && !time.Now().Before(c.deadline) {
			c.finish(nil, context.DeadlineExceeded) // recycles c when abandoned
			return roomExpired
		}
		select {
		case m.written <- c:
			return roomHanded
		default:
		}
		select {
		case <-m.quit:
			return roomStopped
		case <-tick.C:
		}
	}
}

// roomResult is how awaitRoom ended.
type roomResult int

const (
	roomHanded roomResult = iota
	roomStopped
	roomExpired
)

// failBatch fails the calls of a batch that were not handed to the reader.
func (m *mux) failBatch(calls []*muxCall) {
	err := m.failure()
	for _, c := range calls {
		c.finish(nil, err)
	}
}

// read is the reader goroutine: it reads one reply per written call, in
// order, until written is closed, then closes the connection. Once the mux
// is broken, it fails the calls instead.
func (m *mux) read() {
	timed, _ := m.conn.(redigolib.ConnWithTimeout)
	for c := range m.written {
		if m.broken.Load() {
			c.finish(nil, m.failure())
			continue
		}
		var (
			v   any
			err error
		)
		if timed != nil {
			// At least a nanosecond: 0 would mean no timeout.
			v, err = timed.ReceiveWithTimeout(max(time.Until(c.deadline.Add(staleAfter)), time.Nanosecond))
		} else {
			v, err = m.conn.Receive()
		}
		if err != nil && !isServerError(err) {
			m.fail(err)
			err = m.failure()
		}
		c.finish(v, err)
	}
	// The writer ended: the mux broke, or it was retired and every reply
	// has been read.
	m.fail(errMuxRetired)
}

// close breaks the mux with errMuxClosed.
func (m *mux) close() {
	m.fail(errMuxClosed)
}

// isServerError reports whether err is an error reply of the server,
// after which the connection goes on, rather than a failure of the
// connection.
func isServerError(err error) bool {
	var reply redigolib.Error
	return errors.As(err, &reply)
}

// States of a muxCall.
const (
	callWaiting   int32 = iota // its caller waits for the reply
	callDone                   // the reply (or an error) was handed over
	callAbandoned              // its caller stopped waiting
)

// muxCall is one command sent through a mux, and its reply. The caller
// waits for done; whoever finishes the call last (the caller after taking
// the reply, or the goroutine that found it abandoned) recycles it.
type muxCall struct {
	cmd      string
	args     []any
	deadline time.Time
	script   *redis.ScriptCall // sent again with EVAL on NOSCRIPT; nil for a plain command
	pool     *BatchedPool      // the pool whose busy count it holds, for a PendingReply

	state atomic.Int32
	done  chan struct{} // receives one token when state becomes callDone
	reply any
	err   error
}

var muxCalls = sync.Pool{New: func() any {
	return &muxCall{done: make(chan struct{}, 1)}
}}

func newMuxCall(cmd string, args []any, deadline time.Time, script *redis.ScriptCall) *muxCall {
	c := muxCalls.Get().(*muxCall)
	c.cmd, c.args, c.deadline, c.script = cmd, args, deadline, script
	c.state.Store(callWaiting)
	return c
}

// finish hands the reply to the caller, or recycles the call when the
// caller no longer waits.
func (c *muxCall) finish(v any, err error) {
	if !c.state.CompareAndSwap(callWaiting, callDone) {
		c.recycle()
		return
	}
	c.reply, c.err = v, err
	c.done <- struct{}{}
}

// wait waits for the reply until stop is ready, and recycles the call.
// When stop wins, it abandons the call and returns errAbandoned; a reply
// that came at the same time is taken instead.
func (c *muxCall) wait(stop <-chan struct{}) (any, error) {
	return waitFor(c, stop)
}

// waitFor is wait for any kind of channel.
func waitFor[T any](c *muxCall, stop <-chan T) (any, error) {
	select {
	case <-c.done:
	case <-stop:
		if c.state.CompareAndSwap(callWaiting, callAbandoned) {
			return nil, errAbandoned
		}
		<-c.done
	}
	v, err := c.reply, c.err
	c.recycle()
	return v, err
}

// errAbandoned is what wait returns when its caller stopped waiting; the
// callers turn it into the error of their contract.
var errAbandoned = errors.New("redigo: stopped waiting")

func (c *muxCall) recycle() {
	c.cmd, c.args, c.script, c.pool = "", nil, nil, nil
	c.reply, c.err = nil, nil
	muxCalls.Put(c)
}

// timers are reused by waitUntil: a Receive by deadline needs one.
var timers sync.Pool

// waitUntil is wait with a deadline instead of a channel.
func (c *muxCall) waitUntil(deadline time.Time) (any, error) {
	d := time.Until(deadline)
	t, _ := timers.Get().(*time.Timer)
	if t == nil {
		t = time.NewTimer(d)
	} else {
		t.Reset(d)
	}
	v, err := waitFor(c, t.C)
	// Since Go 1.23, a stopped timer's channel holds no stale value for
	// the next Reset, also when it had fired.
	t.Stop()
	timers.Put(t)
	return v, err
}

// deadlineError is what a call whose ctx ended while it waited returns: the
// ctx's error, or DeadlineExceeded when there was no ctx.
func deadlineError(ctx context.Context) error {
	if ctx != nil {
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return context.DeadlineExceeded
}
