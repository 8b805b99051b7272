package redsync

import (
	"context"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/goredis"
)

// Seventh review of the queue of waiters: the wake of e4456b9 (queue_lib.lua
// told only the first live waiter; a PUBLISH that reached 0 receivers on
// the node took that Redsync's entries out; no standbys), with the EXISTS
// short cut of 5518003 and the local skip of f8b9419. Its breaks led to
// the wake of today: the first live waiter is told, and only when that
// PUBLISH reaches nobody on the node are the next two of other Redsyncs
// named standbys; no entry is removed for a count of 0 (on a Redis
// Cluster the count covers the node's own subscribers only).
//
// watchFreeWhileWaiting reports, until stop, each time the lock name has
// been free for longer than stuck while a Lock call that began before it
// waits (waiting maps a key per call to the time the call began): free on
// every server that answers, and at least answering servers answer. It
// returns a channel closed when it ends.
func watchFreeWhileWaiting(servers []*redistest.Server, name string, answering int, stop time.Time, stuck time.Duration, waiting *sync.Map, report func(error)) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		var freeSince time.Time
		for time.Now().Before(stop) {
			free, owners := freeOn(servers, name)
			now := time.Now()
			switch {
			case free < owners || owners < answering:
				freeSince = time.Time{}
			case freeSince.IsZero():
				freeSince = now
			case now.Sub(freeSince) > stuck:
				oldest := now
				waiting.Range(func(_, v any) bool {
					if s := v.(time.Time); s.Before(oldest) {
						oldest = s
					}
					return true
				})
				if oldest.Before(freeSince) {
					report(fmt.Errorf("the lock was free for %v while a Lock call that began before waited", now.Sub(freeSince)))
					freeSince = now
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return done
}

// TestReview7ClusterHeadGivesUpStrandsSecondWaiter failed (cluster) and
// passes now. TestReview7PatternSubscriberHidesCrashedProcess,
// TestReview7TurnSwallowedByListeningProcess and
// TestReview7ThousandCrashedWaitersAtHead found turns that no process
// acts on while the PUBLISH was heard (a pattern subscriber; a process
// that listens for another lock while its ended waiter's withdrawal
// failed) or past the 1,000 entries a release looks at: docs/LIFETIME.md
// lists them; the waiters' retry delay covers them, which these tests
// check with a retry delay of a second (with an hour, the waiter would
// wait for its renewal, half its entry's life).

// review7Opts is a waiter that only a wake-up from the queue can bring the
// lock to: an hour's retry delay, entries living a minute.
func review7Opts() []Option {
	return []Option{WithRetryDelay(time.Hour), WithTries(2), WithExpiry(time.Minute)}
}

// review7FallbackOpts is a waiter whose retry delay, a second, covers a
// turn that nobody acts on.
func review7FallbackOpts() []Option {
	return []Option{WithRetryDelay(time.Second), WithTries(1000), WithExpiry(time.Minute)}
}

// clusterPool returns a go-redis cluster client over the cluster's
// servers as one pool (one Redlock node), as README shows.
func clusterPool(t *testing.T, servers []*redistest.Server) redis.Pool {
	t.Helper()
	addrs := make([]string, len(servers))
	for i, s := range servers {
		addrs[i] = s.Addr()
	}
	client := goredislib.NewClusterClient(&goredislib.ClusterOptions{Addrs: addrs, MaxRetries: -1})
	t.Cleanup(func() { client.Close() })
	return goredis.NewPool(client)
}

// twoListedScene is one Redsync (process) with two Lock calls waiting for
// a lock held by another process, both listed: both became waiters before
// the Redsync listened (a burst of Lock calls after an idle spell: each
// first try is a plain one, and only a call that begins while a listed
// waiter of the Redsync exists stands behind it). head has the lower
// ticket (it is first in the nodes' queues), second is behind it.
type twoListedScene struct {
	rs                       *Redsync
	head, second             *waiter
	headMutex, secondMutex   *Mutex
	headCancel, secondCancel context.CancelFunc
	headDone, secondDone     chan error
	holdWithdraws            *atomic.Bool // while set, the Redsync's withdrawals are held 1.5 s before they are sent
}

// newTwoListedRedsync returns the scene's Redsync over pools (wrapped
// here: its plain tries are slow, and its withdrawals held while
// holdWithdraws is set). The caller then starts the two Lock calls with
// start.
func newTwoListedRedsync(pools []redis.Pool) *twoListedScene {
	s := &twoListedScene{holdWithdraws: &atomic.Bool{}}
	armed := &atomic.Bool{}
	armed.Store(true)
	wrapped := make([]redis.Pool, len(pools))
	for i, p := range pools {
		wrapped[i] = &delayPool{inner: p, armed: armed, delay: func(sc *redis.Script, args []any) time.Duration {
			switch {
			case sc == acquireScript:
				// The plain first tries are slow: both calls begin
				// before the Redsync listens, so neither stands behind.
				return 300 * time.Millisecond
			case sc == queueLeaveScript && len(args) > 2 && args[2] == "withdraw" && s.holdWithdraws.Load():
				return 1500 * time.Millisecond
			}
			return 0
		}}
	}
	s.rs = New(wrapped...)
	return s
}

// start starts the two Lock calls of name and waits until both are
// listed and each is queued on at least need of servers.
func (s *twoListedScene) start(t *testing.T, servers []*redistest.Server, name string, need int) {
	t.Helper()
	ms := []*Mutex{s.rs.NewMutex(name, review7Opts()...), s.rs.NewMutex(name, review7Opts()...)}
	cancels := make([]context.CancelFunc, 2)
	dones := []chan error{make(chan error, 1), make(chan error, 1)}
	for i := range ms {
		ctx, cancel := context.WithCancel(context.Background())
		cancels[i] = cancel
		t.Cleanup(cancel)
		go func() { dones[i] <- ms[i].LockContext(ctx) }()
	}
	var ws []*waiter
	eventually(t, "two listed waiters, queued", func() bool {
		n := s.rs.notify
		n.mu.Lock()
		ws = ws[:0]
		if kw := n.keys[name]; kw != nil {
			for _, w := range kw.waiters {
				if w.standing == listed {
					ws = append(ws, w)
				}
			}
		}
		n.mu.Unlock()
		if len(ws) != 2 {
			return false
		}
		for _, w := range ws {
			if countQueued(t, servers, w.member) < need {
				return false
			}
		}
		return true
	})
	slices.SortFunc(ws, func(a, b *waiter) int { return int(a.ticket - b.ticket) })
	s.head, s.second = ws[0], ws[1]
	for i, m := range ms {
		if s.head.m == m {
			s.headMutex, s.headCancel, s.headDone = m, cancels[i], dones[i]
		} else {
			s.secondMutex, s.secondCancel, s.secondDone = m, cancels[i], dones[i]
		}
	}
}

// headGivesUpAsReleased cancels the head's Lock with its withdrawal held
// back, so that the holder's release (Unlock) comes between the head's end
// and its withdrawal: the release gives the turn to the head, whose Lock
// has ended. It returns when the head's Lock returned.
func (s *twoListedScene) headGivesUpAsReleased(t *testing.T, holder *Mutex) {
	t.Helper()
	s.holdWithdraws.Store(true)
	s.headCancel()
	eventually(t, "the head unregistered", func() bool { return !registered(s.rs.notify, s.head.member) })
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("holder Unlock() = %v, %v", ok, err)
	}
	if err := <-s.headDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("head LockContext() = %v, want context.Canceled", err)
	}
	s.holdWithdraws.Store(false)
}

