package mocktest

import (
	"crypto/sha1"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/redis"
)

// The SHA1 hashes of the scripts that Lock, Unlock and Extend send with
// EVALSHA, as README's migration notes list them. go-redsync/redsync v4
// sent other scripts: its Unlock e950836ed1e694540c503ef9972b8de518044d3b,
// its Extend d75bb8b5bd13532ddedd17762e772346e39b321e
// (b6b55c439e02c6f52ffb8be7ec8c0d0ac816ea79 with WithSetNXOnExtend), and
// its Lock no script but SET NX.
const (
	acquireSHA       = "cffb05b196c76dbdcf5af682554b64872a418746" // acquire.lua: Lock
	releaseNotifySHA = "ba7eb6b67ba07e877c3617a6482a179e54eb8a54" // release_fast.lua, queue_lib.lua and release_notify.lua: Unlock
	releaseSHA       = "2719e091d1c2d4470b60e458107208be5b57a4a2" // release.lua: Unlock with WithReleaseNotification(false)
	extendSHA        = "8ada6eccdbdcca290f2791b8c4ef6177f755add5" // extend.lua: Extend
)

// scriptSource returns the source of the library's script file, as it is
// sent: release_notify.lua comes after release_fast.lua and queue_lib.lua
// (scripts.go).
func scriptSource(t *testing.T, file string) string {
	t.Helper()
	read := func(file string) string {
		src, err := os.ReadFile(filepath.Join("..", "..", "..", "lua", file))
		if err != nil {
			t.Fatal(err)
		}
		return string(src)
	}
	if file == "release_notify.lua" {
		return read("release_fast.lua") + read("queue_lib.lua") + read(file)
	}
	return read(file)
}

// TestScriptHashes checks the hashes above against the scripts of the
// library's source tree, so that README's list cannot go stale unnoticed.
func TestScriptHashes(t *testing.T) {
	for file, want := range map[string]string{
		"acquire.lua":        acquireSHA,
		"release_notify.lua": releaseNotifySHA,
		"release.lua":        releaseSHA,
		"extend.lua":         extendSHA,
	} {
		sum := sha1.Sum([]byte(scriptSource(t, file)))
		if got := hex.EncodeToString(sum[:]); got != want {
			t.Errorf("SHA1 of %s = %s, want %s", file, got, want)
		}
	}
}

// A step is one command that a test expects the adapter to send, in the
// terms of the mock's Expect methods, with the mock's reply.
type step struct {
	cmd       string // "evalsha", "eval" or "get"
	hashOrSrc string // of evalsha or eval
	key       string
	more      []string // further keys of evalsha or eval
	args      []any    // of evalsha or eval, after the keys
	reply     any      // int64 for the scripts, string for get
	err       error    // replaces reply when not nil
}

// A mockedNode is one node whose client is a go-redis mock.
type mockedNode struct {
	pool   redis.Pool
	expect func(step) // adds a step to the mock's expectations, in order
}

// noScript is an error reply of the server, as a mock must give it for
// the adapter to send EVAL: a type with a RedisError method, which
// go-redis's own error replies have. go-redsync/redsync v4 looked for
// "NOSCRIPT " in the text of any error.
type noScript string

func (e noScript) Error() string { return string(e) }
func (noScript) RedisError()     {}

