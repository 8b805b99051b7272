package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/goredis"
)

// WorkerEnv is the environment variable that turns a re-executed test
// binary into a worker: it holds the worker's configuration as JSON.
const WorkerEnv = "REDSYNC_CHAOS_WORKER"

// WorkerConfig configures one worker process.
type WorkerConfig struct {
	ID       int           `json:"id"`
	Nodes    []string      `json:"nodes"`    // lock node addresses (the proxies)
	Resource string        `json:"resource"` // the resource node's address
	Prefix   string        `json:"prefix"`   // the resource's key prefix
	Key      string        `json:"key"`      // the lock key
	Expiry   time.Duration `json:"expiry"`
	Hold     time.Duration `json:"hold"`  // sleep between reading and writing the counter
	Guard    time.Duration `json:"guard"` // WithRestartGuard's maxTTL; 0 for off
	Log      string        `json:"log"`   // path of the JSON lines log

	// One grant in LongEvery (0: none) sleeps LongHold instead of Hold,
	// so that faults can be timed to hit a holder inside its critical
	// section; its occupant name ends with "/L".
	LongHold  time.Duration `json:"long_hold"`
	LongEvery int           `json:"long_every"`
	// TimeoutFactor is WithTimeoutFactor's; 0 for the default.
	TimeoutFactor float64 `json:"timeout_factor"`
	// Fencing turns WithFencing on, and adds a guarded write to the
	// critical section (fencing.go).
	Fencing bool `json:"fencing"`
	// Goroutines, when more than 1, runs that many goroutines in the
	// worker, each with a Mutex of one shared Redsync calling Lock (with
	// retries) instead of TryLock: the lock then passes between them by
	// local hand-off (transfer.go in the root package).
	Goroutines int `json:"goroutines"`
	// Wait makes the worker's one goroutine call Lock (with the default
	// retries) instead of TryLock: it waits in the nodes' queue of waiters
	// for the release of another worker process (handoff.go in the root
	// package).
	Wait bool `json:"wait,omitempty"`
	// Blind, with Goroutines, gives their Mutexes no observer and never
	// calls Mutex.Value, so that an Unlock may pass the acquisition on to
	// the next goroutine with no round (passOn in the root package's
	// transfer.go), which a value shown outside the library rules out.
	// Its grants then have no Value (the audit skips them; the owner in
	// the resource is worker/goroutine/#n), and HandedOver marks a grant
	// that was passed on (logWriter.passedOn).
	Blind bool `json:"blind,omitempty"`
	// Sets, when not empty, makes the worker lock several names at once
	// (multi_rows_test.go): each try takes one of the sets, drawn at
	// random, with redsync.NewMultiMutex (Key is then unused); the
	// critical section runs on the resource of each name of the set (see
	// NamePrefix), and the grant is counted on the resource of Prefix.
	// Sets do not go with Goroutines or Fencing.
	Sets [][]string `json:"sets"`
	// FirstNameOnly, a canary of the multi-key rows: the worker locks only
	// the first name of each set, but enters the resources of all of them
	// and logs the grant as holding the whole set.
	FirstNameOnly bool `json:"first_name_only"`

	// Primitive, when set, makes the worker take another primitive of the
	// name Key than a Mutex (holders.go): "rwmutex", "semaphore" (of
	// Permits permits), or "counting", the canary's majority-counting
	// semaphore (counting.go). Goroutines then runs that many goroutines,
	// each acquiring in a loop as holders.go tells. Primitive does not go
	// with Sets or Fencing.
	Primitive string `json:"primitive,omitempty"`
	Permits   int    `json:"permits,omitempty"`
	// WriteEvery: one try in WriteEvery of an rwmutex worker takes the
	// write lock, the others a read share.
	WriteEvery int `json:"write_every,omitempty"`
	// UncheckedReads, a canary of the rwmutex rows: the worker takes its
	// read shares as the lock of another name, which no writer checks.
	UncheckedReads bool `json:"unchecked_reads,omitempty"`
}

// WorkerMain runs the worker configured by $REDSYNC_CHAOS_WORKER until
// SIGTERM, or until its parent dies, and returns the exit code.
// ok is false when the variable is not set: the process is no worker.
func WorkerMain() (code int, ok bool) {
	env := os.Getenv(WorkerEnv)
	if env == "" {
		return 0, false
	}
	var cfg WorkerConfig
	if err := json.Unmarshal([]byte(env), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "chaos worker: bad configuration:", err)
		return 2, true
	}
	goredislib.SetLogger(quietLogger{})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go watchParent(ctx, cancel)

	f, err := os.Create(cfg.Log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos worker:", err)
		return 2, true
	}
	err = RunWorker(ctx, cfg, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "chaos worker %d: %v\n", cfg.ID, err)
		return 1, true
	}
	return 0, true
}

