package redigo_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	redigolib "github.com/gomodule/redigo/redis"
	"go.uber.org/goleak"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/internal/adaptertest"
	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/redigo"
)

// echoScript returns its first argument.
var echoScript = redis.NewScript(0, "return ARGV[1]", "")

// counters counts what the redigo pool of a test dialled and wrote, and
// can hold its writes.
type counters struct {
	dials  atomic.Int64
	writes atomic.Int64 // Write calls on every connection dialled
	// gate, when set, holds every Write until it is closed; each Write
	// held sends on held first.
	gate atomic.Pointer[chan struct{}]
	held chan struct{}
}

// countingConn counts its writes.
type countingConn struct {
	net.Conn
	c *counters
}

func (c countingConn) Write(b []byte) (int, error) {
	c.c.writes.Add(1)
	if g := c.c.gate.Load(); g != nil {
		c.c.held <- struct{}{}
		<-*g
	}
	return c.Conn.Write(b)
}

// newBatched makes a BatchedPool over a redigo pool dialling addr, closed
// (the BatchedPool first) by t.Cleanup. With shareAlways every call goes
// through the shared connection, which newBatched waits for.
func newBatched(t *testing.T, addr string, shareAlways bool) (*redigo.BatchedPool, *counters) {
	t.Helper()
	return newBatchedWith(t, addr, shareAlways, nil)
}

// newBatchedWith is newBatched with the redigo pool's options set by set.
func newBatchedWith(t *testing.T, addr string, shareAlways bool, set func(*redigolib.Pool)) (*redigo.BatchedPool, *counters) {
	t.Helper()
	cnt := &counters{held: make(chan struct{}, 100)}
	p := &redigolib.Pool{
		MaxIdle:     4,
		IdleTimeout: time.Minute,
		DialContext: func(ctx context.Context) (redigolib.Conn, error) {
			cnt.dials.Add(1)
			return redigolib.DialContext(ctx, "tcp", addr,
				redigolib.DialContextFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
					var d net.Dialer
					c, err := d.DialContext(ctx, network, addr)
					if err != nil {
						return nil, err
					}
					return countingConn{Conn: c, c: cnt}, nil
				}))
		},
	}
	if set != nil {
		set(p)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("closing the redigo pool: %v", err)
		}
	})
	b := redigo.NewBatchedPool(p)
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("BatchedPool.Close() = %v, want nil", err)
		}
	})
	if shareAlways {
		redigo.ShareAlways(b)
		waitShared(t, b)
	}
	return b, cnt
}

// waitShared runs scripts on b until its shared connection is up.
func waitShared(t *testing.T, b *redigo.BatchedPool) {
	t.Helper()
	call := redis.NewScriptCall(echoScript, "warm-up")
	for end := time.Now().Add(10 * time.Second); !redigo.SharedUp(b); {
		if time.Now().After(end) {
			t.Fatal("the shared connection is not up after 10s")
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, _ = b.RunScript(ctx, &call)
		cancel()
		time.Sleep(5 * time.Millisecond)
	}
}

// newBatchedFunc adapts newBatched to adaptertest.
func newBatchedFunc(shareAlways bool) adaptertest.NewPoolFunc {
	return func(t *testing.T, addr string) redis.Pool {
		b, _ := newBatched(t, addr, shareAlways)
		return b
	}
}

// modes are the two paths of a BatchedPool: calls alone (the tests of
// adaptertest make one call at a time) and every call through the shared
// connection.
var modes = []struct {
	name        string
	shareAlways bool
}{{"Alone", false}, {"Shared", true}}

func TestBatchedConformance(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			adaptertest.Run(t, newBatchedFunc(mode.shareAlways))
		})
	}
}

func TestBatchedLock(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			adaptertest.RunLock(t, newBatchedFunc(mode.shareAlways))
		})
	}
}

