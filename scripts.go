package redsync

import (
	_ "embed"
	"fmt"
	"strings"

	"github.com/go-redlock/redsync/redis"
)

// The Lua scripts run on each node. Their replies are integers so
// that every driver returns them the same way (int64).
var (
	//go:embed lua/acquire.lua
	acquireSrc string
	//go:embed lua/release.lua
	releaseSrc string
	//go:embed lua/extend.lua
	extendSrc string
	//go:embed lua/release_notify.lua
	releaseNotifySrc string
	//go:embed lua/release_fast.lua
	releaseFastSrc string
	//go:embed lua/multi_acquire.lua
	multiAcquireSrc string
	//go:embed lua/multi_release.lua
	multiReleaseSrc string
	//go:embed lua/multi_extend.lua
	multiExtendSrc string
	// queueLibSrc starts every script that keeps a queue of waiters or
	// wakes one (see handoff.go).
	//go:embed lua/queue_lib.lua
	queueLibSrc string

	releaseScript = redis.NewScript(1, releaseSrc, "")
	extendScript  = redis.NewScript(1, extendSrc, "")

	// The common release first (release_fast.lua), then the whole one.
	releaseNotifyScript = redis.NewScript(2, releaseFastSrc+queueLibSrc+releaseNotifySrc, "")

	// The scripts of a Mutex of NewMultiMutex (multi.go) take the key
	// count as their first argument.
	multiReleaseScript = redis.NewScript(-1, queueLibSrc+multiReleaseSrc, "")
	multiExtendScript  = redis.NewScript(-1, multiExtendSrc, "")

	// acquireScripts are the acquire scripts, by [multi][guard][fence]:
	// for several names or one, with the restart guard's check or
	// without, fenced or not (see acquireSource). [0][0][0] is
	// acquireScript.
	acquireScripts = func() (s [2][2][2]*redis.Script) {
		for i := range 8 {
			multi, guard, fence := i&4 != 0, i&2 != 0, i&1 != 0
			keys := -1 // multi: the key count comes first
			if !multi {
				keys = 1 + i&2>>1 + i&1
			}
			s[i>>2][i>>1&1][i&1] = redis.NewScript(keys, acquireSource(multi, guard, fence), "")
		}
		return s
	}()
	acquireScript       = acquireScripts[0][0][0]
	fencedAcquireScript = acquireScripts[0][0][1]
	multiAcquireScript  = acquireScripts[1][0][0]
)

// Replies of the scripts.
const (
	replyDone    int64 = 1  // acquired, released or extended
	replyTaken   int64 = 0  // another owner holds the key
	replyMissing int64 = -1 // the key does not exist
	// replyTookOver: the key did not exist and now holds the next owner's
	// value (transfer.lua): done for the next owner, missing for the
	// holder.
	replyTookOver int64 = 2
	// replyTakenBy: the acquire scripts' replies from replyTakenBy up mean
	// taken, by the owner whose value has the fingerprint reply -
	// replyTakenBy (48 bits of its SHA1). Equal replies from several nodes
	// mean one owner; replyTaken means an owner we cannot tell apart.
	replyTakenBy int64 = 1 << 16
)

// isTaken reports whether an acquire script's reply says that another
// owner holds the key.
func isTaken(reply int64) bool {
	return reply == replyTaken || reply >= replyTakenBy
}

// acquireSource composes the source of an acquire script from the parts in
// lua/: multi_acquire.lua for several names (multi) or acquire.lua for
// one, after guard_check.lua with the restart guard (guard), and, with
// fencing (fence), as the function that fence_acquire.lua calls. The keys
// are the lock keys, then the guard's marker, then one fencing counter
// per lock key; the arguments the value and the TTL, then the guard's
// span, then the proposed token. Without guard and fence, the source of
// one name is acquire.lua itself.
func acquireSource(multi, guard, fence bool) string {
	var g, f int
	if guard {
		g = 1
	}
	if fence {
		f = 1
	}
	var b strings.Builder
	switch {
	case multi:
		fmt.Fprintf(&b, "local n = (#KEYS - %d) / %d\n", g, 1+f)
	case guard || fence:
		b.WriteString("local n = 1\n")
	}
	if guard {
		b.WriteString("local markerKey, guardSpan = KEYS[n + 1], ARGV[3]\n")
	}
	if fence {
		fmt.Fprintf(&b, "local firstCounter = n + %d\nlocal function acquire()\n", 1+g)
	}
	if guard {
		b.WriteString(guardCheckSrc)
	}
	if multi {
		b.WriteString(multiAcquireSrc)
	} else {
		b.WriteString(acquireSrc)
	}
	if fence {
		b.WriteString("\nend\n" + fenceAcquireTail)
	}
	return b.String()
}