// watchParent cancels the worker when the process that started it exits,
// so that no worker outlives a harness killed by a timeout.
func watchParent(ctx context.Context, cancel context.CancelFunc) {
	parent := os.Getppid()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if os.Getppid() != parent {
				cancel()
				return
			}
		}
	}
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// NewNodeClient returns the go-redis client a worker uses for one lock
// node: no retries (a retried command may run twice), and commands bounded
// by their context.
func NewNodeClient(addr string) *goredislib.Client {
	return goredislib.NewClient(&goredislib.Options{
		Addr:                  addr,
		MaxRetries:            -1,
		DialTimeout:           time.Second,
		ReadTimeout:           time.Second,
		WriteTimeout:          time.Second,
		ContextTimeoutEnabled: true,
		PoolSize:              8,
	})
}

// RunWorker locks cfg.Key (or one of cfg.Sets) in a loop until ctx
// ends, each time doing the critical section on the resource, and writes a JSON line per grant and a
// summary line to out. A try or a critical section under way when ctx
// ends is finished first.
func RunWorker(ctx context.Context, cfg WorkerConfig, out io.Writer) error {
	pools := make([]redis.Pool, len(cfg.Nodes))
	clients := make([]*goredislib.Client, len(cfg.Nodes))
	for i, addr := range cfg.Nodes {
		clients[i] = NewNodeClient(addr)
		defer clients[i].Close()
		pools[i] = goredis.NewPool(clients[i])
	}
	res := NewResource(cfg.Resource, cfg.Prefix)
	defer res.Close()
	opts := []redsync.Option{redsync.WithExpiry(cfg.Expiry)}
	if cfg.Guard > 0 {
		opts = append(opts, redsync.WithRestartGuard(cfg.Guard))
	}
	if cfg.TimeoutFactor > 0 {
		opts = append(opts, redsync.WithTimeoutFactor(cfg.TimeoutFactor))
	}
	if cfg.Fencing {
		opts = append(opts, redsync.WithFencing())
	}
	rs := redsync.New(pools...)

	w := bufio.NewWriter(out)
	lw := &logWriter{enc: json.NewEncoder(w)}
	lw.sum = Summary{Worker: cfg.ID, Failures: map[string]int{}, Samples: map[string]string{}}
	switch {
	case cfg.Primitive != "":
		if err := runHolders(ctx, cfg, rs, clients, opts, res, lw); err != nil {
			return err
		}
	case len(cfg.Sets) > 0:
		if cfg.Goroutines > 1 || cfg.Fencing {
			return errors.New("chaos worker: Sets do not go with Goroutines or Fencing")
		}
		opts = append(opts, redsync.WithTries(1))
		targets, closeAll := multiTargets(cfg, rs, opts)
		defer closeAll()
		if err := lockLoop(ctx, cfg, res, targets, nil, 0, lw); err != nil {
			return err
		}
	case cfg.Goroutines <= 1 && cfg.Wait:
		obs := &handOffObserver{}
		m := rs.NewMutex(cfg.Key, append(opts, redsync.WithObserver(obs))...)
		if err := lockLoop(ctx, cfg, res, []lockTarget{{mutex: m, res: []*Resource{res}}}, obs, 0, lw); err != nil {
			return err
		}
	case cfg.Goroutines <= 1:
		opts = append(opts, redsync.WithTries(1))
		target := lockTarget{mutex: rs.NewMutex(cfg.Key, opts...), res: []*Resource{res}}
		if err := lockLoop(ctx, cfg, res, []lockTarget{target}, nil, 0, lw); err != nil {
			return err
		}
	default:
		// Lock waits (with the default retries) while another goroutine
		// of this worker holds the lock, so that it is handed over.
		errs := make([]error, cfg.Goroutines)
		var wg sync.WaitGroup
		for i := range cfg.Goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var obs *handOffObserver
				mopts := opts
				if !cfg.Blind {
					obs = &handOffObserver{}
					mopts = append(opts[:len(opts):len(opts)], redsync.WithObserver(obs))
				}
				m := rs.NewMutex(cfg.Key, mopts...)
				errs[i] = lockLoop(ctx, cfg, res, []lockTarget{{mutex: m, res: []*Resource{res}}}, obs, i, lw)
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
	if err := lw.enc.Encode(LogLine{Summary: &lw.sum}); err != nil {
		return err
	}
	return w.Flush()
}

// A lockTarget is what a try locks, and what its critical section acts
// on.
type lockTarget struct {
	mutex *redsync.Mutex
	names []string    // the set of a multi-key row; nil for WorkerConfig.Key
	res   []*Resource // the resource of each name; of Key alone when names is nil
}

// multiTargets returns a target for each set of cfg.Sets, locked with
// opts, and a function that closes the resources of the names.
func multiTargets(cfg WorkerConfig, rs *redsync.Redsync, opts []redsync.Option) ([]lockTarget, func()) {
	byName := map[string]*Resource{}
	var targets []lockTarget
	for _, set := range cfg.Sets {
		t := lockTarget{names: set}
		locked := set
		if cfg.FirstNameOnly {
			locked = set[:1]
		}
		t.mutex = rs.NewMultiMutex(locked, opts...)
		for _, name := range set {
			r, ok := byName[name]
			if !ok {
				r = NewResource(cfg.Resource, NamePrefix(cfg.Prefix, name))
				byName[name] = r
			}
			t.res = append(t.res, r)
		}
		targets = append(targets, t)
	}
	return targets, func() {
		for _, r := range byName {
			r.Close()
		}
	}
}

// logWriter writes the grants of a worker's goroutines to its log and
// gathers its summary.
type logWriter struct {
	mu  sync.Mutex
	enc *json.Encoder
	sum Summary
	// released is the Until of the acquisition that a goroutine of the
	// worker released last, set before its Unlock (WorkerConfig.Blind).
	released time.Time
}

// releasing notes the Until of an acquisition about to be unlocked.
func (lw *logWriter) releasing(until time.Time) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	lw.released = until
}

