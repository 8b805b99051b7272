// Command primbench measures the primitives built on the Mutex, the
// RWMutex and the Semaphore, against the Mutex, on the same redis-server
// nodes in one run (five by default, started on loopback):
//
//   - uncontended: one goroutine, one key per primitive; each iteration runs
//     one Lock+Unlock of a Mutex, one RLock+RUnlock and one Lock+Unlock of
//     an RWMutex, and one Acquire+Release of a Semaphore, in an order that
//     rotates, so that load on the machine weighs on all of them alike. It
//     prints each one's median time per pair over the rounds, and the
//     medians of the per-round ratios to the Mutex.
//   - contended: G goroutines (16 by default) on one name, each with a
//     primitive value of its own (as separate clients would), looping
//     acquire, hold, release: readers of an RWMutex, writers of it, a
//     Mutex, and a Semaphore of P permits, each for the round's duration in
//     turn. It prints acquisitions per second (medians over the rounds),
//     and the median of the per-round ratios of readers to writers.
//
// Every call is bounded, failed calls are counted and printed, and a
// round with failed calls is reported as such.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredislib "github.com/redis/go-redis/v9"

	redlock "github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/internal/redistest"
	redlockredis "github.com/go-redlock/redsync/redis"
	redlockgoredis "github.com/go-redlock/redsync/redis/goredis"
)

func main() {
	nodes := flag.Int("nodes", 5, "Redis nodes")
	rounds := flag.Int("rounds", 7, "rounds of each part, interleaved")
	iterations := flag.Int("iterations", 2000, "uncontended: iterations per round")
	duration := flag.Duration("duration", 2*time.Second, "contended: measure each workload for `time` per round")
	goroutines := flag.Int("goroutines", 16, "contended: goroutines per workload")
	hold := flag.Duration("hold", time.Millisecond, "contended: how long each acquisition is held")
	permits := flag.Int("permits", 4, "contended: the Semaphore's permits")
	parts := flag.String("parts", "uncontended,contended", "comma-separated parts to run")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the run to `file`")
	flag.Parse()
	if *nodes < 1 || *rounds < 1 || *iterations < 1 || *duration <= 0 || *goroutines < 1 || *hold < 0 || *permits < 1 {
		fmt.Fprintln(os.Stderr, "primbench: -nodes, -rounds, -iterations, -duration, -goroutines and -permits must be positive, -hold not negative")
		os.Exit(2)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "primbench:", err)
			os.Exit(1)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "primbench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	cfg := config{nodes: *nodes, rounds: *rounds, iterations: *iterations, duration: *duration,
		goroutines: *goroutines, hold: *hold, permits: *permits}
	if err := run(cfg, strings.Split(*parts, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "primbench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

type config struct {
	nodes, rounds, iterations int
	duration, hold            time.Duration
	goroutines, permits       int
}

func run(cfg config, parts []string) error {
	servers, err := redistest.LaunchN(cfg.nodes)
	if err != nil {
		return err
	}
	defer func() {
		for _, s := range servers {
			s.Close()
		}
	}()
	var clients []*goredislib.Client
	pools := make([]redlockredis.Pool, len(servers))
	for i, s := range servers {
		c := goredislib.NewClient(&goredislib.Options{Addr: s.Addr(), ContextTimeoutEnabled: true, PoolSize: 4 * cfg.goroutines})
		clients = append(clients, c)
		pools[i] = redlockgoredis.NewPool(c)
	}
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	rs := redlock.New(pools...)
	fmt.Printf("command: go run ./cmd/primbench %s\n", strings.Join(os.Args[1:], " "))
	fmt.Printf("%d node(s), go-redis v9, GOMAXPROCS %d\n", cfg.nodes, runtime.GOMAXPROCS(0))
	for _, p := range parts {
		switch strings.TrimSpace(p) {
		case "uncontended":
			if err := uncontended(cfg, rs); err != nil {
				return fmt.Errorf("uncontended: %w", err)
			}
		case "contended":
			if err := contended(cfg, rs); err != nil {
				return fmt.Errorf("contended: %w", err)
			}
		case "":
		default:
			return fmt.Errorf("unknown part %q (known: uncontended, contended)", p)
		}
	}
	return nil
}

// pair is one acquisition and its release.
type pair struct {
	name    string
	acquire func(ctx context.Context) (release func(ctx context.Context) error, err error)
}

// released turns the result of an Unlock or Release into an error.
func released(ok bool, err error) error {
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("release: not held")
	}
	return nil
}

func mutexPair(rs *redlock.Redsync, name string, opts ...redlock.Option) pair {
	m := rs.NewMutex(name, opts...)
	return pair{"Mutex Lock+Unlock", func(ctx context.Context) (func(context.Context) error, error) {
		if err := m.LockContext(ctx); err != nil {
			return nil, err
		}
		return func(ctx context.Context) error { return released(m.UnlockContext(ctx)) }, nil
	}}
}

func readPair(rs *redlock.Redsync, name string, opts ...redlock.Option) pair {
	rw := rs.NewRWMutex(name, opts...)
	return pair{"RWMutex RLock+RUnlock", func(ctx context.Context) (func(context.Context) error, error) {
		if err := rw.RLockContext(ctx); err != nil {
			return nil, err
		}
		return func(ctx context.Context) error { return released(rw.RUnlockContext(ctx)) }, nil
	}}
}

func writePair(rs *redlock.Redsync, name string, opts ...redlock.Option) pair {
	rw := rs.NewRWMutex(name, opts...)
	return pair{"RWMutex Lock+Unlock", func(ctx context.Context) (func(context.Context) error, error) {
		if err := rw.LockContext(ctx); err != nil {
			return nil, err
		}
		return func(ctx context.Context) error { return released(rw.UnlockContext(ctx)) }, nil
	}}
}

func semaphorePair(rs *redlock.Redsync, name string, permits int, opts ...redlock.Option) pair {
	s := rs.NewSemaphore(name, permits, opts...)
	return pair{fmt.Sprintf("Semaphore(%d) Acquire+Release", permits), func(ctx context.Context) (func(context.Context) error, error) {
		p, err := s.Acquire(ctx)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) error { return released(p.Release(ctx)) }, nil
	}}
}