// secondLocks fails the test unless the second waiter's Lock succeeds
// within 5 s; what names the scene. It unlocks it.
func (s *twoListedScene) secondLocks(t *testing.T, servers []*redistest.Server, name, what string) {
	t.Helper()
	select {
	case err := <-s.secondDone:
		if err != nil {
			t.Fatalf("%s: W2 Lock() = %v", what, err)
		}
		if ok, err := s.secondMutex.Unlock(); !ok || err != nil {
			t.Errorf("%s: W2 Unlock() = %v, %v", what, ok, err)
		}
	case <-time.After(5 * time.Second):
		free, owners := freeOn(servers, name)
		t.Fatalf("%s: W2 did not get the lock within 5s of the release, with the key free on %d of %d servers that own it and W2 queued on %d (retry delay 1h, renewal after 30s)",
			what, free, owners, countQueued(t, servers, s.second.member))
	}
}

// freeOn returns on how many of servers key is free, of those that own
// it (on a cluster, the others answer MOVED).
func freeOn(servers []*redistest.Server, key string) (free, owners int) {
	for _, srv := range servers {
		rep, err := srv.Do("EXISTS", key)
		if err != nil {
			continue
		}
		owners++
		if rep.Int == 0 {
			free++
		}
	}
	return free, owners
}

