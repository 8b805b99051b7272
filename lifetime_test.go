package redsync_test

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	redigolib "github.com/gomodule/redigo/redis"
	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/goredis"
	"github.com/go-redlock/redsync/redis/redigo"
)

// lifetimeDriver makes a Pool for one node with one driver.
type lifetimeDriver struct {
	name    string
	newPool func(t *testing.T, addr string) redis.Pool
}

var lifetimeDrivers = []lifetimeDriver{
	{"goredis", func(t *testing.T, addr string) redis.Pool {
		client := goredislib.NewClient(&goredislib.Options{Addr: addr, MaxRetries: -1})
		t.Cleanup(func() { client.Close() })
		return goredis.NewPool(client)
	}},
	{"redigo", func(t *testing.T, addr string) redis.Pool {
		p := &redigolib.Pool{
			MaxIdle: 8,
			Dial:    func() (redigolib.Conn, error) { return redigolib.Dial("tcp", addr) },
		}
		t.Cleanup(func() { p.Close() })
		return redigo.NewPool(p)
	}},
}

// lifetimeNodes starts n servers and returns them with one pool per node.
func lifetimeNodes(t *testing.T, d lifetimeDriver, n int) ([]*redistest.Server, []redis.Pool) {
	t.Helper()
	servers := redistest.StartN(t, n)
	pools := make([]redis.Pool, n)
	for i, s := range servers {
		pools[i] = d.newPool(t, s.Addr())
	}
	return servers, pools
}

// waitDone waits up to limit for ctx to end and returns how long it took.
func waitDone(t *testing.T, ctx context.Context, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	select {
	case <-ctx.Done():
		return time.Since(start)
	case <-time.After(limit):
		t.Fatalf("context still not done after %v", limit)
		return 0
	}
}

func TestAutoExtendHoldsTenTimesExpiry(t *testing.T) {
	for _, d := range lifetimeDrivers {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			_, pools := lifetimeNodes(t, d, 3)
			rs := redsync.New(pools...)
			// An expiry of 1s with the default interval (a third of it) and
			// a per-node timeout of 100ms: a loaded test machine (with the
			// race detector) can delay a reply by tens of milliseconds, and
			// the test is about extension, not about tight margins.
			const expiry = time.Second
			m := rs.NewMutex("auto", redsync.WithExpiry(expiry), redsync.WithAutoExtend(0), redsync.WithTimeoutFactor(0.1))
			if err := m.Lock(); err != nil {
				t.Fatalf("Lock() = %v, want nil", err)
			}
			ctx := m.Context()
			firstDeadline, _ := ctx.Deadline()
			other := rs.NewMutex("auto", redsync.WithExpiry(expiry), redsync.WithTimeoutFactor(0.1))
			end := time.Now().Add(10 * expiry)
			for time.Now().Before(end) {
				if err := other.TryLock(); err == nil {
					t.Fatalf("TryLock() by a competitor succeeded %v after Lock, while the lock is auto-extended", time.Until(end)-10*expiry)
				}
				if ctx.Err() != nil {
					t.Fatalf("Context() ended while auto-extended: %v", context.Cause(ctx))
				}
				time.Sleep(100 * time.Millisecond)
			}
			if d, _ := ctx.Deadline(); !d.After(firstDeadline.Add(8 * expiry)) {
				t.Errorf("Deadline() = %v, want it moved well past the first %v", d, firstDeadline)
			}
			if ok, err := m.Unlock(); !ok || err != nil {
				t.Fatalf("Unlock() = %v, %v, want true, nil", ok, err)
			}
			waitDone(t, ctx, time.Second)
			if err := context.Cause(ctx); !errors.Is(err, context.Canceled) || errors.Is(err, redsync.ErrLockLost) {
				t.Errorf("Cause after Unlock = %v, want context.Canceled, not ErrLockLost", err)
			}
			if err := other.TryLock(); err != nil {
				t.Errorf("TryLock() after Unlock = %v, want nil", err)
			}
		})
	}
}

