package adaptertest

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// leakGrace is how long Main waits for goroutines to end after the tests
// before it calls them leaked. Some drivers end goroutines of their own
// only after a delay that closing the client does not cut short (rueidis
// and valkey-go refresh a cluster topology up to a second after it was
// asked for), and a loaded machine runs them later still.
const leakGrace = 10 * time.Second

// Main is the TestMain of an adapter package:
//
//	func TestMain(m *testing.M) { adaptertest.Main(m) }
//
// It runs the tests, then fails the run if a goroutine they started is
// still running leakGrace later, other than those that ignore matches. The
// goroutine that forks the redis-server processes (internal/redistest),
// which lives as long as the test binary, is always ignored.
func Main(m *testing.M, ignore ...goleak.Option) {
	code := m.Run()
	if code == 0 {
		opts := append([]goleak.Option{
			goleak.IgnoreAnyFunction("github.com/go-redlock/redsync/internal/redistest.spawnLoop"),
		}, ignore...)
		deadline := time.Now().Add(leakGrace)
		err := goleak.Find(opts...)
		for err != nil && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			err = goleak.Find(opts...)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "goleak: goroutines still running %v after the tests: %v\n", leakGrace, err)
			code = 1
		}
	}
	os.Exit(code)
}
