package redsync_test

// ACL users: locking with a username and password through go-redis and
// redigo, the permissions docs/ECOSYSTEM.md lists as enough (with and
// without the restart guard), and the errors of a user lacking EVAL/EVALSHA
// and of a wrong password.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	redigolib "github.com/gomodule/redigo/redis"
	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/goredis"
	"github.com/go-redlock/redsync/redis/redigo"
)

// aclPassword is the password of every user the ACL tests create.
const aclPassword = "pw"

// aclUsers are the users the ACL tests create on every node, by name.
var aclUsers = map[string][]string{
	// Everything.
	"locker": {"~*", "+@all"},
	// Everything but scripts.
	"noeval": {"~*", "+@all", "-eval", "-evalsha"},
	// Exactly what docs/ECOSYSTEM.md lists for Lock, Extend, Valid and
	// Unlock with release notification. PUNSUBSCRIBE and ECHO are for
	// redigo, whose pool resets a connection that was subscribed with them
	// before taking it back.
	"minimal": {
		"resetkeys", "~*", "resetchannels", "&redsync:released:*", "&redsync:wake:*", "-@all",
		"+evalsha", "+eval", "+get", "+set", "+pexpire", "+del",
		"+publish", "+subscribe", "+unsubscribe", "+ping",
		"+punsubscribe", "+echo",
		"+time", "+pttl", "+zadd", "+zrem", "+zrange", "+zrangebyscore", "+exists",
	},
	// minimal, and what docs/ECOSYSTEM.md adds for WithRestartGuard.
	"guarded": {
		"resetkeys", "~*", "-@all",
		"+evalsha", "+eval", "+get", "+set", "+pexpire", "+del",
		"+time", "+lastsave", "+info",
	},
}

// startACLNodes starts n servers with the users of aclUsers. The default
// user stays open, for the checks through redistest.
func startACLNodes(t *testing.T, n int) []*redistest.Server {
	t.Helper()
	servers := redistest.StartN(t, n)
	for _, srv := range servers {
		for user, rules := range aclUsers {
			args := append([]string{"ACL", "SETUSER", user, "reset", "on", ">" + aclPassword}, rules...)
			srv.MustDo(t, args...)
		}
	}
	return servers
}

// An aclDriver makes a Pool that authenticates as user with password.
type aclDriver struct {
	name    string
	newPool func(t *testing.T, addr, user, password string) redis.Pool
}

var aclDrivers = []aclDriver{
	{"goredis", func(t *testing.T, addr, user, password string) redis.Pool {
		client := goredislib.NewClient(&goredislib.Options{Addr: addr, Username: user, Password: password})
		closeGoredis(t, client)
		return goredis.NewPool(client)
	}},
	{"redigo", func(t *testing.T, addr, user, password string) redis.Pool {
		pool := &redigolib.Pool{
			MaxIdle: 4,
			DialContext: func(ctx context.Context) (redigolib.Conn, error) {
				return redigolib.DialContext(ctx, "tcp", addr,
					redigolib.DialUsername(user), redigolib.DialPassword(password))
			},
		}
		closeRedigo(t, pool)
		return redigo.NewPool(pool)
	}},
}

// aclRedsync returns a Redsync over servers, authenticating as user.
func aclRedsync(t *testing.T, d aclDriver, servers []*redistest.Server, user, password string) *redsync.Redsync {
	t.Helper()
	pools := make([]redis.Pool, len(servers))
	for i, srv := range servers {
		pools[i] = d.newPool(t, srv.Addr(), user, password)
	}
	return redsync.New(pools...)
}

// aclRedisErrors returns every *redsync.RedisError in err's tree.
func aclRedisErrors(err error) []*redsync.RedisError {
	var found []*redsync.RedisError
	var walk func(error)
	walk = func(err error) {
		if re, ok := err.(*redsync.RedisError); ok {
			found = append(found, re)
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			if inner := u.Unwrap(); inner != nil {
				walk(inner)
			}
		case interface{ Unwrap() []error }:
			for _, inner := range u.Unwrap() {
				walk(inner)
			}
		}
	}
	if err != nil {
		walk(err)
	}
	return found
}

// checkNodeErrors fails unless err matches ErrFailed and holds a
// *RedisError for every one of n nodes, each of whose text passes check.
func checkNodeErrors(t *testing.T, call string, err error, n int, want string, check func(string) bool) {
	t.Helper()
	if !errors.Is(err, redsync.ErrFailed) {
		t.Errorf("%s = %v, want an error matching ErrFailed", call, err)
	}
	var nodes []int
	for _, re := range aclRedisErrors(err) {
		nodes = append(nodes, re.Node)
		if !check(re.Error()) {
			t.Errorf("%s: node error %q, want %s", call, re, want)
		}
		if prefix := "node #" + strconv.Itoa(re.Node) + ":"; !strings.HasPrefix(re.Error(), prefix) {
			t.Errorf("%s: node error %q, want it to start with %q", call, re, prefix)
		}
	}
	slices.Sort(nodes)
	nodes = slices.Compact(nodes)
	if want := allNodes(n); !slices.Equal(nodes, want) {
		t.Errorf("%s = %v: *RedisError for nodes %v, want %v", call, err, nodes, want)
	}
}

