package goredis_test

import (
	"testing"
	"time"

	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	goredis "github.com/go-redlock/redsync/redis/goredis/v9"
)

// TestNewPool locks and unlocks through the v4-compatible import path.
func TestNewPool(t *testing.T) {
	srv := redistest.Start(t)
	client := goredislib.NewClient(&goredislib.Options{Addr: srv.Addr()})
	t.Cleanup(func() { client.Close() })

	var pool redis.Pool = goredis.NewPool(client)
	if _, ok := pool.(redis.ScriptRunner); !ok {
		t.Errorf("NewPool() = %T, want a redis.ScriptRunner like redis/goredis", pool)
	}
	m := redsync.New(pool).NewMutex("v9-lock", redsync.WithExpiry(5*time.Second))
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil", err)
	}
	if rep := srv.MustDo(t, "GET", "v9-lock"); rep.Str != m.Value() {
		t.Errorf("the server holds %s, want the lock value %q", rep, m.Value())
	}
	if ok, err := m.Unlock(); !ok || err != nil {
		t.Errorf("Unlock() = %v, %v; want true, nil", ok, err)
	}
	if n, err := srv.DBSize(); n != 0 || err != nil {
		t.Errorf("DBSIZE after Unlock() = %d, %v; want 0", n, err)
	}
}
