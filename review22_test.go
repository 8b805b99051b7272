package redsync

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	redigolib "github.com/gomodule/redigo/redis"
	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/goredis"
	"github.com/go-redlock/redsync/redis/redigo"
)

// Review 22: passing an acquisition on with no round (passOn, transfer.go),
// after review 21's fix (a Valid in flight registered like an Extend).

// r22Lose makes node n of c lose key, as a restart without persistence or
// an eviction does.
func r22Lose(c *fakeCluster, n int, key string) {
	node := c.nodes[n]
	node.mu.Lock()
	delete(node.keys, key)
	node.mu.Unlock()
}

// TestReview22FmtShowsPassedOnValue breaks "a value ever shown outside the
// library is never passed on" (and "dead after Unlock").
//
// Interleaving: the holder locks; code outside the library formats the
// Mutex with fmt (a log line "%+v", a debugger-style dump, slog.Any's
// text handler, testify's failure output all do this); the acquisition,
// a field of the Mutex held by value, is printed with its value, and
// shown stays false. Unlock then passes the acquisition on: the value the
// log line carries is the new holder's live lock, and a Mutex given it with
// WithValue releases the waiter's lock.
//
// Suggested fix: give *Mutex a Format (or String and GoString) method that
// prints the name and state but never the value (fmt then never reaches the
// acquisition), or keep the value behind a pointer fmt does not follow; a
// Format that prints the value must set shown under mu, as Value does.
// Fixed with String and Format (mutex.go); the test now checks that no
// verb prints the value, and that passing on still happens.
func TestReview22FmtShowsPassedOnValue(t *testing.T) {
	c := newFakeCluster(3)
	holder, waiter, value, done := passOnScene(t, c, nil, nil)
	// Fixed: *Mutex has String and Format, which print the name only.
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x", "%q"} {
		if logged := fmt.Sprintf(verb, holder); strings.Contains(logged, value) || logged != `redsync.Mutex("k")` {
			t.Errorf("fmt.Sprintf(%q, holder) = %s; want redsync.Mutex(\"k\"), never the value", verb, logged)
		}
	}
	unlockPassesOn(t, c, holder, done)
	if got := waiter.Value(); got != value {
		t.Fatalf("waiter Value() = %q, want the passed-on %q", got, value)
	}
	if ok, err := waiter.Unlock(); !ok || err != nil {
		t.Fatalf("waiter Unlock() = %v, %v", ok, err)
	}
}

// r22Scene is passOnScene with a hook before the holder's Lock and one
// after it, before the waiter's Lock makes its first try.
func r22Scene(t *testing.T, c *fakeCluster, beforeHolder, beforeWaiter func()) (holder, waiter *Mutex, done chan error) {
	t.Helper()
	rs := New(c.pools()...)
	holder = rs.NewMutex("k")
	holder.now = c.clock.Now
	if beforeHolder != nil {
		beforeHolder()
	}
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	if beforeWaiter != nil {
		beforeWaiter()
	}
	waiter = rs.NewMutex("k", WithRetryDelay(time.Hour))
	waiter.now = c.clock.Now
	done = make(chan error, 1)
	go func() { done <- waiter.Lock() }()
	queuedWaiter(t, waiter)
	return holder, waiter, done
}

