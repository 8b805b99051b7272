package redsync

import (
	_ "embed"
	"strconv"
	"strings"
	"sync"
	"time"
)

//go:embed lua/guard_check.lua
var guardCheckSrc string

// guardMarkerPrefix starts the name of every marker key of the restart
// guard; a cluster hash tag follows it.
const guardMarkerPrefix = "redsync:restart-guard:"

// WithRestartGuard denies the vote of a node whose process has been up for
// less than maxTTL, so that a node that crashed and came back empty (no
// persistence, or fsync not "always") cannot grant a lock that another
// client may still hold. maxTTL must be at least the longest expiry of any
// lock taken on these nodes, and at least this Mutex's expiry.
//
// A node too young to vote answers with an error that matches
// [ErrNodeRestarted] inside a *[RedisError] naming the node; it counts as a
// failed node, and Lock goes on retrying. While a minority of the nodes is
// too young, the others still make a quorum; right after all nodes started
// together, no lock is granted until they have been up for maxTTL.
//
// The check runs inside the acquire script, so it costs no round trip: each
// node keeps, per cluster slot in use, a marker key named
// "redsync:restart-guard:{TAG}" (TAG hashes to the lock key's slot, so
// Redis Cluster accepts the script) caching the process start time, which
// the script reads from INFO when the marker is missing or was written by
// an earlier process. Markers expire after an hour. The client then needs
// permission for INFO, LASTSAVE and TIME on the nodes. The start time is
// known to a second, so a node votes maxTTL plus at most one second after
// it started.
//
// The guard judges a node by the age of its redis-server process, as the
// node's own clock tells it, not by the age of its data. It sees a node
// whose process restarted (after a crash, a kill or a shutdown, with or
// without persistence, whatever file it loaded). It does not see a node
// that lost or replaced its data while its process ran on, or whose
// process only looks old; such a node votes at once: FLUSHALL or FLUSHDB;
// eviction of lock keys (a maxmemory-policy that evicts keys with an
// expiry); a full resynchronization, as REPLICAOF a server without the
// locks (an empty or a lagging one) and then REPLICAOF NO ONE does; a
// replica promoted in place of a failed master; a restored snapshot of a
// VM or container; a forward jump of the node's wall clock, which expires
// lock keys early and makes the process look older. A backward jump makes
// it look younger: it waits longer to vote. The guard protects lock keys,
// not fencing counters (see [WithFencing]). A node restarted with
// appendfsync always loses nothing, and the guard makes it wait
// needlessly. The default is off, as in redsync v4.
func WithRestartGuard(maxTTL time.Duration) Option {
	return setting(func(c *config) {
		// NewMutex sets the name before it applies the options.
		c.guard = restartGuard{
			on:     true,
			maxTTL: maxTTL,
			marker: guardMarker(c.name),
			ttlArg: strconv.FormatInt(maxTTL.Milliseconds(), 10),
		}
	})
}

// restartGuard is the configuration of WithRestartGuard.
type restartGuard struct {
	on     bool
	maxTTL time.Duration
	marker any // the marker key, boxed once for the script
	ttlArg any // maxTTL in ms
}

// check returns the configuration problem of the guard, or nil.
func (g *restartGuard) check(expiry time.Duration) error {
	if g.on && g.maxTTL < expiry {
		return newConfigError("restart guard maxTTL is %v; it must be at least the expiry (%v), and cover the longest expiry of any lock on these nodes", g.maxTTL, expiry)
	}
	return nil
}

// isRestartedReply reports whether msg is the guarded acquire script's
// answer of a node too young to vote.
func isRestartedReply(msg string) bool {
	return strings.HasPrefix(msg, "RESTARTED ")
}

// guardMarker returns the name of the marker key for the lock key: the
// prefix and a hash tag chosen so that the marker hashes to the same
// Redis Cluster slot as key. Deriving the tag from the key itself would not
// do: a key holding a "}" but no valid hash tag ("a}b") is hashed whole,
// and no tag can contain a "}". Taking one tag per slot also bounds the
// markers of a node to 16384, however many lock names are used.
func guardMarker(key string) string {
	return guardMarkerPrefix + "{" + slotTag(keySlot(key)) + "}"
}

// keySlot returns the Redis Cluster slot of key: CRC16 of the key, or of
// its hash tag (the text between the first "{" and the next "}", when not
// empty), modulo 16384.
func keySlot(key string) uint16 {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if n := strings.IndexByte(key[open+1:], '}'); n > 0 {
			key = key[open+1 : open+1+n]
		}
	}
	return crc16(key) % 16384
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial value 0), the hash of
// Redis Cluster.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// slotTags maps each slot to the smallest number whose base-36 form hashes
// to it, plus one (0 means not found yet). Built on first use of the guard:
// 64 KiB, about 170,000 CRCs of at most four bytes.
var slotTags = sync.OnceValue(func() []uint32 {
	tags := make([]uint32, 16384)
	for n, found := uint32(0), 0; found < len(tags); n++ {
		slot := crc16(strconv.FormatUint(uint64(n), 36)) % 16384
		if tags[slot] == 0 {
			tags[slot] = n + 1
			found++
		}
	}
	return tags
})

// slotTag returns a short hash tag (lower-case letters and digits) that
// hashes to slot.
func slotTag(slot uint16) string {
	return strconv.FormatUint(uint64(slotTags()[slot]-1), 36)
}
