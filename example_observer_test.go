package redsync_test

import (
	"context"
	"errors"
	"log"
	"log/slog"
	"os"
	"time"

	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/redis/goredis"
)

// slowLocks is an Observer that logs Lock calls that waited long, and
// nodes that failed: a few lines of code for a dashboard of one's own. It
// embeds BaseObserver for the events it ignores (and those later versions
// may add).
type slowLocks struct {
	redsync.BaseObserver
	threshold time.Duration
}

func (s slowLocks) OnAcquire(ctx context.Context, e redsync.AcquireEvent) {
	if e.Wait > s.threshold {
		log.Printf("lock %s: waited %v over %d tries (err=%v)", e.Name, e.Wait, e.Attempts, e.Err)
	}
	if len(e.Tries) == 0 {
		return // a bad configuration: no try was sent
	}
	for _, r := range e.Tries[len(e.Tries)-1].Nodes {
		if r.Outcome == redsync.NodeFailed {
			log.Printf("lock %s: node %d failed after %v: %v", e.Name, r.Node, r.Latency, r.Err)
		}
	}
}

func (slowLocks) OnLost(ctx context.Context, e redsync.LostEvent) {
	log.Printf("lock %s lost after %v: %v", e.Name, e.Held, e.Err)
}

// WithObserver sets an Observer on one Mutex.
func ExampleWithObserver() {
	client := goredislib.NewClient(&goredislib.Options{Addr: "localhost:6379"})
	defer client.Close()
	rs := redsync.New(goredis.NewPool(client))

	mutex := rs.NewMutex("invoices", redsync.WithObserver(slowLocks{threshold: time.Second}))
	if err := mutex.Lock(); err != nil {
		log.Println("lock:", err)
		return
	}
	defer mutex.Unlock()
	// ... work on the invoices
}

// SetObserver sets the Observer of every Mutex that the Redsync makes
// afterwards, here a logger and a custom Observer together.
func ExampleRedsync_SetObserver() {
	client := goredislib.NewClient(&goredislib.Options{Addr: "localhost:6379"})
	defer client.Close()
	rs := redsync.New(goredis.NewPool(client))

	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	rs.SetObserver(redsync.MultiObserver(
		redsync.SlogObserver(logger), // failures at Info and above
		slowLocks{threshold: 5 * time.Second},
	))

	err := rs.Do(context.Background(), "nightly-report", func(ctx context.Context) error {
		return nil // ... the work, stopping when ctx ends
	})
	if errors.Is(err, redsync.ErrFailed) {
		log.Println("another process is writing the report")
	}
}

// SlogObserver logs each event as one record; successes are logged at
// Debug. The records here come from events made up for the example, and
// the time is left out.
func ExampleSlogObserver() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{} // dropped
			}
			return a
		},
	}))
	obs := redsync.SlogObserver(logger)
	ctx := context.Background()

	obs.OnAcquire(ctx, redsync.AcquireEvent{
		Name: "invoices", Attempts: 2, Wait: 180 * time.Millisecond, Duration: 183 * time.Millisecond,
		Validity: 7917 * time.Millisecond,
		Tries: []redsync.Try{{Nodes: []redsync.NodeResult{
			{Node: 1, Outcome: redsync.NodeOK, Latency: 1200 * time.Microsecond},
			{Node: 0, Outcome: redsync.NodeOK, Latency: 900 * time.Microsecond},
			{Node: 2, Outcome: redsync.NodeFailed, Latency: 400 * time.Millisecond, Err: errors.New("i/o timeout")},
		}}},
	})
	obs.OnLost(ctx, redsync.LostEvent{Name: "invoices", Held: 42 * time.Second, Err: errors.New("redsync: lock lost: extension failed")})
	// Output:
	// level=DEBUG msg="redsync: lock acquired" lock=invoices attempts=2 wait=180ms duration=183ms validity=7.917s nodes.0="ok 900µs" nodes.1="ok 1.2ms" nodes.2="failed 400ms: i/o timeout"
	// level=ERROR msg="redsync: lock lost" lock=invoices held=42s error="redsync: lock lost: extension failed"
}