// TestReview7ClusterHeadGivesUpStrandsSecondWaiter breaks promise 3 ("a
// Lock that gives up as its turn comes costs at most its withdrawal") and
// with it promise 2 (liveness: the lock is free and a Lock with a retry
// delay of an hour waits), on a Redis Cluster, which LIFETIME.md ("Redis
// Cluster") says is enough as one node: "the PUBLISH from the script is a
// plain (not sharded) publish, which Redis Cluster forwards to every node,
// and the listener connects to one node of the cluster".
//
// On a cluster, PUBLISH returns only the receivers connected to the node
// that runs it (the Redis docs of PUBLISH say so). The listener of a
// go-redis cluster client connects to the master of its channel's slot
// (redsync:wake:<id>), which is not the master of the lock's slot for two
// Redsyncs in three. There, every wake (queue_lib.lua) sees told == 0 for
// a Redsync that listens and hears (the message does reach it, through
// the cluster bus): it marks the Redsync gone and removes every entry of
// it, the waiters that were not told among them.
//
// Interleaving: one process (Redsync A) has two listed Lock calls waiting
// for the lock (a burst after an idle spell: both first tries are plain,
// so neither stands behind the other), W1 first in the queue, W2 second.
// W1 gives up (ctx) just as the holder (another process) releases: its
// withdrawal reaches the cluster after the release (held back 1.5 s here;
// any release between W1's end and its withdrawal). The release tells W1
// (PUBLISH: 0 on the key's master, delivered by the bus to A, which drops
// it: W1 ended) and removes W1's and W2's entries. W1's withdrawal then
// finds the key free and wakes the queue, but the queue is gone (EXISTS
// 0): nobody is told. W1 was not the last listed waiter (W2 is listed),
// so keyWaiters.cover does not fire. W2 waits for its retry delay (1 h)
// or its renewal (30 s) while the lock is free.
//
// The standalone subtest, the same interleaving on three servers, passes
// (promise 3 holds there): W2's entry stays, and W1's withdrawal wakes it.
func TestReview7ClusterHeadGivesUpStrandsSecondWaiter(t *testing.T) {
	t.Run("standalone", func(t *testing.T) {
		servers := redistest.StartN(t, 3)
		name := "r7-same"
		holder := New(realPools(t, servers)...).NewMutex(name)
		if err := holder.Lock(); err != nil {
			t.Fatal(err)
		}
		s := newTwoListedRedsync(realPools(t, servers))
		s.start(t, servers, name, len(servers))
		s.headGivesUpAsReleased(t, holder)
		s.secondLocks(t, servers, name, "standalone")
	})
	t.Run("cluster", func(t *testing.T) {
		servers := redistest.StartCluster(t)
		s := newTwoListedRedsync([]redis.Pool{clusterPool(t, servers)})
		// A lock whose slot is on another master than A's channel (two
		// Redsyncs in three, by their random id).
		listenOn := redistest.ClusterMaster(t, servers[0], s.rs.notify.channel)
		name := redistest.KeysPerMaster(t, servers[0], "r7-same-")[(listenOn+1)%3]
		holder := New(clusterPool(t, servers)).NewMutex(name)
		if err := holder.Lock(); err != nil {
			t.Fatal(err)
		}
		s.start(t, servers, name, 1)
		s.headGivesUpAsReleased(t, holder)
		s.secondLocks(t, servers, name, "cluster")
	})
}

