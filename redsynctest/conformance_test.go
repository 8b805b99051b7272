package redsynctest_test

// The kit must behave as redis-server does: every scenario here runs on
// redis-server processes and on the kit's nodes, with the same checks.
// Where they differ on purpose (WithRestartGuard), the scenario says so,
// as the package documentation does.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/go-redlock/redsync"
)

// scenario is a check of the library against n nodes of a backend.
type scenario struct {
	name  string
	nodes int
	run   func(t *testing.T, b backend)
}

var scenarios = []scenario{
	{"LockExtendUnlock", 3, testLockExtendUnlock},
	{"ExpiryByTime", 3, testExpiryByTime},
	{"FastForward", 3, testFastForward},
	{"ExpireNowEndsDo", 3, testExpireNowEndsDo},
	{"NodesDown", 5, testNodesDown},
	{"Restarts", 3, testRestarts},
	{"SlowNodes", 3, testSlowNodes},
	{"PausedNode", 3, testPausedNode},
	{"ReleaseNotification", 3, testReleaseNotification},
	{"LocalHandOff", 3, testLocalHandOff},
	{"Fencing", 3, testFencing},
	{"SetNXOnExtend", 3, testSetNXOnExtend},
	{"WrongType", 3, testWrongType},
	{"Contention", 3, testContention},
	{"RestartGuard", 3, testRestartGuard},
}

func TestConformance(t *testing.T) {
	backends := []struct {
		name string
		new  func(t *testing.T, n int) backend
	}{
		{"redis-server", newServerBackend},
		{"redsynctest", newKitBackend},
	}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			for _, sc := range scenarios {
				t.Run(sc.name, func(t *testing.T) {
					// Each scenario has nodes of its own.
					t.Parallel()
					sc.run(t, be.new(t, sc.nodes))
				})
			}
		})
	}
}

// expiry is the lock expiry of the scenarios that are not about timing:
// a per-node timeout of 500ms, far above what a node on a busy machine
// needs.
const expiry = 10 * time.Second

// holders returns the running nodes among idx where key holds value.
func holders(t *testing.T, b backend, idx []int, key, value string) []int {
	t.Helper()
	var got []int
	for _, i := range idx {
		if v, ok := b.get(t, i, key); ok && v == value {
			got = append(got, i)
		}
	}
	return got
}

// all returns 0, 1, ..., n-1.
func all(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// checkNoKeys fails unless none of the nodes idx holds a key.
func checkNoKeys(t *testing.T, b backend, idx []int) {
	t.Helper()
	for _, i := range idx {
		if keys := b.keys(t, i); len(keys) != 0 {
			t.Errorf("node %d holds %q, want no key", i, keys)
		}
	}
}

// waitFor polls cond every 10ms until it holds, failing the test after
// 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("not %s after 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testLockExtendUnlock(t *testing.T, b backend) {
	const name = "conformance:basic"
	rs := redsync.New(b.pools(t)...)
	m := rs.NewMutex(name, redsync.WithExpiry(expiry))
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil", err)
	}
	if got := holders(t, b, all(3), name, m.Value()); len(got) != 3 {
		t.Errorf("nodes %v hold the lock, want all 3", got)
	}
	for i := range 3 {
		if ttl := b.ttl(t, i, name); ttl <= 0 || ttl > expiry {
			t.Errorf("node %d: TTL %v, want in (0, %v]", i, ttl, expiry)
		}
	}

	other := redsync.New(b.pools(t)...).NewMutex(name, redsync.WithExpiry(expiry))
	var taken *redsync.ErrTaken
	if err := other.TryLock(); !errors.As(err, &taken) || len(taken.Nodes) != 3 {
		t.Errorf("TryLock() of a held lock = %v, want *ErrTaken naming all 3 nodes", err)
	}

	b.fastForward(t, expiry/2)
	if ok, err := m.Extend(); !ok || err != nil {
		t.Errorf("Extend() = %v, %v; want true, nil", ok, err)
	}
	for i := range 3 {
		if ttl := b.ttl(t, i, name); ttl <= expiry/2 {
			t.Errorf("node %d: TTL %v after Extend(), want more than %v", i, ttl, expiry/2)
		}
	}
	//lint:ignore SA1019 Valid is part of the v4 API
	if ok, err := m.Valid(); !ok || err != nil {
		t.Errorf("Valid() = %v, %v; want true, nil", ok, err)
	}
	if ok, err := m.Unlock(); !ok || err != nil {
		t.Errorf("Unlock() = %v, %v; want true, nil", ok, err)
	}
	checkNoKeys(t, b, all(3))
	if ok, err := m.Unlock(); ok || !errors.Is(err, redsync.ErrLockAlreadyExpired) {
		t.Errorf("second Unlock() = %v, %v; want false and ErrLockAlreadyExpired", ok, err)
	}
}