// TestLostLockContext checks that the lock's context ends within about one
// extension interval when the lock is lost in each of the ways a holder
// cannot prevent.
func TestLostLockContext(t *testing.T) {
	// The validity (about 2s) is far longer than the limit, so only the
	// failed extension can end the context in time.
	const (
		expiry   = 2 * time.Second
		interval = 100 * time.Millisecond
		// One interval, plus the per-node timeout of the failing extension
		// and scheduling slack on a busy machine.
		limit = interval + 100*time.Millisecond + 400*time.Millisecond
	)
	faults := []struct {
		name   string
		inject func(t *testing.T, servers []*redistest.Server, key string)
	}{
		{"key deleted on a majority", func(t *testing.T, servers []*redistest.Server, key string) {
			for _, s := range servers[:2] {
				s.MustDo(t, "DEL", key)
			}
		}},
		{"majority killed", func(t *testing.T, servers []*redistest.Server, key string) {
			for _, s := range servers[:2] {
				if err := s.Kill(); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"extension refused", func(t *testing.T, servers []*redistest.Server, key string) {
			for _, s := range servers[:2] {
				s.MustDo(t, "SET", key, "someone else")
			}
		}},
	}
	for _, d := range lifetimeDrivers {
		for _, f := range faults {
			t.Run(d.name+"/"+f.name, func(t *testing.T) {
				servers, pools := lifetimeNodes(t, d, 3)
				m := redsync.New(pools...).NewMutex("lost", redsync.WithExpiry(expiry), redsync.WithAutoExtend(interval), redsync.WithTimeoutFactor(0.05))
				if err := m.Lock(); err != nil {
					t.Fatalf("Lock() = %v, want nil", err)
				}
				ctx := m.Context()
				time.Sleep(2 * interval) // a few extensions succeed first
				if ctx.Err() != nil {
					t.Fatalf("Context() ended before the fault: %v", context.Cause(ctx))
				}
				f.inject(t, servers, "lost")
				took := waitDone(t, ctx, 2*time.Second)
				t.Logf("context ended %v after the fault", took)
				if took > limit {
					t.Errorf("Context() ended %v after the fault, want within %v", took, limit)
				}
				if err := context.Cause(ctx); !errors.Is(err, redsync.ErrLockLost) || !errors.Is(err, redsync.ErrExtendFailed) {
					t.Errorf("Cause = %v, want ErrLockLost and ErrExtendFailed", err)
				}
				// Asking again does not bring the lock back.
				if again := m.Context(); again.Err() == nil || !errors.Is(context.Cause(again), redsync.ErrLockLost) {
					t.Errorf("Context() after the loss: Err %v, cause %v; want ended with ErrLockLost", again.Err(), context.Cause(again))
				}
				m.Unlock()
			})
		}
	}
}

func TestContextEndsWithValidity(t *testing.T) {
	_, pools := lifetimeNodes(t, lifetimeDrivers[0], 3)
	const expiry = 200 * time.Millisecond
	m := redsync.New(pools...).NewMutex("validity", redsync.WithExpiry(expiry))
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil", err)
	}
	ctx := m.Context()
	deadline, ok := ctx.Deadline()
	if !ok || !deadline.Equal(m.Until()) {
		t.Errorf("Deadline() = %v, %v, want Until() = %v", deadline, ok, m.Until())
	}
	waitDone(t, ctx, time.Second)
	if late := time.Since(deadline); late < 0 || late > 100*time.Millisecond {
		t.Errorf("Context() ended %v after Until, want within 100ms after", late)
	}
	if err := context.Cause(ctx); !errors.Is(err, redsync.ErrLockLost) {
		t.Errorf("Cause = %v, want ErrLockLost", err)
	}
}

func TestContextFollowsManualExtend(t *testing.T) {
	_, pools := lifetimeNodes(t, lifetimeDrivers[0], 3)
	const expiry = time.Second
	m := redsync.New(pools...).NewMutex("manual", redsync.WithExpiry(expiry))
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil", err)
	}
	defer m.Unlock()
	ctx := m.Context()
	first, _ := ctx.Deadline()
	for range 3 {
		time.Sleep(expiry / 4)
		if ok, err := m.Extend(); !ok || err != nil {
			t.Fatalf("Extend() = %v, %v, want true, nil", ok, err)
		}
	}
	if ctx.Err() != nil {
		t.Fatalf("Context() ended although extended: %v", context.Cause(ctx))
	}
	if d, _ := ctx.Deadline(); !d.After(first.Add(expiry / 2)) {
		t.Errorf("Deadline() = %v, want it moved past %v", d, first.Add(expiry/2))
	}
}

