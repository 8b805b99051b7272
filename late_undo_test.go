package redsync_test

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"os"
	"sync"
	"testing"
	"time"

	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/goredis"
)

// lateReleasePool delivers the first release script it is given only
// after the caller gave up on it (a reply slower than the per-node timeout)
// and after deliver is closed.
type lateReleasePool struct {
	redis.Pool
	releaseHash string
	once        sync.Once
	deliver     <-chan struct{}
	wg          *sync.WaitGroup
}

func (p *lateReleasePool) RunScript(ctx context.Context, call *redis.ScriptCall) (any, error) {
	late := false
	if call.Script().Hash == p.releaseHash {
		p.once.Do(func() { late = true })
	}
	if late {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			<-ctx.Done()
			<-p.deliver
			p.Pool.(redis.ScriptRunner).RunScript(context.Background(), call)
		}()
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return p.Pool.(redis.ScriptRunner).RunScript(ctx, call)
}

// TestLateUndoKeepsNextTry: the undo of a failed try reaches a node after
// the client gave up on it and after the next try acquired the lock. Each
// try has its own value, so the late undo must not release the new lock.
func TestLateUndoKeepsNextTry(t *testing.T) {
	src, err := os.ReadFile("lua/release.lua")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum(src)
	releaseHash := hex.EncodeToString(sum[:])
	servers := redistest.StartN(t, 3)
	var wg sync.WaitGroup
	deliver := make(chan struct{})
	defer wg.Wait()
	var plain, late []redis.Pool
	for _, srv := range servers {
		client := goredislib.NewClient(&goredislib.Options{Addr: srv.Addr()})
		t.Cleanup(func() { client.Close() })
		p := goredis.NewPool(client)
		plain = append(plain, p)
		late = append(late, &lateReleasePool{Pool: p, releaseHash: releaseHash, deliver: deliver, wg: &wg})
	}
	const name = "stale-release"
	// B holds the lock for 300ms, so that A's first try fails. A per-node
	// timeout of 150 ms rather than 15 ms: B must get the lock, also on a
	// loaded machine.
	b := redsync.New(plain...).NewMutex(name, redsync.WithExpiry(300*time.Millisecond), redsync.WithTimeoutFactor(0.5))
	if err := b.Lock(); err != nil {
		t.Fatal(err)
	}
	a := redsync.New(late...).NewMutex(name, redsync.WithExpiry(10*time.Second), redsync.WithReleaseNotification(false))
	if err := a.Lock(); err != nil {
		close(deliver)
		t.Fatalf("A: Lock() = %v", err)
	}
	t.Logf("A holds the lock until %v", a.Until())
	// The undo of A's first try reaches the nodes now, after the try
	// that acquired the lock.
	close(deliver)
	wg.Wait()
	c := redsync.New(plain...).NewMutex(name)
	if err := c.TryLock(); err == nil {
		t.Errorf("C: TryLock() = nil while A holds the lock until %v: two holders", a.Until())
	}
}