// echo runs echoScript with arg through b, RunScript or SendScript and
// Receive, bounded by timeout.
func echo(b *redigo.BatchedPool, pipelined bool, arg string, timeout time.Duration) (any, error) {
	return runCall(b, pipelined, redis.NewScriptCall(echoScript, arg), timeout)
}

// runCall runs call through b, with RunScript, or with SendScript and
// Receive when pipelined (RunScript when SendScript has no connection to
// spare), bounded by timeout.
func runCall(b *redigo.BatchedPool, pipelined bool, call redis.ScriptCall, timeout time.Duration) (any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if !pipelined {
		return b.RunScript(ctx, &call)
	}
	p, ok, err := b.SendScript(ctx, &call)
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return b.RunScript(ctx, &call)
	}
	deadline, _ := ctx.Deadline()
	return p.Receive(deadline)
}

var paths = []struct {
	name      string
	pipelined bool
}{{"RunScript", false}, {"SendScript", true}}

// TestBatchedConcurrentReplies checks that many concurrent calls through
// the shared connection each get their own reply, and that they share
// writes.
func TestBatchedConcurrentReplies(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	for _, path := range paths {
		t.Run(path.name, func(t *testing.T) {
			b, cnt := newBatched(t, srv.Addr(), true)
			const (
				goroutines = 100
				calls      = 30
			)
			writes := cnt.writes.Load()
			start := make(chan struct{})
			errs := make(chan error, goroutines)
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					for i := range calls {
						arg := fmt.Sprintf("%d/%d", g, i)
						v, err := echo(b, path.pipelined, arg, 10*time.Second)
						if s, _ := v.([]byte); err != nil || string(s) != arg {
							errs <- fmt.Errorf("echo(%q) = %q, %v; want %q, nil", arg, s, err, arg)
							return
						}
					}
				}()
			}
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			commands := int64(goroutines * calls)
			if w := cnt.writes.Load() - writes; w >= commands {
				t.Errorf("%d commands took %d writes, want fewer", commands, w)
			} else {
				t.Logf("%d commands took %d writes", commands, w)
			}
		})
	}
}

// TestBatchedLateReply checks that the reply to a call that stopped
// waiting reaches no other call.
func TestBatchedLateReply(t *testing.T) {
	t.Parallel()
	for _, path := range paths {
		t.Run(path.name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			b, _ := newBatched(t, srv.Addr(), true)
			if err := srv.Pause(); err != nil {
				t.Fatalf("Pause() = %v", err)
			}
			resumed := false
			defer func() {
				if !resumed {
					srv.Resume()
				}
			}()
			start := time.Now()
			if v, err := echo(b, path.pipelined, "late", 100*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("echo(late) on a paused server = %#v, %v; want DeadlineExceeded", v, err)
			}
			if elapsed := time.Since(start); elapsed > 2*time.Second {
				t.Errorf("echo(late) with a 100ms timeout took %v", elapsed)
			}
			// The next call waits behind the late one's reply.
			next := make(chan any, 1)
			go func() {
				v, err := echo(b, path.pipelined, "next", 10*time.Second)
				if err != nil {
					v = err
				}
				next <- v
			}()
			time.Sleep(50 * time.Millisecond)
			resumed = true
			if err := srv.Resume(); err != nil {
				t.Fatalf("Resume() = %v", err)
			}
			if v := <-next; string(asBytes(v)) != "next" {
				t.Errorf("echo(next) after a late reply = %#v, want \"next\"", v)
			}
			for i := range 3 {
				arg := "after-" + strconv.Itoa(i)
				if v, err := echo(b, path.pipelined, arg, 10*time.Second); string(asBytes(v)) != arg || err != nil {
					t.Errorf("echo(%q) = %#v, %v; want %q, nil", arg, v, err, arg)
				}
			}
		})
	}
}

func asBytes(v any) []byte {
	b, _ := v.([]byte)
	return b
}

