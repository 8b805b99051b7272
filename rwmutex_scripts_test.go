package redsync

import (
	"crypto/sha1"
	"encoding/binary"
	"strconv"
	"strings"
	"testing"

	"github.com/go-redlock/redsync/internal/redistest"
)

// The readers' scripts on a real node, with the node's clock (TIME)
// replaced by a fixed one, so that shares can end exactly at, before or
// after it: what they reply, and what they leave in the keys.

const (
	scriptW = "doc"
	scriptR = "redsync:rw:{x}:doc:readers"
	scriptQ = "redsync:rw:{x}:doc:writer-waiting"
)

// atTime returns the script src with its TIME call replaced by the reply
// sec, usec, or fails the test when src has not exactly one TIME call.
func atTime(t *testing.T, src string, sec, usec string) string {
	t.Helper()
	const call = "redis.call('TIME')"
	if n := strings.Count(src, call); n != 1 {
		t.Fatalf("the script calls TIME %d times; this test replaces one call", n)
	}
	return strings.Replace(src, call, "{'"+sec+"', '"+usec+"'}", 1)
}

// evalAt runs src on srv with keys and args, and returns the reply
// and the server's error.
func evalAt(srv *redistest.Server, src string, keys []string, args ...string) (redistest.Reply, error) {
	cmd := append([]string{"EVAL", src, strconv.Itoa(len(keys))}, keys...)
	return srv.Do(append(cmd, args...)...)
}

// shares returns the members of the sorted set key with their scores, as
// "member=score", in the order of ZRANGE.
func shares(t *testing.T, srv *redistest.Server, key string) []string {
	t.Helper()
	r := srv.MustDo(t, "ZRANGE", key, "0", "-1", "WITHSCORES")
	var got []string
	for i := 0; i+1 < len(r.Elems); i += 2 {
		got = append(got, r.Elems[i].Str+"="+r.Elems[i+1].Str)
	}
	return got
}

// TestRWReadReleaseScriptClock checks that rw_read_release.lua tells a
// live share (1) from an expired or missing one (-1) by the node's time in
// ms, whatever the digits of TIME's microseconds: a share that ends at
// this millisecond has expired. The share is removed in every case.
func TestRWReadReleaseScriptClock(t *testing.T) {
	srv := redistest.Start(t)
	const sec = "1700000000"
	for _, usec := range []string{"0", "7", "999", "1000", "5123", "99999", "100000", "999999"} {
		u, _ := strconv.Atoi(usec)
		now := int64(1700000000)*1000 + int64(u/1000)
		src := atTime(t, rwReadReleaseSrc, sec, usec)
		for _, tt := range []struct {
			desc  string
			score int64 // the share's end; 0: no share
			want  int64
		}{
			{"ends 1 ms after now", now + 1, 1},
			{"ends later", now + 8000, 1},
			{"ends now", now, -1},
			{"ended 1 ms ago", now - 1, -1},
			{"no share", 0, -1},
		} {
			srv.MustDo(t, "FLUSHALL")
			if tt.score != 0 {
				srv.MustDo(t, "ZADD", scriptR, strconv.FormatInt(tt.score, 10), "mine")
			}
			// A share of another reader keeps R alive.
			srv.MustDo(t, "ZADD", scriptR, strconv.FormatInt(now+60000, 10), "other")
			r, err := evalAt(srv, src, []string{scriptR}, "mine")
			if err != nil || r.Int != tt.want {
				t.Errorf("TIME %s %s, share %s: release = %+v, %v; want %d", sec, usec, tt.desc, r, err, tt.want)
			}
			if got := srv.MustDo(t, "ZSCORE", scriptR, "mine"); !got.IsNil() {
				t.Errorf("TIME %s %s, share %s: the share is still there (%s)", sec, usec, tt.desc, got.Str)
			}
		}
	}
}

// TestRWReadReleaseScriptKeys checks what rw_read_release.lua leaves: the
// live shares of other readers, not the expired ones; no readers' key
// once the last share is gone; and an error for a key of another type.
func TestRWReadReleaseScriptKeys(t *testing.T) {
	srv := redistest.Start(t)
	const now = 1700000000005
	src := atTime(t, rwReadReleaseSrc, "1700000000", "5123")
	at := func(ms int64) string { return strconv.FormatInt(ms, 10) }

	srv.MustDo(t, "ZADD", scriptR, at(now+8000), "mine", at(now), "dead", at(now+1), "other")
	srv.MustDo(t, "PEXPIRE", scriptR, "60000")
	if r, err := evalAt(srv, src, []string{scriptR}, "mine"); err != nil || r.Int != 1 {
		t.Errorf("release of a live share = %+v, %v; want 1", r, err)
	}
	if got := shares(t, srv, scriptR); len(got) != 1 || got[0] != "other="+at(now+1) {
		t.Errorf("shares left = %q; want only the other live one", got)
	}
	if pttl := srv.MustDo(t, "PTTL", scriptR).Int; pttl <= 8000 {
		t.Errorf("PTTL of the readers' key = %d; want it kept (about 60000)", pttl)
	}
	if r, err := evalAt(srv, src, []string{scriptR}, "other"); err != nil || r.Int != 1 {
		t.Errorf("release of the last share = %+v, %v; want 1", r, err)
	}
	if n := srv.MustDo(t, "EXISTS", scriptR).Int; n != 0 {
		t.Error("the readers' key is left after its last share")
	}

	srv.MustDo(t, "SET", scriptR, "x")
	if _, err := evalAt(srv, src, []string{scriptR}, "mine"); err == nil || !strings.HasPrefix(err.Error(), "WRONGTYPE") {
		t.Errorf("release with a string in the readers' key: error %v; want WRONGTYPE", err)
	}
}

