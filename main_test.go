package redsync_test

import (
	"context"
	"testing"

	goredislib "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

// quietLogger drops go-redis's log lines: the tests kill nodes on purpose,
// and the failed dials would bury the test output.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// TestMain fails the test binary when a goroutine outlives the tests: every
// goroutine the library starts must have an owner that stops it, and every
// test must close the clients and pools it opens.
func TestMain(m *testing.M) {
	goredislib.SetLogger(quietLogger{})
	goleak.VerifyTestMain(m,
		// redistest forks every redis-server from one goroutine that lives
		// as long as the test binary (see its spawn_linux.go).
		goleak.IgnoreAnyFunction("github.com/go-redlock/redsync/internal/redistest.spawnLoop"))
}
