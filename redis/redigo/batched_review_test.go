package redigo_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	redigolib "github.com/gomodule/redigo/redis"

	"github.com/go-redlock/redsync/internal/chaos"
	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/redigo"
)

// reviewOwnScript increments a key of the call's own and returns the
// call's argument with the count: a reply handed to the wrong call shows as
// another argument, a command run twice as a count above 1.
var reviewOwnScript = redis.NewScript(1, "local n = redis.call('INCR', KEYS[1]); return {ARGV[1], n}", "")

// reviewOwn runs reviewOwnScript for arg through b (RunScript, or
// SendScript and Receive) bounded by timeout.
func reviewOwn(b *redigo.BatchedPool, pipelined bool, prefix, arg string, timeout time.Duration) (any, error) {
	return runCall(b, pipelined, redis.NewScriptCall(reviewOwnScript, prefix+arg, arg), timeout)
}

// checkOwn checks that a successful reply of reviewOwn is arg's own, run
// once.
func checkOwn(v any, arg string) error {
	vs, ok := v.([]any)
	if !ok || len(vs) != 2 {
		return fmt.Errorf("reply for %q = %#v, want [%q 1]", arg, v, arg)
	}
	if got := string(asBytes(vs[0])); got != arg || vs[1] != int64(1) {
		return fmt.Errorf("reply for %q = [%q %#v], want [%q 1] (another call's reply, or run twice)", arg, got, vs[1], arg)
	}
	return nil
}

// checkRunOnce checks that no key of prefix counts more than one run.
func checkRunOnce(t *testing.T, srv *redistest.Server, prefix string) {
	t.Helper()
	keys, err := srv.Keys(prefix + "*")
	if err != nil {
		t.Fatalf("KEYS: %v", err)
	}
	for _, k := range keys {
		r, err := srv.Do("GET", k)
		if err != nil {
			t.Fatalf("GET %s: %v", k, err)
		}
		if n, _ := strconv.Atoi(r.Text()); n != 1 {
			t.Errorf("%s = %q after one call: its command ran more than once", k, r.Text())
		}
	}
}

// TestReviewAbandonedBehindMaxInFlight: the promise "a command whose
// caller gave up before it was written is never sent". The writer checks
// whether a call was abandoned, then waits for room among the maxInFlight
// (1024) calls in flight; a call abandoned during that wait is still
// written once room comes, after its caller was told DeadlineExceeded.
func TestReviewAbandonedBehindMaxInFlight(t *testing.T) {
	t.Parallel()
	for _, path := range paths {
		t.Run(path.name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			b, _ := newBatched(t, srv.Addr(), true)
			incr := redis.NewScript(1, "return redis.call('INCR', KEYS[1])", "")
			key := "review:maxinflight:" + path.name
			// Load the scripts: the fillers and the abandoned call must
			// each be one EVALSHA.
			srv.MustDo(t, "SCRIPT", "LOAD", echoScript.Src)
			srv.MustDo(t, "SCRIPT", "LOAD", incr.Src)
			if err := srv.Pause(); err != nil {
				t.Fatalf("Pause() = %v", err)
			}
			resumed := false
			defer func() {
				if !resumed {
					srv.Resume()
				}
			}()
			// 1025 calls fill the reader (1) and the channel of written
			// calls (1024); the next call is the one the writer waits on.
			const fillers = 1025
			type sent struct {
				p        redis.PendingReply
				deadline time.Time
				cancel   context.CancelFunc
				arg      string
			}
			var pending []sent
			defer func() {
				for _, s := range pending {
					s.cancel()
				}
			}()
			for i := range fillers {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				arg := "f" + strconv.Itoa(i)
				call := redis.NewScriptCall(echoScript, arg)
				p, ok, err := b.SendScript(ctx, &call)
				if !ok || err != nil {
					cancel()
					t.Fatalf("SendScript(filler %d) = %v, %v; want true, nil", i, ok, err)
				}
				deadline, _ := ctx.Deadline()
				pending = append(pending, sent{p, deadline, cancel, arg})
			}
			// The abandoned call: its caller gives up after 300ms, while
			// the server is still stopped.
			abandoned := func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
				defer cancel()
				call := redis.NewScriptCall(incr, key)
				var v any
				var err error
				if path.pipelined {
					var p redis.PendingReply
					var ok bool
					p, ok, err = b.SendScript(ctx, &call)
					if !ok || err != nil {
						return fmt.Errorf("SendScript(abandoned) = %v, %v; want true, nil", ok, err)
					}
					deadline, _ := ctx.Deadline()
					v, err = p.Receive(deadline)
				} else {
					v, err = b.RunScript(ctx, &call)
				}
				if !errors.Is(err, context.DeadlineExceeded) {
					return fmt.Errorf("the call behind %d in flight on a stopped server = %#v, %v; want DeadlineExceeded", fillers, v, err)
				}
				return nil
			}
			if err := abandoned(); err != nil {
				t.Fatal(err)
			}
			resumed = true
			if err := srv.Resume(); err != nil {
				t.Fatalf("Resume() = %v", err)
			}
			for _, s := range pending {
				if v, err := s.p.Receive(s.deadline); string(asBytes(v)) != s.arg || err != nil {
					t.Fatalf("filler %q = %#v, %v; want its own reply", s.arg, v, err)
				}
				s.cancel()
			}
			pending = nil
			// Whatever was written is answered by now: an echo behind it.
			if v, err := echo(b, false, "last", 10*time.Second); string(asBytes(v)) != "last" || err != nil {
				t.Fatalf("echo(last) = %#v, %v", v, err)
			}
			r := srv.MustDo(t, "GET", key)
			if !r.IsNil() {
				t.Errorf("a command abandoned (DeadlineExceeded) while the writer waited for room behind %d calls in flight was sent anyway once room came: %s = %q, want nil", fillers, key, r.Text())
			}
		})
	}
}