// testExpiryByTime lets a lock expire by the clock: the keys go, Extend
// fails, and another client takes the lock.
func testExpiryByTime(t *testing.T, b backend) {
	const (
		name  = "conformance:expiry"
		short = time.Second
	)
	// The per-node timeout is half the expiry, not the default 5% (50 ms):
	// a busy machine's server may take longer than that to answer, and
	// the Extend below must hear the keys missing, not time out.
	m := redsync.New(b.pools(t)...).NewMutex(name, redsync.WithExpiry(short), redsync.WithTimeoutFactor(0.5))
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil", err)
	}
	time.Sleep(short + 100*time.Millisecond)
	for i := range 3 {
		if v, ok := b.get(t, i, name); ok {
			t.Errorf("node %d still holds %q after the expiry", i, v)
		}
	}
	if ok, err := m.Extend(); ok || !errors.Is(err, redsync.ErrExtendFailed) || !errors.Is(err, redsync.ErrLockAlreadyExpired) {
		t.Errorf("Extend() after the expiry = %v, %v; want false, ErrExtendFailed and ErrLockAlreadyExpired", ok, err)
	}
	other := redsync.New(b.pools(t)...).NewMutex(name, redsync.WithExpiry(expiry))
	if err := other.TryLock(); err != nil {
		t.Fatalf("TryLock() of an expired lock = %v, want nil", err)
	}
	if ok, err := other.Unlock(); !ok || err != nil {
		t.Errorf("Unlock() = %v, %v", ok, err)
	}
	checkNoKeys(t, b, all(3))
}

// testFastForward moves time past a lock's expiry.
func testFastForward(t *testing.T, b backend) {
	const name = "conformance:fastforward"
	m := redsync.New(b.pools(t)...).NewMutex(name, redsync.WithExpiry(expiry))
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil", err)
	}
	b.fastForward(t, expiry-time.Second)
	if got := holders(t, b, all(3), name, m.Value()); len(got) != 3 {
		t.Errorf("nodes %v hold the lock a second before its expiry, want all 3", got)
	}
	b.fastForward(t, time.Second)
	checkNoKeys(t, b, all(3))
	other := redsync.New(b.pools(t)...).NewMutex(name, redsync.WithExpiry(expiry))
	if err := other.TryLock(); err != nil {
		t.Fatalf("TryLock() after the expiry = %v, want nil", err)
	}
	if ok, err := m.Unlock(); ok || err == nil {
		t.Errorf("Unlock() of the expired lock, now another's = %v, %v; want false and an error", ok, err)
	}
	if got := holders(t, b, all(3), name, other.Value()); len(got) != 3 {
		t.Errorf("nodes %v hold the new lock after the old holder's Unlock(), want all 3", got)
	}
	if ok, err := other.Unlock(); !ok || err != nil {
		t.Errorf("Unlock() = %v, %v", ok, err)
	}
}

// testExpireNowEndsDo expires a lock while Do's function runs: the next
// extension fails and the function's context ends with ErrLockLost.
func testExpireNowEndsDo(t *testing.T, b backend) {
	const name = "conformance:do"
	rs := redsync.New(b.pools(t)...)
	err := rs.Do(context.Background(), name, func(ctx context.Context) error {
		b.expireNow(t, name)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(10 * time.Second):
			return errors.New("the context did not end within 10s of the expiry")
		}
	}, redsync.WithExpiry(3*time.Second))
	if !errors.Is(err, redsync.ErrLockLost) {
		t.Errorf("Do() = %v, want ErrLockLost", err)
	}
	checkNoKeys(t, b, all(3))
}