// TestReview7WakeStress attacks promises 1, 2 and 4 with the wake of
// e4456b9 and its faults, with no delay injected: three processes, each
// a fresh Redsync per round of about a second (its Lock calls burst after
// an idle spell, so several are listed at once, and later ones stand
// behind), four goroutines each, on one lock, with a retry delay of an
// hour (only wake-ups and hand-offs end a wait), one Lock in three giving
// up after 5-300 ms (a turn often comes to a Lock that is ending). On
// standalone servers, a fault goroutine kills every listening connection
// of one node at a time (CLIENT KILL TYPE pubsub: the Redsyncs reconnect,
// and meanwhile a release there meets PUBLISH 0 for live processes) and
// puts entries of crashed processes at the head of the queues. The
// monitor fails the test when the lock is free (on its owners) for 2 s
// while a Lock call that began before waits; no two holders may overlap;
// nothing may be left on the servers, nor any goroutine running.
//
// Both modes held in every run (6 with -race, 3 of them under CPU load):
// standalone, the quorum of turns, the one-node turn's standby try and
// the withdrawal's wake covered every lost turn; cluster (one go-redis
// cluster client as the only node), the interleaving of
// TestReview7ClusterHeadGivesUpStrandsSecondWaiter (a release between a
// head's end and its withdrawal, a window of one round trip) did not come
// up unforced.
func TestReview7WakeStress(t *testing.T) {
	if testing.Short() {
		t.Skip("stress")
	}
	t.Run("standalone", func(t *testing.T) { review7Stress(t, false) })
	t.Run("cluster", func(t *testing.T) { review7Stress(t, true) })
}

func review7Stress(t *testing.T, cluster bool) {
	var servers []*redistest.Server
	var pools func() []redis.Pool
	if cluster {
		servers = redistest.StartCluster(t)
		pools = func() []redis.Pool { return []redis.Pool{clusterPool(t, servers)} }
	} else {
		servers = redistest.StartN(t, 3)
		pools = func() []redis.Pool { return realPools(t, servers) }
	}
	goroutinesBefore := runtime.NumGoroutine()
	const (
		name     = "r7-stress"
		procs    = 3
		perProc  = 4
		duration = 8 * time.Second
		round    = 900 * time.Millisecond
		stuck    = 2 * time.Second
	)
	var (
		holders atomic.Int32
		waiting sync.Map // *int -> time the Lock began
		errs    = make(chan error, 100)
		wg      sync.WaitGroup
		locks   atomic.Int64
		gaveUp  atomic.Int64
	)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	stop := time.Now().Add(duration)
	end, cancelAll := context.WithDeadline(context.Background(), stop.Add(3*time.Second))
	defer cancelAll()

	for p := range procs {
		ps := pools()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; time.Now().Before(stop); r++ {
				rs := New(ps...) // a process that had no waiter lately
				roundEnd := time.Now().Add(round)
				var rwg sync.WaitGroup
				for g := range perProc {
					rwg.Add(1)
					go func() {
						defer rwg.Done()
						rng := mathrand.New(mathrand.NewPCG(uint64(p*1000+r), uint64(g)))
						for time.Now().Before(roundEnd) && time.Now().Before(stop) {
							m := rs.NewMutex(name, WithRetryDelay(time.Hour), WithTries(1000), WithExpiry(2*time.Second))
							ctx, cancel := context.WithCancel(end)
							if rng.IntN(2) == 0 {
								ctx, cancel = context.WithTimeout(end, time.Duration(5+rng.IntN(300))*time.Millisecond)
							}
							key := new(int)
							waiting.Store(key, time.Now())
							err := m.LockContext(ctx)
							waiting.Delete(key)
							cancel()
							if err != nil {
								if !errors.Is(err, context.DeadlineExceeded) {
									report(err)
								}
								if end.Err() != nil {
									report(errors.New("a Lock call still waited 3s after the end of the run"))
								}
								gaveUp.Add(1)
								continue
							}
							locks.Add(1)
							if time.Now().Before(m.Until()) {
								if holders.Add(1) > 1 {
									report(errors.New("two holders at once"))
								}
								time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond)
								holders.Add(-1)
							}
							if ok, err := m.Unlock(); !ok && !errors.Is(err, ErrLockAlreadyExpired) {
								report(fmt.Errorf("Unlock: %v, %w", ok, err))
							}
						}
					}()
				}
				rwg.Wait()
			}
		}()
	}
	if !cluster {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := mathrand.New(mathrand.NewPCG(7, 7))
			for i := 0; time.Now().Before(stop); i++ {
				time.Sleep(time.Duration(150+rng.IntN(300)) * time.Millisecond)
				srv := servers[rng.IntN(len(servers))]
				if i%2 == 0 {
					_, _ = srv.Do("CLIENT", "KILL", "TYPE", "pubsub")
					continue
				}
				// A crashed process's waiter at the head of every queue.
				for _, s := range servers {
					if r, err := s.Do("EXISTS", queueKey(name)); err == nil && r.Int == 1 {
						rep, err := s.Do("TIME")
						if err != nil {
							continue
						}
						sec, _ := strconv.ParseInt(rep.Elems[0].Text(), 10, 64)
						_, _ = s.Do("ZADD", queueKey(name), "1", fmt.Sprintf("dead%012d:1|%d", i, sec*1000+60000))
					}
				}
			}
		}()
	}

	monitorDone := watchFreeWhileWaiting(servers, name, 1, stop, stuck, &waiting, report)
	wg.Wait()
	<-monitorDone
	close(errs)
	t.Logf("%d acquisitions, %d Lock calls gave up", locks.Load(), gaveUp.Load())
	for err := range errs {
		t.Error(err)
	}
	// The crashed processes' entries go with their life (a minute) or the
	// next wake; remove them, then nothing else may be left.
	for _, s := range servers {
		_, _ = s.Do("DEL", queueKey(name))
	}
	settle(t, servers)
	for i, srv := range servers {
		if keys, _ := srv.Keys("*"); len(keys) > 0 {
			t.Errorf("server %d keeps %q after every call returned", i, keys)
		}
	}
	eventually(t, "the goroutines of the calls ended", func() bool {
		return runtime.NumGoroutine() <= goroutinesBefore+10
	})
}