// TestV4Expectations runs Lock, Valid, Unlock and Extend over a node whose
// client is a redismock mock, with the expectations that a test written for
// go-redsync/redsync v4 gives the mock: the same as v4's where the command
// is the same (Valid's GET; Unlock's EVALSHA but for the script's hash),
// and as README's migration notes say where it differs (the comments show
// v4's). Each command must come in the order given.
func TestV4Expectations(t *testing.T) {
	tests := []struct {
		name    string
		options []redsync.Option
		run     func(*redsync.Mutex) error
		steps   func(t *testing.T) []step
	}{{
		name: "Lock",
		run:  lock,
		steps: func(*testing.T) []step {
			// v4: mock.ExpectSetNX("lock", "v", 8*time.Second).SetVal(true)
			return []step{{cmd: "evalsha", hashOrSrc: acquireSHA, key: "lock", args: []any{"v", "8000"}, reply: int64(1)}}
		},
	}, {
		name: "Lock, NOSCRIPT",
		run:  lock,
		steps: func(t *testing.T) []step {
			return []step{
				{cmd: "evalsha", hashOrSrc: acquireSHA, key: "lock", args: []any{"v", "8000"}, err: noScript("NOSCRIPT No matching script")},
				{cmd: "eval", hashOrSrc: scriptSource(t, "acquire.lua"), key: "lock", args: []any{"v", "8000"}, reply: int64(1)},
			}
		},
	}, {
		// Without release notification a Lock that waits only polls, as
		// v4's did; with it, it would also subscribe through the client's
		// Subscribe, which the mock does not intercept: the client would
		// dial its address.
		name:    "Lock, taken then free",
		options: []redsync.Option{redsync.WithReleaseNotification(false), redsync.WithTries(2), redsync.WithRetryDelay(time.Millisecond)},
		run:     lock,
		steps: func(*testing.T) []step {
			// v4: mock.ExpectSetNX("lock", "v", 8*time.Second).SetVal(false), then
			// mock.ExpectEvalSha("e950836ed1e694540c503ef9972b8de518044d3b", []string{"lock"}, "v").SetVal(int64(0))
			// to undo the try, then SetNX again.
			return []step{
				{cmd: "evalsha", hashOrSrc: acquireSHA, key: "lock", args: []any{"v", "8000"}, reply: int64(0)},
				{cmd: "evalsha", hashOrSrc: acquireSHA, key: "lock", args: []any{"v", "8000"}, reply: int64(1)},
			}
		},
	}, {
		name: "Valid",
		run: func(m *redsync.Mutex) error {
			if err := m.Lock(); err != nil {
				return err
			}
			//lint:ignore SA1019 Valid is what a v4 program calls.
			_, err := m.Valid()
			return err
		},
		steps: func(*testing.T) []step {
			return []step{
				{cmd: "evalsha", hashOrSrc: acquireSHA, key: "lock", args: []any{"v", "8000"}, reply: int64(1)},
				{cmd: "get", key: "lock", reply: "v"}, // as for v4
			}
		},
	}, {
		name:    "Unlock",
		options: []redsync.Option{redsync.WithReleaseNotification(false)},
		run:     lockUnlock,
		steps: func(*testing.T) []step {
			return []step{
				{cmd: "evalsha", hashOrSrc: acquireSHA, key: "lock", args: []any{"v", "8000"}, reply: int64(1)},
				// v4: mock.ExpectEvalSha("e950836ed1e694540c503ef9972b8de518044d3b", []string{"lock"}, "v")
				{cmd: "evalsha", hashOrSrc: releaseSHA, key: "lock", args: []any{"v"}, reply: int64(1)},
			}
		},
	}, {
		name: "Unlock, release notification",
		run:  lockUnlock,
		steps: func(*testing.T) []step {
			return []step{
				{cmd: "evalsha", hashOrSrc: acquireSHA, key: "lock", args: []any{"v", "8000"}, reply: int64(1)},
				// v4: mock.ExpectEvalSha("e950836ed1e694540c503ef9972b8de518044d3b", []string{"lock"}, "v")
				// The queue of waiters of "lock" is the second key (README).
				{cmd: "evalsha", hashOrSrc: releaseNotifySHA, key: "lock", more: []string{"redsync:queue:{8u}:lock"}, args: []any{"v"}, reply: int64(1)},
			}
		},
	}, {
		name:    "Extend",
		options: []redsync.Option{redsync.WithExpiry(10 * time.Second)},
		run: func(m *redsync.Mutex) error {
			if err := m.Lock(); err != nil {
				return err
			}
			_, err := m.Extend()
			return err
		},
		steps: func(*testing.T) []step {
			return []step{
				{cmd: "evalsha", hashOrSrc: acquireSHA, key: "lock", args: []any{"v", "10000"}, reply: int64(1)},
				// v4: mock.ExpectEvalSha("d75bb8b5bd13532ddedd17762e772346e39b321e", []string{"lock"}, "v", 10000)
				{cmd: "evalsha", hashOrSrc: extendSHA, key: "lock", args: []any{"v", "10000", "0"}, reply: int64(1)},
			}
		},
	}}
	for _, version := range goRedisVersions {
		t.Run(version.name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					node := version.newNode(t)
					for _, s := range tt.steps(t) {
						node.expect(s)
					}
					options := append([]redsync.Option{
						redsync.WithGenValueFunc(func() (string, error) { return "v", nil }),
						redsync.WithTries(1),
					}, tt.options...)
					m := redsync.New(node.pool).NewMutex("lock", options...)
					if err := tt.run(m); err != nil {
						t.Errorf("%s: %v, want nil", tt.name, err)
					}
				})
			}
		})
	}
}

// goRedisVersions are the go-redis versions that have a redismock, each
// with a function that makes a node of its adapter over a mock and checks,
// when the test ends, that every expectation was met.
var goRedisVersions = []struct {
	name    string
	newNode func(t *testing.T) mockedNode
}{
	{"go-redis v8", newNodeV8},
	{"go-redis v9", newNodeV9},
}

// expecter is the part of the ClientMock of redismock/v8 and redismock/v9
// that the steps use; C and S are the package's ExpectedCmd and
// ExpectedString.
type expecter[C reply[any], S reply[string]] interface {
	ExpectEvalSha(sha1 string, keys []string, args ...any) C
	ExpectEval(script string, keys []string, args ...any) C
	ExpectGet(key string) S
}

// reply is an expectation's reply: a value of type V or an error.
type reply[V any] interface {
	SetVal(V)
	SetErr(error)
}

// expect adds s to the expectations of mock.
func expect[C reply[any], S reply[string]](mock expecter[C, S], s step) {
	var r interface{ SetErr(error) }
	switch s.cmd {
	case "evalsha":
		c := mock.ExpectEvalSha(s.hashOrSrc, append([]string{s.key}, s.more...), s.args...)
		c.SetVal(s.reply)
		r = c
	case "eval":
		c := mock.ExpectEval(s.hashOrSrc, append([]string{s.key}, s.more...), s.args...)
		c.SetVal(s.reply)
		r = c
	case "get":
		c := mock.ExpectGet(s.key)
		c.SetVal(s.reply.(string))
		r = c
	}
	if s.err != nil {
		r.SetErr(s.err)
	}
}

// metAtCleanup makes t check, when it ends, that every expectation of
// mock was met.
func metAtCleanup(t *testing.T, mock interface{ ExpectationsWereMet() error }) {
	t.Cleanup(func() {
		if err := mock.ExpectationsWereMet(); err != nil {
			t.Error(err)
		}
	})
}

func lock(m *redsync.Mutex) error { return m.Lock() }

func lockUnlock(m *redsync.Mutex) error {
	if err := m.Lock(); err != nil {
		return err
	}
	_, err := m.Unlock()
	return err
}