func testNodesDown(t *testing.T, b backend) {
	const name = "conformance:down"
	rs := redsync.New(b.pools(t)...)
	m := rs.NewMutex(name, redsync.WithExpiry(expiry), redsync.WithTries(1))
	b.stop(t, 0)
	b.stop(t, 1)
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() with 2 of 5 nodes down = %v, want nil", err)
	}
	if got := holders(t, b, []int{2, 3, 4}, name, m.Value()); len(got) != 3 {
		t.Errorf("nodes %v hold the lock, want 2, 3 and 4", got)
	}
	if ok, err := m.Unlock(); !ok || err != nil {
		t.Errorf("Unlock() with 2 of 5 nodes down = %v, %v; want true, nil", ok, err)
	}

	b.stop(t, 2)
	err := m.Lock()
	var redisErr *redsync.RedisError
	if !errors.Is(err, redsync.ErrFailed) || !errors.As(err, &redisErr) {
		t.Errorf("Lock() with 3 of 5 nodes down = %v, want ErrFailed with a *RedisError", err)
	}
	checkNoKeys(t, b, []int{3, 4})

	b.restartEmpty(t, 0)
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() after a node came back = %v, want nil", err)
	}
	if got := holders(t, b, []int{0, 3, 4}, name, m.Value()); len(got) != 3 {
		t.Errorf("nodes %v hold the lock, want 0, 3 and 4", got)
	}
	if ok, err := m.Unlock(); !ok || err != nil {
		t.Errorf("Unlock() = %v, %v; want true, nil", ok, err)
	}
}

// testRestarts restarts a holder of the lock with its data and another
// without: the first still holds the lock (and has lost its scripts), the
// second holds nothing.
func testRestarts(t *testing.T, b backend) {
	const name = "conformance:restart"
	m := redsync.New(b.pools(t)...).NewMutex(name, redsync.WithExpiry(expiry))
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil", err)
	}
	b.restart(t, 0)
	if v, ok := b.get(t, 0, name); !ok || v != m.Value() {
		t.Errorf("node 0 after a restart with its data holds %q (%v), want %q", v, ok, m.Value())
	}
	if ttl := b.ttl(t, 0, name); ttl <= 0 || ttl > expiry {
		t.Errorf("node 0 after a restart with its data: TTL %v, want in (0, %v]", ttl, expiry)
	}
	b.restartEmpty(t, 1)
	if v, ok := b.get(t, 1, name); ok {
		t.Errorf("node 1 after a restart without data holds %q, want nothing", v)
	}
	if ok, err := m.Extend(); !ok || err != nil {
		t.Errorf("Extend() after the restarts = %v, %v; want true, nil", ok, err)
	}
	if got := holders(t, b, all(3), name, m.Value()); !slices.Equal(got, []int{0, 2}) {
		t.Errorf("nodes %v hold the lock after Extend(), want 0 and 2 (Extend renews, it does not take)", got)
	}
	if ok, err := m.Unlock(); !ok || err != nil {
		t.Errorf("Unlock() = %v, %v; want true, nil", ok, err)
	}
	checkNoKeys(t, b, all(3))
}

// testSlowNodes delays the replies of nodes past the per-node timeout.
func testSlowNodes(t *testing.T, b backend) {
	const name = "conformance:slow"
	const delay = 2 * time.Second // 4 times the per-node timeout
	m := redsync.New(b.pools(t)...).NewMutex(name, redsync.WithExpiry(expiry), redsync.WithTries(1))
	b.setDelay(0, delay)
	defer b.setDelay(0, 0)
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() with one slow node = %v, want nil", err)
	}
	if ok, err := m.Unlock(); !ok || err != nil {
		t.Errorf("Unlock() with one slow node = %v, %v; want true, nil", ok, err)
	}
	b.setDelay(1, delay)
	defer b.setDelay(1, 0)
	start := time.Now()
	err := m.Lock()
	if !errors.Is(err, redsync.ErrFailed) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Lock() with two slow nodes = %v, want ErrFailed and the per-node timeout", err)
	}
	if took := time.Since(start); took >= delay {
		t.Errorf("Lock() with two slow nodes took %v, want less than the delay %v", took, delay)
	}
	// The undo of the failed try reaches no slow node in time (its
	// connection's handshake is delayed too), so the key is left there
	// until it expires: the nodes are not reused.
}

// testPausedNode pauses a node: it counts as failed, and the command it
// held runs when it resumes.
func testPausedNode(t *testing.T, b backend) {
	const name = "conformance:paused"
	m := redsync.New(b.pools(t)...).NewMutex(name, redsync.WithExpiry(expiry), redsync.WithTries(1))
	// A first round opens a connection to each node: a command held by
	// the paused node is then one sent on an open connection, not the
	// handshake of a new one.
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil", err)
	}
	if ok, err := m.Unlock(); !ok || err != nil {
		t.Fatalf("Unlock() = %v, %v", ok, err)
	}
	b.pause(t, 2)
	resumed := false
	defer func() {
		if !resumed {
			b.resume(t, 2)
		}
	}()
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() with a paused node = %v, want nil", err)
	}
	b.resume(t, 2)
	resumed = true
	// The acquisition the node held runs late, with the lock's value.
	waitFor(t, "held by node 2 after it resumed", func() bool {
		v, ok := b.get(t, 2, name)
		return ok && v == m.Value()
	})
	if ok, err := m.Unlock(); !ok || err != nil {
		t.Errorf("Unlock() = %v, %v; want true, nil", ok, err)
	}
	checkNoKeys(t, b, all(3))
}

