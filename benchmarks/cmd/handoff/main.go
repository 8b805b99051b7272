// Command handoff measures how fast a contended lock changes hands.
//
// G goroutines (default 16) compete for one key: each takes the lock,
// holds it for -hold (1ms), releases it, then works -work (5ms) outside the
// lock, over and over for -duration (5s) per library. All libraries run in
// one invocation, against the same redis-server processes (started on
// 127.0.0.1 through internal/redistest):
//
//   - redlock: this module with default options (hand-off by notification
//     and local hand-off on), one Redsync over -nodes nodes (default 5), one
//     Mutex per goroutine;
//   - redlock-separate: the same, but each goroutine with a Redsync of its
//     own, as if in a process of its own: no local hand-off, waiters woken
//     by release announcements (not run unless named in -libs);
//   - redsyncv4: github.com/go-redsync/redsync/v4 with default options, the
//     same shape;
//   - redlock-redigo, redsyncv4-redigo: redlock and redsyncv4 over
//     github.com/gomodule/redigo pools instead of go-redis clients (redlock
//     then sends each round to all nodes from one goroutine, pipelined);
//   - rueidislock: github.com/redis/rueidis/rueidislock on one node
//     (KeyMajority 1), whose waiters are woken by client-side caching
//     invalidations: the single-node anchor.
//
// For each library it prints hand-offs per second (acquisitions / duration),
// the wait of Lock (from the call to the grant) at p50 and p99, Jain's
// fairness index over the goroutines' acquisition counts (1 = all equal,
// 1/G = one goroutine got everything), and the Lock calls that gave up and
// Unlock calls that failed. The limit is 1 / (hold + one round trip), with
// the hold and the round trip (an uncontended redlock Lock on -nodes nodes,
// over the library's driver) measured first: the bound of a hand-off that
// costs one round trip, as redlock's local hand-off does.
//
// Run it from the benchmarks directory:
//
//	go run ./cmd/handoff
//	go run ./cmd/handoff -duration 10s -libs redlock,redsyncv4
//	go run ./cmd/handoff -libs redlock,redlock-redigo,redsyncv4,redsyncv4-redigo
//	go run ./cmd/handoff -libs redlock,redsyncv4 -rounds 7 -duration 3s
//
// With -rounds R, the libraries run R times in turn, and a summary gives
// each library's medians and its ratios to redsyncv4, each ratio taken
// within one round: on a shared, noisy machine that is what compares them
// under the same conditions.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	redsyncv4 "github.com/go-redsync/redsync/v4"
	redsyncv4redis "github.com/go-redsync/redsync/v4/redis"
	redsyncv4goredis "github.com/go-redsync/redsync/v4/redis/goredis/v9"
	redsyncv4redigo "github.com/go-redsync/redsync/v4/redis/redigo"
	redigolib "github.com/gomodule/redigo/redis"
	goredislib "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
	"github.com/redis/rueidis/rueidislock"

	redlock "github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/internal/redistest"
	redlockredis "github.com/go-redlock/redsync/redis"
	redlockgoredis "github.com/go-redlock/redsync/redis/goredis"
	redlockredigo "github.com/go-redlock/redsync/redis/redigo"
)

// config is the workload.
type config struct {
	duration   time.Duration
	goroutines int
	hold       time.Duration
	work       time.Duration
	nodes      int
	rounds     int
	procs      int // 0: goroutines of one process; else this many processes, one goroutine each
}

// locker is one goroutine's handle on the contended lock of a library.
type locker interface {
	lock(ctx context.Context) error
	unlock() error
}

// library sets up one library over addrs; close releases its clients.
type library struct {
	name   string
	driver string // whose round trip the limit uses: "go-redis" or "redigo"
	nodes  func(cfg config) int
	setup  func(addrs []string, key string, goroutines int) (lockers []locker, close func(), err error)
}

func allNodes(c config) int { return c.nodes }