// passedOn reports whether an acquisition valid until until is the one a
// goroutine of the worker released last: passed on to this one with no
// round (the same validity to the nanosecond, which a round never gives).
// Only the holder of the lock notes a release, so the last one noted is
// the one that handed this acquisition over, if any did.
func (lw *logWriter) passedOn(until time.Time) bool {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return until.Equal(lw.released)
}

func (lw *logWriter) failed(err error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	class := FailureClass(err)
	lw.sum.Failures[class]++
	if _, ok := lw.sum.Samples[class]; !ok {
		lw.sum.Samples[class] = err.Error()
	}
}

func (lw *logWriter) granted(g *Grant) error {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	g.Seq = lw.sum.Grants
	lw.sum.Grants++
	return lw.enc.Encode(LogLine{Grant: g})
}

// handOffObserver remembers whether the last Lock of its Mutex was handed
// the lock by another goroutine's Unlock (a local hand-off), and its value.
type handOffObserver struct {
	// Written and read on the goroutine that calls Lock.
	handedOver bool
	waited     bool // the Lock made more than one try
	value      string
}

func (o *handOffObserver) OnAcquire(_ context.Context, e redsync.AcquireEvent) {
	o.handedOver, o.waited, o.value = e.HandedOver, e.Attempts > 1, e.Value
}
func (*handOffObserver) OnExtend(context.Context, redsync.ExtendEvent)   {}
func (*handOffObserver) OnRelease(context.Context, redsync.ReleaseEvent) {}
func (*handOffObserver) OnLost(context.Context, redsync.LostEvent)       {}