// TestBatchedNoScript checks the EVAL fallback of concurrent calls
// through the shared connection after the server forgot its scripts.
func TestBatchedNoScript(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	for _, path := range paths {
		t.Run(path.name, func(t *testing.T) {
			b, _ := newBatched(t, srv.Addr(), true)
			for round := range 3 {
				srv.MustDo(t, "SCRIPT", "FLUSH")
				var wg sync.WaitGroup
				errs := make(chan error, 50)
				for g := range 50 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						arg := fmt.Sprintf("%d/%d", round, g)
						if v, err := echo(b, path.pipelined, arg, 10*time.Second); string(asBytes(v)) != arg || err != nil {
							errs <- fmt.Errorf("echo(%q) after SCRIPT FLUSH = %#v, %v; want %q, nil", arg, v, err, arg)
						}
					}()
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Error(err)
				}
			}
		})
	}
}

// TestBatchedConnectionDrop checks that the calls in flight when the
// shared connection breaks fail at once, and that a new one is dialled.
func TestBatchedConnectionDrop(t *testing.T) {
	t.Parallel()
	for _, path := range paths {
		t.Run(path.name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			b, cnt := newBatched(t, srv.Addr(), true)
			if err := srv.Pause(); err != nil {
				t.Fatalf("Pause() = %v", err)
			}
			const calls = 20
			const timeout = 20 * time.Second
			type result struct {
				v       any
				err     error
				elapsed time.Duration
			}
			results := make(chan result, calls)
			start := time.Now()
			for i := range calls {
				go func() {
					v, err := echo(b, path.pipelined, strconv.Itoa(i), timeout)
					results <- result{v, err, time.Since(start)}
				}()
			}
			time.Sleep(200 * time.Millisecond)
			dials := cnt.dials.Load()
			if err := srv.Kill(); err != nil {
				t.Fatalf("Kill() = %v", err)
			}
			for range calls {
				r := <-results
				if r.err == nil || r.elapsed > timeout/2 {
					t.Errorf("a call in flight when the connection broke = %#v, %v after %v; want an error, well before %v",
						r.v, r.err, r.elapsed.Round(time.Millisecond), timeout)
				}
			}
			if err := srv.Restart(); err != nil {
				t.Fatalf("Restart() = %v", err)
			}
			// The idle connections of the redigo pool are dead too: the
			// first calls may fail.
			end := time.Now().Add(10 * time.Second)
			for {
				v, err := echo(b, path.pipelined, "again", 5*time.Second)
				if string(asBytes(v)) == "again" && err == nil && redigo.SharedUp(b) {
					break
				}
				if time.Now().After(end) {
					t.Fatalf("echo(again) after a restart = %#v, %v (shared connection up: %v); want \"again\", nil and a new connection",
						v, err, redigo.SharedUp(b))
				}
				time.Sleep(10 * time.Millisecond)
			}
			if cnt.dials.Load() == dials {
				t.Error("no connection was dialled after the restart")
			}
			v, err := echo(b, path.pipelined, "shared", 5*time.Second)
			if string(asBytes(v)) != "shared" || err != nil {
				t.Errorf("echo(shared) on the new shared connection = %#v, %v; want \"shared\", nil", v, err)
			}
		})
	}
}

