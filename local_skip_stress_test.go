package redsync

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redlock/redsync/internal/redistest"
)

// TestSkipStress runs Lock calls of two Redsyncs with several goroutines
// each (so that many stand behind a listed waiter of their Redsync) on one
// lock, with a retry delay of an hour: only wake-ups and hand-offs end
// their waits. The holders do what strands a waiter with no entry on the
// nodes when nobody of its Redsync is: they give up (short contexts),
// overrun their expiry without Unlock, and pass their value to another
// Redsync that releases the lock. A poller of a third Redsync (retry delay
// 20 ms) takes a lock that expired and releases it, which wakes the
// queues. It checks that no two holders overlap, that the lock is never
// free for long on every node while a Lock call that began well before
// waits, and that nothing is left on the nodes nor any goroutine running
// after the calls returned.
//
// With faults, a node at a time is paused for 200 ms every 500 ms (an
// Unlock may then fail: the lock expires), each Redsync also has a Lock
// call of a WithFencing Mutex (which polls, every 20 ms) among its
// waiters, and the retry delay is half a second (the fallback for what
// the faults make unheard).
func TestSkipStress(t *testing.T) {
	t.Run("plain", func(t *testing.T) { skipStress(t, false) })
	t.Run("faults", func(t *testing.T) { skipStress(t, true) })
}

func skipStress(t *testing.T, faults bool) {
	servers := redistest.StartN(t, 3)
	goroutinesBefore := runtime.NumGoroutine()
	const (
		name     = "skip-stress"
		procs    = 2
		perProc  = 5
		duration = 6 * time.Second
		// stuck is how long the lock may be free on every node while a
		// Lock call that began before waits.
		stuck = 2 * time.Second
	)
	var (
		holders atomic.Int32 // holders inside their validity
		waiting sync.Map     // *int (one per call) -> time the Lock began
		errs    = make(chan error, 100)
		wg      sync.WaitGroup
	)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	stop := time.Now().Add(duration)
	// Every Lock call ends by then: a stranded one fails the test rather
	// than hang it.
	end, cancelAll := context.WithDeadline(context.Background(), stop.Add(3*time.Second))
	defer cancelAll()
	// Only wake-ups and hand-offs end a wait, without faults. With them, a
	// paused node breaks listening connections and drops the messages
	// sent meanwhile (pub/sub delivers at most once): a waiter whose
	// Redsync hears fewer than a quorum polls, and the retry delay is the
	// documented fallback (docs/LIFETIME.md, "Fallback"), here half a
	// second (with an hour, CI saw calls wait past the end once in a busy
	// run).
	retry := time.Hour
	if faults {
		retry = 500 * time.Millisecond
	}
	foreign := New(realPools(t, servers)...)
	hold := func() (release func()) {
		if holders.Add(1) > 1 {
			report(errors.New("two holders at once"))
		}
		return func() { holders.Add(-1) }
	}

	for p := range procs {
		rs := New(realPools(t, servers)...)
		for g := range perProc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(p), uint64(g)))
				for time.Now().Before(stop) {
					expiry := time.Duration(800+rng.IntN(400)) * time.Millisecond
					m := rs.NewMutex(name, WithRetryDelay(retry), WithTries(1000), WithExpiry(expiry))
					ctx, cancel := context.WithCancel(end)
					if rng.IntN(4) == 0 {
						ctx, cancel = context.WithTimeout(end, time.Duration(5+rng.IntN(200))*time.Millisecond)
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
						continue
					}
					release := hold()
					until := m.Until()
					switch rng.IntN(20) {
					case 0:
						// Overrun: the lock expires on the nodes, nobody
						// unlocks it.
						release()
						time.Sleep(time.Until(until) + expiry)
					case 1:
						// Another process releases it with the value.
						release()
						other := foreign.NewMutex(name, WithValue(m.Value()))
						_, _ = other.Unlock()
					default:
						time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
						release()
						if ok, err := m.Unlock(); !ok && !errors.Is(err, ErrLockAlreadyExpired) && !faults {
							report(err)
						}
					}
					time.Sleep(time.Duration(rng.IntN(5)) * time.Millisecond)
				}
			}()
		}
	}
	if faults {
		for p := range procs {
			rs := New(realPools(t, servers)...)
			wg.Add(1)
			go func() {
				defer wg.Done()
				m := rs.NewMutex(name, WithRetryDelay(20*time.Millisecond), WithTries(1<<20), WithExpiry(time.Second), WithFencing())
				for time.Now().Before(stop) {
					ctx, cancel := context.WithDeadline(end, stop)
					err := m.LockContext(ctx)
					cancel()
					if err != nil {
						continue
					}
					release := hold()
					time.Sleep(time.Millisecond)
					release()
					_, _ = m.Unlock() // a paused node may fail it: the lock expires
					time.Sleep(time.Duration(5+p) * time.Millisecond)
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(stop); i++ {
				time.Sleep(300 * time.Millisecond)
				srv := servers[i%len(servers)]
				if err := srv.Pause(); err != nil {
					report(err)
					return
				}
				time.Sleep(200 * time.Millisecond)
				if err := srv.Resume(); err != nil {
					report(err)
				}
			}
		}()
	}
	// The poller takes a lock that expired (a release by expiry wakes
	// nobody) and releases it.
	wg.Add(1)
	go func() {
		defer wg.Done()
		m := New(realPools(t, servers)...).NewMutex(name, WithRetryDelay(20*time.Millisecond), WithTries(1<<20), WithExpiry(time.Second))
		for time.Now().Before(stop) {
			ctx, cancel := context.WithDeadline(end, stop)
			err := m.LockContext(ctx)
			cancel()
			if err != nil {
				continue
			}
			release := hold()
			release()
			_, _ = m.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()

	// The monitor: the lock free on every node while an old Lock waits.
	monitorDone := watchFreeWhileWaiting(servers, name, len(servers), stop, stuck, &waiting, report)
	wg.Wait()
	<-monitorDone
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	settle(t, servers)
	for i, srv := range servers {
		// The fencing counter stays, by design (fencing.go).
		if keys, _ := srv.Keys("*"); slices.ContainsFunc(keys, func(k string) bool { return !strings.HasPrefix(k, "redsync:fence:") }) {
			t.Errorf("node %d keeps %q after every call returned", i, keys)
		}
	}
	// The listening connections go listenLinger after the last waiter.
	eventually(t, "the goroutines of the calls ended", func() bool {
		return runtime.NumGoroutine() <= goroutinesBefore+10
	})
}
