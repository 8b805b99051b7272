package redsync

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	goredislib "github.com/redis/go-redis/v9"
)

// TestReleaseFastPathAsWhole runs Unlock's release script
// (releaseNotifyScript: release_fast.lua, then queue_lib.lua and
// release_notify.lua) and the same script without release_fast.lua on a
// real server, from the same states of the key and its queue: both reply
// alike, leave the key and the queue alike, and announce alike on the
// release channel and the waiters' channel.
func TestReleaseFastPathAsWhole(t *testing.T) {
	srv := redistest.Start(t)
	pool := realPools(t, []*redistest.Server{srv})[0]
	whole := redis.NewScript(2, queueLibSrc+releaseNotifySrc, "")
	const key = "fast"
	const member = "aaaaaaaaaaaaaaaa:1"
	client := goredislib.NewClient(&goredislib.Options{Addr: srv.Addr(), MaxRetries: -1})
	defer client.Close()
	sub := client.Subscribe(context.Background(), releaseChannel(key), wakeChannelPrefix+member[:16])
	defer sub.Close()
	for range 2 {
		if _, err := sub.Receive(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	now := func() int64 {
		rep := srv.MustDo(t, "TIME")
		sec, _ := strconv.ParseInt(rep.Elems[0].Text(), 10, 64)
		return sec * 1000
	}
	for _, tc := range []struct {
		name  string
		setup func()
		args  []any // after the two keys
	}{
		{"ours, no queue", func() { srv.MustDo(t, "SET", key, "v") }, []any{"v"}},
		{"ours, empty member, no queue", func() { srv.MustDo(t, "SET", key, "v") }, []any{"v", "", ""}},
		{"missing", func() {}, []any{"v"}},
		{"another owner's", func() { srv.MustDo(t, "SET", key, "w") }, []any{"v"}},
		{"ours, a live waiter", func() {
			srv.MustDo(t, "SET", key, "v")
			srv.MustDo(t, "ZADD", queueKey(key), "1", fmt.Sprintf("%s|%d", member, now()+60_000))
		}, []any{"v"}},
		{"ours, a dead waiter", func() {
			srv.MustDo(t, "SET", key, "v")
			srv.MustDo(t, "ZADD", queueKey(key), "1", fmt.Sprintf("%s|%d", member, now()-1000))
		}, []any{"v"}},
		{"ours, the owner's entry to take out", func() {
			srv.MustDo(t, "SET", key, "v")
			srv.MustDo(t, "ZADD", queueKey(key), "7", fmt.Sprintf("bbbbbbbbbbbbbbbb:2|%d", now()+60_000))
		}, []any{"v", "bbbbbbbbbbbbbbbb:2", "7"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			type outcome struct {
				reply    any
				key      string
				queue    string
				messages string
			}
			run := func(script *redis.Script) outcome {
				srv.MustDo(t, "DEL", key, queueKey(key))
				tc.setup()
				conn, err := pool.Get(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				reply, err := conn.Eval(script, append([]any{key, queueKey(key)}, tc.args...)...)
				if err != nil {
					t.Fatalf("release: %v", err)
				}
				var o outcome
				o.reply = reply
				o.key = srv.MustDo(t, "GET", key).Text()
				o.queue = fmt.Sprint(queueOnNode(t, srv, key))
				// A PING through the subscription ends what the release
				// published: the messages come before its pong.
				if err := sub.Ping(context.Background()); err != nil {
					t.Fatal(err)
				}
				for {
					msg, err := sub.ReceiveTimeout(context.Background(), 5*time.Second)
					if err != nil {
						t.Fatal(err)
					}
					if m, ok := msg.(*goredislib.Message); ok {
						o.messages += m.Channel + " " + m.Payload + "; "
						continue
					}
					if _, ok := msg.(*goredislib.Pong); ok {
						break
					}
				}
				return o
			}
			fast, slow := run(releaseNotifyScript), run(whole)
			if fast != slow {
				t.Errorf("with release_fast.lua %+v; without %+v", fast, slow)
			}
		})
	}
}
