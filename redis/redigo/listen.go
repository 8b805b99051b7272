package redigo

import (
	"context"
	"errors"
	"sync"
	"time"

	redigolib "github.com/gomodule/redigo/redis"

	"github.com/go-redlock/redsync/redis"
)

var (
	_ redis.Subscriber = (*pool)(nil)
	_ redis.Listener   = (*listener)(nil)
)

// closeWait bounds how long Close waits for the server to confirm that the
// connection left subscribe mode.
const closeWait = time.Second

// Listen takes a connection from the pool and keeps it, in subscribe mode,
// until Close; a pool with a small MaxActive has one connection fewer for
// commands meanwhile. Close sends UNSUBSCRIBE, and once the server confirms,
// the connection goes back to the pool out of subscribe mode.
func (p *pool) Listen(ctx context.Context, receive func(redis.Message)) (redis.Listener, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	c, err := p.delegate.GetContext(ctx)
	if err != nil {
		return nil, err
	}
	l := &listener{psc: redigolib.PubSubConn{Conn: c}, done: make(chan struct{})}
	go l.run(receive)
	return l, nil
}

type listener struct {
	psc  redigolib.PubSubConn
	done chan struct{} // closed when run returned

	// mu serializes the commands sent and the final close of the
	// connection: redigo allows one writer besides the reader.
	mu      sync.Mutex
	closing bool
	closed  bool
}

// receiveOne reads one push message without the connection's read timeout
// when the connection allows it: a listener is idle for long stretches.
func (l *listener) receiveOne() any {
	if _, ok := l.psc.Conn.(redigolib.ConnWithTimeout); ok {
		return l.psc.ReceiveWithTimeout(0)
	}
	return l.psc.Receive()
}

// run reads the connection until it fails, or until the server confirms the
// UNSUBSCRIBE sent by Close; then it closes the connection.
func (l *listener) run(receive func(redis.Message)) {
	defer close(l.done)
	defer l.closeConn()
	for {
		switch v := l.receiveOne().(type) {
		case redigolib.Message:
			receive(redis.Message{Channel: v.Channel, Payload: string(v.Data)})
		case redigolib.Subscription:
			if v.Kind == "subscribe" {
				receive(redis.Message{Channel: v.Channel, Subscribed: true})
			}
			if v.Count == 0 && l.isClosing() {
				return
			}
		case error:
			if !l.isClosing() {
				receive(redis.Message{Err: v})
			}
			return
		}
	}
}

func (l *listener) isClosing() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closing
}

// closeConn hands the connection back to its pool, which takes it out of
// subscribe mode (or drops it when it failed).
func (l *listener) closeConn() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closing, l.closed = true, true
	_ = l.psc.Close()
}

var errListenerClosed = errors.New("redigo: listener closed")

func (l *listener) send(fn func(...any) error, channels []string) error {
	if len(channels) == 0 {
		return nil
	}
	args := make([]any, len(channels))
	for i, c := range channels {
		args[i] = c
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing {
		return errListenerClosed
	}
	return fn(args...)
}

// Subscribe sends SUBSCRIBE. The ctx is not used: redigo bounds writes by
// the connection's write timeout.
func (l *listener) Subscribe(_ context.Context, channels ...string) error {
	return l.send(l.psc.Subscribe, channels)
}

// Unsubscribe sends UNSUBSCRIBE for channels.
func (l *listener) Unsubscribe(_ context.Context, channels ...string) error {
	return l.send(l.psc.Unsubscribe, channels)
}

// Close asks the server to end every subscription and waits (up to a
// second) until the reading goroutine has handed the connection back. A
// server that does not answer keeps that goroutine until the connection
// breaks.
func (l *listener) Close() error {
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return nil
	}
	l.closing = true
	err := l.psc.Unsubscribe()
	l.mu.Unlock()
	select {
	case <-l.done:
	case <-time.After(closeWait):
	}
	return err
}