// deafPool is a pool over a node whose listening connection never comes
// up (a Listen that fails: a node whose ACL or maxclients refuses this
// process's subscription, a pool of a client without pub/sub): the
// Redsync hears the other nodes only, and every PUBLISH of a turn to it
// on this node reaches nobody.
type deafPool struct{ redis.Pool }

func (deafPool) Listen(context.Context, func(redis.Message)) (redis.Listener, error) {
	return nil, errors.New("review7: this node does not let the process subscribe")
}

// TestReview7OneNodeUnheardHeadGivesUp: promise 3 holds when a live
// process does not listen on one node of three (deafPool), so that every
// wake there takes its entries out and tells the next process instead
// (the nodes' queues drift apart), and its head waiter gives up just as
// the release comes. Redsync A has two listed Lock calls (W1 first, W2),
// deaf on node 2; Redsync B has W3 behind them. The release tells W1 on
// nodes 0 and 1 (A drops it: W1 ended), and on node 2 removes W1 and W2
// and tells W3 (one node: W3 tries after a standby wait). W1's
// withdrawal, held back 1.5 s, then wakes W2 on nodes 0 and 1 (a quorum).
// Each of W2 and W3 gets the lock within 5 s of the free key, whichever
// first, and nothing is left. It passed in every run.
func TestReview7OneNodeUnheardHeadGivesUp(t *testing.T) {
	servers := redistest.StartN(t, 3)
	name := "r7-deaf"
	holder := New(realPools(t, servers)...).NewMutex(name)
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	pools := realPools(t, servers)
	pools[2] = deafPool{pools[2]}
	s := newTwoListedRedsync(pools)
	s.start(t, servers, name, 2)
	b := New(realPools(t, servers)...).NewMutex(name, review7Opts()...)
	bDone := startLock(t, b)
	w3 := queuedWaiter(t, b)
	queuedEverywhere(t, servers, w3)
	s.headGivesUpAsReleased(t, holder)
	mutexes := map[chan error]*Mutex{s.secondDone: s.secondMutex, bDone: b}
	for range 2 {
		select {
		case err := <-s.secondDone:
			if err != nil {
				t.Fatalf("W2 Lock() = %v", err)
			}
			if ok, err := mutexes[s.secondDone].Unlock(); !ok || err != nil {
				t.Fatalf("W2 Unlock() = %v, %v", ok, err)
			}
			s.secondDone = nil
		case err := <-bDone:
			if err != nil {
				t.Fatalf("W3 Lock() = %v", err)
			}
			if ok, err := b.Unlock(); !ok || err != nil {
				t.Fatalf("W3 Unlock() = %v, %v", ok, err)
			}
			bDone = nil
		case <-time.After(5 * time.Second):
			free, owners := freeOn(servers, name)
			t.Fatalf("a waiter did not get the lock within 5s with the key free on %d of %d servers (W2 done: %v, W3 done: %v; retry delay 1h)", free, owners, s.secondDone == nil, bDone == nil)
		}
	}
	settle(t, servers)
	for i, srv := range servers {
		if keys, _ := srv.Keys("*"); len(keys) > 0 {
			t.Errorf("server %d keeps %q", i, keys)
		}
	}
}