// testReleaseNotification wakes a waiting Lock of another Redsync by the
// release notification: its retry delay is a minute.
func testReleaseNotification(t *testing.T, b backend) {
	const name = "conformance:notify"
	holder := redsync.New(b.pools(t)...).NewMutex(name, redsync.WithExpiry(expiry))
	if err := holder.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil", err)
	}
	waiter := redsync.New(b.pools(t)...).NewMutex(name, redsync.WithExpiry(expiry), redsync.WithRetryDelay(time.Minute))
	done := make(chan error, 1)
	go func() { done <- waiter.Lock() }()
	// The waiter subscribes after its first try failed; a release before
	// that is found by its next try, a minute later.
	time.Sleep(500 * time.Millisecond)
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

// testLocalHandOff hands the lock to a waiting Lock of the same Redsync
// (the transfer script).
func testLocalHandOff(t *testing.T, b backend) {
	const name = "conformance:handoff"
	rs := redsync.New(b.pools(t)...)
	holder := rs.NewMutex(name, redsync.WithExpiry(expiry))
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	waiter := rs.NewMutex(name, redsync.WithExpiry(expiry/2), redsync.WithRetryDelay(time.Minute))
	done := make(chan error, 1)
	go func() { done <- waiter.Lock() }()
	time.Sleep(500 * time.Millisecond) // the waiter's first try fails
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("holder Unlock() = %v, %v", ok, err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("waiter Lock() = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter was not handed the lock (its retry delay is a minute)")
	}
	// The hand-off returns at a quorum; the last node follows.
	waitFor(t, "held by the waiter on every node", func() bool {
		return len(holders(t, b, all(3), name, waiter.Value())) == 3
	})
	for i := range 3 {
		if ttl := b.ttl(t, i, name); ttl <= 0 || ttl > expiry/2 {
			t.Errorf("node %d: TTL %v, want the waiter's expiry (0, %v]", i, ttl, expiry/2)
		}
	}
	if ok, err := waiter.Unlock(); !ok || err != nil {
		t.Errorf("waiter Unlock() = %v, %v", ok, err)
	}
	checkNoKeys(t, b, all(3))
}

func testFencing(t *testing.T, b backend) {
	const name = "conformance:fencing"
	pools := b.pools(t)
	owners := []*redsync.Redsync{redsync.New(pools...), redsync.New(b.pools(t)...)}
	var last uint64
	for i := range 4 {
		m := owners[i%2].NewMutex(name, redsync.WithExpiry(expiry), redsync.WithFencing())
		if err := m.Lock(); err != nil {
			t.Fatalf("Lock() with fencing = %v, want nil", err)
		}
		token := m.FencingToken()
		if token <= last {
			t.Errorf("acquisition %d: token %d, want more than %d", i, token, last)
		}
		if err := redsync.GuardedSet(context.Background(), pools[0], "conformance:resource", fmt.Sprint(i), token); err != nil {
			t.Errorf("GuardedSet() with the current token %d = %v", token, err)
		}
		if last > 0 {
			err := redsync.GuardedSet(context.Background(), pools[0], "conformance:resource", "stale", last)
			if !errors.Is(err, redsync.ErrStaleToken) {
				t.Errorf("GuardedSet() with the previous token %d = %v, want ErrStaleToken", last, err)
			}
		}
		last = token
		if ok, err := m.Unlock(); !ok || err != nil {
			t.Fatalf("Unlock() with fencing = %v, %v", ok, err)
		}
	}
}