// TestReview22PassOnAfterSeenLoss breaks "at most one holder" and the rule
// "only an acquisition the nodes are not known to have lost"
// (docs/LIFETIME.md: what passing on gives up is a key lost "without anyone
// seeing it").
//
// Interleaving, 3 nodes: the holder locks (value v); node 0 loses the key
// (a restart without persistence, an eviction) and the library sees it:
//   - Extend: succeeds on nodes 1 and 2, node 0 replies missing;
//   - Valid: true on nodes 1 and 2, node 0 has no key;
//   - waiter's try: the waiter's own Lock (same Redsync) took node 0, where
//     the key was free, lost on nodes 1 and 2, and undid it;
//   - holder's try: node 0 failed the holder's try (v is on 1 and 2 only)
//     and is back, empty.
//
// endCheck gets only "held" (a quorum), and tries tell the acquisition
// nothing, so it is not doubtful; Unlock passes it on with no round. The
// waiter holds v on 2 of 3 nodes, its Lock reporting the full validity. A
// transfer round (TestReview22HeldRoundRepairsSeenLoss, the control) sets
// the waiter's value on node 0 again (transfer.lua sets it where the key
// is missing). Then node 1 loses the key, again one node: another
// client's TryLock takes nodes 0 and 1, a quorum, while the waiter's Until
// is seconds away: two holders. After the round, the same second loss
// leaves the waiter 2 of 3 nodes and the other client fails.
//
// Suggested fix: pass on only an acquisition last confirmed on every node.
// Record it with the acquisition: the try that made it, and each Extend or
// Valid, pass their tally (not just held) to endCheck/acquired, and a
// node that was not done (missing, taken, failed) makes the acquisition
// doubtful for passing on (Extend and Valid still succeed). A local try
// that took the key on some node while this process holds the lock (the
// waiter's case) should mark the holder's acquisition too, e.g. through
// the notifier's keyWaiters (the waiter's try knows the name), or the
// hand-off should always be a round when the waiter's last try took a
// node.
func TestReview22PassOnAfterSeenLoss(t *testing.T) {
	for _, tc := range []struct {
		name                       string
		beforeHolder, beforeWaiter func(c *fakeCluster)
		afterScene                 func(t *testing.T, holder *Mutex)
	}{
		{name: "Extend", beforeWaiter: func(c *fakeCluster) {}, afterScene: func(t *testing.T, holder *Mutex) {
			if ok, err := holder.Extend(); !ok || err != nil {
				t.Fatalf("holder Extend() = %v, %v with the key on nodes 1 and 2; want true", ok, err)
			}
		}},
		{name: "Valid", afterScene: func(t *testing.T, holder *Mutex) {
			if ok, err := holder.Valid(); !ok || err != nil {
				t.Fatalf("holder Valid() = %v, %v with the key on nodes 1 and 2; want true", ok, err)
			}
		}},
		{name: "waiter's try", beforeWaiter: func(c *fakeCluster) { r22Lose(c, 0, "k") }},
		{name: "holder's try", beforeHolder: func(c *fakeCluster) { c.nodes[0].setErr(errors.New("node 0 down")) },
			beforeWaiter: func(c *fakeCluster) { c.nodes[0].setErr(nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newFakeCluster(3)
			var bh, bw func()
			if tc.beforeHolder != nil {
				bh = func() { tc.beforeHolder(c) }
			}
			if tc.beforeWaiter != nil {
				bw = func() { tc.beforeWaiter(c) }
			}
			holder, waiter, done := r22Scene(t, c, bh, bw)
			value, _ := c.nodes[1].value("k")
			if tc.afterScene != nil {
				r22Lose(c, 0, "k")
				tc.afterScene(t, holder)
			}
			if n := c.holders("k", value); n != 2 {
				t.Fatalf("%d nodes hold the holder's value before Unlock, want 2 (node 0 lost it)", n)
			}
			sent := c.calls()
			if ok, err := holder.Unlock(); !ok || err != nil {
				t.Fatalf("holder Unlock() = %v, %v", ok, err)
			}
			if err := awaitLock(t, done); err != nil {
				t.Fatalf("waiter Lock() = %v", err)
			}
			passed := c.calls() == sent
			got := waiter.Value()
			eventually(t, "the hand-off's nodes settled", func() bool { return c.holders("k", got) >= 2 })
			time.Sleep(5 * time.Millisecond) // a round's last node
			covered := c.holders("k", got)
			r22Lose(c, 1, "k") // the second single-node loss
			other := New(c.pools()...).NewMutex("k")
			other.now = c.clock.Now
			err := other.TryLock()
			if err == nil {
				defer other.Unlock()
			}
			left := waiter.Until().Sub(c.clock.Now())
			if err == nil && left > 0 {
				t.Errorf("the %s saw node 0 without the key, yet Unlock passed the acquisition on (no round: %v, same value: %v); "+
					"the waiter's value was on %d of 3 nodes, and after node 1 lost it too another client locked "+
					"while the waiter's Until was %v away: two holders", tc.name, passed, got == value, covered, left)
			}
			waiter.Unlock()
		})
	}
}

// TestReview22HeldRoundRepairsSeenLoss is the control of
// TestReview22PassOnAfterExtendSawMissing: the same losses, but the
// holder's Value was read, so the hand-off is a transfer round; it sets
// the waiter's value on node 0 again, and after node 1's loss the other
// client's TryLock fails.
func TestReview22HeldRoundRepairsSeenLoss(t *testing.T) {
	c := newFakeCluster(3)
	holder, waiter, value, done := passOnScene(t, c, nil, nil)
	if holder.Value() != value {
		t.Fatal("holder Value() is not the nodes' value")
	}
	r22Lose(c, 0, "k")
	if ok, err := holder.Extend(); !ok || err != nil {
		t.Fatalf("holder Extend() = %v, %v", ok, err)
	}
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("holder Unlock() = %v, %v", ok, err)
	}
	if err := awaitLock(t, done); err != nil {
		t.Fatalf("waiter Lock() = %v", err)
	}
	got := waiter.Value()
	if got == value {
		t.Fatal("a shown value was passed on")
	}
	eventually(t, "the round set the waiter's value on every node", func() bool { return c.holders("k", got) == 3 })
	r22Lose(c, 1, "k")
	other := New(c.pools()...).NewMutex("k")
	other.now = c.clock.Now
	if err := other.TryLock(); err == nil {
		other.Unlock()
		t.Fatal("another client locked after one more single-node loss, though the round had repaired node 0")
	} else if !errors.Is(err, ErrFailed) {
		t.Fatalf("other TryLock() = %v", err)
	}
	if ok, err := waiter.Unlock(); !ok || err != nil {
		t.Errorf("waiter Unlock() = %v, %v", ok, err)
	}
}