func TestMaxHold(t *testing.T) {
	_, pools := lifetimeNodes(t, lifetimeDrivers[0], 3)
	rs := redsync.New(pools...)
	start := time.Now()
	err := rs.Do(context.Background(), "maxhold", func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}, redsync.WithExpiry(1500*time.Millisecond), redsync.WithTimeoutFactor(0.2), redsync.WithMaxHold(time.Second))
	took := time.Since(start)
	if !errors.Is(err, redsync.ErrLockLost) || !errors.Is(err, context.Canceled) {
		t.Errorf("Do() = %v, want ErrLockLost and the function's context.Canceled", err)
	}
	// Extensions every 500 ms, each node bounded by 300 ms, keep the lock
	// past its expiry until the hold bound of 1s ends it.
	if took < 950*time.Millisecond || took > 2*time.Second {
		t.Errorf("Do() took %v, want about 1s", took)
	}
	if err := rs.NewMutex("maxhold").TryLock(); err != nil {
		t.Errorf("TryLock() after Do = %v, want nil (released)", err)
	}
}

// TestDoCallerEndsLockExpires ends Do's ctx while the function ignores its
// own context and goes on: the lock is extended no more, and another
// client takes it once its validity is over, before the function returns.
func TestDoCallerEndsLockExpires(t *testing.T) {
	_, pools := lifetimeNodes(t, lifetimeDrivers[0], 3)
	rs := redsync.New(pools...)
	const expiry = time.Second
	opts := []redsync.Option{redsync.WithExpiry(expiry), redsync.WithTimeoutFactor(0.1)}
	other := rs.NewMutex("do-ignores", append(opts, redsync.WithTries(1))...)
	stillHeld := errors.New("the lock is still held")
	shutdown := errors.New("shutting down")
	ctx, cancel := context.WithCancelCause(context.Background())
	err := rs.Do(ctx, "do-ignores", func(context.Context) error {
		cancel(shutdown)
		// The validity ends within one expiry; ten leave room for a
		// loaded machine.
		for end := time.Now().Add(10 * expiry); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if other.TryLock() == nil {
				return nil
			}
		}
		return stillHeld
	}, opts...)
	if !errors.Is(err, redsync.ErrLockLost) || !errors.Is(err, shutdown) || errors.Is(err, stillHeld) {
		t.Fatalf("Do() = %v, want ErrLockLost and the caller's cause, the lock taken by another", err)
	}
	// Do's release left the other holder's lock alone.
	if ok, err := other.Unlock(); !ok || err != nil {
		t.Errorf("other Unlock() = %v, %v; want true, nil", ok, err)
	}
}

