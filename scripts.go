package redsync

import (
	_ "embed"

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
	//go:embed lua/claim.lua
	claimSrc string
	//go:embed lua/multi_acquire.lua
	multiAcquireSrc string
	//go:embed lua/multi_release.lua
	multiReleaseSrc string
	//go:embed lua/multi_extend.lua
	multiExtendSrc string

	acquireScript = redis.NewScript(1, acquireSrc, "")
	releaseScript = redis.NewScript(1, releaseSrc, "")
	extendScript  = redis.NewScript(1, extendSrc, "")

	releaseNotifyScript = redis.NewScript(1, releaseNotifySrc, "")
	claimScript         = redis.NewScript(1, claimSrc, "")

	// The scripts of a Mutex of NewMultiMutex (multi.go) take the key
	// count as their first argument.
	multiAcquireScript = redis.NewScript(-1, multiAcquireSrc, "")
	multiReleaseScript = redis.NewScript(-1, multiReleaseSrc, "")
	multiExtendScript  = redis.NewScript(-1, multiExtendSrc, "")
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