func allNodes(n int) []int {
	nodes := make([]int, n)
	for i := range nodes {
		nodes[i] = i
	}
	return nodes
}

// commandStat returns, per server, a field of the INFO commandstats line of
// cmd, such as "calls" or "rejected_calls" (ACL denials included).
func commandStat(t *testing.T, servers []*redistest.Server, cmd, field string) []int {
	t.Helper()
	counts := make([]int, len(servers))
	for i, srv := range servers {
		info := srv.MustDo(t, "INFO", "commandstats").Str
		for line := range strings.SplitSeq(info, "\n") {
			stats, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+cmd+":")
			if !ok {
				continue
			}
			for kv := range strings.SplitSeq(stats, ",") {
				if v, ok := strings.CutPrefix(kv, field+"="); ok {
					counts[i], _ = strconv.Atoi(v)
				}
			}
		}
	}
	return counts
}

// aclDenials returns the entries of the servers' ACL LOG for user, as text.
// Denials inside scripts are logged too, even those a script's pcall
// swallowed.
func aclDenials(t *testing.T, servers []*redistest.Server, user string) []string {
	t.Helper()
	var denials []string
	for i, srv := range servers {
		for _, entry := range srv.MustDo(t, "ACL", "LOG").Elems {
			fields := map[string]string{}
			for j := 0; j+1 < len(entry.Elems); j += 2 {
				fields[entry.Elems[j].Text()] = entry.Elems[j+1].Text()
			}
			// Drivers send CLIENT SETINFO when they connect and ignore
			// its failure; Redis 7.2 and later log its denial.
			if fields["username"] == user && fields["object"] != "client|setinfo" {
				denials = append(denials, fmt.Sprintf("node %d: %s %q denied (context %s)",
					i, fields["reason"], fields["object"], fields["context"]))
			}
		}
	}
	return denials
}

func TestACL(t *testing.T) {
	const n = 3
	servers := startACLNodes(t, n)
	for _, d := range aclDrivers {
		t.Run(d.name, func(t *testing.T) {
			t.Run("Locker", func(t *testing.T) {
				testACLLockUnlock(t, servers, aclRedsync(t, d, servers, "locker", aclPassword), "acl-lock:locker:"+d.name)
			})

			t.Run("MinimalPermissions", func(t *testing.T) {
				for _, srv := range servers {
					srv.MustDo(t, "ACL", "LOG", "RESET")
				}
				rs := aclRedsync(t, d, servers, "minimal", aclPassword)
				name := "acl-lock:minimal:" + d.name
				testACLLockUnlock(t, servers, rs, name)
				subscribes := commandStat(t, servers, "subscribe", "calls")
				testACLHandOff(t, servers, rs, name)
				// The hand-off must have used SUBSCRIBE, or the check
				// below proves nothing about its permissions.
				after := commandStat(t, servers, "subscribe", "calls")
				for i := range servers {
					if after[i] <= subscribes[i] {
						t.Errorf("node %d: no SUBSCRIBE while a Lock() waited, want one", i)
					}
				}
				if denials := aclDenials(t, servers, "minimal"); len(denials) != 0 {
					t.Errorf("the nodes denied user minimal:\n%s", strings.Join(denials, "\n"))
				}
			})

			t.Run("RestartGuardPermissions", func(t *testing.T) {
				for _, srv := range servers {
					srv.MustDo(t, "ACL", "LOG", "RESET")
				}
				rs := aclRedsync(t, d, servers, "guarded", aclPassword)
				const expiry = 500 * time.Millisecond
				// A short guard span keeps the wait short; the timeout
				// factor leaves the first commands, which dial, time to
				// connect and authenticate.
				m := rs.NewMutex("acl-lock:guarded:"+d.name, redsync.WithExpiry(expiry),
					redsync.WithTimeoutFactor(0.5), redsync.WithRestartGuard(expiry),
					redsync.WithReleaseNotification(false))
				// The nodes vote once they have been up for the guard's
				// span (and a second); until then TryLock fails with
				// ErrNodeRestarted, and on a loaded machine a try may also
				// miss its per-node timeout of 250 ms.
				deadline := time.Now().Add(expiry + time.Second + callSlack)
				for {
					err := m.TryLock()
					if err == nil {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("TryLock() with the restart guard = %v until %v after the nodes started, want nil", err, expiry+time.Second+callSlack)
					}
					time.Sleep(50 * time.Millisecond)
				}
				if ok, err := m.Unlock(); !ok || err != nil {
					t.Errorf("Unlock() = %v, %v; want true, nil", ok, err)
				}
				if denials := aclDenials(t, servers, "guarded"); len(denials) != 0 {
					t.Errorf("the nodes denied user guarded:\n%s", strings.Join(denials, "\n"))
				}
			})

			t.Run("NoEval", func(t *testing.T) {
				rs := aclRedsync(t, d, servers, "noeval", aclPassword)
				before := commandStat(t, servers, "evalsha", "rejected_calls")
				var log acquireLog
				err := rs.NewMutex("acl-lock:noeval:"+d.name, roomy, redsync.WithObserver(&log)).Lock()
				checkNodeErrors(t, "Lock() as a user without EVAL", err, n, `"NOPERM" and the command "evalsha" or "eval"`, func(msg string) bool {
					return strings.Contains(msg, "NOPERM") &&
						(strings.Contains(msg, "'evalsha'") || strings.Contains(msg, "'eval'"))
				})
				// NOPERM is permanent: one try, not the default 32.
				if e := log.last(t); e.Attempts != 1 {
					t.Errorf("Lock() as a user without EVAL made %d tries, want 1", e.Attempts)
				}
				// One acquire, and the release that follows a failed try.
				after := commandStat(t, servers, "evalsha", "rejected_calls")
				for i := range servers {
					if got := after[i] - before[i]; got < 1 || got > 2 {
						t.Errorf("node %d rejected EVALSHA %d times during Lock(), want 1 or 2 (one try and its release)", i, got)
					}
				}

				ok, err := rs.NewMutex("acl-lock:noeval:"+d.name, redsync.WithValue("v")).Unlock()
				if ok || err == nil || !strings.Contains(err.Error(), "NOPERM") {
					t.Errorf("Unlock() as a user without EVAL = %v, %v; want false and a NOPERM error", ok, err)
				}
			})

			t.Run("WrongPassword", func(t *testing.T) {
				rs := aclRedsync(t, d, servers, "locker", "wrong")
				var log acquireLog
				err := rs.NewMutex("acl-lock:wrongpass:"+d.name, roomy, redsync.WithObserver(&log)).Lock()
				checkNodeErrors(t, "Lock() with a wrong password", err, n, `"WRONGPASS"`, func(msg string) bool {
					return strings.Contains(msg, "WRONGPASS")
				})
				if e := log.last(t); e.Attempts != 1 {
					t.Errorf("Lock() with a wrong password made %d tries, want 1 (no retries)", e.Attempts)
				}
			})
		})
	}
}