func TestDo(t *testing.T) {
	for _, d := range lifetimeDrivers {
		t.Run(d.name, func(t *testing.T) {
			_, pools := lifetimeNodes(t, d, 3)
			rs := redsync.New(pools...)
			boom := errors.New("boom")

			t.Run("holds, extends and releases", func(t *testing.T) {
				const expiry = 500 * time.Millisecond
				err := rs.Do(context.Background(), "do", func(ctx context.Context) error {
					m := redsync.MutexFromContext(ctx)
					if m == nil || m.Name() != "do" || m.Value() == "" {
						return fmt.Errorf("MutexFromContext() = %v, want the held mutex", m)
					}
					if d, ok := ctx.Deadline(); !ok || !d.Equal(m.Until()) {
						return fmt.Errorf("Deadline() = %v, %v, want Until() %v", d, ok, m.Until())
					}
					time.Sleep(3 * expiry)
					if ctx.Err() != nil {
						return fmt.Errorf("ctx ended while held: %w", context.Cause(ctx))
					}
					if err := rs.NewMutex("do").TryLock(); err == nil {
						return errors.New("a competitor got the lock during Do")
					}
					return boom
				}, redsync.WithExpiry(expiry), redsync.WithTimeoutFactor(0.3))
				if !errors.Is(err, boom) || errors.Is(err, redsync.ErrLockLost) {
					t.Fatalf("Do() = %v, want exactly the function's error", err)
				}
				if err := rs.NewMutex("do").TryLock(); err != nil {
					t.Errorf("TryLock() after Do = %v, want nil", err)
				}
			})

			t.Run("caller cancels", func(t *testing.T) {
				cause := errors.New("shutting down")
				ctx, cancel := context.WithCancelCause(context.Background())
				err := rs.Do(ctx, "do-cancel", func(fctx context.Context) error {
					cancel(cause)
					<-fctx.Done()
					c := context.Cause(fctx)
					if !errors.Is(c, redsync.ErrLockLost) || !errors.Is(c, cause) {
						return fmt.Errorf("Cause = %v, want ErrLockLost and the caller's cause", c)
					}
					return nil
				})
				if !errors.Is(err, redsync.ErrLockLost) || !errors.Is(err, cause) {
					t.Fatalf("Do() = %v, want ErrLockLost and the caller's cause", err)
				}
				if err := rs.NewMutex("do-cancel").TryLock(); err != nil {
					t.Errorf("TryLock() after Do = %v, want nil (released although ctx ended)", err)
				}
			})

			t.Run("panic releases", func(t *testing.T) {
				func() {
					defer func() {
						if recover() == nil {
							t.Error("Do() did not pass the panic on")
						}
					}()
					rs.Do(context.Background(), "do-panic", func(context.Context) error { panic("boom") })
				}()
				if err := rs.NewMutex("do-panic").TryLock(); err != nil {
					t.Errorf("TryLock() after a panicking Do = %v, want nil", err)
				}
			})

			t.Run("lock fails", func(t *testing.T) {
				holder := rs.NewMutex("do-taken")
				if err := holder.Lock(); err != nil {
					t.Fatal(err)
				}
				defer holder.Unlock()
				called := false
				err := rs.Do(context.Background(), "do-taken", func(context.Context) error {
					called = true
					return nil
				}, redsync.WithTries(2), redsync.WithRetryDelay(time.Millisecond))
				if !errors.Is(err, redsync.ErrFailed) || called {
					t.Errorf("Do() = %v (fn called %v), want ErrFailed without calling fn", err, called)
				}
			})
		})
	}
}

// subscriberCount returns the pub/sub connections of srv (CLIENT LIST
// TYPE pubsub) and the subscribers of channel (PUBSUB NUMSUB).
func subscriberCount(t *testing.T, srv *redistest.Server, channel string) (conns int, subs int64) {
	t.Helper()
	rep := srv.MustDo(t, "CLIENT", "LIST", "TYPE", "pubsub")
	for _, line := range strings.Split(strings.TrimSpace(rep.Text()), "\n") {
		if strings.TrimSpace(line) != "" {
			conns++
		}
	}
	numsub := srv.MustDo(t, "PUBSUB", "NUMSUB", channel)
	if len(numsub.Elems) == 2 {
		subs, _ = numsub.Elems[1].Integer()
	}
	return conns, subs
}