// TestBatchedClose checks that Close fails the calls in flight, ends the
// goroutines of the pool, and leaves a pool that works without batching.
// It does not run in parallel, so that no other test's goroutines come and
// go meanwhile.
func TestBatchedClose(t *testing.T) {
	srv := redistest.Start(t)
	ignore := goleak.IgnoreCurrent()
	b, _ := newBatched(t, srv.Addr(), true)
	if err := srv.Pause(); err != nil {
		t.Fatalf("Pause() = %v", err)
	}
	resumed := false
	defer func() {
		if !resumed {
			srv.Resume()
		}
	}()
	done := make(chan error, 1)
	go func() {
		_, err := echo(b, false, "closing", 20*time.Second)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	if err := b.Close(); err != nil {
		t.Errorf("Close() = %v, want nil", err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("a call in flight at Close = nil error, want one")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a call in flight at Close still waits 5s later")
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("Close() and its call took %v", elapsed)
	}
	resumed = true
	if err := srv.Resume(); err != nil {
		t.Fatalf("Resume() = %v", err)
	}
	if err := goleak.Find(ignore, goleak.IgnoreAnyFunction("github.com/go-redlock/redsync/internal/redistest.spawnLoop")); err != nil {
		t.Errorf("goroutines left after Close: %v", err)
	}
	if v, err := echo(b, false, "after", 5*time.Second); string(asBytes(v)) != "after" || err != nil {
		t.Errorf("echo(after) after Close = %#v, %v; want \"after\", nil", v, err)
	}
	if redigo.SharedUp(b) {
		t.Error("a shared connection is up after Close")
	}
	if err := b.Close(); err != nil {
		t.Errorf("a second Close() = %v, want nil", err)
	}
}

// TestBatchedRedsync runs concurrent Lock and Unlock calls of one Redsync
// on keys of their own over BatchedPools, as the benchmarks do, and checks
// that they all succeed and that the shared connections were used.
func TestBatchedRedsync(t *testing.T) {
	t.Parallel()
	servers := redistest.StartN(t, 3)
	for _, nodes := range []int{1, 3} {
		t.Run(fmt.Sprintf("nodes=%d", nodes), func(t *testing.T) {
			pools := make([]redis.Pool, nodes)
			batched := make([]*redigo.BatchedPool, nodes)
			for i := range nodes {
				batched[i], _ = newBatched(t, servers[i].Addr(), false)
				pools[i] = batched[i]
			}
			rs := redsync.New(pools...)
			const (
				goroutines = 64
				rounds     = 20
			)
			errs := make(chan error, goroutines)
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Add(1)
				go func() {
					defer wg.Done()
					m := rs.NewMutex(fmt.Sprintf("batched:%d:%d", nodes, g), redsync.WithExpiry(20*time.Second))
					for range rounds {
						if err := m.Lock(); err != nil {
							errs <- fmt.Errorf("Lock() = %v, want nil", err)
							return
						}
						if ok, err := m.Unlock(); !ok || err != nil {
							errs <- fmt.Errorf("Unlock() = %v, %v; want true, nil", ok, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			for i, b := range batched {
				if !redigo.SharedUp(b) {
					t.Errorf("node %d: no shared connection after %d concurrent Lock+Unlock", i, goroutines*rounds)
				}
			}
			for i, srv := range servers[:nodes] {
				if keys, err := srv.Keys("batched:*"); err != nil || len(keys) != 0 {
					t.Errorf("node %d holds keys %v (%v) after every Unlock", i, keys, err)
				}
			}
		})
	}
}

// TestBatchedAlone checks that calls made one at a time take the path of
// NewPool: no shared connection is dialled.
func TestBatchedAlone(t *testing.T) {
	t.Parallel()
	servers := redistest.StartN(t, 3)
	for _, nodes := range []int{1, 3} {
		t.Run(fmt.Sprintf("nodes=%d", nodes), func(t *testing.T) {
			pools := make([]redis.Pool, nodes)
			batched := make([]*redigo.BatchedPool, nodes)
			for i := range nodes {
				batched[i], _ = newBatched(t, servers[i].Addr(), false)
				pools[i] = batched[i]
			}
			m := redsync.New(pools...).NewMutex(fmt.Sprintf("alone:%d", nodes))
			for range 50 {
				if err := m.Lock(); err != nil {
					t.Fatalf("Lock() = %v, want nil", err)
				}
				if ok, err := m.Unlock(); !ok || err != nil {
					t.Fatalf("Unlock() = %v, %v; want true, nil", ok, err)
				}
			}
			for i, b := range batched {
				if redigo.SharedUp(b) {
					t.Errorf("node %d: a shared connection was dialled for calls made one at a time", i)
				}
			}
		})
	}
}

// TestBatchedRetire checks that the shared connection is replaced after
// the redigo pool's MaxConnLifetime, and after its IdleTimeout, without a
// call failing.
func TestBatchedRetire(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	t.Run("MaxConnLifetime", func(t *testing.T) {
		t.Parallel()
		b, cnt := newBatchedWith(t, srv.Addr(), true, func(p *redigolib.Pool) { p.MaxConnLifetime = 200 * time.Millisecond })
		dials := cnt.dials.Load()
		end := time.Now().Add(time.Second)
		errs := make(chan error, 20)
		var wg sync.WaitGroup
		for g := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; time.Now().Before(end); i++ {
					arg := fmt.Sprintf("%d/%d", g, i)
					if v, err := echo(b, g%2 == 0, arg, 10*time.Second); string(asBytes(v)) != arg || err != nil {
						errs <- fmt.Errorf("echo(%q) = %#v, %v; want %q, nil", arg, v, err, arg)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		// A dial for the first lifetime's end, then for the next ones.
		if n := cnt.dials.Load() - dials; n < 2 {
			t.Errorf("%d dials in 1s of calls with a lifetime of 200ms, want at least 2", n)
		}
	})
	t.Run("IdleTimeout", func(t *testing.T) {
		t.Parallel()
		b, cnt := newBatchedWith(t, srv.Addr(), true, func(p *redigolib.Pool) { p.IdleTimeout = 200 * time.Millisecond })
		if v, err := echo(b, false, "before", 5*time.Second); string(asBytes(v)) != "before" || err != nil {
			t.Fatalf("echo(before) = %#v, %v; want \"before\", nil", v, err)
		}
		dials := cnt.dials.Load()
		time.Sleep(400 * time.Millisecond)
		if v, err := echo(b, true, "after", 5*time.Second); string(asBytes(v)) != "after" || err != nil {
			t.Errorf("echo(after) past the idle timeout = %#v, %v; want \"after\", nil", v, err)
		}
		waitShared(t, b)
		if cnt.dials.Load() == dials {
			t.Error("no connection dialled after the shared one was idle past IdleTimeout")
		}
	})
}

// TestBatchedNotWritten checks that a command whose caller stopped
// waiting before the writer got to it is never sent.
func TestBatchedNotWritten(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	for _, path := range paths {
		t.Run(path.name, func(t *testing.T) {
			b, cnt := newBatched(t, srv.Addr(), true)
			key := "notwritten:" + path.name
			incr := redis.NewScript(1, "return redis.call('INCR', KEYS[1])", "")
			run := func(timeout time.Duration) (any, error) {
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				defer cancel()
				call := redis.NewScriptCall(incr, key)
				if !path.pipelined {
					return b.RunScript(ctx, &call)
				}
				p, ok, err := b.SendScript(ctx, &call)
				if !ok || err != nil {
					return nil, fmt.Errorf("SendScript() = %v, %v; want true, nil", ok, err)
				}
				deadline, _ := ctx.Deadline()
				return p.Receive(deadline)
			}
			// Load the script first: the held write must be the EVALSHA.
			if v, err := run(5 * time.Second); v != int64(1) || err != nil {
				t.Fatalf("INCR script = %#v, %v; want 1, nil", v, err)
			}
			gate := make(chan struct{})
			cnt.gate.Store(&gate)
			first := make(chan any, 1)
			go func() {
				v, err := run(10 * time.Second)
				if err != nil {
					v = err
				}
				first <- v
			}()
			<-cnt.held // the writer is held, writing the first command
			cnt.gate.Store(nil)
			if v, err := run(100 * time.Millisecond); err == nil {
				t.Errorf("a command queued behind a held write = %#v, nil; want an error after 100ms", v)
			}
			close(gate)
			if v := <-first; v != int64(2) {
				t.Errorf("the held command = %#v, want 2", v)
			}
			if v, err := run(5 * time.Second); v != int64(3) || err != nil {
				t.Errorf("the next command = %#v, %v; want 3 (the abandoned one never ran), nil", v, err)
			}
		})
	}
}
