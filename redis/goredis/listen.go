package goredis

import (
	"context"
	"sync/atomic"

	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync/redis"
)

var (
	_ redis.Subscriber = (*pool)(nil)
	_ redis.Listener   = (*listener)(nil)
)

// Listen opens a go-redis PubSub on the client: a connection of its own,
// outside the client's pool, dialled by the first command. With a cluster
// client the connection goes to one node of the cluster; a plain PUBLISH
// reaches subscribers on every node, so that is enough.
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
// reconnect after a failure by itself; the failure is reported instead, so
// that the caller knows messages may have been missed and reconnects.
func (l *listener) run(receive func(redis.Message)) {
	defer close(l.done)
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
	return l.ps.Subscribe(ctx, channels...)
}

func (l *listener) Unsubscribe(ctx context.Context, channels ...string) error {
	if len(channels) == 0 {
		return nil // go-redis would unsubscribe from every channel
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