// TestReviewOwnRepliesUnderKills runs many concurrent calls with distinct
// arguments and short, varied deadlines while the shared connection is
// killed (CLIENT KILL) and the scripts flushed (NOSCRIPT, then EVAL) over
// and over: every successful reply must be the call's own, and no command
// may run twice (no resend after a reconnect, no EVAL after a run
// EVALSHA).
func TestReviewOwnRepliesUnderKills(t *testing.T) {
	t.Parallel()
	for _, path := range paths {
		t.Run(path.name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			b, _ := newBatched(t, srv.Addr(), false)
			prefix := "review:kills:" + path.name + ":"
			const (
				goroutines = 24
				calls      = 60
			)
			stop := make(chan struct{})
			var chaosWG sync.WaitGroup
			chaosWG.Add(1)
			go func() {
				defer chaosWG.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					case <-time.After(time.Duration(2+rand.IntN(8)) * time.Millisecond):
					}
					if i%2 == 0 {
						_, _ = srv.Do("CLIENT", "KILL", "TYPE", "normal")
					} else {
						_, _ = srv.Do("SCRIPT", "FLUSH")
					}
				}
			}()
			var ok, failed atomic.Int64
			errs := make(chan error, goroutines)
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range calls {
						arg := fmt.Sprintf("%d/%d", g, i)
						timeout := time.Duration(1+rand.IntN(40)) * time.Millisecond
						if i%5 == 0 {
							timeout = 5 * time.Second
						}
						v, err := reviewOwn(b, path.pipelined, prefix, arg, timeout)
						if err != nil {
							failed.Add(1)
							continue
						}
						ok.Add(1)
						if err := checkOwn(v, arg); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(stop)
			chaosWG.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			t.Logf("%d calls answered, %d failed", ok.Load(), failed.Load())
			if ok.Load() == 0 {
				t.Error("no call succeeded")
			}
			checkRunOnce(t, srv, prefix)
		})
	}
}

