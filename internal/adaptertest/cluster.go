package adaptertest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
)

// NewClusterPoolFunc makes a Pool over a cluster client of the Redis
// Cluster whose master i is at addrs[i] and owns the hash slots
// redistest.ClusterSlots[i], and registers with t.Cleanup whatever must be
// closed afterwards.
type NewClusterPoolFunc = func(t *testing.T, addrs []string) redis.Pool

// RunCluster checks redsync over a cluster client used as ONE Redlock
// node, a pool made by newPool over a Redis Cluster of three masters
// (redistest.StartCluster): for a lock on each master, that the key is
// set on the master that owns its slot only, that a second Mutex is
// turned away with *redsync.ErrTaken, and that Extend and Unlock reach it
// after SCRIPT FLUSH (EVAL after NOSCRIPT); then locks on every master at
// once, and a waiting Lock of a second pool woken by the release
// notification.
func RunCluster(t *testing.T, newPool NewClusterPoolFunc) {
	t.Helper()
	servers := redistest.StartCluster(t)
	addrs := make([]string, len(servers))
	for i, srv := range servers {
		addrs[i] = srv.Addr()
	}
	newRedsync := func() *redsync.Redsync { return redsync.New(newPool(t, addrs)) }
	rs := newRedsync()
	names := redistest.KeysPerMaster(t, servers[0], "adaptertest:cluster:")

	for master, name := range names {
		t.Run(name, func(t *testing.T) {
			m := rs.NewMutex(name, redsync.WithExpiry(10*time.Second))
			if err := m.Lock(); err != nil {
				t.Fatalf("Lock() = %v, want nil", err)
			}
			for i, srv := range servers {
				rep, err := srv.Do("GET", name)
				var se redistest.ServerError
				switch {
				case i == master && (err != nil || rep.Str != m.Value()):
					t.Errorf("master %d, the owner: GET = %s, %v; want %q", i, rep, err, m.Value())
				case i != master && !(errors.As(err, &se) && se.Prefix() == "MOVED"):
					t.Errorf("master %d, not the owner: GET = %s, %v; want a MOVED error", i, rep, err)
				}
			}

			var taken *redsync.ErrTaken
			if err := rs.NewMutex(name).TryLock(); !errors.As(err, &taken) {
				t.Errorf("TryLock() of a held lock = %v, want a *ErrTaken", err)
			}

			for _, srv := range servers {
				srv.MustDo(t, "SCRIPT", "FLUSH")
			}
			if ok, err := m.Extend(); !ok || err != nil {
				t.Errorf("Extend() after SCRIPT FLUSH = %v, %v; want true, nil", ok, err)
			}
			for _, srv := range servers {
				srv.MustDo(t, "SCRIPT", "FLUSH")
			}
			if ok, err := m.Unlock(); !ok || err != nil {
				t.Errorf("Unlock() after SCRIPT FLUSH = %v, %v; want true, nil", ok, err)
			}
			for i, srv := range servers {
				if n, err := srv.DBSize(); n != 0 || err != nil {
					t.Errorf("master %d: DBSIZE after Unlock() = %d, %v; want 0", i, n, err)
				}
			}
		})
	}

	t.Run("Concurrent", func(t *testing.T) {
		// A lock on every master at once, through one client.
		errs := make(chan error, len(names))
		for _, name := range names {
			go func() {
				m := rs.NewMutex(name)
				if err := m.LockContext(context.Background()); err != nil {
					errs <- fmt.Errorf("%s: Lock() = %w", name, err)
					return
				}
				if ok, err := m.Unlock(); !ok {
					errs <- fmt.Errorf("%s: Unlock() = %v, %w", name, ok, err)
					return
				}
				errs <- nil
			}()
		}
		for range names {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("Notification", func(t *testing.T) {
		// The waiter listens on one master of the cluster, whichever its
		// client picked: a PUBLISH reaches the subscribers of every node.
		checkNotification(t, newRedsync, [][]*redistest.Server{servers}, "adaptertest:cluster:notify")
	})
}
