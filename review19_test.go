package redsync

// Nineteenth review: Unlock's release with release_fast.lua (7946767), by
// a helper told only to break it; its tests of the command workers went
// with the workers (reverted). See review19_synctest_test.go for the
// testing/synctest tests.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redlock/redsync/internal/redistest"
	goredislib "github.com/redis/go-redis/v9"
)

// review19Marker is the channel of the markers that end what a
// subscription got from a script (see drain below).
const review19Marker = "review19:marker"

// review19ScriptLoc matches where in a script an error came from, which
// differs between the script with release_fast.lua and the one without it
// (another SHA1, other line numbers) where nothing else does.
var review19ScriptLoc = regexp.MustCompile(`(script: )?[0-9a-f]{40}|f_[0-9a-f]{40}|@user_script:[0-9]+|, on [.:]*`)

// TestReview19ReleaseFastAsWholeACLTypesReplica extends
// TestReleaseFastPathAsWhole: Unlock's release script with release_fast.lua
// and without it, from the same states, as users who may not run EXISTS,
// PUBLISH (the command, or on any channel), DEL, ZRANGE or ZREM (or may
// not touch the queue key at all, or only read it), on
// a queue key of another type, a lock key of another type, a member given
// as ” (with or without a ticket), and on a read-only replica: the same
// reply (or the same error, up to where in the script, classified alike),
// the same key and queue after, the same messages on the release and the
// waiters' channels.
func TestReview19ReleaseFastAsWholeACLTypesReplica(t *testing.T) {
	primary := redistest.Start(t, "--repl-diskless-sync-delay", "0")
	replica := redistest.Start(t, "--replicaof", "127.0.0.1", fmt.Sprint(primary.Port()))
	eventually(t, "the replication link", func() bool {
		rep, err := replica.Do("INFO", "replication")
		return err == nil && bytes.Contains([]byte(rep.Str), []byte("master_link_status:up"))
	})
	whole := queueLibSrc + releaseNotifySrc
	fast := releaseNotifyScript.Src
	if fast != releaseFastSrc+whole {
		t.Fatalf("releaseNotifyScript is not release_fast.lua followed by the whole script")
	}
	const key = "fast19"
	const member = "aaaaaaaaaaaaaaaa:1"
	users := map[string][]string{
		"all":          {"~*", "&*", "+@all"},
		"noexists":     {"~*", "&*", "+@all", "-exists"},
		"nopub":        {"~*", "&*", "+@all", "-publish"},
		"nodel":        {"~*", "&*", "+@all", "-del"},
		"nozrange":     {"~*", "&*", "+@all", "-zrange"},
		"nozrem":       {"~*", "&*", "+@all", "-zrem"},
		"nochannels":   {"~*", "resetchannels", "+@all"},
		"keyonly":      {"~" + key, "&*", "+@all"},
		"noqueuewrite": {"%R~redsync:queue:*", "~" + key, "&*", "+@all"},
	}
	for user, rules := range users {
		args := append([]string{"ACL", "SETUSER", user, "reset", "on", ">pw"}, rules...)
		primary.MustDo(t, args...)
		replica.MustDo(t, args...)
	}
	now := func() int64 {
		rep := primary.MustDo(t, "TIME")
		sec, _ := strconv.ParseInt(rep.Elems[0].Text(), 10, 64)
		return sec * 1000
	}
	// The same entries for both scripts' runs: their lives fixed once.
	start := now()
	liveEntry := fmt.Sprintf("%s|%d", member, start+600_000)
	deadEntry := fmt.Sprintf("bbbbbbbbbbbbbbbb:3|%d", start-1000)
	live := func() string { return liveEntry }
	dead := func() string { return deadEntry }
	do := func(cmds ...[]string) func() {
		return func() {
			for _, c := range cmds {
				primary.MustDo(t, c...)
			}
		}
	}
	ours := []string{"SET", key, "v"}
	qk := queueKey(key)
	states := []struct {
		name  string
		setup func()
		args  []any
	}{
		{"ours, no queue", do(ours), []any{"v"}},
		{"missing", do(), []any{"v"}},
		{"another owner's", do([]string{"SET", key, "w"}), []any{"v"}},
		{"ours, member '' and a ticket, no queue", do(ours), []any{"v", "", "7"}},
		{"ours, member '' and a ticket, a live waiter", func() {
			do(ours)()
			primary.MustDo(t, "ZADD", qk, "1", live())
		}, []any{"v", "", "7"}},
		{"ours, a live waiter", func() {
			do(ours)()
			primary.MustDo(t, "ZADD", qk, "1", live())
		}, []any{"v"}},
		{"ours, only a dead waiter", func() {
			do(ours)()
			primary.MustDo(t, "ZADD", qk, "1", dead())
		}, []any{"v"}},
		{"ours, a dead then a live waiter", func() {
			do(ours)()
			primary.MustDo(t, "ZADD", qk, "1", dead())
			primary.MustDo(t, "ZADD", qk, "2", live())
		}, []any{"v"}},
		{"ours, queue key a string", func() {
			do(ours)()
			primary.MustDo(t, "SET", qk, "x")
		}, []any{"v"}},
		{"ours, queue key a hash", func() {
			do(ours)()
			primary.MustDo(t, "HSET", qk, "f", "x")
		}, []any{"v"}},
		{"another owner's, queue key a string", func() {
			primary.MustDo(t, "SET", key, "w")
			primary.MustDo(t, "SET", qk, "x")
		}, []any{"v"}},
		{"lock key a hash", do([]string{"HSET", key, "f", "v"}), []any{"v"}},
		{"lock key a hash, a live waiter", func() {
			primary.MustDo(t, "HSET", key, "f", "v")
			primary.MustDo(t, "ZADD", qk, "1", live())
		}, []any{"v"}},
		{"missing, a live waiter", func() {
			primary.MustDo(t, "ZADD", qk, "1", live())
		}, []any{"v"}},
	}

	type outcome struct {
		reply    string
		class    string
		key      string
		queue    string
		messages string
	}
	subscribe := func(srv *redistest.Server) (*goredislib.Client, *goredislib.PubSub) {
		c := goredislib.NewClient(&goredislib.Options{Addr: srv.Addr(), MaxRetries: -1})
		sub := c.Subscribe(context.Background(), releaseChannel(key), wakeChannelPrefix+member[:16], wakeChannelPrefix+"bbbbbbbbbbbbbbbb", review19Marker)
		for range 4 {
			if _, err := sub.Receive(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		return c, sub
	}
	pc, psub := subscribe(primary)
	defer pc.Close()
	defer psub.Close()
	rc, rsub := subscribe(replica)
	defer rc.Close()
	defer rsub.Close()
	// drain returns the messages sub got before a marker that the primary
	// publishes now: a PUBLISH on the primary reaches a replica's
	// subscribers through the replication stream, in order, so the marker
	// comes after every message of what ran before, on either server.
	var markers atomic.Int64
	drain := func(sub *goredislib.PubSub) string {
		token := strconv.FormatInt(markers.Add(1), 10)
		primary.MustDo(t, "PUBLISH", review19Marker, token)
		var s string
		for {
			msg, err := sub.ReceiveTimeout(context.Background(), 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if m, ok := msg.(*goredislib.Message); ok {
				if m.Channel == review19Marker {
					if m.Payload == token {
						return s
					}
					continue
				}
				s += m.Channel + " " + m.Payload + "; "
			}
		}
	}
	dump := func(srv *redistest.Server, k string) string {
		typ := srv.MustDo(t, "TYPE", k).Text()
		switch typ {
		case "string":
			return "string " + srv.MustDo(t, "GET", k).Text()
		case "zset":
			rep := srv.MustDo(t, "ZRANGE", k, "0", "-1", "WITHSCORES")
			return "zset " + rep.String()
		case "hash":
			return "hash " + srv.MustDo(t, "HGETALL", k).String()
		}
		return typ
	}
	// synced waits until srv holds what the primary holds for the key
	// and its queue (the replica: the replication stream caught up).
	synced := func(srv *redistest.Server) {
		if srv == primary {
			return
		}
		// The replication stream is in order: once the replica has the
		// primary's latest sequence number, it has what came before.
		seq := strconv.FormatInt(markers.Add(1), 10)
		primary.MustDo(t, "SET", "review19:seq", seq)
		eventually(t, "the replica caught up", func() bool {
			return srv.MustDo(t, "GET", "review19:seq").Text() == seq
		})
	}
	clients := map[string]*goredislib.Client{}
	client := func(srv *redistest.Server, user string) *goredislib.Client {
		id := srv.Addr() + " " + user
		if c, ok := clients[id]; ok {
			return c
		}
		c := goredislib.NewClient(&goredislib.Options{Addr: srv.Addr(), Username: user, Password: "pw", MaxRetries: -1})
		clients[id] = c
		return c
	}
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()

	for _, where := range []string{"primary", "replica"} {
		srv, sub := primary, psub
		if where == "replica" {
			srv, sub = replica, rsub
		}
		for user := range users {
			for _, st := range states {
				t.Run(where+"/"+user+"/"+st.name, func(t *testing.T) {
					run := func(src string) outcome {
						primary.MustDo(t, "DEL", key, qk)
						st.setup()
						synced(srv)
						drain(sub) // nothing from the setup
						res, err := client(srv, user).Eval(context.Background(), src, []string{key, qk}, st.args...).Result()
						var o outcome
						if err != nil {
							o.reply = "error: " + review19ScriptLoc.ReplaceAllString(err.Error(), "")
							wrapped, permanent := classifyReplyError(err)
							o.class = fmt.Sprintf("permanent=%v wrongtype=%v unavailable=%v", permanent,
								errors.Is(wrapped, ErrWrongType), errors.Is(wrapped, ErrCommandUnavailable))
						} else {
							o.reply = fmt.Sprintf("%T %v", res, res)
						}
						synced(srv)
						o.key = dump(srv, key)
						o.queue = dump(srv, qk)
						o.messages = drain(sub)
						return o
					}
					withFast, without := run(fast), run(whole)
					t.Logf("%+v", withFast)
					if withFast != without {
						t.Errorf("with release_fast.lua:\n  %+v\nwithout:\n  %+v", withFast, without)
					}
				})
			}
		}
	}
}

// TestReview19UnlockFastPathAndQueuedWaiter drives Unlock through both
// branches of releaseNotifyScript on three real nodes: a plain Unlock
// (nobody queued: release_fast.lua) frees the key on every node and
// announces the release; an Unlock while another Mutex of another Redsync
// waits (queued: the whole script) hands the lock over to that waiter,
// which gets it without polling (a retry delay far beyond the test).
func TestReview19UnlockFastPathAndQueuedWaiter(t *testing.T) {
	servers := redistest.StartN(t, 3)
	pools := realPools(t, servers)
	rsA, rsB := New(pools...), New(pools...)
	const name = "fast19-unlock"
	a := rsA.NewMutex(name, WithExpiry(10*time.Second))
	if err := a.Lock(); err != nil {
		t.Fatal(err)
	}
	if ok, err := a.Unlock(); !ok || err != nil {
		t.Fatalf("Unlock() = %v, %v", ok, err)
	}
	for i, srv := range servers {
		if rep := srv.MustDo(t, "EXISTS", name); rep.Int != 0 {
			t.Errorf("node %d: key still there after Unlock", i)
		}
	}
	// Again with a waiter: Unlock goes past release_fast.lua.
	if err := a.Lock(); err != nil {
		t.Fatal(err)
	}
	b := rsB.NewMutex(name, WithExpiry(10*time.Second), WithTries(1000), WithRetryDelay(time.Minute))
	got := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	go func() { got <- b.LockContext(ctx) }()
	eventually(t, "the waiter queued on every node", func() bool {
		for _, srv := range servers {
			if len(queueOnNode(t, srv, name)) == 0 {
				return false
			}
		}
		return true
	})
	if ok, err := a.Unlock(); !ok || err != nil {
		t.Fatalf("Unlock() with a waiter = %v, %v", ok, err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("the waiter's Lock() = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter was not handed the lock by Unlock")
	}
	if ok, err := b.Unlock(); !ok || err != nil {
		t.Fatalf("the waiter's Unlock() = %v, %v", ok, err)
	}
	for i, srv := range servers {
		if rep := srv.MustDo(t, "EXISTS", name); rep.Int != 0 {
			t.Errorf("node %d: key still there after the waiter's Unlock", i)
		}
	}
}
