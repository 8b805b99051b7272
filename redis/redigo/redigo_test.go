package redigo_test

import (
	"context"
	"testing"
	"time"

	redigolib "github.com/gomodule/redigo/redis"

	"github.com/go-redlock/redsync/internal/adaptertest"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/redigo"
)

func TestMain(m *testing.M) { adaptertest.Main(m) }

// newPool makes a Pool over a redigo pool dialling addr, closed by
// t.Cleanup.
func newPool(t *testing.T, addr string) redis.Pool {
	p := &redigolib.Pool{
		MaxIdle:     4,
		IdleTimeout: time.Minute,
		DialContext: func(ctx context.Context) (redigolib.Conn, error) {
			return redigolib.DialContext(ctx, "tcp", addr)
		},
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("closing the redigo pool: %v", err)
		}
	})
	return redigo.NewPool(p)
}

func TestConformance(t *testing.T) {
	t.Parallel()
	adaptertest.Run(t, newPool)
}

func TestLock(t *testing.T) {
	t.Parallel()
	adaptertest.RunLock(t, newPool)
}

func TestListener(t *testing.T) {
	t.Parallel()
	adaptertest.RunListener(t, newPool)
}
