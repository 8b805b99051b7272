package redsync

import (
	"fmt"
	"testing"
	"time"
)

// review14Grant runs the third wait of a run of own-turn tries (two came
// before it, each brought by an own turn from a quorum: documented, up
// to maxOwnTurns in a row). During that wait a holder of this Redsync
// unlocks by local hand-off: it claims the waiter (notifier.claim, as
// Unlock's claimWaiter does), and while its hand-off round is under way
// the turn named by ownID comes from a quorum (when ownID is not "").
// The hand-off then fails (transfer.go: no quorum took the waiter's
// value, or the validity ran out; the transfer's undo wakes the first
// waiter of the nodes' queues, which this waiter has left), and handOver
// ends the grant and wakes the waiter. The failed grant brings the
// waiter's next try: alone, it ends the run (await reset it), as any
// wake-up by another owner does.
func review14Grant(t *testing.T, lw *lockWait, send func(kind, id string, from ...int), ownID string) {
	t.Helper()
	n := lw.m.notify
	errs := make(chan string, 1)
	go func() {
		deadline := time.Now().Add(2 * time.Second)
		for {
			w, g := n.claim(lw.m.name, 0)
			if w != nil {
				if w != lw.w {
					errs <- "claimed another waiter"
					return
				}
				if ownID != "" {
					send("turn", ownID, 0, 1) // during the hand-off round
				}
				time.Sleep(20 * time.Millisecond) // the hand-off round
				// handOver's end: the hand-off failed (g.ok stays false).
				close(g.done)
				select {
				case w.wake <- struct{}{}:
				default:
				}
				errs <- ""
				return
			}
			if time.Now().After(deadline) {
				errs <- "the waiter never waited for a hand-off"
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	awaitTry(t, lw, 2*time.Second, "a failed local hand-off (with own turn "+fmt.Sprintf("%q", ownID)+")")
	if e := <-errs; e != "" {
		t.Fatal(e)
	}
}

// TestReview14FailedHandOffWithOwnTurnKeepsRun: the own turn of the
// second try's undo comes from a quorum while a holder of this Redsync
// hands the waiter the lock locally, and the hand-off fails. The third
// try serves both: the failed grant (another owner's wake-up, which
// alone ends the run: TestReview14FailedHandOffAloneEndsRun) and the own
// turn. takeTurn looks at the turn only (the grant is not a turn, a
// standby time, a back-off or a due renewal) and counted the try as the
// third own one in a row; the undo of the third try freed the key on a
// quorum (its replies were lost, as before), its own turn was dropped as
// the "fourth in a row", and the waiter, whose try the failed hand-off
// had asked for, slept its retry delay (1 h) with the lock free on a
// quorum (at e1cdf1a; at b58ee6a every own turn from a quorum brought a
// try). Now lockWait.end ends the run when a hand-off was tried.
func TestReview14FailedHandOffWithOwnTurnKeepsRun(t *testing.T) {
	lw, send, own := ownTurnFixture(t)
	ownTurnTries(t, lw, send, own, maxOwnTurns-1)
	review14Grant(t, lw, send, own(maxOwnTurns-1))
	lw.tryStarts()
	send("turn", own(maxOwnTurns), 0, 1)
	awaitTry(t, lw, 2*time.Second, "own turn from a quorum after a try that a failed local hand-off brought")
}

// TestReview14FailedHandOffAloneEndsRun is the control: the failed
// hand-off wakes the waiter alone, its try ends the run, and the own
// turns after it bring tries again.
func TestReview14FailedHandOffAloneEndsRun(t *testing.T) {
	lw, send, own := ownTurnFixture(t)
	ownTurnTries(t, lw, send, own, maxOwnTurns-1)
	review14Grant(t, lw, send, "")
	lw.tryStarts()
	for i := maxOwnTurns; i < 2*maxOwnTurns; i++ {
		send("turn", own(i), 0, 1)
		awaitTry(t, lw, 2*time.Second, fmt.Sprintf("own turn %d after the failed hand-off", i-maxOwnTurns+1))
		lw.tryStarts()
	}
}
