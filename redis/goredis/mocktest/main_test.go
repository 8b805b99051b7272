package mocktest

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/go-redlock/redsync/internal/adaptertest"
)

// TestMain checks for leaked goroutines, but for those of the client that
// each redismock mock makes for itself (its factory of commands) and never
// closes.
func TestMain(m *testing.M) {
	adaptertest.Main(m,
		goleak.IgnoreTopFunction("github.com/go-redis/redis/v8/internal/pool.(*ConnPool).reaper"),
		goleak.IgnoreTopFunction("github.com/redis/go-redis/v9/maintnotifications.(*CircuitBreakerManager).cleanupLoop"))
}
