package redsync_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/goredis"
)

// busyPools returns a Redsync over servers, each through a go-redis client
// with a pool of one connection, and a function that keeps the
// connections of the nodes idx busy for d (a BLPOP that waits), returning
// once they are taken.
func busyPools(t *testing.T, servers []*redistest.Server) (*redsync.Redsync, func(idx []int, d time.Duration)) {
	t.Helper()
	clients := make([]*goredislib.Client, len(servers))
	pools := make([]redis.Pool, len(servers))
	for i, srv := range servers {
		clients[i] = goredislib.NewClient(&goredislib.Options{Addr: srv.Addr(), PoolSize: 1, PoolTimeout: time.Minute, ReadTimeout: -1})
		t.Cleanup(func() { clients[i].Close() })
		pools[i] = goredis.NewPool(clients[i])
	}
	busy := func(idx []int, d time.Duration) {
		for _, i := range idx {
			started := make(chan struct{})
			go func() {
				close(started)
				clients[i].BLPop(context.Background(), d, "patience:nothing")
			}()
			<-started
			deadline := time.Now().Add(callSlack)
			for clients[i].PoolStats().IdleConns != 0 || clients[i].PoolStats().TotalConns != 1 {
				if time.Now().After(deadline) {
					t.Fatalf("node %d: the BLPOP did not take the pool's connection", i)
				}
				time.Sleep(time.Millisecond)
			}
		}
	}
	return redsync.New(pools...), busy
}

// TestExtendWaitsForBusyPool: with the only connection of a majority of
// the nodes' pools busy for a while, Extend waits for them past the
// per-node timeout (as v4 waited for the pool), and extends when they
// answer within the validity; Unlock likewise.
func TestExtendWaitsForBusyPool(t *testing.T) {
	servers := redistest.StartN(t, 3)
	rs, busy := busyPools(t, servers)
	// Per-node timeout 200 ms; validity about 4 s: the pools are busy
	// for 1 s.
	m := rs.NewMutex("patience:extend", redsync.WithExpiry(4*time.Second))
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil", err)
	}
	busy([]int{0, 1}, time.Second)
	if ok, err := m.Extend(); !ok || err != nil {
		t.Errorf("Extend() with 2 of 3 pools busy for 1s (per-node timeout 200ms, validity 4s) = %v, %v, want true, nil", ok, err)
	}
	busy([]int{0, 1}, time.Second)
	if ok, err := m.Unlock(); !ok || err != nil {
		t.Errorf("Unlock() with 2 of 3 pools busy for 1s = %v, %v, want true, nil", ok, err)
	}
	// The release of the node that answered last may still be in
	// flight (the round returned once a quorum released); it lands when
	// the pool frees.
	for _, srv := range servers {
		waitNoKeys(t, srv, callSlack)
	}
}

// TestExtendBusyPoolPastValidity: when the pools stay busy past the
// validity, Extend fails (ErrExtendFailed), by the end of the validity
// rather than waiting for the pools.
func TestExtendBusyPoolPastValidity(t *testing.T) {
	servers := redistest.StartN(t, 3)
	rs, busy := busyPools(t, servers)
	m := rs.NewMutex("patience:expire", redsync.WithExpiry(time.Second))
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil", err)
	}
	busy([]int{0, 1}, 30*time.Second)
	start := time.Now()
	ok, err := m.Extend()
	if ok || !errors.Is(err, redsync.ErrExtendFailed) {
		t.Errorf("Extend() with 2 of 3 pools busy past the validity = %v, %v, want false and ErrExtendFailed", ok, err)
	}
	if took := time.Since(start); took > time.Second+callSlack {
		t.Errorf("Extend() took %v, want it bounded by the validity (1s) and not the pools' 30s", took)
	}
}

// TestPatienceStopsAtQuorum: a busy minority does not hold Unlock past
// the per-node timeout once a quorum released (WithFailFast off): it is
// reported as not answering within the per-node timeout, not within the
// validity.
func TestPatienceStopsAtQuorum(t *testing.T) {
	servers := redistest.StartN(t, 3)
	rs, busy := busyPools(t, servers)
	var log releaseLog
	m := rs.NewMutex("patience:quorum", redsync.WithExpiry(5*time.Second), redsync.WithTimeoutFactor(0.04), redsync.WithObserver(&log))
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil", err)
	}
	busy([]int{2}, 30*time.Second)
	if ok, err := m.Unlock(); !ok || err != nil {
		t.Fatalf("Unlock() with 1 of 3 pools busy = %v, %v, want true, nil", ok, err)
	}
	e := log.last
	var busyErr error
	for _, r := range e.Nodes {
		if r.Node == 2 {
			busyErr = r.Err
		}
	}
	if busyErr == nil || !strings.Contains(busyErr.Error(), "per-node timeout of 200ms") {
		t.Errorf("busy node's result = %v, want no reply within the per-node timeout of 200ms (the round stops once a quorum released)", busyErr)
	}
}

// releaseLog keeps the last ReleaseEvent.
type releaseLog struct {
	redsync.BaseObserver
	last redsync.ReleaseEvent
}

func (l *releaseLog) OnRelease(_ context.Context, e redsync.ReleaseEvent) { l.last = e }