// TestReview7ThousandCrashedWaitersAtHead: a documented limit (LIFETIME.md,
// "Waiters that crash"), which the waiter's retry delay covers. Found as a
// break of promise 3 ("a waiter that crashes costs the others nothing") for a process that crashed with more
// than about 1,000 Lock calls waiting for one lock (a worker pool that burst on
// the lock after an idle spell: every call's first try is a plain one and
// none stands behind another, so each has an entry). wake (queue_lib.lua)
// looks at maxLooked = 1,000 entries per call: the release removes the
// first 1,000 dead entries (their PUBLISH reaches nobody), stops, tells
// nobody, and announces on redsync:released:<key>, where nobody listens.
// The live waiter behind them waits for its retry delay (1 h) or its
// renewal (30 s) while the key is free. Not new in e4456b9 (the standbys'
// search had the same bound), but the change removes the dead entries
// one ZREM at a time within the same bound, where it could skip every
// entry of a process it found gone.
func TestReview7ThousandCrashedWaitersAtHead(t *testing.T) {
	servers := redistest.StartN(t, 3)
	holder := New(realPools(t, servers)...).NewMutex("r7-k1001")
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	m := New(realPools(t, servers)...).NewMutex("r7-k1001", review7FallbackOpts()...)
	done := startLock(t, m)
	w := queuedWaiter(t, m)
	queuedEverywhere(t, servers, w)
	queueCrashedAhead(t, servers, w.member, 1100, time.Minute)
	if unlockThenLocked(t, holder, done) {
		m.Unlock()
		return
	}
	t.Fatalf("1,100 entries of a crashed process at the head kept the live waiter from a free lock for 5s, past its retry delay (1s)")
}

// TestReview7TurnSwallowedByListeningProcess: a documented limit
// (LIFETIME.md, "Waiters that crash"), which the waiter's retry delay
// covers. Found as a break of promise 3 (and 2: the lock is free while a
// Lock with a retry delay of an hour waits) in an
// interleaving that the standbys covered before e4456b9 (the test passes
// at e4456b9^): the turn goes to a waiter that has ended, in a process
// that still listens, and nobody else is told.
//
// Process A has a Lock call W1 waiting for the lock, first in the queues,
// and another Lock call waiting for another lock (a process uses many
// locks; its listening connections serve all of them; within
// listenLinger, 200 ms, after its last waiter left, the same holds with
// none). W1 gives up (ctx), and its withdrawal fails on every node (here
// a wrapper returns an error for it, as a pool timeout does while every
// command connection of the client is busy; the listening connections are
// kept apart and stay up): W1's entries stay. Process B's W3 waits behind
// W1. The holder releases: the wake tells W1 (PUBLISH reaches A's
// listener: 1, not 0, so the entry counts as told and is popped), A drops
// the turn (notifier.receive: member unknown), and nobody else is told:
// one message per release. W3 waits for its retry delay (1 h) or its
// renewal (30 s) while the key is free on every node. Before e4456b9 the
// same release named W3 a standby (a waiter of another process), which
// tried 100 ms later.
func TestReview7TurnSwallowedByListeningProcess(t *testing.T) {
	servers := redistest.StartN(t, 3)
	name := "r7-swallow"
	holder := New(realPools(t, servers)...).NewMutex(name)
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	other := New(realPools(t, servers)...).NewMutex("r7-other")
	if err := other.Lock(); err != nil {
		t.Fatal(err)
	}
	defer other.Unlock()

	var armed atomic.Bool
	pools := realPools(t, servers)
	for i, p := range pools {
		pools[i] = &delayPool{inner: p, armed: &armed, fail: func(s *redis.Script, args []any) bool {
			return s == queueLeaveScript && len(args) > 2 && args[2] == "withdraw"
		}}
	}
	rsA := New(pools...)
	// A's Lock call for another lock: A keeps listening.
	startLock(t, rsA.NewMutex("r7-other", review7Opts()...))
	m1 := rsA.NewMutex(name, review7Opts()...)
	ctx1, cancel1 := context.WithCancel(context.Background())
	defer cancel1()
	w1done := make(chan error, 1)
	go func() { w1done <- m1.LockContext(ctx1) }()
	w1 := queuedWaiter(t, m1)
	queuedEverywhere(t, servers, w1)

	b := New(realPools(t, servers)...).NewMutex(name, review7FallbackOpts()...)
	bDone := startLock(t, b)
	w3 := queuedWaiter(t, b)
	queuedEverywhere(t, servers, w3)

	armed.Store(true)
	cancel1()
	if err := <-w1done; !errors.Is(err, context.Canceled) {
		t.Fatalf("W1 LockContext() = %v, want context.Canceled", err)
	}
	armed.Store(false)
	t.Logf("W1 ended; its withdrawal failed: its entries stay on %d of %d servers", countQueued(t, servers, w1.member), len(servers))
	if unlockThenLocked(t, holder, bDone) {
		b.Unlock()
		return
	}
	free, owners := freeOn(servers, name)
	t.Fatalf("W3 (process B) did not get the lock within 5s of the release, with the key free on %d of %d servers: the turn went to W1, which had ended, in process A, which still listens, and W3's retry delay (1s) did not cover it", free, owners)
}

