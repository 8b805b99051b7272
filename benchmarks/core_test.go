package benchmarks

import (
	"context"
	"fmt"
	"testing"

	redlock "github.com/go-redlock/redsync"
	redlockredis "github.com/go-redlock/redsync/redis"
)

// memoryNode is a node that answers every script at once with 1 (done), in
// memory: with it a Lock+Unlock costs only the core's own work (values,
// goroutines per node, quorum and validity), which network round trips
// would otherwise drown.
type memoryNode struct{}

var (
	_ redlockredis.Pool         = memoryNode{}
	_ redlockredis.ScriptRunner = memoryNode{}
)

func (memoryNode) Get(context.Context) (redlockredis.Conn, error) {
	return nil, fmt.Errorf("memoryNode: no connections; RunScript only")
}

func (memoryNode) RunScript(context.Context, *redlockredis.ScriptCall) (any, error) {
	return int64(1), nil
}

// memoryPools returns n memory nodes.
func memoryPools(n int) []redlockredis.Pool {
	pools := make([]redlockredis.Pool, n)
	for i := range pools {
		pools[i] = memoryNode{}
	}
	return pools
}

// BenchmarkCoreLockUnlock measures an uncontended Lock+Unlock of this
// library on memory nodes (see memoryNode), without an observer: the
// library's own time and allocations, the place where a cost of the
// observer hooks would show. It uses no API added with them, so the same
// file runs against older versions of the library for comparison
// (docs/OBSERVABILITY.md).
func BenchmarkCoreLockUnlock(b *testing.B) {
	for _, n := range []int{1, 3, 5} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			mutex := redlock.New(memoryPools(n)...).NewMutex("bench:core", redlock.WithExpiry(expiry))
			b.ReportAllocs()
			for b.Loop() {
				if err := mutex.Lock(); err != nil {
					b.Fatal(err)
				}
				if ok, err := mutex.Unlock(); !ok {
					b.Fatal(err)
				}
			}
		})
	}
}
