package redsync

import (
	"fmt"
	"testing"
	"time"
)

// TestReview17RenewalDueInTryBeforePrepareKeepsRun: the renewal of the
// waiter's entries (lockWait.renew) comes due after the third own-turn
// try in a row has started (lockWait.tryStarts) but before that try's
// prepare, which serves it (it sets the next renewal half an entry's life
// later). At 280a50c only lockWait.tryStarts looked at the renewal,
// before prepare, so the try that served the renewal stayed in the run:
// the undo of that try freed the key on a quorum again (its replies were
// lost), its own turn was dropped as the "fourth in a row", and the
// waiter slept until its next renewal (retry delay 1 h) with the lock
// free on a quorum (at b58ee6a every own turn from a quorum brought a
// try). The window is tiny in a real Lock (newValue and makeCalls run
// between tryStarts and prepare); simulated here as review15 does, with
// lockWait.renewAt, which prepare calls and which now ends the run when
// the renewal it replaces had come due.
func TestReview17RenewalDueInTryBeforePrepareKeepsRun(t *testing.T) {
	lw, send, own := ownTurnFixture(t)
	ownTurnTries(t, lw, send, own, maxOwnTurns-1)
	lw.renew = time.Now().Add(time.Hour)
	send("turn", own(maxOwnTurns-1), 0, 1)
	awaitTry(t, lw, 150*time.Millisecond, fmt.Sprintf("own turn %d from a quorum", maxOwnTurns))
	lw.renew = time.Now().Add(100 * time.Millisecond) // simulated: due just after tryStarts
	lw.tryStarts()
	time.Sleep(time.Until(lw.renew) + 5*time.Millisecond) // the renewal came due: prepare serves it
	lw.renewAt(time.Now().Add(lw.m.entryLife() / 2))
	send("turn", own(maxOwnTurns), 0, 1)
	awaitTry(t, lw, 2*time.Second, "own turn from a quorum after a try whose prepare served a renewal that came due")
}
