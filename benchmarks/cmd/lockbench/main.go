// Command lockbench measures Lock+Unlock throughput under concurrency, and
// what it costs the Redis servers and the client.
//
// The par workload: G goroutines (default 64), each with a key of its own,
// lock and unlock it over and over for -duration per library; nothing is
// contended but the connections and the servers. For each library it
// prints Lock+Unlock per second, the servers' CPU time per 10,000
// Lock+Unlock (used_cpu_user + used_cpu_sys of INFO cpu, summed over the
// nodes used, before and after the run), the client's CPU time per 10,000
// (getrusage of this process: the library, its driver and the workload
// loop) and the calls that failed.
//
// Libraries (-libs, comma-separated):
//
//   - redlock: this module over go-redis (redis/goredis), one client per node;
//   - redlock-redigo: this module over redigo pools (redis/redigo NewPool);
//   - redlock-batched: this module over redis/redigo NewBatchedPool: the
//     concurrent calls to a node share one connection and its writes;
//   - redsyncv4: github.com/go-redsync/redsync/v4 over go-redis;
//   - redsyncv4-redigo: redsync v4 over redigo pools;
//   - redislock: github.com/bsm/redislock over go-redis (one node only);
//   - rueidislock: github.com/redis/rueidis/rueidislock, KeyMajority 1 (one
//     node only), whose client pipelines concurrent commands itself.
//
// Every go-redis client has the default options but for
// ContextTimeoutEnabled (as in the benchmarks of this module); every
// redigo pool keeps up to G+2 idle connections. Each Redsync library uses
// one Redsync and one Mutex per goroutine, with the default expiry (8s).
//
// Every library is set up (its clients connected) and warmed up for
// -warmup first; then -rounds rounds (default 21) each run every library
// for -duration (default 500ms), in an order that rotates from round to
// round. Short turns, alternated many times, are what compares libraries
// on a shared, noisy machine: whatever else runs weighs on all of them
// alike. The summary gives each library's medians over the rounds and its
// ratios to the reference libraries (-refs), each ratio taken within one
// round. Libraries that work on one node only are skipped when -nodes is
// more than 1; -v prints every round.
//
// Run it from the benchmarks directory:
//
//	go run ./cmd/lockbench -nodes 5 -libs redlock-batched,redlock-redigo,redsyncv4
//	go run ./cmd/lockbench -nodes 1 -libs redlock-batched,redislock,rueidislock
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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bsm/redislock"
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
	workload   string
	duration   time.Duration
	warmup     time.Duration
	goroutines int
	nodes      int
	rounds     int
	verbose    bool
	cpuprofile string
}

// locker locks and unlocks the key of one goroutine.
type locker interface {
	lock(ctx context.Context) error
	unlock(ctx context.Context) error
}

// library sets up one library over addrs, one locker per key; close
// releases its clients.
type library struct {
	name     string
	oneNode  bool // works on one node only
	setup    func(addrs []string, keys []string) (lockers []locker, close func(), err error)
	describe string
}

var libraries = []library{
	{"redlock", false, setupRedlock, "this module, go-redis"},
	{"redlock-redigo", false, setupRedlockRedigo, "this module, redigo NewPool"},
	{"redlock-batched", false, setupRedlockBatched, "this module, redigo NewBatchedPool"},
	{"redsyncv4", false, setupRedsyncV4, "redsync v4.18.1, go-redis"},
	{"redsyncv4-redigo", false, setupRedsyncV4Redigo, "redsync v4.18.1, redigo"},
	{"redislock", true, setupRedislock, "bsm/redislock, go-redis"},
	{"rueidislock", true, setupRueidislock, "rueidislock, KeyMajority 1"},
}