// r22Plain hides every interface of a pool but redis.Pool (a v4-style
// pool): its Redsync cannot listen, so waiters are polled and have no
// entries in the queues, and a hand-off can pass on.
type r22Plain struct{ p redis.Pool }

func (p r22Plain) Get(ctx context.Context) (redis.Conn, error) { return p.p.Get(ctx) }

// r22Servers starts three redis-servers and returns them with plain pools
// over go-redis (redigo when useRedigo is set).
func r22Servers(t *testing.T, useRedigo bool) ([]*redistest.Server, []redis.Pool) {
	t.Helper()
	servers := redistest.StartN(t, 3)
	pools := make([]redis.Pool, len(servers))
	for i, s := range servers {
		addr := s.Addr()
		if useRedigo {
			rp := &redigolib.Pool{MaxIdle: 4, IdleTimeout: time.Minute, DialContext: func(ctx context.Context) (redigolib.Conn, error) {
				return redigolib.DialContext(ctx, "tcp", addr)
			}}
			t.Cleanup(func() { rp.Close() })
			pools[i] = r22Plain{redigo.NewPool(rp)}
			continue
		}
		client := goredislib.NewClient(&goredislib.Options{Addr: addr, MaxRetries: -1})
		t.Cleanup(func() { client.Close() })
		pools[i] = r22Plain{goredis.NewPool(client)}
	}
	return servers, pools
}

// TestReview22PassOnAfterSeenLossServers is TestReview22PassOnAfterSeenLoss
// (the Extend case) on three redis-servers through go-redis: the key is
// lost on server 0 (DEL, as an eviction or a restart without persistence
// does), the holder's Extend succeeds and sees it missing there, Unlock
// passes the acquisition on; server 1 then loses the key, and a Lock of
// another Redsync (another process) takes servers 0 and 1 while the
// waiter's Until is seconds away. Same fix.
func TestReview22PassOnAfterSeenLossServers(t *testing.T) {
	servers, pools := r22Servers(t, false)
	rs := New(pools...)
	holder := rs.NewMutex("k")
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	waiter := rs.NewMutex("k", WithRetryDelay(time.Hour))
	done := make(chan error, 1)
	go func() { done <- waiter.Lock() }()
	queuedWaiter(t, waiter)
	servers[0].MustDo(t, "DEL", "k")
	if ok, err := holder.Extend(); !ok || err != nil {
		t.Fatalf("holder Extend() = %v, %v", ok, err)
	}
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("holder Unlock() = %v, %v", ok, err)
	}
	if err := awaitLock(t, done); err != nil {
		t.Fatalf("waiter Lock() = %v", err)
	}
	passed := holder.Value() == ""
	got := waiter.Value()
	eventually(t, "a quorum holds the waiter's value", func() bool {
		n := 0
		for _, s := range servers {
			if s.MustDo(t, "GET", "k").Str == got {
				n++
			}
		}
		return n >= 2
	})
	time.Sleep(20 * time.Millisecond) // a round's last server
	covered := 0
	for _, s := range servers {
		if s.MustDo(t, "GET", "k").Str == got {
			covered++
		}
	}
	servers[1].MustDo(t, "DEL", "k")
	other := New(pools...).NewMutex("k")
	err := other.TryLock()
	if err == nil {
		defer other.Unlock()
	}
	if left := time.Until(waiter.Until()); err == nil && left > 0 {
		t.Errorf("Extend saw server 0 without the key, yet Unlock passed the acquisition on (passed: %v); the waiter's value "+
			"was on %d of 3 servers, and after server 1 lost it too another Redsync locked while the waiter's Until was %v away: two holders",
			passed, covered, left.Round(time.Millisecond))
	}
	waiter.Unlock()
}