// lockLoop is the loop of one goroutine of a worker: it locks one of
// targets, drawn at random, until ctx ends, each time doing the critical
// section on the target's resources (res is the row's resource). A try or
// a critical section under way when ctx ends is finished first. obs, when
// not nil, is the observer of the mutex of the only target.
func lockLoop(ctx context.Context, cfg WorkerConfig, res *Resource, targets []lockTarget, obs *handOffObserver, goroutine int, lw *logWriter) error {
	granted := 0
	for ctx.Err() == nil {
		target := targets[rand.N(len(targets))]
		mutex := target.mutex
		lock := mutex.TryLock
		if cfg.Goroutines > 1 || cfg.Wait {
			lock = mutex.Lock
		}
		called := Mono()
		err := lock()
		acquired, now := Mono(), time.Now()
		if err != nil {
			lw.failed(err)
			sleep(ctx, time.Millisecond+rand.N(3*time.Millisecond))
			continue
		}
		g := Grant{
			Worker:    cfg.ID,
			Goroutine: goroutine,
			Names:     target.names,
			Called:    called,
			Acquired:  acquired,
			ValidEnd:  acquired + int64(mutex.Until().Sub(now)),
			Token:     mutex.FencingToken(),
		}
		if cfg.Blind {
			g.HandedOver = lw.passedOn(mutex.Until())
		} else {
			g.Value = mutex.Value()
		}
		if obs != nil {
			g.HandedOver, g.Waited = obs.handedOver, obs.waited
			if obs.value != g.Value {
				return fmt.Errorf("worker %d goroutine %d: the observer saw value %q, Mutex.Value is %q", cfg.ID, goroutine, obs.value, g.Value)
			}
		}
		granted++
		hold, owner := cfg.Hold, fmt.Sprintf("%d/%d/%s", cfg.ID, goroutine, g.Value)
		if cfg.Blind {
			owner = fmt.Sprintf("%d/%d/#%d", cfg.ID, goroutine, granted)
		}
		if cfg.LongEvery > 0 && rand.N(cfg.LongEvery) == 0 {
			hold, owner = cfg.LongHold, owner+"/L"
		}
		g.Hold = hold
		if target.names == nil {
			criticalSection(target.res[0], owner, hold, &g)
		} else {
			multiCriticalSection(res, target, owner, hold, &g)
		}
		g.Released = Mono()
		if cfg.Blind {
			lw.releasing(mutex.Until())
		}
		g.Unlocked, err = mutex.Unlock()
		if err != nil {
			g.UnlockErr = err.Error()
		}
		if err := lw.granted(&g); err != nil {
			return err
		}
	}
	return nil
}

// criticalSection enters the resource as owner, reads the counter, sleeps
// hold, writes the counter plus one and leaves, noting each step in g.
func criticalSection(res *Resource, owner string, hold time.Duration, g *Grant) {
	ctx := context.Background()
	var err error
	defer func() {
		if err != nil {
			g.ResourceErr = err.Error()
		}
	}()
	if g.Found, err = res.Enter(ctx, owner); err != nil {
		return
	}
	if g.Read, err = res.ReadCounter(ctx); err != nil {
		return
	}
	time.Sleep(hold)
	if g.Token != 0 {
		fencedWrite(ctx, res, g)
	}
	g.Wrote = g.Read + 1
	if err = res.WriteCounter(ctx, g.Wrote); err != nil {
		return
	}
	err = res.Leave(ctx, owner)
}

// multiCriticalSection is criticalSection for a grant of a multi-key row:
// it enters the resource of each name of target as owner and reads its
// counter, sleeps hold, writes each counter plus one and leaves each
// resource, then counts the grant on res, the row's resource.
func multiCriticalSection(res *Resource, target lockTarget, owner string, hold time.Duration, g *Grant) {
	ctx := context.Background()
	var err error
	defer func() {
		if err != nil {
			g.ResourceErr = err.Error()
		}
	}()
	read := make([]int64, len(target.res))
	for i, r := range target.res {
		var found string
		if found, err = r.Enter(ctx, owner); err != nil {
			return
		}
		if found != "" {
			if g.FoundOn == nil {
				g.FoundOn = map[string]string{}
			}
			g.FoundOn[target.names[i]] = found
		}
		if read[i], err = r.ReadCounter(ctx); err != nil {
			return
		}
	}
	time.Sleep(hold)
	for i, r := range target.res {
		if err = r.WriteCounter(ctx, read[i]+1); err != nil {
			return
		}
		if err = r.Leave(ctx, owner); err != nil {
			return
		}
	}
	err = res.CountGrant(ctx)
}

// IsLongHold reports whether the occupant of the resource is in a long
// critical section (see WorkerConfig.LongEvery).
func IsLongHold(occupant string) bool {
	return strings.HasSuffix(occupant, "/L")
}

// WorkerOf returns the worker id of an occupant of the resource.
func WorkerOf(occupant string) (int, bool) {
	id, _, ok := strings.Cut(occupant, "/")
	if !ok {
		return 0, false
	}
	var n int
	if _, err := fmt.Sscanf(id, "%d", &n); err != nil {
		return 0, false
	}
	return n, true
}

// FailureClass names the kind of a failed try: "taken" (another owner
// holds a quorum), "restarted" (nodes refused by the restart guard),
// "validity" (a quorum answered too late), or "nodes" (node errors:
// timeouts, resets, refused connections).
func FailureClass(err error) string {
	var taken *redsync.ErrTaken
	switch {
	case errors.As(err, &taken):
		return "taken"
	case errors.Is(err, redsync.ErrNodeRestarted):
		return "restarted"
	case strings.Contains(err.Error(), "validity ran out"):
		return "validity"
	}
	return "nodes"
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
