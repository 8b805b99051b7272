// Quickstart shows redsync at work: several workers, each with its own
// [redsync.Mutex] and its own go-redis clients, take turns holding one lock
// kept on five independent Redis nodes. Midway one node is killed with
// SIGKILL, and locking goes on because four nodes still make a quorum
// (three of five).
//
// Run it from the repository root:
//
//	go run ./examples/quickstart
//	go run ./examples/quickstart -workers 6 -rounds 3 -hold 100ms
//
// With REDIS_ADDRS unset it starts five throwaway redis-server processes on
// free ports of 127.0.0.1 (redis-server must be installed) and stops them
// when it ends, also on Ctrl-C or SIGTERM. With
// REDIS_ADDRS="host:port,host:port,..." it uses those nodes instead, and
// neither kills nor stops any of them.
//
// Every worker also records in process which worker holds the lock; two
// holders at once are reported as a VIOLATION, and the program then exits
// with status 1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/goredis"
)

const (
	// lockName is the name of the lock, which is the Redis key on each node.
	lockName = "quickstart-lock"
	// nodeCount is how many redis-server processes run starts itself.
	nodeCount = 5
	// expiry is the lifetime of the lock on the nodes.
	expiry = 2 * time.Second
	// maxHold bounds -hold well inside the expiry, so that a holder never
	// outlives its validity.
	maxHold = expiry / 2
	// waitLimit bounds how long a worker waits for the lock before it gives
	// up and the run fails.
	waitLimit = 10 * time.Second
	// tries is enough retries to fill waitLimit; the context, not the count
	// of tries, ends the wait.
	tries = 1000
	// maxWorkers bounds -workers; each worker has a client per node.
	maxWorkers = 100
	// addrsEnv names the environment variable listing the user's nodes.
	addrsEnv = "REDIS_ADDRS"
)

// config is what run needs to know. The zero value is not usable: workers,
// rounds and hold must be set.
type config struct {
	workers int           // workers contending for the lock
	rounds  int           // acquisitions per worker
	hold    time.Duration // how long each acquisition is held

	// addrs are the nodes to use. When empty, run starts nodeCount
	// throwaway nodes, kills one midway and closes them all before it
	// returns.
	addrs []string

	// started, if not nil, is called with the servers run started, before
	// they are used. Tests use it to check that every process is gone
	// after run returns.
	started func([]*redistest.Server)
}

func (cfg config) validate() error {
	switch {
	case cfg.workers < 1 || cfg.workers > maxWorkers:
		return fmt.Errorf("-workers is %d; it must be from 1 to %d", cfg.workers, maxWorkers)
	case cfg.rounds < 1:
		return fmt.Errorf("-rounds is %d; it must be at least 1", cfg.rounds)
	case cfg.hold <= 0 || cfg.hold > maxHold:
		return fmt.Errorf("-hold is %v; it must be more than 0 and at most %v (half the lock's expiry)", cfg.hold, maxHold)
	}
	return nil
}

func main() {
	var cfg config
	flag.IntVar(&cfg.workers, "workers", 4, "number of workers contending for the lock")
	flag.IntVar(&cfg.rounds, "rounds", 5, "number of times each worker acquires the lock")
	flag.DurationVar(&cfg.hold, "hold", 200*time.Millisecond, "how long a worker holds the lock each time (at most "+maxHold.String()+")")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: quickstart [flags]\n\n"+
			"Runs workers contending for one Redlock lock on throwaway redis-server\n"+
			"nodes, or on the nodes listed in %s=host:port,host:port,...\n\nflags:\n", addrsEnv)
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if list := os.Getenv(addrsEnv); list != "" {
		addrs, err := parseAddrs(list)
		if err != nil {
			fmt.Fprintf(os.Stderr, "quickstart: %s: %v\n", addrsEnv, err)
			os.Exit(1)
		}
		cfg.addrs = addrs
	}

	// go-redis logs every failed dial to the killed node on stderr; the
	// demo reports the kill itself, and lock errors name the failing nodes.
	goredislib.SetLogger(quietLogger{})

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, restore the default handling so that a second
	// Ctrl-C ends the program at once; the nodes it started die with it.
	context.AfterFunc(ctx, stop)

	err := run(ctx, os.Stdout, cfg)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// quietLogger discards the log lines of go-redis.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// parseAddrs splits a comma-separated list of host:port addresses.
func parseAddrs(list string) ([]string, error) {
	var addrs []string
	for a := range strings.SplitSeq(list, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("%q is not a host:port address: %w", a, err)
		}
		addrs = append(addrs, a)
	}
	if len(addrs) == 0 {
		return nil, errors.New("no address given; the form is host:port,host:port")
	}
	return addrs, nil
}

