package redsync

import (
	"context"
	"testing"
	"time"
)

// review10Wait is ownTurnFixture's wait (handoff_test.go) after
// maxOwnTurns tries in a row, each brought forward by a turn from a
// quorum naming the waiter's own previous try (the documented limit is
// reached; nothing is wrong so far).
func review10Wait(t *testing.T) (lw *lockWait, send func(kind, id string, from ...int), own func(i int) string) {
	t.Helper()
	lw, send, own = ownTurnFixture(t)
	for i := range maxOwnTurns {
		lw.tryStarts()
		send("turn", own(i), 0, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r, _ := lw.await(ctx, 1)
		cancel()
		if r != waitExtra {
			t.Fatalf("own turn %d: await = %v, want an extra try at once (up to %d in a row are documented)", i+1, r, maxOwnTurns)
		}
	}
	lw.tryStarts()
	return lw, send, own
}

// TestReview10OwnTurnWipesStandbyFromNext: another owner's release
// names the waiter standby from a quorum ("next": the head of the queue
// did not hear its turn), and the turns of the undo of the waiter's own
// try come from a quorum in the same wait. The own turn is ignored (the
// fourth in a row: documented). At c6c3809 receive cleared the standby
// when it set turned, so the release that named the waiter standby woke
// it no more: it waited for its retry delay (1 h), with the lock free.
// Now an own turn leaves the standby time alone.
func TestReview10OwnTurnWipesStandbyFromNext(t *testing.T) {
	lw, send, own := review10Wait(t)
	id := own(3)
	send("next", "release-of-another-owner 1", 0, 1)
	send("turn", id, 0, 1)
	awaitTry(t, lw, 2*time.Second, "next from a quorum, then own turn from a quorum")
}

// TestReview10OwnTurnBlocksNext is the other order: the own turn came
// first (turned is set, not taken yet), and the 'next' of another
// owner's release that follows set no standby at c6c3809 (receive skipped
// it while turned); takeTurn then dropped the own turn, and nothing was
// left. Now only a turn of another owner makes a 'next' moot.
func TestReview10OwnTurnBlocksNext(t *testing.T) {
	lw, send, own := review10Wait(t)
	id := own(3)
	send("turn", id, 0, 1)
	send("next", "release-of-another-owner 1", 0, 1)
	awaitTry(t, lw, 2*time.Second, "own turn from a quorum, then next from a quorum")
}

// TestReview10OwnTurnWipesStandbyFromMinorityTurn: another owner's
// release turns the waiter from one node (the queues came apart: the
// documented standby wait covers it), then the own undo's turns come
// from a quorum: at c6c3809 the standby was cleared and the own turn
// dropped.
func TestReview10OwnTurnWipesStandbyFromMinorityTurn(t *testing.T) {
	lw, send, own := review10Wait(t)
	id := own(3)
	send("turn", "release-of-another-owner", 2)
	send("turn", id, 0, 1)
	awaitTry(t, lw, 2*time.Second, "another owner's turn from one node, then own turn from a quorum")
}
