package goredis

import (
	"context"
	"sync/atomic"

	goredislib "github.com/go-redis/redis/v8"

	"github.com/go-redlock/redsync/redis"
)

var (
	_ redis.Subscriber = (*pool)(nil)
	_ redis.Listener   = (*listener)(nil)
)

// Listen opens a go-redis PubSub: a connection of its own, outside the
// client's pool, dialled by the first command. With a cluster client it
// goes to one node of the cluster, which is enough: a plain PUBLISH
// reaches the subscribers of every node.
//
// The connection is dialled in the background; a failure to dial arrives
// through receive as a Message with Err set.
func (p *pool) Listen(ctx context.Context, receive func(redis.Message)) (redis.Listener, error) {
	l := &listener{ps: p.client.Subscribe(ctx), done: make(chan struct{})}
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
	// Receive waits without a deadline: a listener is idle for long
	// stretches.
	ctx := context.Background()
	for {
		msg, err := l.ps.Receive(ctx)
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

func (l *listener) Subscribe(ctx context.Context, channels ...string) error {
	if len(channels) == 0 {
		return nil
	}
	return l.ps.Subscribe(ctx, channels...)
}

func (l *listener) Unsubscribe(ctx context.Context, channels ...string) error {
	if len(channels) == 0 {
		return nil // go-redis would end every subscription
	}
	return l.ps.Unsubscribe(ctx, channels...)
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