// run starts the nodes (unless cfg lists some), runs the workers, prints
// what happens to out and stops the nodes it started. It returns an error
// when a node could not be started, a worker could not get the lock, ctx
// ended, or mutual exclusion was violated.
func run(ctx context.Context, out io.Writer, cfg config) (err error) {
	if err := cfg.validate(); err != nil {
		return err
	}
	p := &printer{w: out}
	began := time.Now()

	addrs := cfg.addrs
	var servers []*redistest.Server
	if len(addrs) == 0 {
		servers, err = redistest.LaunchN(nodeCount)
		if err != nil {
			return fmt.Errorf("starting %d redis-server nodes: %w", nodeCount, err)
		}
		defer func() {
			p.printf("stopping the %d redis-server nodes it started", len(servers))
			for _, s := range servers {
				if cerr := s.Close(); cerr != nil {
					err = errors.Join(err, cerr)
				}
			}
		}()
		if cfg.started != nil {
			cfg.started(servers)
		}
		for _, s := range servers {
			addrs = append(addrs, s.Addr())
		}
		p.printf("started %d throwaway redis-server nodes: %s", len(servers), strings.Join(addrs, " "))
		p.printf("(set %s=host:port,host:port,... to use your own nodes instead)", addrsEnv)
	} else {
		p.printf("using the %d nodes of %s: %s (none will be killed or stopped)", len(addrs), addrsEnv, strings.Join(addrs, " "))
	}
	quorum := len(addrs)/2 + 1

	// Each worker gets its own clients and its own Redsync, as separate
	// processes would.
	clients := make([][]*goredislib.Client, cfg.workers)
	defer func() {
		for _, cs := range clients {
			for _, c := range cs {
				c.Close()
			}
		}
	}()
	for w := range clients {
		for _, a := range addrs {
			clients[w] = append(clients[w], newClient(a))
		}
	}
	if servers == nil {
		if err := checkNodes(ctx, p, clients[0], quorum); err != nil {
			return err
		}
	}

	c := &contest{p: p, rounds: cfg.rounds, hold: cfg.hold}
	if len(servers) > quorum {
		c.killAt = int64(max(1, cfg.workers*cfg.rounds/2))
		c.kill = func() {
			victim := len(servers) - 1
			if err := servers[victim].Kill(); err != nil {
				c.killErr = fmt.Errorf("killing node %d: %w", victim+1, err)
				p.printf("could not kill node %d: %v", victim+1, err)
				return
			}
			p.printf("killed node %d (%s) with SIGKILL: %d of %d nodes are left, enough for the quorum of %d",
				victim+1, servers[victim].Addr(), len(servers)-1, len(servers), quorum)
		}
	}

	p.printf("%d workers take %q %d times each, holding it %v; expiry %v, quorum %d of %d nodes",
		cfg.workers, lockName, cfg.rounds, cfg.hold, expiry, quorum, len(addrs))
	workers := make([]*worker, cfg.workers)
	var wg sync.WaitGroup
	for i := range workers {
		pools := make([]redis.Pool, len(addrs))
		for n, client := range clients[i] {
			pools[n] = goredis.NewPool(client)
		}
		rs := redsync.New(pools...)
		w := &worker{
			id: i + 1,
			mutex: rs.NewMutex(lockName,
				redsync.WithExpiry(expiry),
				redsync.WithTries(tries),
				redsync.WithRetryDelayFunc(retryDelay),
			),
		}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.work(ctx, w)
		}()
	}
	wg.Wait()

	return c.summarize(ctx, workers, time.Since(began), len(addrs), quorum)
}

// newClient returns a go-redis client for one node.
func newClient(addr string) *goredislib.Client {
	return goredislib.NewClient(&goredislib.Options{
		Addr: addr,
		// A dead node should cost one refused connection, not a series of
		// retries: redsync already retries the whole acquisition.
		MaxRetries:    -1,
		DialerRetries: 1,
		DialTimeout:   500 * time.Millisecond,
		PoolSize:      2,
		// End each command at the per-node timeout redsync gives it.
		ContextTimeoutEnabled: true,
	})
}

// checkNodes pings the user's nodes and fails when fewer than a quorum
// answer, since no lock could then be taken.
func checkNodes(ctx context.Context, p *printer, clients []*goredislib.Client, quorum int) error {
	up := 0
	for i, client := range clients {
		pingCtx, cancel := context.WithTimeout(ctx, time.Second)
		err := client.Ping(pingCtx).Err()
		cancel()
		if err != nil {
			p.printf("node %d (%s) does not answer PING: %v", i+1, client.Options().Addr, err)
			continue
		}
		up++
	}
	if up < quorum {
		return fmt.Errorf("only %d of %d nodes answer; a lock needs %d", up, len(clients), quorum)
	}
	return nil
}

// retryDelay is the wait between two tries of a worker. It is short, so
// that a waiting worker notices a release within tens of milliseconds and
// the printed waits show the hand-off, and random, so that the workers do
// not retry in lock step.
func retryDelay(int) time.Duration {
	return 20*time.Millisecond + rand.N(40*time.Millisecond)
}

// A worker is one contender for the lock. Its counters are written only by
// its own goroutine, and read after that goroutine ended.
type worker struct {
	id    int
	mutex *redsync.Mutex

	acquired int
	maxWait  time.Duration
	err      error // why the worker stopped early, if it did
}

