package redsync

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/go-redlock/redsync/redis"
)

// TestReviewPlainWinLeavesEntries: lockWait.acquired marks a waiter clean
// (nothing to withdraw) whenever its winning try was granted by every
// node, whatever script that try ran. But a try runs queue_acquire.lua
// (which takes the waiter out of the queue where it takes the key) only
// while the Redsync hears a quorum of nodes; otherwise it is a plain
// acquire.lua, which leaves the queues alone. A waiter that joined the
// queues, then lost its listeners (a connection reset on two of three
// nodes), and then took the lock with a plain try on every node, returns
// from Lock with its entries still in every node's queue. They live for
// the lock's expiry (an hour with WithExpiry(time.Hour)), first in line:
// the next release gives the turn to a waiter that no longer waits.
func TestReviewPlainWinLeavesEntries(t *testing.T) {
	c := newFakeCluster(3)
	holder := New(c.subPools()...).NewMutex("k", WithReleaseNotification(false))
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	pools := c.subPools()
	subs := listenersOf(pools)
	m := New(pools...).NewMutex("k", WithRetryDelay(20*time.Millisecond), WithTries(1000))
	done := make(chan error, 1)
	go func() { done <- m.Lock() }()
	w := queuedWaiter(t, m)
	eventually(t, "the waiter in every node's queue", func() bool {
		for _, n := range c.nodes {
			if !slices.Contains(n.queued("k"), w.member) {
				return false
			}
		}
		return true
	})
	// Two listening connections break and cannot come back.
	for _, f := range subs[:2] {
		f.mu.Lock()
		f.listenErr = errors.New("fake: connection refused")
		f.mu.Unlock()
		f.listener().receive(redis.Message{Err: errors.New("fake: connection reset")})
	}
	eventually(t, "the Redsync no longer hears a quorum", func() bool {
		m.notify.mu.Lock()
		defer m.notify.mu.Unlock()
		return !m.notify.hears()
	})
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("holder Unlock() = %v, %v", ok, err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Lock() = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Lock did not return")
	}
	// The withdrawal runs in the background, after Lock returned.
	gone := func() bool {
		for _, n := range c.nodes {
			if slices.Contains(n.queued("k"), w.member) {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(2 * time.Second)
	for !gone() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	for i, n := range c.nodes {
		if q := n.queued("k"); slices.Contains(q, w.member) {
			t.Errorf("node %d still queues the waiter %s after its Lock returned with the lock: %q", i, w.member, q)
		}
	}
	if ok, err := m.Unlock(); !ok || err != nil {
		t.Fatalf("Unlock() = %v, %v", ok, err)
	}
}