// waitNoSubscribers waits until no node has a pub/sub connection left.
func waitNoSubscribers(t *testing.T, servers []*redistest.Server, channel string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		busy := ""
		for i, s := range servers {
			if !s.Running() {
				continue
			}
			if conns, subs := subscriberCount(t, s, channel); conns != 0 || subs != 0 {
				busy += fmt.Sprintf(" node %d: %d pub/sub connections, NUMSUB %d;", i, conns, subs)
			}
		}
		if busy == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("listening connections left after the waiters finished:%s", busy)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHandOff hands the lock to three waiters, each with a Redsync of its
// own (as if in processes of their own): the release announcement is what
// wakes each of them.
func TestHandOff(t *testing.T) {
	for _, d := range lifetimeDrivers {
		t.Run(d.name, func(t *testing.T) {
			servers, pools := lifetimeNodes(t, d, 3)
			rs := redsync.New(pools...)
			holder := rs.NewMutex("handoff")
			if err := holder.Lock(); err != nil {
				t.Fatal(err)
			}
			// The waiters' polling is far too slow to explain a quick
			// hand-off: only the notification can.
			const waiters = 3
			acquired := make(chan time.Time, waiters)
			errs := make(chan error, waiters)
			var wg sync.WaitGroup
			for range waiters {
				wg.Add(1)
				go func() {
					defer wg.Done()
					own := redsync.New(pools...)
					m := own.NewMutex("handoff", redsync.WithRetryDelay(10*time.Second), redsync.WithTries(5))
					if err := m.Lock(); err != nil {
						errs <- err
						return
					}
					acquired <- time.Now()
					time.Sleep(5 * time.Millisecond)
					if _, err := m.Unlock(); err != nil {
						errs <- err
					}
				}()
			}
			// Let every waiter fail its first try and subscribe.
			time.Sleep(300 * time.Millisecond)
			released := time.Now()
			if ok, err := holder.Unlock(); !ok || err != nil {
				t.Fatalf("Unlock() = %v, %v", ok, err)
			}
			wg.Wait()
			close(acquired)
			close(errs)
			for err := range errs {
				t.Errorf("waiter: %v", err)
			}
			var last time.Time
			n := 0
			for at := range acquired {
				n++
				if at.After(last) {
					last = at
				}
			}
			if n != waiters {
				t.Fatalf("%d of %d waiters acquired", n, waiters)
			}
			// Three hand-offs, each one hold of 5ms plus a few round trips.
			if took := last.Sub(released); took > 500*time.Millisecond {
				t.Errorf("%d hand-offs took %v, want well under the 10s retry delay", waiters, took)
			}
			waitNoSubscribers(t, servers, "redsync:released:handoff")
		})
	}
}

// announcements subscribes a client of the test to the release
// announcements of key on server, and returns the client and the messages.
func announcements(t *testing.T, server *redistest.Server, key string) (*goredislib.Client, <-chan *goredislib.Message) {
	t.Helper()
	client := goredislib.NewClient(&goredislib.Options{Addr: server.Addr()})
	t.Cleanup(func() { client.Close() })
	sub := client.Subscribe(context.Background(), "redsync:released:"+key)
	t.Cleanup(func() { sub.Close() })
	if _, err := sub.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	return client, sub.Channel()
}

// handOffTo starts waiter's Lock (its retry delay must be 10s), lets its
// first try fail, unlocks holder and waits for waiter's Lock to succeed.
func handOffTo(t *testing.T, holder, waiter *redsync.Mutex) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- waiter.Lock() }()
	time.Sleep(300 * time.Millisecond) // the waiter's first try fails
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("holder Unlock() = %v, %v", ok, err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("waiter Lock() = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no hand-off within 5s (the retry delay is 10s)")
	}
}

// TestLocalHandOff hands the lock from one Mutex to another of the same
// Redsync: the lock goes straight to the waiter, with the waiter's expiry,
// and is not released (nor announced) in between.
func TestLocalHandOff(t *testing.T) {
	for _, d := range lifetimeDrivers {
		t.Run(d.name, func(t *testing.T) {
			servers, pools := lifetimeNodes(t, d, 3)
			rs := redsync.New(pools...)
			holder := rs.NewMutex("local")
			if err := holder.Lock(); err != nil {
				t.Fatal(err)
			}
			// A client of our own listens for release announcements on
			// the first node.
			_, messages := announcements(t, servers[0], "local")

			waiter := rs.NewMutex("local", redsync.WithExpiry(3*time.Second), redsync.WithRetryDelay(10*time.Second))
			handOffTo(t, holder, waiter)
			for i, s := range servers {
				// The hand-off round returns once a quorum took the
				// waiter's value; the last node's reply may still be on
				// its way on a busy machine.
				c := goredislib.NewClient(&goredislib.Options{Addr: s.Addr()})
				var v string
				var err error
				for deadline := time.Now().Add(callSlack); ; time.Sleep(5 * time.Millisecond) {
					v, err = c.Get(context.Background(), "local").Result()
					if v == waiter.Value() || time.Now().After(deadline) {
						break
					}
				}
				ttl := c.PTTL(context.Background(), "local").Val()
				c.Close()
				if err != nil || v != waiter.Value() {
					t.Errorf("node %d holds %q (%v), want the waiter's value %q", i, v, err, waiter.Value())
				}
				if ttl <= 2*time.Second || ttl > 3*time.Second {
					t.Errorf("node %d: PTTL %v, want the waiter's expiry of 3s less a little", i, ttl)
				}
			}
			select {
			case msg := <-messages:
				t.Errorf("release announced during a local hand-off: %v", msg)
			case <-time.After(100 * time.Millisecond):
			}
			// The waiter's own Unlock, with nobody waiting, is a real
			// release, and the listener hears it.
			if ok, err := waiter.Unlock(); !ok || err != nil {
				t.Fatalf("waiter Unlock() = %v, %v", ok, err)
			}
			select {
			case <-messages:
			case <-time.After(5 * time.Second):
				t.Error("the release after the hand-off was not announced")
			}
			waitNoSubscribers(t, servers[1:], "redsync:released:local")
		})
	}
}