func main() {
	var cfg config
	flag.StringVar(&cfg.workload, "workload", "par", "the `workload`: par (each goroutine locks and unlocks a key of its own)")
	flag.DurationVar(&cfg.duration, "duration", 500*time.Millisecond, "measure for `time` per library and round")
	flag.DurationVar(&cfg.warmup, "warmup", time.Second, "run the workload untimed for `time` per library first")
	flag.IntVar(&cfg.goroutines, "goroutines", 64, "concurrent goroutines")
	flag.IntVar(&cfg.nodes, "nodes", 5, "Redis nodes")
	flag.IntVar(&cfg.rounds, "rounds", 21, "run the libraries this many `times`, interleaved")
	flag.BoolVar(&cfg.verbose, "v", false, "print every round's results")
	libs := flag.String("libs", "redlock-batched,redlock-redigo,redsyncv4", "comma-separated `libraries`: "+libraryNames())
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the rounds to `file`")
	refs := flag.String("refs", "redsyncv4,redislock,rueidislock", "comma-separated reference `libraries` of the ratios")
	flag.Parse()
	if cfg.workload != "par" {
		fmt.Fprintf(os.Stderr, "lockbench: unknown workload %q\n", cfg.workload)
		os.Exit(2)
	}
	if cfg.goroutines < 1 || cfg.nodes < 1 || cfg.duration <= 0 || cfg.rounds < 1 || cfg.warmup < 0 {
		fmt.Fprintln(os.Stderr, "lockbench: -goroutines, -nodes, -duration and -rounds must be positive")
		os.Exit(2)
	}
	cfg.cpuprofile = *cpuprofile
	if err := run(cfg, split(*libs), split(*refs)); err != nil {
		fmt.Fprintln(os.Stderr, "lockbench:", err)
		os.Exit(1)
	}
}