// testACLLockUnlock locks name, checks the nodes, a second holder, Extend
// and Valid, and unlocks.
func testACLLockUnlock(t *testing.T, servers []*redistest.Server, rs *redsync.Redsync, name string) {
	t.Helper()
	m := rs.NewMutex(name, roomy)
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil", err)
	}
	for i, srv := range servers {
		if rep := srv.MustDo(t, "GET", name); rep.Str != m.Value() {
			t.Errorf("node %d holds %s, want the value %q", i, rep, m.Value())
		}
	}
	var taken *redsync.ErrTaken
	if err := rs.NewMutex(name).TryLock(); !errors.As(err, &taken) {
		t.Errorf("TryLock() of a held lock = %v, want a *ErrTaken", err)
	}
	if ok, err := m.Extend(); !ok || err != nil {
		t.Errorf("Extend() = %v, %v; want true, nil", ok, err)
	}
	if ok, err := m.Valid(); !ok || err != nil {
		t.Errorf("Valid() = %v, %v; want true, nil", ok, err)
	}
	if ok, err := m.Unlock(); !ok || err != nil {
		t.Errorf("Unlock() = %v, %v; want true, nil", ok, err)
	}
	for i, srv := range servers {
		if rep := srv.MustDo(t, "EXISTS", name); rep.Int != 0 {
			t.Errorf("node %d still holds the lock after Unlock", i)
		}
	}
}

// testACLHandOff has a second Mutex wait for a held lock, so that it
// listens for the release on servers, and releases it.
func testACLHandOff(t *testing.T, servers []*redistest.Server, rs *redsync.Redsync, name string) {
	t.Helper()
	holder := rs.NewMutex(name, roomy)
	if err := holder.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil", err)
	}
	// The waiter's delay function runs once its first try failed, when
	// it listens for the release.
	waiting := make(chan struct{})
	var once sync.Once
	delay := func(int) time.Duration {
		once.Do(func() { close(waiting) })
		return 100 * time.Millisecond
	}
	waiter := rs.NewMutex(name, redsync.WithRetryDelayFunc(delay), redsync.WithTries(100))
	locked := make(chan error, 1)
	go func() { locked <- waiter.Lock() }()
	select {
	case <-waiting:
	case err := <-locked:
		t.Fatalf("Lock() of the waiter = %v before it waited, want it to wait", err)
	}
	waitSubscribed(t, servers, name)
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Errorf("Unlock() = %v, %v; want true, nil", ok, err)
	}
	if err := <-locked; err != nil {
		t.Fatalf("Lock() of the waiter = %v, want nil", err)
	}
	if ok, err := waiter.Unlock(); !ok || err != nil {
		t.Errorf("Unlock() of the waiter = %v, %v; want true, nil", ok, err)
	}
}
