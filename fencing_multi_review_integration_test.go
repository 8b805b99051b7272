package redsync_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
)

// TestReviewMultiFencingGuardedInterleaving (review of 8ea685f): single
// names and sets, with and without the restart guard, from two Redsyncs
// over different drivers (go-redis: goroutine rounds; redigo: pipelined
// fencing rounds), whose hints lag behind each other; lock keys vanish
// early (deleted on every node under their holder) or are unlocked; one
// node's counter of one name is raised behind the clients' backs. Every
// acquisition's token must exceed the last token of each of its names,
// each name's counter must be at the token on a quorum, and GuardedSet on
// a resource per name must reject the previous holder of the name.
func TestReviewMultiFencingGuardedInterleaving(t *testing.T) {
	servers := redistest.StartN(t, 3)
	mk := func(d driver) *redsync.Redsync {
		pools := make([]redis.Pool, len(servers))
		for i, srv := range servers {
			pools[i] = d.newPool(t, srv.Addr())
		}
		return redsync.New(pools...)
	}
	one, other := mk(drivers[0]), mk(drivers[1])
	res := newGoredisPool(t, servers[0].Addr()) // the resources live on node 0
	const span = time.Second
	opts := func(guard bool) []redsync.Option {
		o := []redsync.Option{redsync.WithFencing(), redsync.WithExpiry(span), redsync.WithTimeoutFactor(0.2), redsync.WithTries(1)}
		if guard {
			o = append(o, redsync.WithRestartGuard(span))
		}
		return o
	}
	lock := func(m *redsync.Mutex) error {
		// Right after the start, the guard refuses: retry until the
		// nodes are old enough.
		deadline := time.Now().Add(span + callSlack)
		for {
			err := m.Lock()
			if err == nil || !errors.Is(err, redsync.ErrNodeRestarted) || time.Now().After(deadline) {
				return err
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	last := map[string]uint64{}
	steps := []struct {
		rs     *redsync.Redsync
		names  []string
		guard  bool
		vanish bool // delete the lock keys on every node instead of Unlock
		bump   int  // >0: before the step, raise node 0's counter of names[0] to last+bump
	}{
		{one, []string{"r-a", "r-b"}, true, false, 0},
		{other, []string{"r-b"}, false, true, 0},
		{one, []string{"r-a", "r-b", "r-c"}, true, true, 0},
		{other, []string{"r-c", "r-a"}, true, false, 50},
		{one, []string{"r-c"}, true, true, 0},
		{one, []string{"r-b", "r-c"}, false, false, 7},
		{other, []string{"r-a", "r-b", "r-c"}, true, true, 0},
		{one, []string{"r-a"}, false, false, 0},
		{other, []string{"r-b", "r-a"}, true, true, 100},
		{one, []string{"r-a", "r-b"}, true, false, 0},
	}
	for i, st := range steps {
		if st.bump > 0 {
			k := counterKey(t, servers[0], st.names[0])
			if k == "" {
				t.Fatalf("step %d: no counter of %s on node 0 to raise", i, st.names[0])
			}
			// The token must now exceed the raised counter: only the
			// second round (fence_advance.lua) can find it.
			last[st.names[0]] += uint64(st.bump)
			servers[0].MustDo(t, "SET", k, strconv.FormatUint(last[st.names[0]], 10))
		}
		m := st.rs.NewMultiMutex(st.names, opts(st.guard)...)
		if err := lock(m); err != nil {
			t.Fatalf("step %d %v (guard %v): Lock() = %v, want nil", i, st.names, st.guard, err)
		}
		token := m.FencingToken()
		for _, name := range st.names {
			if token <= last[name] {
				t.Errorf("step %d %v: token %d, want more than %d (the last token of %s)", i, st.names, token, last[name], name)
			}
			at := 0
			for _, srv := range servers {
				k := counterKey(t, srv, name)
				if k == "" {
					continue
				}
				if rep := srv.MustDo(t, "GET", k); rep.Str == strconv.FormatUint(token, 10) {
					at++
				}
			}
			if at < 2 {
				t.Errorf("step %d %v: the counter of %s is at token %d on %d nodes, want a quorum", i, st.names, name, token, at)
			}
			if err := redsync.GuardedSet(context.Background(), res, "res:"+name, fmt.Sprint(i), token); err != nil {
				t.Errorf("step %d %v: GuardedSet(res:%s, %d) = %v, want nil", i, st.names, name, token, err)
			}
			if prev := last[name]; prev > 0 {
				if err := redsync.GuardedSet(context.Background(), res, "res:"+name, "stale", prev); !errors.Is(err, redsync.ErrStaleToken) {
					t.Errorf("step %d %v: GuardedSet(res:%s) with the previous holder's token %d = %v, want ErrStaleToken", i, st.names, name, prev, err)
				}
			}
			last[name] = token
		}
		if st.vanish {
			for _, srv := range servers {
				for _, name := range st.names {
					srv.MustDo(t, "DEL", name)
				}
			}
			continue
		}
		if ok, err := m.Unlock(); !ok || err != nil {
			t.Fatalf("step %d: Unlock() = %v, %v, want true, nil", i, ok, err)
		}
	}
}

// counterKey returns the fencing counter key of name on srv ("" when
// there is none yet).
func counterKey(t *testing.T, srv *redistest.Server, name string) string {
	t.Helper()
	keys, err := srv.Keys("redsync:fence:*:" + name)
	if err != nil {
		t.Fatalf("KEYS: %v", err)
	}
	if len(keys) == 0 {
		// A counter not written yet: name it as the library does.
		return ""
	}
	return keys[0]
}