func libraryNames() string {
	var names []string
	for _, l := range libraries {
		names = append(names, l.name)
	}
	return strings.Join(names, ", ")
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// result is one library's run.
type result struct {
	ops       int     // Lock+Unlock completed in the measured time
	rate      float64 // ops per second
	redisCPU  float64 // seconds of the servers' CPU per 10,000 ops
	clientCPU float64 // seconds of this process's CPU per 10,000 ops
	failed    int     // Lock or Unlock calls that failed
	lastErr   error   // of the last call that failed
}

func run(cfg config, names, refNames []string) error {
	var libs []library
	for _, name := range names {
		i := slices.IndexFunc(libraries, func(l library) bool { return l.name == name })
		if i < 0 {
			return fmt.Errorf("unknown library %q (known: %s)", name, libraryNames())
		}
		if libraries[i].oneNode && cfg.nodes > 1 {
			fmt.Fprintf(os.Stderr, "lockbench: %s works on one node only: skipped at -nodes %d\n", name, cfg.nodes)
			continue
		}
		libs = append(libs, libraries[i])
	}
	if len(libs) == 0 {
		return errors.New("no library to run")
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

	fmt.Printf("command: go run ./cmd/lockbench %s\n", strings.Join(os.Args[1:], " "))
	fmt.Printf("workload %s: %d goroutines, each locking and unlocking a key of its own; %d node(s); %d rounds of %v per library, in turn; GOMAXPROCS %d\n",
		cfg.workload, cfg.goroutines, cfg.nodes, cfg.rounds, cfg.duration, goMaxProcs())
	for _, l := range libs {
		fmt.Printf("  %s: %s\n", l.name, l.describe)
	}
	// Every library is set up and warmed up first, and stays connected:
	// the rounds then only alternate the libraries' work.
	setups := make([]*setup, len(libs))
	for i, lib := range libs {
		st, err := newSetup(cfg, lib, servers)
		if err != nil {
			return fmt.Errorf("%s: %w", lib.name, err)
		}
		defer st.close()
		setups[i] = st
	}
	if cfg.verbose {
		fmt.Println()
		fmt.Println("| round | library | Lock+Unlock/s | Redis CPU s per 10k | client CPU s per 10k | failed calls |")
		fmt.Println("|---|---|---|---|---|---|")
	}
	if cfg.cpuprofile != "" {
		f, err := os.Create(cfg.cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	results := make([][]result, cfg.rounds) // results[round][library]
	for r := range cfg.rounds {
		results[r] = make([]result, len(libs))
		for k := range libs {
			i := (r + k) % len(libs) // rotate the order from round to round
			res, err := setups[i].measure(cfg.duration)
			if err != nil {
				return fmt.Errorf("%s: %w", libs[i].name, err)
			}
			results[r][i] = res
			if cfg.verbose {
				fmt.Printf("| %d | %s | %.0f | %.3f | %.3f | %d |\n", r+1, libs[i].name, res.rate, res.redisCPU, res.clientCPU, res.failed)
			}
			if res.lastErr != nil {
				fmt.Fprintf(os.Stderr, "lockbench: round %d, %s: %d failed calls, the last with: %v\n", r+1, libs[i].name, res.failed, res.lastErr)
			}
		}
	}
	summarize(libs, refNames, results)
	return nil
}

func goMaxProcs() int { return runtime.GOMAXPROCS(0) }

// summarize prints each library's medians over the rounds and, for each
// reference library that ran, the medians of the ratios to it, each taken
// within one round.
func summarize(libs []library, refNames []string, results [][]result) {
	var refs []int
	for _, name := range refNames {
		if i := slices.IndexFunc(libs, func(l library) bool { return l.name == name }); i >= 0 {
			refs = append(refs, i)
		}
	}
	fmt.Printf("\nmedians over %d rounds; ratios taken within each round, median (min-max):\n\n", len(results))
	header := "| library | Lock+Unlock/s | Redis CPU s per 10k | client CPU s per 10k | failed calls |"
	sep := "|---|---|---|---|---|"
	for _, ref := range refs {
		header += fmt.Sprintf(" Lock+Unlock/s vs %s | Redis CPU vs %s |", libs[ref].name, libs[ref].name)
		sep += "---|---|"
	}
	fmt.Println(header)
	fmt.Println(sep)
	for i, lib := range libs {
		var rate, redisCPU, clientCPU []float64
		failed := 0
		for _, round := range results {
			rate = append(rate, round[i].rate)
			redisCPU = append(redisCPU, round[i].redisCPU)
			clientCPU = append(clientCPU, round[i].clientCPU)
			failed += round[i].failed
		}
		line := fmt.Sprintf("| %s | %.0f | %.3f | %.3f | %d |", lib.name, median(rate), median(redisCPU), median(clientCPU), failed)
		for _, ref := range refs {
			var rr, cr []float64
			for _, round := range results {
				rr = append(rr, round[i].rate/round[ref].rate)
				cr = append(cr, round[i].redisCPU/round[ref].redisCPU)
			}
			line += fmt.Sprintf(" %s | %s |", ratioCell(rr), ratioCell(cr))
		}
		fmt.Println(line)
	}
}

// ratioCell formats the median of ratios with their range.
func ratioCell(ratios []float64) string {
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

// setup is one library connected to its nodes, ready to run.
type setup struct {
	servers []*redistest.Server
	lockers []locker
	close   func()
}

// newSetup sets lib up on the first nodes of servers (one for a library
// of one node), one locker per goroutine, and warms it up: connections
// dialled, scripts loaded.
func newSetup(cfg config, lib library, servers []*redistest.Server) (*setup, error) {
	n := cfg.nodes
	if lib.oneNode {
		n = 1
	}
	servers = servers[:n]
	addrs := make([]string, n)
	for i, s := range servers {
		addrs[i] = s.Addr()
	}
	keys := make([]string, cfg.goroutines)
	for g := range keys {
		keys[g] = fmt.Sprintf("lockbench:%s:%d", lib.name, g)
	}
	lockers, closeLib, err := lib.setup(addrs, keys)
	if err != nil {
		return nil, err
	}
	if _, err := work(lockers, cfg.warmup); err != nil {
		closeLib()
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	return &setup{servers: servers, lockers: lockers, close: closeLib}, nil
}

// measure runs the workload for d between two readings of the servers'
// and the process's CPU time.
func (st *setup) measure(d time.Duration) (result, error) {
	cpu0, err := serversCPU(st.servers)
	if err != nil {
		return result{}, err
	}
	self0 := processCPU()
	start := time.Now()
	c, err := work(st.lockers, d)
	elapsed := time.Since(start)
	self1 := processCPU()
	cpu1, cerr := serversCPU(st.servers)
	if err != nil {
		return result{}, err
	}
	if cerr != nil {
		return result{}, cerr
	}
	res := result{ops: c.ops, failed: c.failed, lastErr: c.lastErr}
	if c.ops > 0 {
		res.rate = float64(c.ops) / elapsed.Seconds()
		res.redisCPU = (cpu1 - cpu0) / float64(c.ops) * 1e4
		res.clientCPU = (self1 - self0).Seconds() / float64(c.ops) * 1e4
	}
	return res, nil
}

// callTimeout bounds every call past the end of a run.
const callTimeout = 2 * time.Second

// counts are what work did.
type counts struct {
	ops     int
	failed  int
	lastErr error // of the last call that failed
}

// work runs every locker in a goroutine of its own for d: Lock, Unlock,
// again. A failed call is counted and, after a Lock that failed, the
// goroutine tries again.
func work(lockers []locker, d time.Duration) (counts, error) {
	if d <= 0 {
		return counts{}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var ops, failed atomic.Int64
	var lastErr atomic.Value
	var wg sync.WaitGroup
	// The calls are bounded by the run's end plus callTimeout, not by
	// the end itself, so that none is cut short and counted as failed;
	// a call that hangs (rueidislock's Lock can wait for a release that
	// never comes, after its 20ms try timed out on a loaded machine) fails
	// then, and the run is that much longer.
	calls, cancelCalls := context.WithTimeout(context.Background(), d+callTimeout)
	defer cancelCalls()
	for _, l := range lockers {
		wg.Go(func() {
			bg := calls
			for ctx.Err() == nil {
				if err := l.lock(bg); err != nil {
					failed.Add(1)
					lastErr.Store(err)
					continue
				}
				if err := l.unlock(bg); err != nil {
					failed.Add(1)
					lastErr.Store(err)
					continue
				}
				ops.Add(1)
			}
		})
	}
	wg.Wait()
	c := counts{ops: int(ops.Load()), failed: int(failed.Load())}
	if err, ok := lastErr.Load().(error); ok {
		c.lastErr = err
	}
	return c, nil
}

// serversCPU returns the CPU time (user + system, seconds) the servers
// used so far, summed.
func serversCPU(servers []*redistest.Server) (float64, error) {
	total := 0.0
	for _, s := range servers {
		rep, err := s.Do("INFO", "cpu")
		if err != nil {
			return 0, err
		}
		found := 0
		for _, line := range strings.Split(rep.Str, "\n") {
			k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
			if !ok || (k != "used_cpu_user" && k != "used_cpu_sys") {
				continue
			}
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, fmt.Errorf("INFO cpu on %s: %s: %w", s.Addr(), line, err)
			}
			total += f
			found++
		}
		if found != 2 {
			return 0, fmt.Errorf("INFO cpu on %s: no used_cpu_user and used_cpu_sys in %q", s.Addr(), rep.Str)
		}
	}
	return total, nil
}

// processCPU returns the CPU time (user + system) of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// goredisClients opens one go-redis client per address, with the default
// options but for ContextTimeoutEnabled.
func goredisClients(addrs []string) ([]*goredislib.Client, func()) {
	clients := make([]*goredislib.Client, len(addrs))
	for i, a := range addrs {
		clients[i] = goredislib.NewClient(&goredislib.Options{Addr: a, ContextTimeoutEnabled: true})
	}
	return clients, func() {
		for _, c := range clients {
			c.Close()
		}
	}
}

// redigoPools opens one redigo pool per address, with an idle connection
// for every goroutine.
func redigoPools(addrs []string, goroutines int) ([]*redigolib.Pool, func()) {
	pools := make([]*redigolib.Pool, len(addrs))
	for i, a := range addrs {
		pools[i] = &redigolib.Pool{
			MaxIdle: goroutines + 2,
			DialContext: func(ctx context.Context) (redigolib.Conn, error) {
				return redigolib.DialContext(ctx, "tcp", a)
			},
		}
	}
	return pools, func() {
		for _, p := range pools {
			p.Close()
		}
	}
}

type redlockLocker struct{ m *redlock.Mutex }

func (l redlockLocker) lock(ctx context.Context) error   { return l.m.LockContext(ctx) }
func (l redlockLocker) unlock(ctx context.Context) error { return unlocked(l.m.UnlockContext(ctx)) }

func redlockLockers(pools []redlockredis.Pool, keys []string) []locker {
	rs := redlock.New(pools...)
	lockers := make([]locker, len(keys))
	for i, k := range keys {
		lockers[i] = redlockLocker{rs.NewMutex(k)}
	}
	return lockers
}

func setupRedlock(addrs []string, keys []string) ([]locker, func(), error) {
	clients, closeClients := goredisClients(addrs)
	pools := make([]redlockredis.Pool, len(clients))
	for i, c := range clients {
		pools[i] = redlockgoredis.NewPool(c)
	}
	return redlockLockers(pools, keys), closeClients, nil
}

func setupRedlockRedigo(addrs []string, keys []string) ([]locker, func(), error) {
	rps, closePools := redigoPools(addrs, len(keys))
	pools := make([]redlockredis.Pool, len(rps))
	for i, p := range rps {
		pools[i] = redlockredigo.NewPool(p)
	}
	return redlockLockers(pools, keys), closePools, nil
}

func setupRedlockBatched(addrs []string, keys []string) ([]locker, func(), error) {
	rps, closePools := redigoPools(addrs, len(keys))
	pools := make([]redlockredis.Pool, len(rps))
	batched := make([]*redlockredigo.BatchedPool, len(rps))
	for i, p := range rps {
		batched[i] = redlockredigo.NewBatchedPool(p)
		pools[i] = batched[i]
	}
	return redlockLockers(pools, keys), func() {
		for _, b := range batched {
			b.Close()
		}
		closePools()
	}, nil
}

type redsyncV4Locker struct{ m *redsyncv4.Mutex }

func (l redsyncV4Locker) lock(ctx context.Context) error   { return l.m.LockContext(ctx) }
func (l redsyncV4Locker) unlock(ctx context.Context) error { return unlocked(l.m.UnlockContext(ctx)) }

func redsyncV4Lockers(pools []redsyncv4redis.Pool, keys []string) []locker {
	rs := redsyncv4.New(pools...)
	lockers := make([]locker, len(keys))
	for i, k := range keys {
		lockers[i] = redsyncV4Locker{rs.NewMutex(k)}
	}
	return lockers
}

func setupRedsyncV4(addrs []string, keys []string) ([]locker, func(), error) {
	clients, closeClients := goredisClients(addrs)
	pools := make([]redsyncv4redis.Pool, len(clients))
	for i, c := range clients {
		pools[i] = redsyncv4goredis.NewPool(c)
	}
	return redsyncV4Lockers(pools, keys), closeClients, nil
}

func setupRedsyncV4Redigo(addrs []string, keys []string) ([]locker, func(), error) {
	rps, closePools := redigoPools(addrs, len(keys))
	pools := make([]redsyncv4redis.Pool, len(rps))
	for i, p := range rps {
		pools[i] = redsyncv4redigo.NewPool(p)
	}
	return redsyncV4Lockers(pools, keys), closePools, nil
}

// redislockLocker holds the lock it obtained last.
type redislockLocker struct {
	client *redislock.Client
	key    string
	held   *redislock.Lock
}

func (l *redislockLocker) lock(ctx context.Context) error {
	lk, err := l.client.Obtain(ctx, l.key, 8*time.Second, nil)
	if err != nil {
		return err
	}
	l.held = lk
	return nil
}

func (l *redislockLocker) unlock(ctx context.Context) error {
	if l.held == nil {
		return errors.New("not locked")
	}
	err := l.held.Release(ctx)
	l.held = nil
	return err
}

func setupRedislock(addrs []string, keys []string) ([]locker, func(), error) {
	clients, closeClients := goredisClients(addrs[:1])
	client := redislock.New(clients[0])
	lockers := make([]locker, len(keys))
	for i, k := range keys {
		lockers[i] = &redislockLocker{client: client, key: k}
	}
	return lockers, closeClients, nil
}

// rueidisLocker holds the release function of its current acquisition,
// which returns once the key is deleted.
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

func (l *rueidisLocker) unlock(context.Context) error {
	if l.release == nil {
		return errors.New("not locked")
	}
	l.release()
	l.release = nil
	return nil
}

func setupRueidislock(addrs []string, keys []string) ([]locker, func(), error) {
	lk, err := rueidislock.NewLocker(rueidislock.LockerOption{
		ClientOption: rueidis.ClientOption{InitAddress: addrs[:1]},
		KeyMajority:  1,
		KeyValidity:  8 * time.Second,
	})
	if err != nil {
		return nil, nil, err
	}
	lockers := make([]locker, len(keys))
	for i, k := range keys {
		lockers[i] = &rueidisLocker{locker: lk, key: k}
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
