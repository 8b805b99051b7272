package redsync_test

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/internal/redistest"
)

// Tests from a review that tried to break NewMultiMutex on real servers:
// the multi-key scripts against partial and foreign state, and the Mutex
// over them. Tests skipped with "finding:" fail without the skip.

// evalFile runs the script in path on srv with keys and args; an error
// reply comes back as a Reply of KindError.
func evalFile(t *testing.T, srv *redistest.Server, path string, keys []string, args ...string) redistest.Reply {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(path, "multi_acquire.lua") {
		// A part of the acquire scripts: it needs the number of lock
		// keys, as scripts.go sets it.
		src = append([]byte("local n = #KEYS\n"), src...)
	}
	cmd := append([]string{"EVAL", string(src), strconv.Itoa(len(keys))}, keys...)
	rep, err := srv.Do(append(cmd, args...)...)
	if err != nil {
		return redistest.Reply{Kind: redistest.KindError, Str: err.Error()}
	}
	return rep
}

// TestReviewIntegrationMultiScripts: the multi-key scripts on a real
// server, against partial state: some names ours, some missing, some of
// another owner, some of another type. Each refusal writes nothing.
func TestReviewIntegrationMultiScripts(t *testing.T) {
	srv := redistest.Start(t)
	do := func(args ...string) redistest.Reply { return srv.MustDo(t, args...) }
	get := func(k string) string {
		r := do("GET", k)
		if r.Kind == redistest.KindNil {
			return "<nil>"
		}
		return r.Str
	}
	const acq, rel, ext = "lua/multi_acquire.lua", "lua/multi_release.lua", "lua/multi_extend.lua"

	// Acquire: ours + missing + another owner's: refused, nothing written,
	// our key's TTL untouched.
	do("FLUSHALL")
	do("SET", "a", "V", "PX", "100000")
	do("SET", "c", "other")
	if rep := evalFile(t, srv, acq, []string{"a", "b", "c"}, "V", "5000"); rep.Kind != redistest.KindInt || rep.Int < 1<<16 {
		t.Errorf("acquire with c taken = %v, want 65536 + fingerprint", rep)
	}
	if get("b") != "<nil>" || get("c") != "other" || do("PTTL", "a").Int < 50000 {
		t.Errorf("refused acquire wrote: b=%s c=%s PTTL a=%d", get("b"), get("c"), do("PTTL", "a").Int)
	}
	// Same owner on two nodes: equal fingerprints.
	r1 := evalFile(t, srv, acq, []string{"x", "c"}, "W", "5000")
	r2 := evalFile(t, srv, acq, []string{"c"}, "W", "5000")
	if r1.Int != r2.Int {
		t.Errorf("fingerprints of one owner differ: %d, %d", r1.Int, r2.Int)
	}
	// Acquire: a name of another type, last: an error, nothing written.
	do("FLUSHALL")
	do("HSET", "c", "f", "v")
	if rep := evalFile(t, srv, acq, []string{"a", "b", "c"}, "V", "5000"); rep.Kind != redistest.KindError {
		t.Errorf("acquire with c a hash = %v, want an error", rep)
	}
	if do("EXISTS", "a", "b").Int != 0 {
		t.Error("acquire that failed on a wrong type wrote keys")
	}
	// Acquire: ours + missing: granted, every TTL reset.
	do("FLUSHALL")
	do("SET", "a", "V", "PX", "100000")
	if rep := evalFile(t, srv, acq, []string{"a", "b"}, "V", "5000"); rep.Int != 1 {
		t.Errorf("acquire with a ours = %v, want 1", rep)
	}
	if p := do("PTTL", "a").Int; p > 5000 || p <= 0 {
		t.Errorf("PTTL a = %d after acquire, want <= 5000", p)
	}

	// Extend: ours + another's: 0, nothing written; ours + missing: -1,
	// nothing written; with SetNX: 1, missing set.
	do("FLUSHALL")
	do("SET", "a", "V", "PX", "100000")
	do("SET", "b", "other")
	if rep := evalFile(t, srv, ext, []string{"a", "b"}, "V", "5000", "1"); rep.Int != 0 {
		t.Errorf("extend with b taken = %v, want 0", rep)
	}
	if do("PTTL", "a").Int < 50000 || get("b") != "other" {
		t.Error("refused extend wrote")
	}
	do("DEL", "b")
	if rep := evalFile(t, srv, ext, []string{"a", "b"}, "V", "5000", "0"); rep.Int != -1 {
		t.Errorf("extend with b missing = %v, want -1", rep)
	}
	if do("PTTL", "a").Int < 50000 || get("b") != "<nil>" {
		t.Error("extend refused for a missing name wrote")
	}
	if rep := evalFile(t, srv, ext, []string{"a", "b"}, "V", "5000", "1"); rep.Int != 1 || get("b") != "V" {
		t.Errorf("extend with SetNX = %v (b=%s), want 1 and b set", rep, get("b"))
	}

	// Release: ours + another's + missing: ours deleted, 1; none ours: 0
	// or -1.
	do("FLUSHALL")
	do("SET", "a", "V")
	do("SET", "b", "other")
	if rep := evalFile(t, srv, rel, []string{"a", "b", "c"}, "V", "0"); rep.Int != 1 || get("a") != "<nil>" || get("b") != "other" {
		t.Errorf("release = %v (a=%s b=%s), want 1, a deleted, b kept", rep, get("a"), get("b"))
	}
	if rep := evalFile(t, srv, rel, []string{"a", "b"}, "V", "0"); rep.Int != 0 {
		t.Errorf("release of none ours, one taken = %v, want 0", rep)
	}
	if rep := evalFile(t, srv, rel, []string{"a", "c"}, "V", "0"); rep.Int != -1 {
		t.Errorf("release of none existing = %v, want -1", rep)
	}
}

