package redsync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/goredis"
)

// Tests of the queue of waiters kept on the nodes (handoff.go): order,
// one process woken per release, waiters that give up or crash.

// queueScene locks "k" with a Redsync of its own and starts a Lock call
// of a Redsync of its own for each of waiters, one after the other (each
// queued on every node before the next starts), with a retry delay of an
// hour: only a turn ends their wait within a test.
type queueScene struct {
	c       *fakeCluster
	holder  *Mutex
	waiters []*Mutex
	members []string
	cancels []context.CancelFunc
	results []chan error
}

func newQueueScene(t *testing.T, waiters int) *queueScene {
	t.Helper()
	s := &queueScene{c: newFakeCluster(3)}
	s.holder = New(s.c.subPools()...).NewMutex("k")
	if err := s.holder.Lock(); err != nil {
		t.Fatal(err)
	}
	for range waiters {
		pools := s.c.subPools()
		m := New(pools...).NewMutex("k", WithRetryDelay(time.Hour), WithTries(2))
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		done := make(chan error, 1)
		go func() { done <- m.LockContext(ctx) }()
		w := queuedWaiter(t, m)
		eventually(t, "the waiter in every node's queue", func() bool {
			for _, n := range s.c.nodes {
				if !slices.Contains(n.queued("k"), w.member) {
					return false
				}
			}
			return true
		})
		s.waiters = append(s.waiters, m)
		s.members = append(s.members, w.member)
		s.cancels = append(s.cancels, cancel)
		s.results = append(s.results, done)
	}
	return s
}

