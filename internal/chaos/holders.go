package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync"
)

// The workers of the primitives whose holders may hold at once: the read
// shares of an RWMutex, beside its write lock, and the permits of a
// Semaphore (rwmutex_rows_test.go, semaphore_rows_test.go). A worker
// configured with WorkerConfig.Primitive takes one of them in a loop, as a
// worker of a Mutex locks, and logs each grant with Grant.Shared set for
// a read share or a permit. An exclusive grant's critical section is a
// Mutex's (criticalSection); a shared one's enters the resource's gauge
// (gauge.go) and counts itself on the counter. [SweepHolders] checks the
// windows.

// The primitives a worker can take (WorkerConfig.Primitive).
const (
	primitiveRWMutex   = "rwmutex"
	primitiveSemaphore = "semaphore"
	primitiveCounting  = "counting" // the canary: countingSemaphore
)

// A take is one way for a worker to acquire: a write lock, a read share,
// a permit.
type take struct {
	shared bool
	// limit is how many shared holders the resource's gauge allows: the
	// permits of a semaphore, 0 for read shares.
	limit   int
	acquire func() (holding, error)
}

// A holding is one acquisition made by a take.
type holding struct {
	value   string
	until   time.Time
	names   []string // the key of a permit's slot, for the auditor; nil for none
	granted []int    // the nodes that granted it, when known (the canary's)
	release func() (bool, error)
}