// contest is the state the workers share.
type contest struct {
	p      *printer
	rounds int
	hold   time.Duration

	holder       atomic.Int64 // id of the worker that holds the lock, or 0
	acquisitions atomic.Int64
	violations   atomic.Int64

	// kill, when not nil, is called once, by the worker that made
	// acquisition number killAt, after it released the lock. It sets
	// killErr if it fails; both are read after every worker ended.
	killAt  int64
	kill    func()
	killErr error
}

// work runs the rounds of worker w: wait for the lock, hold it, release it,
// pause. It returns early when ctx ends or the lock cannot be acquired.
func (c *contest) work(ctx context.Context, w *worker) {
	for range c.rounds {
		start := time.Now()
		lockCtx, cancel := context.WithTimeout(ctx, waitLimit)
		err := w.mutex.LockContext(lockCtx)
		cancel()
		waited := time.Since(start)
		if err != nil {
			if ctx.Err() == nil {
				w.err = fmt.Errorf("worker %d could not acquire the lock: %w", w.id, err)
				c.p.printf("worker %d gave up after waiting %v: %v", w.id, roundDuration(waited), err)
			}
			return
		}
		acquiredAt := time.Now()
		w.acquired++
		w.maxWait = max(w.maxWait, waited)
		n := c.acquisitions.Add(1)
		if !c.holder.CompareAndSwap(0, int64(w.id)) {
			c.violations.Add(1)
			c.p.printf("!!! VIOLATION: worker %d acquired the lock while worker %d holds it !!!", w.id, c.holder.Load())
		}
		c.p.printf("worker %d acquired the lock (valid until +%.2fs) after waiting %v",
			w.id, time.Until(w.mutex.Until()).Seconds(), roundDuration(waited))

		sleep(ctx, c.hold)

		// Clear the slot and print before unlocking: once the nodes
		// release the key, another worker may acquire it and print.
		c.holder.CompareAndSwap(int64(w.id), 0)
		c.p.printf("worker %d released it after holding %v", w.id, roundDuration(time.Since(acquiredAt)))
		// Release even after an interrupt, so that the key does not stay
		// on the nodes for the rest of its expiry.
		unlockCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		ok, err := w.mutex.UnlockContext(unlockCtx)
		cancel()
		if !ok {
			// The lock expires by itself; the other workers wait longer.
			c.p.printf("worker %d: the release did not reach a quorum: %v", w.id, err)
		}

		if n == c.killAt && c.kill != nil {
			c.kill()
		}
		// Pause before the next round, so that the worker which just
		// released does not take the lock straight back.
		if !sleep(ctx, c.hold/2) {
			return
		}
	}
}

// summarize prints the outcome and returns the run's error, if any.
func (c *contest) summarize(ctx context.Context, workers []*worker, elapsed time.Duration, nodes, quorum int) error {
	var errs []error
	if ctx.Err() != nil {
		c.p.printf("interrupted")
		errs = append(errs, fmt.Errorf("interrupted: %w", context.Cause(ctx)))
	}
	total := c.acquisitions.Load()
	c.p.printf("summary after %v:", elapsed.Round(10*time.Millisecond))
	var maxWait time.Duration
	for _, w := range workers {
		c.p.plainf("  worker %d: %d acquisitions, longest wait %v", w.id, w.acquired, roundDuration(w.maxWait))
		maxWait = max(maxWait, w.maxWait)
		if w.err != nil {
			errs = append(errs, w.err)
		}
	}
	c.p.plainf("  acquisitions: %d, max wait: %v", total, roundDuration(maxWait))
	switch {
	case c.kill == nil:
		c.p.plainf("  nodes: %d, none killed (quorum %d)", nodes, quorum)
	case c.killErr != nil:
		c.p.plainf("  nodes: %d, killing one failed: %v", nodes, c.killErr)
		errs = append(errs, c.killErr)
	case total >= c.killAt:
		c.p.plainf("  nodes: %d, 1 killed after acquisition %d; %d acquisitions followed with %d nodes (quorum %d)",
			nodes, c.killAt, total-c.killAt, nodes-1, quorum)
	}
	v := c.violations.Load()
	c.p.plainf("  violations: %d", v)
	if v > 0 {
		errs = append(errs, fmt.Errorf("mutual exclusion was violated %d times", v))
	}
	return errors.Join(errs...)
}

// sleep waits for d or until ctx ends, and reports whether it waited the
// whole d.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// roundDuration rounds d for printing: to the millisecond, or to 10µs below
// one millisecond.
func roundDuration(d time.Duration) time.Duration {
	if d < time.Millisecond {
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Millisecond)
}

// A printer writes whole lines to w from several goroutines.
type printer struct {
	mu sync.Mutex
	w  io.Writer
}

// printf writes one line prefixed with the time of day. The time is taken
// under the lock, so that the lines are in time order.
func (p *printer) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// plainf writes one line.
func (p *printer) plainf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%s\n", fmt.Sprintf(format, args...))
}