var libraries = []library{
	{"redlock", "go-redis", allNodes, setupRedlock},
	{"redlock-separate", "go-redis", allNodes, setupRedlockSeparate},
	{"redlock-redigo", "redigo", allNodes, setupRedlockRedigo},
	{"redsyncv4", "go-redis", allNodes, setupRedsyncV4},
	{"redsyncv4-redigo", "redigo", allNodes, setupRedsyncV4Redigo},
	{"rueidislock", "go-redis", func(config) int { return 1 }, setupRueidislock},
}

func main() {
	if workerMain() {
		return
	}
	var cfg config
	flag.DurationVar(&cfg.duration, "duration", 5*time.Second, "run `time` per library")
	flag.IntVar(&cfg.goroutines, "goroutines", 16, "competing goroutines")
	flag.DurationVar(&cfg.hold, "hold", time.Millisecond, "time each goroutine holds the lock")
	flag.DurationVar(&cfg.work, "work", 5*time.Millisecond, "time each goroutine works outside the lock between acquisitions")
	flag.IntVar(&cfg.nodes, "nodes", 5, "Redis nodes of the Redlock libraries")
	flag.IntVar(&cfg.procs, "procs", 0, "run `N` OS processes, each with one goroutine and a client of its own, instead of -goroutines goroutines of this process")
	flag.IntVar(&cfg.rounds, "rounds", 1, "run the libraries this many `times`, interleaved, and add a summary of medians")
	libs := flag.String("libs", "redlock,redsyncv4,rueidislock", "comma-separated `libraries` to run (redlock, redlock-separate, redlock-redigo, redsyncv4, redsyncv4-redigo, rueidislock)")
	flag.Parse()
	if cfg.goroutines < 1 || cfg.nodes < 1 || cfg.duration <= 0 || cfg.rounds < 1 || cfg.procs < 0 {
		fmt.Fprintln(os.Stderr, "handoff: -goroutines, -nodes, -duration and -rounds must be positive, -procs not negative")
		os.Exit(2)
	}
	if err := run(cfg, strings.Split(*libs, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "handoff:", err)
		os.Exit(1)
	}
}

func run(cfg config, names []string) error {
	var libs []library
	for _, name := range names {
		i := slices.IndexFunc(libraries, func(l library) bool { return l.name == strings.TrimSpace(name) })
		if i < 0 {
			return fmt.Errorf("unknown library %q", name)
		}
		libs = append(libs, libraries[i])
	}
	servers, err := redistest.LaunchN(cfg.nodes)
	if err != nil {
		return err
	}
	defer func() {
		for _, s := range servers {
			s.Close()
		}
	}()
	addrs := make([]string, len(servers))
	for i, s := range servers {
		addrs[i] = s.Addr()
	}

	hold := measureHold(cfg.hold)
	fmt.Printf("command: go run ./cmd/handoff %s\n", strings.Join(os.Args[1:], " "))
	who := fmt.Sprintf("%d goroutines of one process", cfg.goroutines)
	if cfg.procs > 0 {
		who = fmt.Sprintf("%d OS processes, one goroutine and one client each", cfg.procs)
	}
	fmt.Printf("workload: %s, one key, hold %v, work %v outside the lock, %v per library; redis-server on 127.0.0.1\n",
		who, cfg.hold, cfg.work, cfg.duration)
	limits := map[string]float64{}
	for _, d := range []struct {
		driver string
		setup  func(addrs []string, key string, goroutines int) ([]locker, func(), error)
	}{{"go-redis", setupRedlock}, {"redigo", setupRedlockRedigo}} {
		rtt, err := measureRoundTrip(addrs, d.setup)
		if err != nil {
			return err
		}
		limits[d.driver] = 1 / (hold + rtt).Seconds()
		fmt.Printf("limit over %s: 1/(hold %v measured + round trip %v, an uncontended Lock on %d nodes) = %.0f hand-offs/s\n",
			d.driver, hold.Round(time.Microsecond), rtt.Round(time.Microsecond), cfg.nodes, limits[d.driver])
	}
	fmt.Println()
	round := ""
	if cfg.rounds > 1 {
		round = "round | "
	}
	fmt.Printf("| %slibrary | nodes | hand-offs/s | %% of limit | wait p50 | wait p99 | worst p99 of a competitor | Jain's fairness | failed Lock calls | failed Unlock calls | CPU per hand-off: clients, nodes |\n", round)
	fmt.Printf("|%s---|---|---|---|---|---|---|---|---|---|---|\n", strings.Repeat("---|", len(round)/len("round | ")))
	// runs[r][i]: round r, library i.
	runs := make([][]result, cfg.rounds)
	for r := range cfg.rounds {
		for _, lib := range libs {
			n := lib.nodes(cfg)
			var res result
			var err error
			before := serversCPU(servers[:n])
			if cfg.procs > 0 {
				res, err = measureProcs(cfg, lib, addrs[:n])
			} else {
				res, err = measure(cfg, lib, addrs[:n])
			}
			res.nodeCPU = serversCPU(servers[:n]) - before
			if err != nil {
				return fmt.Errorf("%s: %w", lib.name, err)
			}
			res.rate = float64(res.acquisitions) / cfg.duration.Seconds()
			runs[r] = append(runs[r], res)
			if round != "" {
				fmt.Printf("| %d ", r+1)
			}
			fmt.Printf("| %s | %d | %.0f | %.0f%% | %v | %v | %v | %.3f | %d | %d | %s |\n",
				lib.name, n, res.rate, 100*res.rate/limits[lib.driver], res.p50.Round(10*time.Microsecond), res.p99.Round(10*time.Microsecond),
				res.worstP99.Round(10*time.Microsecond), res.fairness, res.failed, res.unlockFailed, cpuCell(res))
		}
	}
	if cfg.rounds > 1 {
		summarize(libs, limits, runs)
	}
	return nil
}