// TestReviewIntegrationMultiReleaseWrongType: a set is held; one of its
// names is then replaced by a value of another type (a hash) by some other
// program. Unlock must still delete every name that is ours
// (docs/MULTIKEY.md: "Unlock deletes every name that is still ours");
// multi_acquire.lua reads the names with pcall for this reason, but
// multi_release.lua reads them with redis.call: the script aborts at the
// hash, after deleting the names before it and before deleting those after
// it, so the names after it stay ours on every node until they expire, and
// Unlock fails.
func TestReviewIntegrationMultiReleaseWrongType(t *testing.T) {
	ns := startNodes(t, drivers[0], 3)
	names := []string{"wt-a", "wt-b", "wt-c"}
	m := ns.rs.NewMultiMutex(names, roomy, redsync.WithTries(1))
	if err := m.Lock(); err != nil {
		t.Fatal(err)
	}
	for i, srv := range ns.servers {
		srv.MustDo(t, "DEL", "wt-b")
		srv.MustDo(t, "HSET", "wt-b", "f", "v")
		ns.keep(i, "wt-b")
	}
	ok, err := m.Unlock()
	var left []int
	for i, srv := range ns.servers {
		if srv.MustDo(t, "EXISTS", "wt-c").Int != 0 {
			left = append(left, i)
		}
	}
	if len(left) > 0 {
		t.Errorf("Unlock() left wt-c, a later name of the set, ours on nodes %v after a name of another type; Unlock() = %v, %v", left, ok, err)
		for _, i := range left {
			ns.servers[i].MustDo(t, "DEL", "wt-c") // for the final check
		}
	}
	if !ok || err != nil {
		t.Logf("Unlock() = %v, %v", ok, err)
	}
}

// TestReviewIntegrationMultiWrongTypeLock: a Lock of a set one of whose
// names is a hash on every node fails with ErrWrongType, without retrying,
// and writes nothing; an Extend of a held set whose name became a hash
// fails and writes nothing.
func TestReviewIntegrationMultiWrongTypeLock(t *testing.T) {
	forEach(t, []int{3}, func(t *testing.T, d driver, n int) {
		ns := startNodes(t, d, n)
		for i, srv := range ns.servers {
			srv.MustDo(t, "HSET", "wl-c", "f", "v")
			ns.keep(i, "wl-c")
		}
		m := ns.rs.NewMultiMutex([]string{"wl-a", "wl-b", "wl-c"}, roomy, redsync.WithTries(5), redsync.WithRetryDelay(time.Second))
		start := time.Now()
		err := m.Lock()
		if !errors.Is(err, redsync.ErrWrongType) || !errors.Is(err, redsync.ErrFailed) {
			t.Errorf("Lock() = %v, want ErrWrongType and ErrFailed", err)
		}
		if time.Since(start) > time.Second {
			t.Errorf("Lock() retried a permanent error (%v)", time.Since(start))
		}
		for i, srv := range ns.servers {
			if srv.MustDo(t, "EXISTS", "wl-a", "wl-b").Int != 0 {
				t.Errorf("node %d: a failed Lock wrote names", i)
			}
		}
	})
}