// TestReview7ReleaseWithoutExists: a release by a user who may not run
// EXISTS (the ACL list of docs/ECOSYSTEM.md before 5518003) still wakes
// the first live waiter: wake's EXISTS fails (pcall), and the script reads
// the queue the long way, past the entries of a crashed process. Promise
// 2 holds (it passed in every run).
func TestReview7ReleaseWithoutExists(t *testing.T) {
	servers := redistest.StartN(t, 3)
	for _, srv := range servers {
		srv.MustDo(t, "ACL", "SETUSER", "noexists", "reset", "on", ">pw",
			"resetkeys", "~*", "resetchannels", "&redsync:released:*", "&redsync:wake:*", "-@all",
			"+evalsha", "+eval", "+get", "+set", "+pexpire", "+del",
			"+publish", "+subscribe", "+unsubscribe", "+ping",
			"+time", "+pttl", "+zadd", "+zrem", "+zrange", "+zrangebyscore")
	}
	userPools := make([]redis.Pool, len(servers))
	for i, s := range servers {
		client := goredislib.NewClient(&goredislib.Options{Addr: s.Addr(), Username: "noexists", Password: "pw", MaxRetries: -1})
		t.Cleanup(func() { client.Close() })
		userPools[i] = goredis.NewPool(client)
	}
	holder := New(userPools...).NewMutex("r7-noexists")
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	m := New(realPools(t, servers)...).NewMutex("r7-noexists", review7Opts()...)
	done := startLock(t, m)
	w := queuedWaiter(t, m)
	queuedEverywhere(t, servers, w)
	queueCrashedAhead(t, servers, w.member, 2, time.Minute)
	if !unlockThenLocked(t, holder, done) {
		t.Fatalf("the release of a user without EXISTS did not wake the live waiter within 5s (retry delay 1h)")
	}
	m.Unlock()
}