// summarize prints, over the rounds, each library's median hand-offs/s,
// wait p99, worst p99 of a competitor and fairness and, when redsyncv4
// ran, the medians of the per-round ratios to it (each ratio taken within
// one round, so that both sides saw the same state of the machine), and
// the failed calls of all rounds.
func summarize(libs []library, limits map[string]float64, runs [][]result) {
	ref := slices.IndexFunc(libs, func(l library) bool { return l.name == "redsyncv4" })
	fmt.Printf("\nmedians over %d rounds", len(runs))
	if ref >= 0 {
		fmt.Print("; ratios to redsyncv4 taken within each round")
	}
	fmt.Println(":")
	fmt.Println()
	fmt.Println("| library | hand-offs/s | % of limit | wait p99 | worst p99 | Jain's fairness (min) | hand-offs/s vs redsyncv4 (min-max) | wait p99 vs redsyncv4 (min-max) | worst p99 vs redsyncv4 (min-max) | failed Lock, Unlock calls |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for i, lib := range libs {
		var rate, fair, rateRatio, p99Ratio, worstRatio []float64
		var p99, worst []time.Duration
		failed, unlockFailed := 0, 0
		for r := range runs {
			x := runs[r][i]
			rate = append(rate, x.rate)
			fair = append(fair, x.fairness)
			p99 = append(p99, x.p99)
			worst = append(worst, x.worstP99)
			failed += x.failed
			unlockFailed += x.unlockFailed
			if ref >= 0 {
				y := runs[r][ref]
				rateRatio = append(rateRatio, x.rate/y.rate)
				p99Ratio = append(p99Ratio, float64(x.p99)/float64(y.p99))
				worstRatio = append(worstRatio, float64(x.worstP99)/float64(y.worstP99))
			}
		}
		m := median(rate)
		fmt.Printf("| %s | %.0f | %.0f%% | %v | %v | %.3f (%.3f) | %s | %s | %s | %d, %d |\n", lib.name, m, 100*m/limits[lib.driver],
			medianDuration(p99).Round(10*time.Microsecond), medianDuration(worst).Round(10*time.Microsecond),
			median(fair), slices.Min(fair), ratioCell(rateRatio), ratioCell(p99Ratio), ratioCell(worstRatio), failed, unlockFailed)
	}
}

