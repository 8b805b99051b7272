package redsync_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/goredis"
)

// guardTimeout is the per-node timeout factor of the restart guard tests:
// 900 ms (of the 2 s expiry), so that a loaded machine does not turn a
// refusal into a timeout, even on the first command of a connection to a
// restarted node (a dial, and EVAL after NOSCRIPT).
var guardTimeout = redsync.WithTimeoutFactor(0.45)

// Timing of the restart guard tests. A node votes maxTTL plus at most a
// second after it started.
const (
	guardExpiry = 2 * time.Second
	guardMaxTTL = guardExpiry
	guardWait   = guardMaxTTL + time.Second + callSlack // longest wait for a node to vote
)

// guardPools returns one go-redis pool per server, with clients closed by
// t.Cleanup.
func guardPools(t *testing.T, servers []*redistest.Server) []redis.Pool {
	t.Helper()
	pools := make([]redis.Pool, len(servers))
	for i, s := range servers {
		client := goredislib.NewClient(&goredislib.Options{Addr: s.Addr(), MaxRetries: -1})
		t.Cleanup(func() { client.Close() })
		pools[i] = goredis.NewPool(client)
	}
	return pools
}

// lockWhenOld tries m until it acquires the lock, which happens once the
// nodes have been up for the guard's span. It fails the test after
// guardWait.
func lockWhenOld(t *testing.T, m *redsync.Mutex) {
	t.Helper()
	deadline := time.Now().Add(guardWait)
	for {
		err := m.TryLock()
		if err == nil {
			return
		}
		// Any failure is retried: on a loaded machine a node may also
		// miss its per-node timeout.
		if time.Now().After(deadline) {
			t.Fatalf("TryLock() = %v, want nil within %v", err, guardWait)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// restartedNodes returns the indexes of the nodes whose error in err
// matches ErrNodeRestarted.
func restartedNodes(err error) []int {
	var nodes []int
	var walk func(error)
	walk = func(err error) {
		if multi, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range multi.Unwrap() {
				walk(e)
			}
			return
		}
		var re *redsync.RedisError
		if errors.As(err, &re) && errors.Is(re, redsync.ErrNodeRestarted) {
			nodes = append(nodes, re.Node)
		}
	}
	walk(err)
	slices.Sort(nodes)
	return nodes
}

func TestRestartGuardConfig(t *testing.T) {
	s := redistest.Start(t)
	rs := redsync.New(guardPools(t, []*redistest.Server{s})...)
	m := rs.NewMutex("guard:config", redsync.WithExpiry(2*time.Second), redsync.WithRestartGuard(time.Second))
	err := m.TryLock()
	if !errors.Is(err, redsync.ErrInvalidConfig) || !strings.Contains(err.Error(), "restart guard") {
		t.Errorf("TryLock() with maxTTL below the expiry = %v, want ErrInvalidConfig naming the restart guard", err)
	}
	if n, err := s.DBSize(); err != nil || n != 0 {
		t.Errorf("DBSIZE = %d, %v; want 0: nothing may be sent on a bad configuration", n, err)
	}
}

// TestRestartGuardRestart kills and immediately restarts, empty, a majority
// of the nodes while a lock is held: without the guard another client gets
// the lock (the hole the guard closes); with it, the restarted nodes refuse
// to vote until they have been up for maxTTL.
func TestRestartGuardRestart(t *testing.T) {
	t.Parallel() // it mostly waits for its nodes to be old enough to vote
	servers := redistest.StartN(t, 3)
	pools := guardPools(t, servers)
	opts := []redsync.Option{redsync.WithExpiry(guardExpiry), guardTimeout, redsync.WithRestartGuard(guardMaxTTL)}
	holder := redsync.New(pools...).NewMutex("guard:restart", opts...)
	lockWhenOld(t, holder)

	for _, s := range servers[:2] {
		if err := s.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := s.Restart(); err != nil {
			t.Fatal(err)
		}
	}

	guarded := redsync.New(pools...).NewMutex("guard:restart", opts...)
	err := guarded.TryLock()
	if !errors.Is(err, redsync.ErrFailed) || !errors.Is(err, redsync.ErrNodeRestarted) {
		t.Fatalf("TryLock() with the guard after a majority restart = %v, want ErrFailed and ErrNodeRestarted", err)
	}
	// Node 2, started last, may itself still be younger than maxTTL on a
	// busy machine (lockWhenOld waits for a quorum of old nodes): then it
	// is named too. Nodes 0 and 1 must be.
	if got := restartedNodes(err); !slices.Contains(got, 0) || !slices.Contains(got, 1) {
		t.Errorf("TryLock() error names restarted nodes %v, want 0 and 1 among them; error: %v", got, err)
	}
	if !strings.Contains(err.Error(), "RESTARTED node up for") {
		t.Errorf("TryLock() = %q, want the node's RESTARTED reply in the text", err)
	}

	unguarded := redsync.New(pools...).NewMutex("guard:restart", redsync.WithExpiry(guardExpiry), guardTimeout)
	if err := unguarded.TryLock(); err != nil {
		t.Errorf("TryLock() without the guard after a majority restart = %v; want nil (the known hole of plain Redlock)", err)
	} else if _, err := unguarded.Unlock(); err != nil {
		t.Errorf("Unlock() = %v", err)
	}

	// Once the restarted nodes are old enough (and the holder's lock has
	// expired), the guarded mutex gets the lock.
	lockWhenOld(t, guarded)
	if _, err := guarded.Unlock(); err != nil {
		t.Errorf("Unlock() = %v", err)
	}
}

// TestRestartGuardReloadedMarker restarts a node that persists its data:
// the marker comes back from the RDB file, but it was written by the
// previous process, so the node still gets no vote until it is old enough.
func TestRestartGuardReloadedMarker(t *testing.T) {
	t.Parallel() // it mostly waits for its nodes to be old enough to vote
	s := redistest.Start(t, "--save", "3600 1")
	m := redsync.New(guardPools(t, []*redistest.Server{s})...).NewMutex("guard:reload",
		redsync.WithExpiry(guardExpiry), guardTimeout, redsync.WithRestartGuard(guardMaxTTL))
	lockWhenOld(t, m)
	if _, err := m.Unlock(); err != nil {
		t.Fatalf("Unlock() = %v", err)
	}
	markers, err := s.Keys("redsync:restart-guard:*")
	if err != nil || len(markers) != 1 {
		t.Fatalf("marker keys = %q, %v; want one", markers, err)
	}
	// Write the marker to the RDB file, then crash: the next process loads
	// it.
	s.MustDo(t, "SAVE")
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if rep := s.MustDo(t, "EXISTS", markers[0]); rep.Int != 1 {
		t.Fatalf("the marker was not reloaded from the RDB file; the test needs it")
	}
	err = m.TryLock()
	if !errors.Is(err, redsync.ErrNodeRestarted) {
		t.Errorf("TryLock() right after a restart with a reloaded marker = %v, want ErrNodeRestarted", err)
	}
	lockWhenOld(t, m)
	if _, err := m.Unlock(); err != nil {
		t.Errorf("Unlock() = %v", err)
	}
}

// TestRestartGuardCluster runs the guarded script on a cluster-enabled node
// serving every slot: it refuses scripts whose keys hash to different
// slots, so the marker must share the lock key's slot, whatever braces the
// key holds.
func TestRestartGuardCluster(t *testing.T) {
	t.Parallel() // it mostly waits for its nodes to be old enough to vote
	s := redistest.Start(t, "--cluster-enabled", "yes")
	s.MustDo(t, "CLUSTER", "ADDSLOTSRANGE", "0", "16383")
	deadline := time.Now().Add(10 * time.Second)
	for {
		rep := s.MustDo(t, "CLUSTER", "INFO")
		if strings.Contains(rep.Str, "cluster_state:ok") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the one-node cluster is not ok: %s", rep.Str)
		}
		time.Sleep(20 * time.Millisecond)
	}
	pools := guardPools(t, []*redistest.Server{s})
	keys := []string{"lock", "orders:42", "{user1}:lock", "a}b", "}{", "a{}b", "{", "x{y}z", "日本"}
	for i, key := range keys {
		m := redsync.New(pools...).NewMutex(key, redsync.WithExpiry(guardExpiry), guardTimeout, redsync.WithRestartGuard(guardMaxTTL))
		if i == 0 {
			lockWhenOld(t, m)
		} else if err := m.TryLock(); err != nil {
			t.Errorf("TryLock() of %q on a cluster node = %v", key, err)
			continue
		}
		if _, err := m.Unlock(); err != nil {
			t.Errorf("Unlock() of %q = %v", key, err)
		}
	}
	// The markers hash where the keys do, as the server computes it.
	markers, err := s.Keys("redsync:restart-guard:*")
	if err != nil || len(markers) == 0 {
		t.Fatalf("marker keys = %q, %v; want some", markers, err)
	}
	slots := map[int64]bool{}
	for _, key := range keys {
		slots[s.MustDo(t, "CLUSTER", "KEYSLOT", key).Int] = true
	}
	for _, marker := range markers {
		if slot := s.MustDo(t, "CLUSTER", "KEYSLOT", marker).Int; !slots[slot] {
			t.Errorf("marker %q is in slot %d, which holds none of the lock keys", marker, slot)
		}
	}
	if len(markers) != len(slots) {
		t.Errorf("%d markers for %d slots; want one per slot", len(markers), len(slots))
	}
}
