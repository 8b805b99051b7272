package redsync

import (
	goredislib "github.com/redis/go-redis/v9"

	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/goredis"
)

// Sixth review of the queue of waiters (handoff.go, queue_lib.lua):
// reproductions.

// fastFailPools returns go-redis pools over servers that dial once (no
// dial retries): a node that is down refuses at once, as with a client
// configured not to retry, or any non-go-redis client.
func fastFailPools(t *testing.T, servers []*redistest.Server) []redis.Pool {
	t.Helper()
	pools := make([]redis.Pool, len(servers))
	for i, s := range servers {
		client := goredislib.NewClient(&goredislib.Options{Addr: s.Addr(), MaxRetries: -1, DialerRetries: 1})
		t.Cleanup(func() { client.Close() })
		pools[i] = goredis.NewPool(client)
	}
	return pools
}

// TestReview6DownNodeDefeatsQuietUndoStorm breaks promise 5 (no storm of
// useless tries while the lock is held), the promise that
// TestReview5MinorityFreeKeyStormsHead guards and that the quiet undo was
// meant to restore.
//
// Three nodes. The holder holds the lock on nodes 0 and 1 (a quorum); the
// key is free on node 2 (it restarted without its data, or the holder's
// try missed it). Then node 1 goes down (connection refused; the
// waiter's client dials once, see fastFailPools -- with go-redis's default
// five dial retries each round takes 0.5 s on node 1 and the same loop
// runs at about one try a second, forever): the holder
// still holds a quorum as far as anyone can know (its key on node 1 may
// come back with the node; no other client can take nodes 0 and 2 while
// node 0 holds), and nothing is released. The waiter (retry delay 1 h)
// should sit still until the holder's Unlock.
//
// Its queue tries, though, see the holder on node 0 only, an error on
// node 1, and take the free key on node 2: tally.mostHeld() is 1, below
// the quorum, so acquire (mutex.go) sends the LOUD undo (queue_leave.lua
// with ARGV[6] '1'), which deletes the key on node 2, puts the waiter back
// and wakes the head of node 2's queue -- the waiter itself, with a new
// id. receive (handoff.go) counts that one-node turn (count == 1) and sets
// a standby wait: 100 ms later the waiter tries again, and so on for as
// long as the node is down and the lock held (10 tries a second, each on
// every node, plus an undo). The quiet undo only covers the case where
// every node answered; a node that does not answer is exactly when a
// quorum of the holder cannot be seen.
func TestReview6DownNodeDefeatsQuietUndoStorm(t *testing.T) {
	servers := redistest.StartN(t, 3)
	opts := []Option{WithRetryDelay(time.Hour), WithTries(2), WithExpiry(time.Minute)}
	holder := New(realPools(t, servers)...).NewMutex("down", opts...)
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	// Free on node 2 only; node 1 goes down. The holder still holds
	// nodes 0 and 1 as far as it knows.
	servers[2].MustDo(t, "DEL", "down")
	if err := servers[1].Stop(); err != nil {
		t.Fatal(err)
	}

	var tries, undos atomic.Int64
	m := New(countingOver(fastFailPools(t, servers), &tries, &undos)...).NewMutex("down", opts...)
	done := startLock(t, m)
	eventually(t, "the waiter queued on the live nodes", func() bool {
		member := ""
		m.notify.mu.Lock()
		for mb := range m.notify.members {
			member = mb
		}
		m.notify.mu.Unlock()
		return member != "" && queuedOn(t, servers[0], member) && queuedOn(t, servers[2], member)
	})
	time.Sleep(300 * time.Millisecond) // let the joining tries settle
	before, beforeUndos := tries.Load(), undos.Load()
	const watch = 3 * time.Second
	time.Sleep(watch)
	extra, extraUndos := tries.Load()-before, undos.Load()-beforeUndos
	select {
	case err := <-done:
		t.Fatalf("Lock() returned %v while the lock is held on a quorum", err)
	default:
	}
	t.Logf("while the lock was held (nothing released, node 1 down), the waiter sent %d tries and %d undos in %v", extra, extraUndos, watch)
	if extra > 5 {
		t.Errorf("a waiter with nothing to wait for sent %d tries (and %d undos) in %v while the holder kept nodes 0 and 1, node 1 down and node 2 free: with a node not answering, tally.mostHeld() < quorum, the undo is loud and wakes the waiter itself from node 2 (one-node turn -> standby wait -> try)", extra, extraUndos, watch)
	}
	// Liveness all the same: the holder's release (node 0) frees a quorum
	// (nodes 0 and 2).
	holder.Unlock()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Lock() = %v", err)
		}
		m.Unlock()
	case <-time.After(5 * time.Second):
		t.Fatalf("the waiter did not get the lock within 5s of the release")
	}
}
