package redsync

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// review16Run brings maxOwnTurns-1 tries in a row forward with own turns
// from a quorum (ownTurnFixture: each the undo of a try that took the key
// on a quorum and whose replies were lost; documented, up to maxOwnTurns
// in a row), then sends the own turn of the second try's undo and lets
// it end the third wait. Nothing is wrong so far.
func review16Run(t *testing.T) (lw *lockWait, send func(kind, id string, from ...int), own func(i int) string) {
	t.Helper()
	lw, send, own = ownTurnFixture(t)
	ownTurnTries(t, lw, send, own, maxOwnTurns-1)
	send("turn", own(maxOwnTurns-1), 0, 1)
	awaitTry(t, lw, 150*time.Millisecond, fmt.Sprintf("own turn %d from a quorum", maxOwnTurns))
	return lw, send, own
}

// TestReview16NextSplitByTryKeepsRun: another owner's release names the
// waiter next on a quorum of nodes (0 and 1), and the third own-turn try
// starts between the two messages: node 0's comes after the wait ended,
// node 1's during the try. Had both come before the try
// (TestReview13ForeignNextBeforeTryKeepsRun) or both during it
// (TestReview12DueNextStandbyCountedAsOwnTurn: a standby time), the run
// would have ended. At a25aa51 tryStarts wiped node 0's 'next' (w.nexts,
// "the try uses them") without reporting it, and node 1's then counted
// alone, fewer than a quorum: nothing was set. The undo of the third try
// freed the key on a quorum (its replies were lost, as before), its own
// turn was the "fourth in a row" and was dropped, and the waiter, named
// next by a quorum, slept its retry delay (1 h) with the lock free on a
// quorum (at b58ee6a every own turn from a quorum brought a try). Now
// tryStarts reports another owner's 'next' from some nodes too.
func TestReview16NextSplitByTryKeepsRun(t *testing.T) {
	lw, send, own := review16Run(t)
	send("next", "release-of-another-owner 1", 0) // after the wait, before the try
	lw.tryStarts()
	send("next", "release-of-another-owner 1", 1) // during the try: a quorum named the waiter next
	send("turn", own(maxOwnTurns), 0, 1)
	awaitTry(t, lw, 2*time.Second, "own turn from a quorum after a try during which a quorum's 'next' (split by the try) came")
}

// TestReview16NextSplitByTryAloneNoTry is a control, and a caveat for
// the test above: the same split 'next' with no own turn sets nothing, at
// a25aa51 as at b58ee6a (the waiter waits until ctx ends): a 'next' is a
// wake-up only when a quorum of its messages comes between two tries.
func TestReview16NextSplitByTryAloneNoTry(t *testing.T) {
	lw, send, _ := ownTurnFixture(t)
	send("next", "release-of-another-owner 1", 0)
	lw.tryStarts()
	send("next", "release-of-another-owner 1", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	r, _ := lw.await(ctx, 1)
	if r != waitDone {
		t.Fatalf("split 'next' alone: await = %v, want waitDone (it sets nothing)", r)
	}
}