// TestReview7MultiKeyUnlockWakesPastCrashed: the Unlock of a multi-key
// lock (multi_release.lua) wakes, for each name, the first live waiter of
// its queue: the entries of a crashed process ahead of it, in one name's
// queue, are taken out in the same call, and the waiter of the other name
// is woken too. Promises 2 and 3 hold (it passed in every run).
func TestReview7MultiKeyUnlockWakesPastCrashed(t *testing.T) {
	servers := redistest.StartN(t, 3)
	names := []string{"{r7m}:a", "{r7m}:b"}
	set := New(realPools(t, servers)...).NewMultiMutex(names)
	if err := set.Lock(); err != nil {
		t.Fatal(err)
	}
	var dones []chan error
	var ms []*Mutex
	for i, name := range names {
		m := New(realPools(t, servers)...).NewMutex(name, review7Opts()...)
		done := startLock(t, m)
		w := queuedWaiter(t, m)
		queuedEverywhere(t, servers, w)
		if i == 0 {
			queueCrashedAhead(t, servers, w.member, 3, time.Minute)
		}
		ms, dones = append(ms, m), append(dones, done)
	}
	if ok, err := set.Unlock(); !ok || err != nil {
		t.Fatalf("multi-key Unlock() = %v, %v", ok, err)
	}
	for i, done := range dones {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("waiter of %q: Lock() = %v", names[i], err)
			}
			ms[i].Unlock()
		case <-time.After(5 * time.Second):
			t.Fatalf("the multi-key release did not wake the waiter of %q within 5s (retry delay 1h)", names[i])
		}
	}
	settle(t, servers)
	// Nothing is left but the crashed process's entries the release did
	// not come to (they end with their life).
	for i, srv := range servers {
		keys, _ := srv.Keys("*")
		for _, key := range keys {
			if key != queueKey(names[0]) {
				t.Errorf("server %d keeps %q", i, key)
				continue
			}
			for _, member := range queueOnNode(t, srv, names[0]) {
				if !strings.HasPrefix(member, "deadbeefdeadbeef:") {
					t.Errorf("server %d keeps %q in the queue of %q", i, member, names[0])
				}
			}
		}
	}
}

// TestReview7PatternSubscriberHidesCrashedProcess: a documented limit
// (LIFETIME.md, "Waiters that crash"), which the waiter's retry delay
// covers. Found as a break of promise 3 ("a waiter that crashes costs the
// others nothing") and 2, in an
// interleaving the standbys covered before e4456b9 (the test passes at
// e4456b9^).
//
// wake (queue_lib.lua) takes a PUBLISH that reaches nobody for the sign
// that the waiter's process ended. But PUBLISH counts every receiver of
// the message, pattern subscribers included: a client subscribed to
// PSUBSCRIBE * or redsync:* (an operator's redis-cli or RedisInsight
// watching pub/sub, which subscribes to * by default; a sidecar that
// records the library's events) receives every turn. Then the turn of a
// crashed process's waiter at the head reaches 1, counts as told, and is
// popped; nobody else is told. The live waiter of another process behind
// it waits for its retry delay (1 h) or its renewal (30 s) while the key
// is free. Here one such client on each server, and one crashed waiter at
// the head (TestReviewTwoCrashedWaitersAtHead's setting, which passes
// without the pattern subscriber).
func TestReview7PatternSubscriberHidesCrashedProcess(t *testing.T) {
	// one: a subscriber on one server of three (the other two tell the
	// live waiter, a quorum): passes. every: fails.
	for _, mode := range []string{"one", "every"} {
		t.Run(mode, func(t *testing.T) {
			servers := redistest.StartN(t, 3)
			watched := servers
			if mode == "one" {
				watched = servers[:1]
			}
			for _, s := range watched {
				client := goredislib.NewClient(&goredislib.Options{Addr: s.Addr()})
				ps := client.PSubscribe(context.Background(), "*")
				if _, err := ps.Receive(context.Background()); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					ps.Close()
					client.Close()
				})
			}
			holder := New(realPools(t, servers)...).NewMutex("r7-psub")
			if err := holder.Lock(); err != nil {
				t.Fatal(err)
			}
			m := New(realPools(t, servers)...).NewMutex("r7-psub", review7FallbackOpts()...)
			done := startLock(t, m)
			w := queuedWaiter(t, m)
			queuedEverywhere(t, servers, w)
			queueCrashedAhead(t, servers, w.member, 1, time.Minute)
			if unlockThenLocked(t, holder, done) {
				m.Unlock()
				return
			}
			free, owners := freeOn(servers, "r7-psub")
			t.Fatalf("with a pattern subscriber on %d of %d servers, a crashed process's waiter at the head kept the live waiter from the free lock (free on %d of %d servers) for 5s, past its retry delay (1s)", len(watched), len(servers), free, owners)
		})
	}
}
