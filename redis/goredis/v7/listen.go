package goredis

import (
	"context"
	"sync/atomic"

	goredislib "github.com/go-redis/redis/v7"

	"github.com/go-redlock/redsync/redis"
)

var (
	_ redis.Subscriber = (*pool)(nil)
	_ redis.Listener   = (*listener)(nil)
)

// Listen opens a go-redis PubSub: a connection of its own, outside the
// client's pool, dialled by the first command. With a cluster client it
// goes to one node of the cluster, which is enough: a plain PUBLISH
// reaches the subscribers of every node. go-redis v7 gives its PubSub no
// context: ctx is not used, and the client's DialTimeout, ReadTimeout and
// WriteTimeout bound dialling and subscribing.
//
// The connection is dialled in the background; a failure to dial arrives
// through receive as a Message with Err set.
func (p *pool) Listen(_ context.Context, receive func(redis.Message)) (redis.Listener, error) {
	l := &listener{ps: p.client.Subscribe(), done: make(chan struct{})}
	go l.run(receive)
	return l, nil
}

type listener struct {
	ps     *goredislib.PubSub
	closed atomic.Bool
	done   chan struct{} // closed when run returned
}

// run reads the connection until it fails or is closed. go-redis would
// dial again after a failure and subscribe anew; the failure is reported
// instead, because messages may have been lost meanwhile.
func (l *listener) run(receive func(redis.Message)) {
	defer close(l.done)
	for {
		// Receive waits without a deadline: a listener is idle for long
		// stretches.
		msg, err := l.ps.Receive()
		if err != nil {
			if !l.closed.Load() {
				receive(redis.Message{Err: err})
			}
			return
		}
		switch msg := msg.(type) {
		case *goredislib.Message:
			receive(redis.Message{Channel: msg.Channel, Payload: msg.Payload})
		case *goredislib.Subscription:
			if msg.Kind == "subscribe" {
				receive(redis.Message{Channel: msg.Channel, Subscribed: true})
			}
		}
	}
}

// Subscribe sends SUBSCRIBE; ctx is not used (see Listen).
func (l *listener) Subscribe(_ context.Context, channels ...string) error {
	if len(channels) == 0 {
		return nil
	}
	return l.ps.Subscribe(channels...)
}

// Unsubscribe sends UNSUBSCRIBE; ctx is not used (see Listen).
func (l *listener) Unsubscribe(_ context.Context, channels ...string) error {
	if len(channels) == 0 {
		return nil // go-redis would end every subscription
	}
	return l.ps.Unsubscribe(channels...)
}

// Close closes the connection and waits until the reading goroutine has
// returned.
func (l *listener) Close() error {
	if l.closed.Swap(true) {
		<-l.done
		return nil
	}
	err := l.ps.Close()
	<-l.done
	return err
}