// cpuCell formats the CPU time per hand-off of the clients (with -procs;
// "-" otherwise) and of the nodes.
func cpuCell(res result) string {
	if res.acquisitions == 0 {
		return "-"
	}
	per := func(d time.Duration) time.Duration {
		return (d / time.Duration(res.acquisitions)).Round(time.Microsecond)
	}
	clients := "-"
	if res.clientCPU > 0 {
		clients = per(res.clientCPU).String()
	}
	return clients + ", " + per(res.nodeCPU).String()
}

// serversCPU returns the user and system time the servers' processes have
// used, from /proc (0 where it cannot be read).
func serversCPU(servers []*redistest.Server) time.Duration {
	var total time.Duration
	for _, s := range servers {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.Pid()))
		if err != nil {
			continue
		}
		// The fields after the command name, which is in parentheses:
		// utime and stime are the 12th and 13th, in clock ticks (100 per
		// second on Linux).
		_, rest, ok := strings.Cut(string(stat), ") ")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) < 13 {
			continue
		}
		for _, f := range fields[11:13] {
			ticks, _ := strconv.ParseInt(f, 10, 64)
			total += time.Duration(ticks) * 10 * time.Millisecond
		}
	}
	return total
}

// ratioCell formats the median of ratios with their range ("" when none).
func ratioCell(ratios []float64) string {
	if len(ratios) == 0 {
		return ""
	}
	return fmt.Sprintf("%.2fx (%.2f-%.2f)", median(ratios), slices.Min(ratios), slices.Max(ratios))
}

// median returns the median of xs (the mean of the middle two for an even
// count).
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianDuration(ds []time.Duration) time.Duration {
	xs := make([]float64, len(ds))
	for i, d := range ds {
		xs[i] = float64(d)
	}
	return time.Duration(median(xs))
}

// result is the outcome of one library's run.
type result struct {
	acquisitions int
	rate         float64 // acquisitions per second
	p50, p99     time.Duration
	worstP99     time.Duration // the highest p99 of one competitor's waits
	fairness     float64
	clientCPU    time.Duration // -procs: the worker processes' CPU time during the run
	nodeCPU      time.Duration // the redis-servers' CPU time during the run
	failed       int           // Lock calls that gave up (tries exhausted)
	unlockFailed int           // Unlock calls that failed
}

// measure runs the workload with one library.
func measure(cfg config, lib library, addrs []string) (result, error) {
	key := "handoff:" + lib.name
	lockers, closeLib, err := lib.setup(addrs, key, cfg.goroutines)
	if err != nil {
		return result{}, err
	}
	defer closeLib()

	// Warm up: connect, load scripts, subscribe once.
	for _, l := range lockers {
		if err := l.lock(context.Background()); err != nil {
			return result{}, fmt.Errorf("warm-up: %w", err)
		}
		if err := l.unlock(); err != nil {
			return result{}, fmt.Errorf("warm-up: %w", err)
		}
	}

	start := time.Now()
	end := start.Add(cfg.duration)
	ctx, cancel := context.WithDeadline(context.Background(), end)
	defer cancel()
	counts := make([]int, cfg.goroutines)
	waits := make([][]time.Duration, cfg.goroutines)
	failed := make([]int, cfg.goroutines)
	unlockFailed := make([]int, cfg.goroutines)
	var wg sync.WaitGroup
	for g, l := range lockers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				t0 := time.Now()
				if err := l.lock(ctx); err != nil {
					if ctx.Err() == nil {
						failed[g]++
					}
					continue
				}
				granted := time.Now()
				if granted.Before(end) {
					counts[g]++
					waits[g] = append(waits[g], granted.Sub(t0))
				}
				time.Sleep(cfg.hold)
				// A failed Unlock (a node stalled past the per-node
				// timeout, say) leaves the lock to expire: counted, and
				// visible in the waits.
				if err := l.unlock(); err != nil {
					unlockFailed[g]++
				}
				time.Sleep(cfg.work)
			}
		}()
	}
	wg.Wait()

	res := result{}
	for g := range counts {
		res.failed += failed[g]
		res.unlockFailed += unlockFailed[g]
	}
	return summarizeRun(counts, waits, res), nil
}