// TestLocalHandOffServers hands a lock over between Mutexes of one Redsync:
// the nodes hold the waiter's fresh value, with the waiter's expiry, and
// nothing is announced; the holder's Mutex and a Mutex given the released
// value (WithValue) leave the new holder's lock alone.
func TestLocalHandOffServers(t *testing.T) {
	for _, d := range lifetimeDrivers {
		t.Run(d.name, func(t *testing.T) {
			servers, pools := lifetimeNodes(t, d, 3)
			rs := redsync.New(pools...)
			holder := rs.NewMutex("passon")
			if err := holder.Lock(); err != nil {
				t.Fatal(err)
			}
			_, messages := announcements(t, servers[0], "passon")
			old := holder.Value()

			waiter := rs.NewMutex("passon", redsync.WithRetryDelay(10*time.Second), redsync.WithExpiry(20*time.Second))
			handOffTo(t, holder, waiter)
			value := waiter.Value()
			if value == old {
				t.Fatalf("waiter Value() = the holder's %q, want a fresh value", old)
			}
			// The old holder's calls, and a stray Mutex with the old
			// value, leave the new holder's lock alone.
			if ok, err := holder.Unlock(); ok || !errors.Is(err, redsync.ErrLockAlreadyExpired) {
				t.Errorf("holder's second Unlock() = %v, %v; want false, ErrLockAlreadyExpired", ok, err)
			}
			if ok, _ := rs.NewMutex("passon", redsync.WithValue(old)).Unlock(); ok {
				t.Error("Unlock() with the released value succeeded")
			}
			for i, s := range servers {
				c := goredislib.NewClient(&goredislib.Options{Addr: s.Addr()})
				v, err := c.Get(context.Background(), "passon").Result()
				ttl := c.PTTL(context.Background(), "passon").Val()
				c.Close()
				if err != nil || v != value {
					t.Errorf("node %d holds %q (%v), want the waiter's value %q", i, v, err, value)
				}
				if ttl <= 8*time.Second {
					t.Errorf("node %d: PTTL %v, want the waiter's 20s expiry less the test's time", i, ttl)
				}
			}
			select {
			case msg := <-messages:
				t.Errorf("release announced during a local hand-off: %v", msg)
			case <-time.After(100 * time.Millisecond):
			}
			if ok, err := waiter.Unlock(); !ok || err != nil {
				t.Fatalf("waiter Unlock() = %v, %v", ok, err)
			}
			select {
			case <-messages:
			case <-time.After(5 * time.Second):
				t.Error("the release after the hand-off was not announced")
			}
			for i, s := range servers {
				c := goredislib.NewClient(&goredislib.Options{Addr: s.Addr()})
				n := c.Exists(context.Background(), "passon").Val()
				c.Close()
				if n != 0 {
					t.Errorf("node %d still holds the key after the waiter's Unlock", i)
				}
			}
			waitNoSubscribers(t, servers[1:], "redsync:released:passon")
		})
	}
}