// TestRWReadAcquireScript checks rw_read_acquire.lua's replies and keys on
// each of its paths: a lone reader, readers already in (their expired
// shares go, R's expiry is never shortened), a writer that holds or waits,
// and keys of another type.
func TestRWReadAcquireScript(t *testing.T) {
	srv := redistest.Start(t)
	const now = 1700000000005
	src := atTime(t, rwReadAcquireSrc, "1700000000", "5123")
	at := func(ms int64) string { return strconv.FormatInt(ms, 10) }
	sum := sha1.Sum([]byte("writer"))
	fingerprint := replyTakenBy + int64(binary.BigEndian.Uint64(append([]byte{0, 0}, sum[:6]...)))
	keys := []string{scriptW, scriptR, scriptQ}

	tests := []struct {
		desc   string
		setup  [][]string
		want   int64
		shares []string // R after the script, as shares returns it
		pttl   [2]int64 // R's PTTL after the script is within this range
		err    string   // the start of the error reply, if one is wanted
	}{
		{
			desc:   "lone reader",
			want:   1,
			shares: []string{"mine=" + at(now+8000)},
			pttl:   [2]int64{7000, 8000},
		},
		{
			desc: "other readers in, R ending later",
			setup: [][]string{
				{"ZADD", scriptR, at(now), "dead", at(now + 1), "other"},
				{"PEXPIRE", scriptR, "60000"},
			},
			want:   1,
			shares: []string{"other=" + at(now+1), "mine=" + at(now+8000)},
			pttl:   [2]int64{50000, 60000},
		},
		{
			desc: "other readers in, R ending sooner",
			setup: [][]string{
				{"ZADD", scriptR, at(now + 1000), "other"},
				{"PEXPIRE", scriptR, "1000"},
			},
			want:   1,
			shares: []string{"other=" + at(now+1000), "mine=" + at(now+8000)},
			pttl:   [2]int64{7000, 8000},
		},
		{
			desc:  "a writer holds W",
			setup: [][]string{{"SET", scriptW, "writer"}},
			want:  fingerprint,
			pttl:  [2]int64{-2, -2},
		},
		{
			desc: "a writer holds W, readers in",
			setup: [][]string{
				{"SET", scriptW, "writer"},
				{"ZADD", scriptR, at(now + 1), "other"},
				{"PEXPIRE", scriptR, "60000"},
			},
			want:   fingerprint,
			shares: []string{"other=" + at(now+1)},
			pttl:   [2]int64{50000, 60000},
		},
		{
			desc:  "a writer waits",
			setup: [][]string{{"SET", scriptQ, "intent"}},
			want:  0,
			pttl:  [2]int64{-2, -2},
		},
		{
			desc: "a writer waits, readers in",
			setup: [][]string{
				{"SET", scriptQ, "intent"},
				{"ZADD", scriptR, at(now + 1), "other"},
				{"PEXPIRE", scriptR, "60000"},
			},
			want:   0,
			shares: []string{"other=" + at(now+1)},
			pttl:   [2]int64{50000, 60000},
		},
		{
			desc:  "W of another type",
			setup: [][]string{{"SADD", scriptW, "x"}},
			err:   "WRONGTYPE",
			pttl:  [2]int64{-2, -2},
		},
		{
			desc: "W of another type, readers in",
			setup: [][]string{
				{"SADD", scriptW, "x"},
				{"ZADD", scriptR, at(now + 1), "other"},
				{"PEXPIRE", scriptR, "60000"},
			},
			err:    "WRONGTYPE",
			shares: []string{"other=" + at(now+1)},
			pttl:   [2]int64{50000, 60000},
		},
		{
			desc:  "R of another type",
			setup: [][]string{{"SADD", scriptR, "x"}},
			err:   "WRONGTYPE",
			pttl:  [2]int64{-1, -1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			srv.MustDo(t, "FLUSHALL")
			for _, cmd := range tt.setup {
				srv.MustDo(t, cmd...)
			}
			r, err := evalAt(srv, src, keys, "mine", "8000")
			switch {
			case tt.err != "":
				if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
					t.Errorf("acquire = %+v, %v; want an error %s...", r, err, tt.err)
				}
			case err != nil || r.Int != tt.want:
				t.Errorf("acquire = %+v, %v; want %d", r, err, tt.want)
			}
			if tt.err == "" || srv.MustDo(t, "TYPE", scriptR).Str == "zset" {
				if got := shares(t, srv, scriptR); strings.Join(got, " ") != strings.Join(tt.shares, " ") {
					t.Errorf("shares = %q; want %q", got, tt.shares)
				}
			}
			if pttl := srv.MustDo(t, "PTTL", scriptR).Int; pttl < tt.pttl[0] || pttl > tt.pttl[1] {
				t.Errorf("PTTL of the readers' key = %d; want %d to %d", pttl, tt.pttl[0], tt.pttl[1])
			}
		})
	}
}