// summarizeRun completes res with the acquisitions, the waits' p50 and p99,
// the worst p99 of one competitor and Jain's fairness index, from each
// competitor's acquisition count and waits.
func summarizeRun(counts []int, waits [][]time.Duration, res result) result {
	var all []time.Duration
	var sum, sumSq float64
	for g := range counts {
		res.acquisitions += counts[g]
		all = append(all, waits[g]...)
		sum += float64(counts[g])
		sumSq += float64(counts[g]) * float64(counts[g])
		own := slices.Clone(waits[g])
		slices.Sort(own)
		res.worstP99 = max(res.worstP99, percentile(own, 0.99))
	}
	if sumSq > 0 {
		res.fairness = sum * sum / (float64(len(counts)) * sumSq)
	}
	slices.Sort(all)
	res.p50, res.p99 = percentile(all, 0.50), percentile(all, 0.99)
	return res
}

// percentile returns the p-quantile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

// measureRoundTrip returns the median of 200 uncontended Locks of this
// library (set up by setup) on addrs: one round trip of the Redlock
// protocol.
func measureRoundTrip(addrs []string, setup func(addrs []string, key string, goroutines int) ([]locker, func(), error)) (time.Duration, error) {
	lockers, closeLib, err := setup(addrs, "handoff:rtt", 1)
	if err != nil {
		return 0, err
	}
	defer closeLib()
	l := lockers[0]
	var samples []time.Duration
	for i := range 220 {
		t0 := time.Now()
		if err := l.lock(context.Background()); err != nil {
			return 0, err
		}
		if i >= 20 { // the first ones connect and load the scripts
			samples = append(samples, time.Since(t0))
		}
		if err := l.unlock(); err != nil {
			return 0, err
		}
	}
	slices.Sort(samples)
	return percentile(samples, 0.5), nil
}

// measureHold returns the median real length of time.Sleep(hold).
func measureHold(hold time.Duration) time.Duration {
	samples := make([]time.Duration, 100)
	for i := range samples {
		t0 := time.Now()
		time.Sleep(hold)
		samples[i] = time.Since(t0)
	}
	slices.Sort(samples)
	return percentile(samples, 0.5)
}

// goredisClients opens one go-redis client (default options) per address.
func goredisClients(addrs []string) ([]*goredislib.Client, func()) {
	clients := make([]*goredislib.Client, len(addrs))
	for i, a := range addrs {
		clients[i] = goredislib.NewClient(&goredislib.Options{Addr: a})
	}
	return clients, func() {
		for _, c := range clients {
			c.Close()
		}
	}
}

type redlockLocker struct{ m *redlock.Mutex }

func (l redlockLocker) lock(ctx context.Context) error { return l.m.LockContext(ctx) }
func (l redlockLocker) unlock() error                  { return unlocked(l.m.Unlock()) }

func setupRedlock(addrs []string, key string, goroutines int) ([]locker, func(), error) {
	clients, closeClients := goredisClients(addrs)
	pools := make([]redlockredis.Pool, len(clients))
	for i, c := range clients {
		pools[i] = redlockgoredis.NewPool(c)
	}
	rs := redlock.New(pools...)
	lockers := make([]locker, goroutines)
	for i := range lockers {
		lockers[i] = redlockLocker{rs.NewMutex(key)}
	}
	return lockers, closeClients, nil
}

// setupRedlockSeparate gives each goroutine a Redsync of its own, as if
// each ran in a process of its own: the lock cannot be handed over locally,
// and waiters are woken by release announcements.
func setupRedlockSeparate(addrs []string, key string, goroutines int) ([]locker, func(), error) {
	clients, closeClients := goredisClients(addrs)
	pools := make([]redlockredis.Pool, len(clients))
	for i, c := range clients {
		pools[i] = redlockgoredis.NewPool(c)
	}
	lockers := make([]locker, goroutines)
	for i := range lockers {
		lockers[i] = redlockLocker{redlock.New(pools...).NewMutex(key)}
	}
	return lockers, closeClients, nil
}