// locked waits for waiter i's Lock to return and checks it got the lock.
func (s *queueScene) locked(t *testing.T, i int) {
	t.Helper()
	select {
	case err := <-s.results[i]:
		if err != nil {
			t.Fatalf("waiter %d: Lock() = %v, want nil", i, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("waiter %d was not given the lock", i)
	}
	// A try may reach a node before the release there: a quorum is enough.
	if got := s.c.holders("k", s.waiters[i].Value()); got < len(s.c.nodes)/2+1 {
		t.Fatalf("waiter %d holds the lock on %d of %d nodes", i, got, len(s.c.nodes))
	}
}

// waiting checks that the Lock calls of waiters is still wait.
func (s *queueScene) waiting(t *testing.T, is ...int) {
	t.Helper()
	time.Sleep(20 * time.Millisecond)
	for _, i := range is {
		select {
		case err := <-s.results[i]:
			t.Fatalf("waiter %d: Lock() = %v, want it still waiting", i, err)
		default:
		}
	}
}

// TestQueueTurnsInOrder: the nodes queue the waiters of three processes in
// the order they started waiting, the same on every node; each release
// wakes exactly the first, whose try takes the lock, and the others wait.
func TestQueueTurnsInOrder(t *testing.T) {
	s := newQueueScene(t, 3)
	for i, n := range s.c.nodes {
		if got := n.queued("k"); !slices.Equal(got, s.members) {
			t.Fatalf("node %d queues %q, want %q", i, got, s.members)
		}
	}
	if ok, err := s.holder.Unlock(); !ok || err != nil {
		t.Fatalf("holder Unlock() = %v, %v", ok, err)
	}
	for i := range s.waiters {
		s.locked(t, i)
		s.waiting(t, slices.Collect(func(yield func(int) bool) {
			for j := i + 1; j < len(s.waiters); j++ {
				if !yield(j) {
					return
				}
			}
		})...)
		if ok, err := s.waiters[i].Unlock(); !ok || err != nil {
			t.Fatalf("waiter %d Unlock() = %v, %v", i, ok, err)
		}
	}
	if got := s.c.keys("k"); got != 0 {
		t.Errorf("%d nodes hold the key after the last Unlock", got)
	}
	for i, n := range s.c.nodes {
		if got := n.queued("k"); len(got) != 0 {
			t.Errorf("node %d still queues %q after the last Unlock", i, got)
		}
		// A Lock that took the lock sends nothing more before it returns:
		// a round then would eat into its validity (a slow node holds it
		// up to the per-node timeout). Its Unlock cleans up instead.
		if slices.Contains(n.ran(), "queue-withdraw") {
			t.Errorf("node %d ran a withdrawal, though every Lock succeeded: %v", i, n.ran())
		}
	}
}

// TestQueueCancelledWaiterLeaves: a waiter that gives up (its ctx ends)
// takes its entries out of the queues, and a turn it was given as it gave
// up is covered by the next waiter, which the release named its standby:
// it tries after standbyWait, not after its retry delay (an hour).
func TestQueueCancelledWaiterLeaves(t *testing.T) {
	s := newQueueScene(t, 3)
	s.cancels[1]()
	if err := <-s.results[1]; !errors.Is(err, context.Canceled) || !errors.Is(err, ErrFailed) {
		t.Fatalf("cancelled waiter: LockContext() = %v, want ErrFailed and context.Canceled", err)
	}
	want := []string{s.members[0], s.members[2]}
	eventually(t, "the cancelled waiter left every queue", func() bool {
		for _, n := range s.c.nodes {
			if !slices.Equal(n.queued("k"), want) {
				return false
			}
		}
		return true
	})
	// The holder's release and waiter 0's withdrawal land together: waiter
	// 2 takes the lock as the head (the withdrawal came first) or as the
	// release's standby (waiter 0 got a turn it never takes).
	for _, n := range s.c.nodes {
		n.mu.Lock()
		n.block = make(chan struct{}) // hold the release until waiter 0 is gone
		n.mu.Unlock()
	}
	unlocked := make(chan error, 1)
	go func() { _, err := s.holder.Unlock(); unlocked <- err }()
	s.cancels[0]()
	for _, n := range s.c.nodes {
		n.mu.Lock()
		close(n.block)
		n.block = nil
		n.mu.Unlock()
	}
	if err := <-unlocked; err != nil {
		t.Fatalf("holder Unlock() = %v", err)
	}
	if err := <-s.results[0]; !errors.Is(err, context.Canceled) {
		t.Fatalf("waiter 0: LockContext() = %v, want context.Canceled", err)
	}
	s.locked(t, 2)
	if ok, err := s.waiters[2].Unlock(); !ok || err != nil {
		t.Fatalf("waiter 2 Unlock() = %v, %v", ok, err)
	}
}

// TestQueueExpiredEntrySkipped: the entry of a waiter that crashed (it
// renews it no more) is dropped once its life ended: the release gives
// the turn to the next live waiter.
func TestQueueExpiredEntrySkipped(t *testing.T) {
	s := newQueueScene(t, 1)
	for _, n := range s.c.nodes {
		n.mu.Lock()
		n.joinQueue("k", "deadbeefdeadbeef:1", 1, time.Second) // ticket 1: first in line
		n.mu.Unlock()
	}
	s.c.clock.Advance(2 * time.Second) // the dead entry's life ends; the waiter's (8s) does not
	if ok, err := s.holder.Unlock(); !ok || err != nil {
		t.Fatalf("holder Unlock() = %v, %v", ok, err)
	}
	s.locked(t, 0)
	s.waiters[0].Unlock()
	for i, n := range s.c.nodes {
		if got := n.queued("k"); len(got) != 0 {
			t.Errorf("node %d still queues %q", i, got)
		}
	}
}

// realPools returns go-redis pools over servers.
func realPools(t *testing.T, servers []*redistest.Server) []redis.Pool {
	t.Helper()
	pools := make([]redis.Pool, len(servers))
	for i, s := range servers {
		client := goredislib.NewClient(&goredislib.Options{Addr: s.Addr(), MaxRetries: -1})
		t.Cleanup(func() { client.Close() })
		pools[i] = goredis.NewPool(client)
	}
	return pools
}

// queueOnNode returns the members queued for key on srv, in order.
func queueOnNode(t *testing.T, srv *redistest.Server, key string) []string {
	t.Helper()
	rep := srv.MustDo(t, "ZRANGE", queueKey(key), "0", "-1")
	var members []string
	for _, e := range rep.Elems {
		member, _, _ := cutLast(e.Text(), "|")
		members = append(members, member)
	}
	return members
}

func cutLast(s, sep string) (string, string, bool) {
	for i := len(s) - len(sep); i >= 0; i-- {
		if s[i:i+len(sep)] == sep {
			return s[:i], s[i+len(sep):], true
		}
	}
	return s, "", false
}

// TestQueueRealServers runs the queue on redis-server: five processes
// (Redsyncs) queue in the same order on all five nodes; a waiter that
// crashed while first in line (an entry with life left, that never
// tries) holds the others up for about one standby wait, not for their
// retry delay (an hour); the others take the lock in queue order, each woken by
// the release before it.
func TestQueueRealServers(t *testing.T) {
	servers := redistest.StartN(t, 5)
	holder := New(realPools(t, servers)...).NewMutex("k")
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	// The crashed waiter: first in line on every node, its entry living
	// 30s.
	for _, srv := range servers {
		rep := srv.MustDo(t, "TIME")
		sec, _ := strconv.ParseInt(rep.Elems[0].Text(), 10, 64)
		life := sec*1000 + 30_000
		srv.MustDo(t, "ZADD", queueKey("k"), "1", fmt.Sprintf("deadbeefdeadbeef:1|%d", life))
	}
	const waiters = 4
	var (
		members []string
		results []chan error
		order   = make(chan int, waiters)
	)
	for i := range waiters {
		m := New(realPools(t, servers)...).NewMutex("k", WithRetryDelay(time.Hour), WithTries(2))
		done := make(chan error, 1)
		go func() {
			err := m.Lock()
			if err == nil {
				order <- i
				time.Sleep(5 * time.Millisecond)
				m.Unlock()
			}
			done <- err
		}()
		w := queuedWaiter(t, m)
		eventually(t, "the waiter queued on every node", func() bool {
			for _, srv := range servers {
				if !slices.Contains(queueOnNode(t, srv, "k"), w.member) {
					return false
				}
			}
			return true
		})
		members = append(members, w.member)
		results = append(results, done)
	}
	want := append([]string{"deadbeefdeadbeef:1"}, members...)
	for i, srv := range servers {
		if got := queueOnNode(t, srv, "k"); !slices.Equal(got, want) {
			t.Fatalf("node %d queues %q, want %q", i, got, want)
		}
	}
	start := time.Now()
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("holder Unlock() = %v, %v", ok, err)
	}
	for i := range waiters {
		select {
		case err := <-results[i]:
			if err != nil {
				t.Fatalf("waiter %d: Lock() = %v", i, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("waiter %d did not get the lock within 5s (retry delay 1h)", i)
		}
	}
	took := time.Since(start)
	close(order)
	var got []int
	for i := range order {
		got = append(got, i)
	}
	if !slices.Equal(got, []int{0, 1, 2, 3}) {
		t.Errorf("waiters took the lock in order %v, want [0 1 2 3] (queue order)", got)
	}
	// One standby wait lost to the crashed waiter, then hand-offs (the
	// bound is loose: the machine may be busy; the retry delay is an hour).
	if took > 5*time.Second {
		t.Errorf("%d hand-offs after a crashed waiter took %v, want about one standby wait (%v)", waiters, took, standbyWait)
	}
	for i, srv := range servers {
		if got := queueOnNode(t, srv, "k"); len(got) != 0 {
			t.Errorf("node %d still queues %q", i, got)
		}
	}
}

// TestQueueReleaseLeavesKeyFree runs release_notify.lua on a real server
// with three live waiters queued behind two that cannot come: one past
// its life, and one whose Redsync no longer listens (its process ended).
// The release deletes the key and touches nothing else of the lock (any
// client may take it at once: a poller, a v4 client), drops the entry
// past its life, gives the first live entry its turn and takes it out of
// the queue; since that turn reached nobody, it names the next two
// waiters (of other Redsyncs) standbys, and keeps them in order; a
// release by another owner's value changes nothing.
func TestQueueReleaseLeavesKeyFree(t *testing.T) {
	srv := redistest.Start(t)
	pool := realPools(t, []*redistest.Server{srv})[0]
	const key = "free"
	rep := srv.MustDo(t, "TIME")
	sec, _ := strconv.ParseInt(rep.Elems[0].Text(), 10, 64)
	now := sec * 1000
	srv.MustDo(t, "SET", key, "v")
	srv.MustDo(t, "ZADD", queueKey(key), "1", fmt.Sprintf("deadbeefdeadbeef:1|%d", now-1000))
	srv.MustDo(t, "ZADD", queueKey(key), "2", fmt.Sprintf("0123456789abcdef:1|%d", now+60_000))
	live := []string{"aaaaaaaaaaaaaaaa:1", "bbbbbbbbbbbbbbbb:1", "cccccccccccccccc:1"}
	var channels []string
	for i, member := range live {
		srv.MustDo(t, "ZADD", queueKey(key), strconv.Itoa(3+i), fmt.Sprintf("%s|%d", member, now+60_000))
		channels = append(channels, wakeChannelPrefix+member[:16])
	}
	// The live waiters' Redsyncs listen, as they do while they wait.
	client := goredislib.NewClient(&goredislib.Options{Addr: srv.Addr(), MaxRetries: -1})
	defer client.Close()
	sub := client.Subscribe(context.Background(), channels...)
	defer sub.Close()
	for range channels {
		if _, err := sub.Receive(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pool.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if reply, err := conn.Eval(releaseNotifyScript, key, queueKey(key), "other"); err != nil || reply != replyTaken {
		t.Fatalf("release of another value = %v, %v; want %v", reply, err, replyTaken)
	}
	if got := queueOnNode(t, srv, key); len(got) != 5 {
		t.Fatalf("a release of another value changed the queue: %q", got)
	}
	if reply, err := conn.Eval(releaseNotifyScript, key, queueKey(key), "v"); err != nil || reply != replyDone {
		t.Fatalf("release = %v, %v; want %v", reply, err, replyDone)
	}
	if rep := srv.MustDo(t, "EXISTS", key); rep.Int != 0 {
		t.Errorf("the key exists after the release")
	}
	if got, want := queueOnNode(t, srv, key), live; !slices.Equal(got, want) {
		t.Errorf("queue after the release %q, want %q", got, want)
	}
	for i, want := range []string{"next " + live[0] + " ", "next " + live[1] + " "} {
		msg, err := sub.ReceiveTimeout(context.Background(), 5*time.Second)
		if m, ok := msg.(*goredislib.Message); err != nil || !ok || m.Channel != channels[i] || !strings.HasPrefix(m.Payload, want) {
			t.Errorf("message %d after the release: %v, %v; want %q...", i, msg, err, want)
		}
	}
}

// TestQueueNoWaiterLeftBehind: eight processes (Redsyncs) on five real
// servers take one lock in turn for a few seconds, each Lock with a retry
// delay of an hour: every wake-up comes from the queue (a release, an
// undo, a standby notice), never from the retry delay. No Lock may be left
// waiting: each must return with the lock within 10 s (it takes a few ms,
// a standby wait or two at worst; a waiter that the queues lost would wait
// for its renewal, 30 s, or an hour).
func TestQueueNoWaiterLeftBehind(t *testing.T) {
	servers := redistest.StartN(t, 5)
	const procs, rounds = 8, 40
	errs := make(chan error, procs)
	waits := make(chan time.Duration, procs*rounds)
	for p := range procs {
		// Entries live a minute: a waiter that the queues lost would
		// wait 30 s for its renewal.
		m := New(realPools(t, servers)...).NewMutex("behind", WithRetryDelay(time.Hour), WithTries(1<<20), WithExpiry(time.Minute))
		go func() {
			for r := range rounds {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				start := time.Now()
				err := m.LockContext(ctx)
				waits <- time.Since(start)
				cancel()
				if err != nil {
					errs <- fmt.Errorf("process %d, round %d: Lock() = %w", p, r, err)
					return
				}
				time.Sleep(time.Millisecond)
				if ok, err := m.Unlock(); !ok || err != nil {
					errs <- fmt.Errorf("process %d, round %d: Unlock() = %v, %w", p, r, ok, err)
					return
				}
				time.Sleep(time.Duration(p%3) * time.Millisecond)
			}
			errs <- nil
		}()
	}
	for range procs {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	close(waits)
	var all []time.Duration
	for w := range waits {
		all = append(all, w)
	}
	slices.Sort(all)
	t.Logf("%d Lock calls; wait p50 %v, p99 %v, max %v (reported, not asserted)", len(all), all[len(all)/2], all[len(all)*99/100], all[len(all)-1])
}
