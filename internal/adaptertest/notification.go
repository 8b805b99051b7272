package adaptertest

import (
	"testing"
	"time"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
)

// RunNotification checks that a waiting Lock is woken by the release
// notification through pools made by newPool: over three servers of its
// own, a holder releases a lock that a Lock of a second Redsync, with
// clients of its own (another process, as far as the lock goes), waits
// for with a retry delay of a minute, so that only the notification can
// wake it in time.
func RunNotification(t *testing.T, newPool NewPoolFunc) {
	t.Helper()
	servers := redistest.StartN(t, 3)
	groups := make([][]*redistest.Server, len(servers))
	for i, srv := range servers {
		groups[i] = []*redistest.Server{srv}
	}
	newRedsync := func() *redsync.Redsync {
		pools := make([]redis.Pool, len(servers))
		for i, srv := range servers {
			pools[i] = newPool(t, srv.Addr())
		}
		return redsync.New(pools...)
	}
	checkNotification(t, newRedsync, groups, "adaptertest:notify")
}

// checkNotification locks name with a Mutex of one Redsync made by
// newRedsync, waits for it with a Mutex of a second one whose retry delay
// is a minute, and checks that the waiter gets the lock within 20 s of
// the release. groups are the servers of each node: the waiter listens
// on one server of each group.
func checkNotification(t *testing.T, newRedsync func() *redsync.Redsync, groups [][]*redistest.Server, name string) {
	t.Helper()
	holder := newRedsync().NewMutex(name, redsync.WithExpiry(30*time.Second))
	if err := holder.Lock(); err != nil {
		t.Fatalf("Lock() = %v", err)
	}
	waiter := newRedsync().NewMutex(name, redsync.WithExpiry(30*time.Second), redsync.WithRetryDelay(time.Minute))
	done := make(chan error, 1)
	go func() { done <- waiter.Lock() }()
	waitSubscribed(t, groups, name)
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("Unlock() = %v, %v", ok, err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("waiter Lock() = %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the waiter was not woken by the release (its retry delay is a minute)")
	}
	if ok, err := waiter.Unlock(); !ok || err != nil {
		t.Errorf("waiter Unlock() = %v, %v", ok, err)
	}
}

// waitSubscribed waits until, in each group of servers, one server has a
// subscriber on the channel of a Redsync (redsync:wake:<id>), on which its
// waiters for the lock name are told their turns.
func waitSubscribed(t *testing.T, groups [][]*redistest.Server, name string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for i, group := range groups {
	poll:
		for {
			for _, srv := range group {
				if rep := srv.MustDo(t, "PUBSUB", "CHANNELS", "redsync:wake:*"); len(rep.Elems) > 0 {
					break poll
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d: no subscriber on redsync:wake:* after 10s while %s is awaited", i, name)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
