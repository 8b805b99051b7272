package redsync_test

import (
	"errors"
	"testing"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
)

// rwACL is exactly what an RWMutex's scripts call, as the report of #15
// lists it: the script calls, and the commands inside them.
var rwACL = []string{
	"resetkeys", "~*", "-@all",
	"+evalsha", "+eval",
	"+time", "+get", "+set", "+pexpire", "+del", "+exists", "+pttl",
	"+zadd", "+zrem", "+zscore", "+zcard", "+zremrangebyscore",
}

// TestRWMutexACL checks that a user with rwACL can do everything with an
// RWMutex: the nodes deny it no command of any script.
func TestRWMutexACL(t *testing.T) {
	t.Parallel()
	for _, d := range aclDrivers {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			servers := redistest.StartN(t, 3)
			pools := make([]redis.Pool, len(servers))
			for i, srv := range servers {
				srv.MustDo(t, append([]string{"ACL", "SETUSER", "rwlocker", "reset", "on", ">" + aclPassword}, rwACL...)...)
				pools[i] = d.newPool(t, srv.Addr(), "rwlocker", aclPassword)
			}
			rs := redsync.New(pools...)
			a := rs.NewRWMutex(rwName, roomy, redsync.WithTries(1))
			b := rs.NewRWMutex(rwName, roomy, redsync.WithTries(1))
			if err := a.RLock(); err != nil {
				t.Fatalf("RLock() = %v; want nil", err)
			}
			if ok, err := a.RExtend(); !ok {
				t.Errorf("RExtend() = %v, %v; want true", ok, err)
			}
			var taken *redsync.ErrTaken
			if err := b.Lock(); !errors.As(err, &taken) {
				t.Errorf("Lock() with a reader in = %v; want *ErrTaken", err)
			}
			if ok, err := a.RUnlock(); !ok {
				t.Errorf("RUnlock() = %v, %v; want true", ok, err)
			}
			if err := b.Lock(); err != nil {
				t.Fatalf("Lock() = %v; want nil", err)
			}
			if err := a.RLock(); !errors.As(err, &taken) {
				t.Errorf("RLock() under a writer = %v; want *ErrTaken", err)
			}
			if ok, err := b.Extend(); !ok {
				t.Errorf("Extend() = %v, %v; want true", ok, err)
			}
			if ok, err := b.Unlock(); !ok {
				t.Errorf("Unlock() = %v, %v; want true", ok, err)
			}
			for i, srv := range servers {
				if n, err := srv.DBSize(); err != nil || n != 0 {
					t.Errorf("node %d: DBSIZE = %d, %v; want 0", i, n, err)
				}
			}
			// Denials that a script's pcall swallowed are logged too.
			if denials := aclDenials(t, servers, "rwlocker"); len(denials) > 0 {
				t.Errorf("the nodes denied commands: %q", denials)
			}
		})
	}
}