// callTimeout bounds each acquisition and release.
const callTimeout = 10 * time.Second

func once(p pair) error {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	release, err := p.acquire(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	if err := release(ctx); err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	return nil
}

// uncontended interleaves one acquisition and release of each primitive
// per iteration, the first of them the Mutex, each on a name of its own.
func uncontended(cfg config, rs *redlock.Redsync) error {
	pairs := []pair{
		mutexPair(rs, "primbench:u:mutex"),
		readPair(rs, "primbench:u:rw-read"),
		writePair(rs, "primbench:u:rw-write"),
		semaphorePair(rs, "primbench:u:sem", 4),
	}
	for _, p := range pairs { // warm-up: connections, scripts
		if err := once(p); err != nil {
			return err
		}
	}
	perOp := make([][]float64, len(pairs)) // [pair][round] µs per pair
	ratios := make([][]float64, len(pairs))
	for r := range cfg.rounds {
		totals := make([]time.Duration, len(pairs))
		for it := range cfg.iterations {
			for k := range pairs {
				i := (it + k) % len(pairs)
				start := time.Now()
				if err := once(pairs[i]); err != nil {
					return fmt.Errorf("round %d: %w", r+1, err)
				}
				totals[i] += time.Since(start)
			}
		}
		for i := range pairs {
			perOp[i] = append(perOp[i], float64(totals[i].Microseconds())/float64(cfg.iterations))
			ratios[i] = append(ratios[i], float64(totals[i])/float64(totals[0]))
		}
	}
	fmt.Printf("\nuncontended: %d rounds of %d iterations, each iteration one of each, interleaved\n\n", cfg.rounds, cfg.iterations)
	fmt.Println("| operation | median µs | median ratio to Mutex Lock+Unlock | ratio range |")
	fmt.Println("|---|---|---|---|")
	for i, p := range pairs {
		fmt.Printf("| %s | %.1f | %.3fx | %.3f-%.3f |\n", p.name, median(perOp[i]), median(ratios[i]), slices.Min(ratios[i]), slices.Max(ratios[i]))
	}
	return nil
}

// workload is G goroutines looping acquire, hold, release on one name.
type workload struct {
	name  string
	pairs []pair // one per goroutine
}

func contended(cfg config, rs *redlock.Redsync) error {
	// Calls wait as long as a round lasts rather than fail after the
	// default tries: the workloads count acquisitions, not give-ups.
	opts := []redlock.Option{redlock.WithTries(1 << 20)}
	var loads []workload
	add := func(name string, mk func(g int) pair) {
		w := workload{name: name}
		for g := range cfg.goroutines {
			w.pairs = append(w.pairs, mk(g))
		}
		loads = append(loads, w)
	}
	add("RWMutex readers", func(int) pair { return readPair(rs, "primbench:c:rw", opts...) })
	add("RWMutex writers", func(int) pair { return writePair(rs, "primbench:c:rw", opts...) })
	add("Mutex", func(int) pair { return mutexPair(rs, "primbench:c:mutex", opts...) })
	add(fmt.Sprintf("Semaphore(%d)", cfg.permits), func(int) pair {
		return semaphorePair(rs, "primbench:c:sem", cfg.permits, opts...)
	})
	rates := make([][]float64, len(loads))
	var readWrite []float64
	for r := range cfg.rounds {
		got := make([]float64, len(loads))
		for k := range loads {
			i := (r + k) % len(loads)
			n, failed, err := loads[i].run(cfg.duration, cfg.hold)
			if failed > 0 {
				fmt.Fprintf(os.Stderr, "primbench: round %d, %s: %d failed calls, the last with: %v\n", r+1, loads[i].name, failed, err)
			}
			got[i] = float64(n) / cfg.duration.Seconds()
			rates[i] = append(rates[i], got[i])
		}
		if got[1] > 0 {
			readWrite = append(readWrite, got[0]/got[1])
		}
	}
	fmt.Printf("\ncontended: %d goroutines per workload on one name, each with a value of its own; hold %v; %d rounds of %v per workload, in turn\n\n",
		cfg.goroutines, cfg.hold, cfg.rounds, cfg.duration)
	fmt.Println("| workload | acquisitions/s (median) | range |")
	fmt.Println("|---|---|---|")
	for i, w := range loads {
		fmt.Printf("| %s | %.0f | %.0f-%.0f |\n", w.name, median(rates[i]), slices.Min(rates[i]), slices.Max(rates[i]))
	}
	if len(readWrite) > 0 {
		fmt.Printf("\nreaders/writers: median %.1fx (range %.1f-%.1f)\n", median(readWrite), slices.Min(readWrite), slices.Max(readWrite))
	} else {
		fmt.Println("\nreaders/writers: no writer acquired in any round")
	}
	return nil
}

// run loops every goroutine's pair for d and returns the acquisitions
// that ended in a release, the failed calls, and the last failure.
func (w workload) run(d, hold time.Duration) (int, int, error) {
	end := time.Now().Add(d)
	var done, failed atomic.Int64
	var last atomic.Value
	var wg sync.WaitGroup
	for _, p := range w.pairs {
		wg.Go(func() {
			for time.Now().Before(end) {
				// An acquisition may wait past the end: it is bounded by
				// the end plus callTimeout, and not counted if late.
				ctx, cancel := context.WithDeadline(context.Background(), end.Add(callTimeout))
				release, err := p.acquire(ctx)
				if err != nil {
					cancel()
					failed.Add(1)
					last.Store(err)
					continue
				}
				time.Sleep(hold)
				err = release(ctx)
				cancel()
				switch {
				case err != nil:
					failed.Add(1)
					last.Store(err)
				case time.Now().Before(end):
					done.Add(1)
				}
			}
		})
	}
	wg.Wait()
	err, _ := last.Load().(error)
	return int(done.Load()), int(failed.Load()), err
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
