package valkeygo

import (
	"context"
	"errors"
	"sync"

	"github.com/valkey-io/valkey-go"

	"github.com/go-redlock/redsync/redis"
)

var (
	_ redis.Subscriber = (*pool)(nil)
	_ redis.Listener   = (*listener)(nil)
)

// errNoClient is the error of Listen when the Cmdable returns no client.
var errNoClient = errors.New("redsync/valkeygo: the valkeycompat.Cmdable has no valkey.Client to listen on")

// Listen takes a dedicated connection of the client behind the adapter
// and keeps it, in subscribe mode, until Close. With a cluster client the
// connection goes to one node of the cluster, which is enough: a plain
// PUBLISH reaches the subscribers of every node. valkey-go dials it
// without a context (its Dialer's timeout applies), so ctx is not used.
//
// A Cmdable whose Client method returns nil (a mock) cannot listen: Listen
// fails, and a Lock that waits polls after its retry delay instead.
func (p *pool) Listen(_ context.Context, receive func(redis.Message)) (redis.Listener, error) {
	client := p.cmd.Client()
	if client == nil {
		return nil, errNoClient
	}
	dc, _ := client.Dedicate()
	l := &listener{dc: dc, receive: receive, done: make(chan struct{})}
	failed := dc.SetPubSubHooks(valkey.PubSubHooks{
		OnMessage: func(m valkey.PubSubMessage) {
			l.deliver(redis.Message{Channel: m.Channel, Payload: m.Message})
		},
		OnSubscription: func(s valkey.PubSubSubscription) {
			if s.Kind == "subscribe" {
				l.deliver(redis.Message{Channel: s.Channel, Subscribed: true})
			}
		},
	})
	go l.watch(failed)
	return l, nil
}

type listener struct {
	dc   valkey.DedicatedClient
	done chan struct{} // closed once valkey-go calls the hooks no more

	// mu makes the calls of receive sequential: valkey-go calls the
	// hooks from a goroutine of its own, and watch reports the failure
	// from another.
	mu      sync.Mutex
	receive func(redis.Message)
	ended   bool // Close was called, or the failure was reported
}

// deliver hands m to receive, unless the listener was closed or its
// failure reported.
func (l *listener) deliver(m redis.Message) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended {
		return
	}
	if m.Err != nil {
		l.ended = true
	}
	l.receive(m)
}

// watch reports the failure of the connection, which valkey-go sends on
// failed before it closes it; after that the hooks are called no more.
func (l *listener) watch(failed <-chan error) {
	defer close(l.done)
	for err := range failed {
		if err != nil {
			l.deliver(redis.Message{Err: err})
		}
	}
}

func (l *listener) Subscribe(ctx context.Context, channels ...string) error {
	if len(channels) == 0 {
		return nil
	}
	return l.dc.Do(ctx, l.dc.B().Subscribe().Channel(channels...).Build()).Error()
}

func (l *listener) Unsubscribe(ctx context.Context, channels ...string) error {
	if len(channels) == 0 {
		return nil // the server would end every subscription
	}
	return l.dc.Do(ctx, l.dc.B().Unsubscribe().Channel(channels...).Build()).Error()
}

// Close closes the dedicated connection and waits until valkey-go no
// longer calls the hooks.
func (l *listener) Close() error {
	l.mu.Lock()
	l.ended = true
	l.mu.Unlock()
	l.dc.Close()
	<-l.done
	return nil
}
