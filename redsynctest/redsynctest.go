package redsynctest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/goredis"
)

// New starts n nodes and returns them with a Redsync over them, in the
// same order. When the test ends, the nodes are stopped and their clients
// closed (tb.Cleanup). New fails the test (tb.Fatalf) when n is less than
// 1 or a node cannot start; call it from the test's goroutine.
//
// The Redsync stands for one process. For several processes (replicas of
// a service), make a Redsync each over the same pools:
// redsync.New(nodes.Pools()...).
func New(tb testing.TB, n int) (Nodes, *redsync.Redsync) {
	tb.Helper()
	nodes, rs, err := Start(n)
	if err != nil {
		tb.Fatalf("%v", err)
		return nil, nil
	}
	tb.Cleanup(func() {
		if err := nodes.Close(); err != nil {
			tb.Errorf("%v", err)
		}
	})
	return nodes, rs
}

// Start is New outside a test (in an example, a TestMain or a benchmark
// harness): the caller must call [Nodes.Close] when done. It fails when n
// is less than 1 or a node cannot start.
func Start(n int) (Nodes, *redsync.Redsync, error) {
	if n < 1 {
		return nil, nil, fmt.Errorf("redsynctest: %d nodes, want at least one", n)
	}
	nodes := make(Nodes, 0, n)
	for i := range n {
		node, err := startNode(i)
		if err != nil {
			return nil, nil, errors.Join(fmt.Errorf("redsynctest: starting node %d: %w", i, err), nodes.Close())
		}
		nodes = append(nodes, node)
	}
	return nodes, redsync.New(nodes.Pools()...), nil
}

// startNode starts a node whose keys expire with the wall clock, as on
// redis-server (miniredis's own default is to expire only on
// FastForward).
func startNode(index int) (*Node, error) {
	mr := miniredis.NewMiniRedis()
	mr.ClockTTL(true)
	n := &Node{index: index, mr: mr}
	n.mu.Lock()
	err := n.startLocked()
	n.mu.Unlock()
	if err != nil {
		return nil, err
	}
	n.client = goredislib.NewClient(&goredislib.Options{
		Addr:                  mr.Addr(),
		ContextTimeoutEnabled: true,
		DialerRetries:         1,
	})
	n.pool = goredis.NewPool(n.client)
	return n, nil
}

// Nodes are the nodes made by [New], in the order of the Redsync's pools.
type Nodes []*Node

// Close stops every node and closes its client. It returns the errors of
// closing the clients.
func (ns Nodes) Close() error {
	var errs []error
	for _, n := range ns {
		if err := n.close(); err != nil {
			errs = append(errs, fmt.Errorf("redsynctest: closing the client of node %d: %w", n.index, err))
		}
	}
	return errors.Join(errs...)
}

// Pools returns the pool of each node, for redsync.New.
func (ns Nodes) Pools() []redis.Pool {
	pools := make([]redis.Pool, len(ns))
	for i, n := range ns {
		pools[i] = n.pool
	}
	return pools
}

// FastForward moves the time of every node forward by d (see
// [Node.FastForward]): a lock whose expiry is at most d away is gone.
func (ns Nodes) FastForward(d time.Duration) {
	for _, n := range ns {
		n.FastForward(d)
	}
}

// ExpireNow removes key from every node, as if it had expired on all of
// them at once, and returns how many held it. For a lock, key is the
// mutex's name.
func (ns Nodes) ExpireNow(key string) int {
	count := 0
	for _, n := range ns {
		if n.ExpireNow(key) {
			count++
		}
	}
	return count
}

// Holders returns the indexes of the nodes where key holds value, for
// example a mutex's name and Value: a lock is held while a quorum
// (len(nodes)/2+1) of nodes hold it.
func (ns Nodes) Holders(key, value string) []int {
	var idx []int
	for i, n := range ns {
		if v, ok := n.Get(key); ok && v == value {
			idx = append(idx, i)
		}
	}
	return idx
}

// Values returns what each node holds for key ("" where it holds no string
// under key), in node order.
func (ns Nodes) Values(key string) []string {
	values := make([]string, len(ns))
	for i, n := range ns {
		values[i], _ = n.Get(key)
	}
	return values
}