// TestReview22HeldServersChainPTTL: on three redis-servers, through go-redis
// and redigo, an acquisition is passed on twice with no round, to waiters
// whose options differ (drift 0 and 64 tries; WithShufflePools,
// WithSetNXOnExtend and timeout factor 0.1), then released. (It had
// WithFailFast on the first waiter: since review 24, a try that returns
// before every node answered counts as one that may have found the key
// free, and the hand-off is a round.) Each holder's
// Until is within what the servers' PTTL guarantees (PTTL >= Until - now,
// with the waiter's drift at its smallest), the old Mutex's Extend fails
// with nothing to act with, the last holder's Extend and Unlock act on
// every server, and no key (lock or queue) is left.
func TestReview22HeldServersChainPTTL(t *testing.T) {
	for _, useRedigo := range []bool{false, true} {
		t.Run(map[bool]string{false: "go-redis", true: "redigo"}[useRedigo], func(t *testing.T) {
			servers, pools := r22Servers(t, useRedigo)
			rs := New(pools...)
			first := rs.NewMutex("k")
			if err := first.Lock(); err != nil {
				t.Fatal(err)
			}
			opts := [][]Option{
				{WithDriftFactor(0), WithTries(64)},
				{WithShufflePools(true), WithSetNXOnExtend(), WithTimeoutFactor(0.1)},
			}
			holder := first
			var value string
			for i, o := range opts {
				w := rs.NewMutex("k", append([]Option{WithRetryDelay(time.Hour)}, o...)...)
				done := make(chan error, 1)
				go func() { done <- w.Lock() }()
				queuedWaiter(t, w)
				if ok, err := holder.Unlock(); !ok || err != nil {
					t.Fatalf("hand-off %d: Unlock() = %v, %v", i, ok, err)
				}
				if err := awaitLock(t, done); err != nil {
					t.Fatalf("hand-off %d: Lock() = %v", i, err)
				}
				if holder.Value() != "" {
					t.Fatalf("hand-off %d was a round, want passed on", i)
				}
				for j, s := range servers {
					pttl := time.Duration(s.MustDo(t, "PTTL", "k").Int) * time.Millisecond
					// After the PTTL reply: the Until left then is no more
					// than what the node had left when it answered.
					left := time.Until(w.Until())
					if pttl+time.Millisecond < left {
						t.Errorf("hand-off %d: server %d's PTTL %v is shorter than the Until left %v", i, j, pttl, left)
					}
				}
				if ok, err := holder.Extend(); ok || !errors.Is(err, ErrExtendFailed) {
					t.Errorf("hand-off %d: old holder Extend() = %v, %v", i, ok, err)
				}
				holder = w
			}
			value = holder.Value()
			if ok, err := holder.Extend(); !ok || err != nil {
				t.Fatalf("last holder Extend() = %v, %v", ok, err)
			}
			for j, s := range servers {
				if got := s.MustDo(t, "GET", "k").Str; got != value {
					t.Errorf("server %d holds %q, want the passed-on value", j, got)
				}
			}
			if ok, err := holder.Unlock(); !ok || err != nil {
				t.Fatalf("last holder Unlock() = %v, %v", ok, err)
			}
			for _, s := range servers {
				eventually(t, "no key left", func() bool {
					keys, err := s.Keys("*")
					return err == nil && len(keys) == 0
				})
			}
		})
	}
}