// TestReviewOwnRepliesSlowLink runs concurrent calls through a proxy that
// delays every chunk of replies, with deadlines around the delay, so that
// many calls give up with their replies in flight (dropped late) or before
// they were written: each successful reply must be the call's own, each
// failure DeadlineExceeded, and every call must end near its deadline.
func TestReviewOwnRepliesSlowLink(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	proxy, err := chaos.StartProxy(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	for _, path := range paths {
		t.Run(path.name, func(t *testing.T) {
			b, _ := newBatched(t, proxy.Addr(), false)
			prefix := "review:slow:" + path.name + ":"
			proxy.SetLatency(15 * time.Millisecond)
			defer proxy.SetLatency(0)
			const (
				goroutines = 32
				calls      = 25
			)
			var ok, late atomic.Int64
			errs := make(chan error, goroutines)
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range calls {
						arg := fmt.Sprintf("%d/%d", g, i)
						timeout := time.Duration(5+rand.IntN(40)) * time.Millisecond
						start := time.Now()
						v, err := reviewOwn(b, path.pipelined, prefix, arg, timeout)
						// Generous: a busy 2-core machine under -race.
						if elapsed := time.Since(start); elapsed > timeout+3*time.Second {
							errs <- fmt.Errorf("call %q with a %v timeout took %v (KeepsDeadlines)", arg, timeout, elapsed)
							return
						}
						switch {
						case err == nil:
							ok.Add(1)
							if err := checkOwn(v, arg); err != nil {
								errs <- err
								return
							}
						case errors.Is(err, context.DeadlineExceeded):
							late.Add(1)
						default:
							// A plain connection being dialled through
							// the proxy may fail otherwise; not a reply
							// given to another call.
							late.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			t.Logf("%d answered, %d gave up", ok.Load(), late.Load())
			proxy.SetLatency(0)
			for i := range 3 {
				arg := "after-" + strconv.Itoa(i)
				v, err := reviewOwn(b, path.pipelined, prefix, arg, 10*time.Second)
				if err != nil {
					t.Errorf("call %q after the slow link = %v", arg, err)
				} else if err := checkOwn(v, arg); err != nil {
					t.Error(err)
				}
			}
			checkRunOnce(t, srv, prefix)
		})
	}
}

// TestReviewRetireChurn retires the shared connection every few
// milliseconds (MaxConnLifetime) while concurrent calls run and the
// scripts are flushed: calls in flight on a retired connection must get
// their own replies, and none may run twice.
func TestReviewRetireChurn(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	for _, path := range paths {
		t.Run(path.name, func(t *testing.T) {
			b, cnt := newBatchedWith(t, srv.Addr(), true, func(p *redigolib.Pool) {
				p.MaxConnLifetime = 5 * time.Millisecond
			})
			dials := cnt.dials.Load()
			prefix := "review:retire:" + path.name + ":"
			stop := make(chan struct{})
			var flusher sync.WaitGroup
			flusher.Add(1)
			go func() {
				defer flusher.Done()
				for {
					select {
					case <-stop:
						return
					case <-time.After(7 * time.Millisecond):
					}
					_, _ = srv.Do("SCRIPT", "FLUSH")
				}
			}()
			const (
				goroutines = 16
				calls      = 60
			)
			errs := make(chan error, goroutines)
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range calls {
						arg := fmt.Sprintf("%d/%d", g, i)
						v, err := reviewOwn(b, path.pipelined, prefix, arg, 10*time.Second)
						if err != nil {
							errs <- fmt.Errorf("call %q across retirements = %v, want its reply", arg, err)
							return
						}
						if err := checkOwn(v, arg); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(stop)
			flusher.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			t.Logf("%d dials", cnt.dials.Load()-dials)
			checkRunOnce(t, srv, prefix)
		})
	}
}

// TestReviewCloseMidFlight closes the pool while many calls are in flight
// on a slow link: every call ends, with its own reply or an error, and the
// pool works after (the leak check of TestMain covers the goroutines).
func TestReviewCloseMidFlight(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	proxy, err := chaos.StartProxy(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	for _, path := range paths {
		t.Run(path.name, func(t *testing.T) {
			b, _ := newBatched(t, proxy.Addr(), true)
			prefix := "review:close:" + path.name + ":"
			proxy.SetLatency(20 * time.Millisecond)
			defer proxy.SetLatency(0)
			const goroutines = 40
			errs := make(chan error, goroutines*20)
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 20 {
						arg := fmt.Sprintf("%d/%d", g, i)
						v, err := reviewOwn(b, path.pipelined, prefix, arg, 5*time.Second)
						if err == nil {
							if err := checkOwn(v, arg); err != nil {
								errs <- err
							}
						}
					}
				}()
			}
			time.Sleep(60 * time.Millisecond)
			if err := b.Close(); err != nil {
				t.Errorf("Close() = %v", err)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			proxy.SetLatency(0)
			v, err := reviewOwn(b, path.pipelined, prefix, "after", 5*time.Second)
			if err != nil {
				t.Errorf("call after Close = %v", err)
			} else if err := checkOwn(v, "after"); err != nil {
				t.Error(err)
			}
			checkRunOnce(t, srv, prefix)
		})
	}
}

// TestReviewNoScriptThenKill: the server forgets its scripts, the EVALSHAs
// answer NOSCRIPT, and the shared connection is killed while the EVAL
// fallbacks are queued or in flight (its writes held by the gate): each
// call ends with its own reply or an error, and none runs twice.
func TestReviewNoScriptThenKill(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	for _, path := range paths {
		t.Run(path.name, func(t *testing.T) {
			b, cnt := newBatched(t, srv.Addr(), true)
			prefix := "review:noscript:" + path.name + ":"
			for round := range 5 {
				srv.MustDo(t, "SCRIPT", "FLUSH")
				gate := make(chan struct{})
				const n = 30
				errs := make(chan error, n)
				var wg sync.WaitGroup
				var once sync.Once
				for g := range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						arg := fmt.Sprintf("%d/%d", round, g)
						v, err := reviewOwn(b, path.pipelined, prefix, arg, 5*time.Second)
						once.Do(func() {
							// The first call to end: hold further writes
							// (EVALs still to go), kill, release.
							cnt.gate.Store(&gate)
						})
						if err == nil {
							if err := checkOwn(v, arg); err != nil {
								errs <- err
							}
						}
					}()
				}
				// Kill the connections while EVALs are held or in flight.
				killed := make(chan struct{})
				go func() {
					defer close(killed)
					select {
					case <-cnt.held:
					case <-time.After(500 * time.Millisecond):
					}
					_, _ = srv.Do("CLIENT", "KILL", "TYPE", "normal")
					close(gate)
				}()
				wg.Wait()
				<-killed
				cnt.gate.Store(nil)
				// Drain held tokens of this round.
				for len(cnt.held) > 0 {
					<-cnt.held
				}
				close(errs)
				for err := range errs {
					t.Error(err)
				}
				waitShared(t, b)
			}
			checkRunOnce(t, srv, prefix)
		})
	}
}