// redigoPools opens one redigo pool per address, with an idle connection
// for every goroutine (and the listeners).
func redigoPools(addrs []string, goroutines int) ([]*redigolib.Pool, func()) {
	pools := make([]*redigolib.Pool, len(addrs))
	for i, a := range addrs {
		pools[i] = &redigolib.Pool{
			MaxIdle: goroutines + 2,
			Dial:    func() (redigolib.Conn, error) { return redigolib.Dial("tcp", a) },
		}
	}
	return pools, func() {
		for _, p := range pools {
			p.Close()
		}
	}
}

func setupRedlockRedigo(addrs []string, key string, goroutines int) ([]locker, func(), error) {
	rps, closePools := redigoPools(addrs, goroutines)
	pools := make([]redlockredis.Pool, len(rps))
	for i, p := range rps {
		pools[i] = redlockredigo.NewPool(p)
	}
	rs := redlock.New(pools...)
	lockers := make([]locker, goroutines)
	for i := range lockers {
		lockers[i] = redlockLocker{rs.NewMutex(key)}
	}
	return lockers, closePools, nil
}

func setupRedsyncV4Redigo(addrs []string, key string, goroutines int) ([]locker, func(), error) {
	rps, closePools := redigoPools(addrs, goroutines)
	pools := make([]redsyncv4redis.Pool, len(rps))
	for i, p := range rps {
		pools[i] = redsyncv4redigo.NewPool(p)
	}
	rs := redsyncv4.New(pools...)
	lockers := make([]locker, goroutines)
	for i := range lockers {
		lockers[i] = redsyncV4Locker{rs.NewMutex(key)}
	}
	return lockers, closePools, nil
}

type redsyncV4Locker struct{ m *redsyncv4.Mutex }

func (l redsyncV4Locker) lock(ctx context.Context) error { return l.m.LockContext(ctx) }
func (l redsyncV4Locker) unlock() error                  { return unlocked(l.m.Unlock()) }

func setupRedsyncV4(addrs []string, key string, goroutines int) ([]locker, func(), error) {
	clients, closeClients := goredisClients(addrs)
	pools := make([]redsyncv4redis.Pool, len(clients))
	for i, c := range clients {
		pools[i] = redsyncv4goredis.NewPool(c)
	}
	rs := redsyncv4.New(pools...)
	lockers := make([]locker, goroutines)
	for i := range lockers {
		lockers[i] = redsyncV4Locker{rs.NewMutex(key)}
	}
	return lockers, closeClients, nil
}

// rueidisLocker holds the release function of its current acquisition.
type rueidisLocker struct {
	locker  rueidislock.Locker
	key     string
	release context.CancelFunc
}

func (l *rueidisLocker) lock(ctx context.Context) error {
	_, cancel, err := l.locker.WithContext(ctx, l.key)
	if err != nil {
		return err
	}
	l.release = cancel
	return nil
}

func (l *rueidisLocker) unlock() error {
	if l.release == nil {
		return errors.New("not locked")
	}
	l.release()
	l.release = nil
	return nil
}

func setupRueidislock(addrs []string, key string, goroutines int) ([]locker, func(), error) {
	lk, err := rueidislock.NewLocker(rueidislock.LockerOption{
		ClientOption: rueidis.ClientOption{InitAddress: addrs[:1]},
		KeyMajority:  1,
	})
	if err != nil {
		return nil, nil, err
	}
	lockers := make([]locker, goroutines)
	for i := range lockers {
		lockers[i] = &rueidisLocker{locker: lk, key: key}
	}
	return lockers, lk.Close, nil
}

// unlocked turns the result of an Unlock into an error.
func unlocked(ok bool, err error) error {
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("the lock was not held")
	}
	return nil
}
