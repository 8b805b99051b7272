//go:build go1.25

package redsync

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"testing"
	"testing/synctest"

	"github.com/go-redlock/redsync/redis"
)

// review19Child names, in the environment of a child test process, the
// scenario it runs (see review19InChild).
const review19Child = "REDSYNC_REVIEW19_CHILD"

// review19InChild runs the test named name again in a child process, where
// scenario runs: a fatal error of the runtime, or a panic, then fails this
// test and not the whole test binary. It reports whether this is the
// child (which has run scenario).
func review19InChild(t *testing.T, name string, scenario func(t *testing.T)) bool {
	if os.Getenv(review19Child) == name {
		scenario(t)
		t.Log("review19: scenario done")
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+name+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), review19Child+"="+name)
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("review19: scenario done")) {
		if len(out) > 3000 {
			out = out[:3000]
		}
		t.Errorf("the scenario failed in the child process (%v):\n%s", err, out)
	}
	return false
}

// review19LockUnlock locks and unlocks a Mutex of a new Redsync over three
// nodes of its own, whose scripts all succeed at once.
func review19LockUnlock(t *testing.T, name string) {
	pools := make([]redis.Pool, 3)
	for i := range pools {
		pools[i] = review19Node{}
	}
	m := New(pools...).NewMutex(name)
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock(): %v", err)
	}
	if ok, err := m.Unlock(); !ok || err != nil {
		t.Fatalf("Unlock() = %v, %v", ok, err)
	}
}

// TestReview19SynctestBubbleLockUnlock: a test that locks and unlocks in
// a testing/synctest bubble (Go 1.25+), as a user's time-based test of
// code built on redsync would, in a process that used redsync nowhere
// else. With a goroutine per command, the bubble's goroutines have all
// ended when the test function returns. With the command workers of
// 8f97cf5 (reverted), the ones the bubble's rounds started were still
// parked, waiting for their linger (a timer of the bubble), and
// synctest.Test failed: "deadlock: main bubble goroutine has exited but
// blocked goroutines remain". No goroutine of an uncontended Lock and
// Unlock may outlive them.
func TestReview19SynctestBubbleLockUnlock(t *testing.T) {
	review19InChild(t, "TestReview19SynctestBubbleLockUnlock", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) { review19LockUnlock(t, "review19-inside") })
	})
}

// TestReview19SynctestBubbleAfterOtherRedsync: two independent Redsyncs,
// over nodes of their own. The first locks and unlocks outside any
// bubble; right after, a test locks and unlocks with the second inside a
// synctest bubble. With one set of command workers for the process
// (f0a3696, reverted) the bubble's commands were handed to the first
// Redsync's parked workers, goroutines outside the bubble, which sent on
// the round's results channel, made inside the bubble: the runtime killed
// the process ("fatal error: send on synctest channel from outside
// bubble"). With a goroutine per command the Redsyncs share nothing.
func TestReview19SynctestBubbleAfterOtherRedsync(t *testing.T) {
	review19InChild(t, "TestReview19SynctestBubbleAfterOtherRedsync", func(t *testing.T) {
		review19LockUnlock(t, "review19-outside")
		synctest.Test(t, func(t *testing.T) { review19LockUnlock(t, "review19-inside") })
	})
}

// review19Node is a node whose scripts all reply 1 at once (acquired,
// released); it has no connections.
type review19Node struct{}

func (review19Node) Get(context.Context) (redis.Conn, error) { return nil, errUnsupported }

func (review19Node) RunScript(context.Context, *redis.ScriptCall) (any, error) { return int64(1), nil }