// runHolders runs cfg.Goroutines (at least one) goroutines that take
// cfg.Primitive of the name cfg.Key until ctx ends, each with a take of
// its own built on the worker's Redsync and node clients.
func runHolders(ctx context.Context, cfg WorkerConfig, rs *redsync.Redsync, clients []*goredislib.Client, opts []redsync.Option, res *Resource, lw *logWriter) error {
	if cfg.Sets != nil || cfg.Fencing {
		return errors.New("chaos worker: Primitive does not go with Sets or Fencing")
	}
	opts = append(opts, redsync.WithTries(1))
	var sem *redsync.Semaphore
	if cfg.Primitive == primitiveSemaphore {
		// A Semaphore is safe for concurrent use: the goroutines of a
		// worker share one, as those of a process would.
		sem = rs.NewSemaphore(cfg.Key, cfg.Permits, opts...)
	}
	errs := make([]error, max(1, cfg.Goroutines))
	var wg sync.WaitGroup
	for i := range errs {
		var takes []take
		switch cfg.Primitive {
		case primitiveRWMutex:
			takes = rwTakes(rs, cfg, opts)
		case primitiveSemaphore:
			takes = []take{semaphoreTake(sem)}
		case primitiveCounting:
			cs := &countingSemaphore{clients: clients, key: cfg.Key, permits: cfg.Permits, expiry: cfg.Expiry}
			takes = []take{countingTake(cs)}
		default:
			return fmt.Errorf("chaos worker: unknown primitive %q", cfg.Primitive)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = holdLoop(ctx, cfg, res, takes, i, lw)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// rwTakes returns the takes of one goroutine of an rwmutex worker, each
// as likely: the write lock of an RWMutex of its own, and cfg.WriteEvery-1
// times a read share of it. Both wait as callers of Lock and RLock do,
// with up to rwTries tries 1-4 ms apart: a writer's try that finds
// readers leaves the waiting writer's mark, which keeps new readers out
// until the writer has its turn or gives up. (With one try each, the
// writer gives up and withdraws its mark at once, and readers, many and
// quick, seldom leave it a quorum; with writers waiting and readers not,
// readers seldom find no mark.) With cfg.UncheckedReads (a canary), a
// read share is the lock of a Mutex of another name, which no writer
// checks.
func rwTakes(rs *redsync.Redsync, cfg WorkerConfig, opts []redsync.Option) []take {
	// The observer gives what the RWMutex tells of a read share: its
	// value and validity end (Value and Until are the writer's). It is
	// called on the goroutine of RLock, before it returns.
	obs := &acquireObserver{}
	rw := rs.NewRWMutex(cfg.Key, append(opts,
		redsync.WithObserver(obs),
		redsync.WithTries(rwTries),
		redsync.WithRetryDelayFunc(func(int) time.Duration { return time.Millisecond + rand.N(3*time.Millisecond) }),
	)...)
	write := take{acquire: func() (holding, error) {
		if err := rw.Lock(); err != nil {
			return holding{}, err
		}
		return holding{value: rw.Value(), until: rw.Until(), names: []string{cfg.Key}, release: rw.Unlock}, nil
	}}
	read := take{shared: true, acquire: func() (holding, error) {
		if err := rw.RLock(); err != nil {
			return holding{}, err
		}
		return holding{value: obs.value, until: obs.until, release: rw.RUnlock}, nil
	}}
	if cfg.UncheckedReads {
		m := rs.NewMutex(cfg.Key+":unchecked", opts...)
		read.acquire = func() (holding, error) {
			if err := m.TryLock(); err != nil {
				return holding{}, err
			}
			return holding{value: m.Value(), until: m.Until(), release: m.Unlock}, nil
		}
	}
	takes := []take{write}
	for range max(1, cfg.WriteEvery-1) {
		takes = append(takes, read)
	}
	return takes
}

// rwTries is how many tries a Lock or RLock of an rwmutex worker makes.
const rwTries = 10

// acquireObserver keeps the value and the validity end of the last
// acquisition it saw. Written and read on the goroutine that acquires.
type acquireObserver struct {
	redsync.BaseObserver
	value string
	until time.Time
}

func (o *acquireObserver) OnAcquire(_ context.Context, e redsync.AcquireEvent) {
	o.value, o.until = e.Value, e.Until
}

// semaphoreTake takes a permit of s with TryAcquire.
func semaphoreTake(s *redsync.Semaphore) take {
	return take{shared: true, limit: s.Permits(), acquire: func() (holding, error) {
		p, err := s.TryAcquire(context.Background())
		if err != nil {
			return holding{}, err
		}
		return holding{
			value:   p.Value(),
			until:   p.Until(),
			names:   []string{p.Key()},
			release: func() (bool, error) { return p.Release(context.Background()) },
		}, nil
	}}
}

// countingTake takes a permit of the canary's counting semaphore.
func countingTake(s *countingSemaphore) take {
	return take{shared: true, limit: s.permits, acquire: func() (holding, error) {
		value, until, granted, err := s.acquire(context.Background())
		if err != nil {
			return holding{}, err
		}
		return holding{
			value:   value,
			until:   until,
			granted: granted,
			release: func() (bool, error) { return s.release(context.Background(), value) },
		}, nil
	}}
}

// holdLoop is the loop of one goroutine of a worker of a primitive: it
// acquires with one of takes, drawn at random, until ctx ends, each time
// running the critical section that fits the grant on res. A try or a
// critical section under way when ctx ends is finished first.
func holdLoop(ctx context.Context, cfg WorkerConfig, res *Resource, takes []take, goroutine int, lw *logWriter) error {
	for ctx.Err() == nil {
		tk := takes[rand.N(len(takes))]
		called := Mono()
		h, err := tk.acquire()
		acquired, now := Mono(), time.Now()
		if err != nil {
			lw.failed(err)
			sleep(ctx, time.Millisecond+rand.N(3*time.Millisecond))
			continue
		}
		g := Grant{
			Worker:    cfg.ID,
			Goroutine: goroutine,
			Shared:    tk.shared,
			Names:     h.names,
			Granted:   h.granted,
			Value:     h.value,
			Called:    called,
			Acquired:  acquired,
			ValidEnd:  acquired + int64(h.until.Sub(now)),
		}
		hold, owner := cfg.Hold, fmt.Sprintf("%d/%d/%s", cfg.ID, goroutine, g.Value)
		if cfg.LongEvery > 0 && rand.N(cfg.LongEvery) == 0 {
			hold, owner = cfg.LongHold, owner+"/L"
		}
		g.Hold = hold
		if tk.shared {
			sharedSection(res, owner, hold, tk.limit, &g)
		} else {
			criticalSection(res, owner, hold, &g)
		}
		g.Released = Mono()
		g.Unlocked, err = h.release()
		if err != nil {
			g.UnlockErr = err.Error()
		}
		if err := lw.granted(&g); err != nil {
			return err
		}
	}
	return nil
}

// sharedSection is the critical section of a shared grant: it enters the
// resource's gauge as owner, with limit shared holders allowed, sleeps
// hold, and leaves, counting the section on the counter; it notes in g
// what it found on entry.
func sharedSection(res *Resource, owner string, hold time.Duration, limit int, g *Grant) {
	ctx := context.Background()
	var err error
	defer func() {
		if err != nil {
			g.ResourceErr = err.Error()
		}
	}()
	if g.Found, err = res.EnterShared(ctx, owner, limit); err != nil {
		return
	}
	time.Sleep(hold)
	err = res.LeaveShared(ctx, owner)
}