// testSetNXOnExtend re-creates an expired lock by Extend.
func testSetNXOnExtend(t *testing.T, b backend) {
	const name = "conformance:setnx"
	m := redsync.New(b.pools(t)...).NewMutex(name, redsync.WithExpiry(expiry), redsync.WithSetNXOnExtend())
	if err := m.Lock(); err != nil {
		t.Fatal(err)
	}
	b.expireNow(t, name)
	if ok, err := m.Extend(); !ok || err != nil {
		t.Errorf("Extend() of an expired lock with WithSetNXOnExtend = %v, %v; want true, nil", ok, err)
	}
	if got := holders(t, b, all(3), name, m.Value()); len(got) != 3 {
		t.Errorf("nodes %v hold the lock after Extend(), want all 3", got)
	}
	if ok, err := m.Unlock(); !ok || err != nil {
		t.Errorf("Unlock() = %v, %v", ok, err)
	}
}

// testWrongType locks a key that holds a list on two nodes: Lock fails at
// once with ErrWrongType naming such a node.
func testWrongType(t *testing.T, b backend) {
	const name = "conformance:list"
	b.pushList(t, 0, name)
	b.pushList(t, 1, name)
	m := redsync.New(b.pools(t)...).NewMutex(name, redsync.WithExpiry(expiry))
	err := m.Lock()
	if !errors.Is(err, redsync.ErrWrongType) || !errors.Is(err, redsync.ErrFailed) {
		t.Fatalf("Lock() of a list = %v, want ErrFailed and ErrWrongType", err)
	}
	var nodes []int
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var redisErr *redsync.RedisError
		if errors.As(e, &redisErr) && errors.Is(e, redsync.ErrWrongType) {
			nodes = append(nodes, redisErr.Node)
		}
	}
	// Lock returns as soon as no quorum is possible: one of the two
	// nodes may be all it names.
	if len(nodes) == 0 || slices.ContainsFunc(nodes, func(i int) bool { return i > 1 }) {
		t.Errorf("Lock() of a list: ErrWrongType on nodes %v, want some of 0 and 1", nodes)
	}
	if _, ok := b.get(t, 2, name); ok {
		t.Errorf("node 2 still holds the failed try")
	}
}

// testContention has three processes of two workers take the lock in
// turn: never two holders at once.
func testContention(t *testing.T, b backend) {
	const (
		name      = "conformance:contention"
		processes = 3
		workers   = 2
		rounds    = 5
	)
	holders := make(chan struct{}, 1)
	errs := make(chan error, processes*workers)
	for range processes {
		rs := redsync.New(b.pools(t)...)
		for range workers {
			go func() {
				m := rs.NewMutex(name, redsync.WithExpiry(expiry), redsync.WithRetryDelay(5*time.Millisecond), redsync.WithTries(2000))
				for range rounds {
					if err := m.Lock(); err != nil {
						errs <- fmt.Errorf("Lock() = %w", err)
						return
					}
					select {
					case holders <- struct{}{}:
					default:
						errs <- errors.New("two holders at once")
						return
					}
					<-holders
					if ok, err := m.Unlock(); !ok {
						errs <- fmt.Errorf("Unlock() = %v, %v; want true, nil", ok, err)
						return
					}
				}
				errs <- nil
			}()
		}
	}
	for range processes * workers {
		if err := <-errs; err != nil {
			t.Errorf("worker: %v", err)
		}
	}
	checkNoKeys(t, b, all(3))
}

// testRestartGuard locks with WithRestartGuard: redis-server grants the
// lock once the nodes are old enough; the kit's nodes cannot run the
// guard's script (miniredis has no INFO or LASTSAVE inside scripts), and
// every node fails.
func testRestartGuard(t *testing.T, b backend) {
	const name = "conformance:guard"
	// On redis-server the first tries are refused until the nodes are old
	// enough; on the kit every try fails alike.
	tries := 40
	if !b.restartGuard() {
		tries = 1
	}
	rs := redsync.New(b.pools(t)...)
	m := rs.NewMutex(name, redsync.WithExpiry(time.Second), redsync.WithRestartGuard(time.Second),
		redsync.WithTries(tries), redsync.WithRetryDelay(100*time.Millisecond))
	err := m.Lock()
	if !b.restartGuard() {
		var redisErr *redsync.RedisError
		if !errors.Is(err, redsync.ErrFailed) || !errors.As(err, &redisErr) {
			t.Errorf("Lock() with WithRestartGuard on the kit = %v, want ErrFailed with a *RedisError", err)
		}
		checkNoKeys(t, b, all(3))
		return
	}
	if err != nil {
		t.Fatalf("Lock() with WithRestartGuard = %v, want nil once the nodes are a second old", err)
	}
	if ok, err := m.Unlock(); !ok || err != nil {
		t.Errorf("Unlock() = %v, %v", ok, err)
	}
}
