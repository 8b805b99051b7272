package adaptertest

import (
	"context"
	"testing"
	"time"

	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
)

// RunListener checks the [redis.Subscriber] of a pool made by newPool:
// confirmations of subscriptions, messages, unsubscription, and the
// failure of the connection when the server dies. It starts a server of
// its own, and fails when the pool is not a redis.Subscriber.
func RunListener(t *testing.T, newPool NewPoolFunc) {
	t.Helper()
	srv := redistest.Start(t)
	sub, ok := newPool(t, srv.Addr()).(redis.Subscriber)
	if !ok {
		t.Fatal("the pool is not a redis.Subscriber")
	}
	msgs := make(chan redis.Message, 16)
	l, err := sub.Listen(context.Background(), func(m redis.Message) { msgs <- m })
	if err != nil {
		t.Fatalf("Listen() = %v", err)
	}
	defer l.Close()
	next := func(what string) redis.Message {
		t.Helper()
		select {
		case m := <-msgs:
			return m
		case <-time.After(10 * time.Second):
			t.Fatalf("no message within 10s, want %s", what)
			return redis.Message{}
		}
	}

	ctx := context.Background()
	if err := l.Subscribe(ctx, "ch1", "ch2"); err != nil {
		t.Fatalf("Subscribe() = %v", err)
	}
	for _, ch := range []string{"ch1", "ch2"} {
		if m := next("a confirmation"); !m.Subscribed || m.Channel != ch || m.Err != nil {
			t.Errorf("message %+v, want the confirmation of %s", m, ch)
		}
	}
	srv.MustDo(t, "PUBLISH", "ch2", "hello")
	if m := next("a message"); m.Channel != "ch2" || m.Payload != "hello" || m.Subscribed {
		t.Errorf("message %+v, want hello on ch2", m)
	}
	if err := l.Unsubscribe(ctx); err != nil {
		t.Errorf("Unsubscribe() of no channel = %v, want nil", err)
	}
	if err := l.Unsubscribe(ctx, "ch2"); err != nil {
		t.Fatalf("Unsubscribe() = %v", err)
	}
	// PUBLISH answers how many clients received the message.
	for deadline := time.Now().Add(10 * time.Second); srv.MustDo(t, "PUBLISH", "ch2", "gone").Int != 0; {
		if time.Now().After(deadline) {
			t.Fatal("ch2 still has a subscriber 10s after Unsubscribe()")
		}
		time.Sleep(10 * time.Millisecond)
	}
	srv.MustDo(t, "PUBLISH", "ch1", "still")
	if m := next("a message"); m.Channel != "ch1" || m.Payload != "still" {
		t.Errorf("message %+v, want still on ch1", m)
	}
	// A channel subscribed again is confirmed again (as the server
	// answers): the notifier subscribes anew when a key's watch ends and
	// another starts, and waits for that confirmation.
	if err := l.Subscribe(ctx, "ch1"); err != nil {
		t.Fatalf("Subscribe() of a subscribed channel = %v", err)
	}
	if m := next("a confirmation"); !m.Subscribed || m.Channel != "ch1" || m.Err != nil {
		t.Errorf("message %+v, want the second confirmation of ch1", m)
	}

	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if m := next("the failure"); m.Err == nil {
		t.Errorf("message %+v after the server died, want one with Err set", m)
	}
	if err := l.Close(); err != nil {
		t.Errorf("Close() after the failure = %v, want nil", err)
	}
	select {
	case m := <-msgs:
		t.Errorf("message %+v after the failure, want none", m)
	default:
	}
}