// TestHandOffReleaseDuringSetUp releases the lock right after the waiter's
// first try failed, while its subscriptions are being set up: the waiter
// must not sleep its whole retry delay.
func TestHandOffReleaseDuringSetUp(t *testing.T) {
	servers, pools := lifetimeNodes(t, lifetimeDrivers[0], 3)
	rs := redsync.New(pools...)
	for round := range 5 {
		holder := rs.NewMutex("setup")
		if err := holder.Lock(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			m := rs.NewMutex("setup", redsync.WithRetryDelay(5*time.Second), redsync.WithTries(3))
			err := m.Lock()
			if err == nil {
				_, err = m.Unlock()
			}
			done <- err
		}()
		time.Sleep(time.Duration(round) * time.Millisecond)
		holder.Unlock()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("round %d: waiter: %v", round, err)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("round %d: the waiter missed the release made during its set-up", round)
		}
	}
	waitNoSubscribers(t, servers, "redsync:released:setup")
}

func TestHandOffOptOut(t *testing.T) {
	servers, pools := lifetimeNodes(t, lifetimeDrivers[0], 3)
	rs := redsync.New(pools...)
	holder := rs.NewMutex("optout", redsync.WithReleaseNotification(false))
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	done := make(chan time.Duration, 1)
	go func() {
		m := rs.NewMutex("optout", redsync.WithReleaseNotification(false), redsync.WithRetryDelay(400*time.Millisecond))
		start := time.Now()
		if err := m.Lock(); err != nil {
			done <- -1
			return
		}
		done <- time.Since(start)
		m.Unlock()
	}()
	time.Sleep(50 * time.Millisecond)
	for i, s := range servers {
		if conns, _ := subscriberCount(t, s, "redsync:released:optout"); conns != 0 {
			t.Errorf("node %d: %d pub/sub connections with notification off, want 0", i, conns)
		}
	}
	holder.Unlock()
	if took := <-done; took < 400*time.Millisecond {
		t.Errorf("waiter took %v, want the whole 400ms retry delay (no notification)", took)
	}
}

// TestHandOffNodeDown keeps handing off with a minority of nodes dead: the
// notification needs only a quorum of announcements.
func TestHandOffNodeDown(t *testing.T) {
	servers, pools := lifetimeNodes(t, lifetimeDrivers[0], 3)
	if err := servers[2].Kill(); err != nil {
		t.Fatal(err)
	}
	rs := redsync.New(pools...)
	holder := rs.NewMutex("down")
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		m := rs.NewMutex("down", redsync.WithRetryDelay(5*time.Second), redsync.WithTries(3))
		err := m.Lock()
		if err == nil {
			_, err = m.Unlock()
		}
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)
	holder.Unlock()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("waiter: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no hand-off with one node of three dead")
	}
	waitNoSubscribers(t, servers, "redsync:released:down")
}

// TestReleaseAnnouncement: Unlock of a lock that nobody waits for in the
// nodes' queue announces on each node the SHA1 of the released value, and
// nothing else (the second message with the number of listeners, which
// spread the tries of the processes it woke, went with the queue of
// waiters: a release wakes one process, by its turn).
func TestReleaseAnnouncement(t *testing.T) {
	for _, d := range lifetimeDrivers {
		t.Run(d.name, func(t *testing.T) {
			servers, pools := lifetimeNodes(t, d, 3)
			m := redsync.New(pools...).NewMutex("announced")
			if err := m.Lock(); err != nil {
				t.Fatal(err)
			}
			// Two listeners on node 0.
			var subs []*goredislib.PubSub
			for range 2 {
				client := goredislib.NewClient(&goredislib.Options{Addr: servers[0].Addr()})
				defer client.Close()
				sub := client.Subscribe(context.Background(), "redsync:released:announced")
				defer sub.Close()
				if _, err := sub.Receive(context.Background()); err != nil {
					t.Fatal(err)
				}
				subs = append(subs, sub)
			}
			sum := sha1.Sum([]byte(m.Value()))
			if ok, err := m.Unlock(); !ok || err != nil {
				t.Fatalf("Unlock() = %v, %v", ok, err)
			}
			id := hex.EncodeToString(sum[:])
			for i, sub := range subs {
				select {
				case msg := <-sub.Channel():
					if msg.Payload != id {
						t.Errorf("listener %d got %q, want %q", i, msg.Payload, id)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("listener %d: no announcement %q", i, id)
				}
			}
			for i, sub := range subs {
				select {
				case msg := <-sub.Channel():
					t.Errorf("listener %d got a second message %q, want none", i, msg.Payload)
				case <-time.After(50 * time.Millisecond):
				}
			}
		})
	}
}
