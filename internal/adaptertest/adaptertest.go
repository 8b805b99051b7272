// Package adaptertest is a conformance suite for [redis.Pool] adapters. It
// starts its own redis-server processes (with internal/redistest) and
// checks, through the Pool and Conn interfaces only, that an adapter
// behaves as package redis documents: replies, error replies, the EVALSHA
// to EVAL fallback, and commands bounded by the ctx given to Pool.Get.
//
// An adapter package runs it from a test of its own:
//
//	func TestConformance(t *testing.T) {
//		adaptertest.Run(t, func(t *testing.T, addr string) redis.Pool {
//			client := goredislib.NewClient(&goredislib.Options{Addr: addr})
//			t.Cleanup(func() { client.Close() })
//			return goredis.NewPool(client)
//		})
//	}
//
// The newPool function is called once per server, from the test goroutine;
// it must close what it opens with t.Cleanup.
package adaptertest

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
)

// NewPoolFunc makes a Pool for the Redis server at addr ("127.0.0.1:PORT")
// and registers with t.Cleanup whatever must be closed afterwards.
type NewPoolFunc = func(t *testing.T, addr string) redis.Pool

// Timing bounds of the context checks.
const (
	// deadline is the ctx deadline given to commands on a paused server.
	deadline = 300 * time.Millisecond
	// slack is how much later than deadline such a command may fail. A
	// driver needs a few ms; a loaded machine running the race detector
	// may run the driver's goroutine a second or more late. deadline plus
	// slack stays below the drivers' own default timeouts (go-redis reads
	// for 3 s), so that a driver which ignores the ctx still fails.
	slack = 1500 * time.Millisecond
	// giveUp is how long a command on a paused server is awaited before
	// the check fails and the server is resumed to let the command end.
	giveUp = deadline + slack + 500*time.Millisecond
)

// Scripts used by the checks. Each is made with its Hash set, so the first
// Eval of each gets NOSCRIPT and must fall back to EVAL.
var (
	intScript    = redis.NewScript(0, "return 42", "")
	stringScript = redis.NewScript(1, "return KEYS[1] .. '|' .. ARGV[1]", "")
	nilScript    = redis.NewScript(0, "return nil", "")
	// countScript reports how many keys and arguments it got: 10*#KEYS+#ARGV.
	countScript = redis.NewScript(-1, "return 10 * #KEYS + #ARGV", "")
	// errScript returns an error reply of its own.
	errScript = redis.NewScript(0, "return redis.error_reply('MYERR custom failure')", "")
	// getScript runs GET on its key; on a list it fails with WRONGTYPE.
	getScript = redis.NewScript(1, "return redis.call('GET', KEYS[1])", "")
)

// evalFunc runs a script on one node, bounded by ctx: either through a Conn
// (Get(ctx), Eval, Close) or through the pool's redis.ScriptRunner.
type evalFunc func(ctx context.Context, script *redis.Script, keysAndArgs ...any) (any, error)

// evalPaths returns the ways pool can run a script: always Conn.Eval, and
// RunScript when the pool implements redis.ScriptRunner.
func evalPaths(pool redis.Pool) map[string]evalFunc {
	paths := map[string]evalFunc{
		"Conn.Eval": func(ctx context.Context, script *redis.Script, keysAndArgs ...any) (any, error) {
			conn, err := pool.Get(ctx)
			if err != nil {
				return nil, err
			}
			defer conn.Close()
			return conn.Eval(script, keysAndArgs...)
		},
	}
	if runner, ok := pool.(redis.ScriptRunner); ok {
		paths["RunScript"] = func(ctx context.Context, script *redis.Script, keysAndArgs ...any) (any, error) {
			call := redis.NewScriptCall(script, keysAndArgs...)
			return runner.RunScript(ctx, &call)
		}
	}
	return paths
}

// Run checks the Pool and Conn behaviour of the pools newPool makes. It
// starts two servers: one for the command checks and one that it pauses
// (SIGSTOP) to check that a ctx deadline bounds a command. When the pool
// implements redis.ScriptRunner, the script checks run through RunScript
// as well as through Conn.Eval.
func Run(t *testing.T, newPool NewPoolFunc) {
	t.Helper()
	servers := redistest.StartN(t, 2)
	srv, paused := servers[0], servers[1]
	pool := newPool(t, srv.Addr())
	pausedPool := newPool(t, paused.Addr())

	t.Run("Conn", func(t *testing.T) {
		testConn(t, srv, pool)
	})
	t.Run("CancelledContext", func(t *testing.T) {
		testCancelledContext(t, pool)
	})
	for name, eval := range evalPaths(pool) {
		t.Run(name, func(t *testing.T) {
			testEval(t, srv, eval)
		})
	}
	t.Run("PausedServer", func(t *testing.T) {
		testPausedServer(t, paused, pausedPool)
	})
}

// conn returns a Conn from pool with a background ctx, closed by t.Cleanup.
func conn(t *testing.T, pool redis.Pool) redis.Conn {
	t.Helper()
	c, err := pool.Get(context.Background())
	if err != nil {
		t.Fatalf("Get(ctx) = %v, want a Conn", err)
	}
	if c == nil {
		t.Fatal("Get(ctx) = nil, nil; want a Conn")
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close() = %v, want nil", err)
		}
	})
	return c
}

// serverError returns the error line srv answers to args.
func serverError(t *testing.T, srv *redistest.Server, args ...string) string {
	t.Helper()
	_, err := srv.Do(args...)
	var se redistest.ServerError
	if !errors.As(err, &se) {
		t.Fatalf("%s: %v, want an error reply", strings.Join(args, " "), err)
	}
	return se.Error()
}

// checkErrorLine fails unless err's text starts with the server's line.
func checkErrorLine(t *testing.T, call string, err error, line string) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s error = nil, want one starting with %q", call, line)
	case !strings.HasPrefix(err.Error(), line):
		t.Errorf("%s error = %q, want one starting with %q", call, err, line)
	}
}

func testConn(t *testing.T, srv *redistest.Server, pool redis.Pool) {
	c := conn(t, pool)

	t.Run("GetMissing", func(t *testing.T) {
		got, err := c.Get("adaptertest:missing")
		if got != "" || err != nil {
			t.Errorf(`Get(missing) = %q, %v; want "", nil`, got, err)
		}
	})

	t.Run("SetGet", func(t *testing.T) {
		key := "adaptertest:set"
		ok, err := c.Set(key, "value 1")
		if !ok || err != nil {
			t.Fatalf("Set() = %v, %v; want true, nil", ok, err)
		}
		got, err := c.Get(key)
		if got != "value 1" || err != nil {
			t.Errorf(`Get() = %q, %v; want "value 1", nil`, got, err)
		}
		ok, err = c.Set(key, "value 2")
		if !ok || err != nil {
			t.Fatalf("Set() over an existing key = %v, %v; want true, nil", ok, err)
		}
		if rep := srv.MustDo(t, "GET", key); rep.Str != "value 2" {
			t.Errorf("the server holds %s, want %q", rep, "value 2")
		}
	})

	t.Run("SetNX", func(t *testing.T) {
		key := "adaptertest:setnx"
		ok, err := c.SetNX(key, "first", 10*time.Second)
		if !ok || err != nil {
			t.Fatalf("SetNX() on a missing key = %v, %v; want true, nil", ok, err)
		}
		ok, err = c.SetNX(key, "second", 10*time.Second)
		if ok || err != nil {
			t.Errorf("SetNX() on an existing key = %v, %v; want false, nil", ok, err)
		}
		if got, err := c.Get(key); got != "first" || err != nil {
			t.Errorf(`Get() = %q, %v; want "first", nil`, got, err)
		}
	})

	t.Run("PTTL", func(t *testing.T) {
		key := "adaptertest:pttl"
		const ttl = 10 * time.Second
		if ok, err := c.SetNX(key, "v", ttl); !ok || err != nil {
			t.Fatalf("SetNX() = %v, %v; want true, nil", ok, err)
		}
		got, err := c.PTTL(key)
		if err != nil || got <= 0 || got > ttl {
			t.Errorf("PTTL() = %v, %v; want a duration in (0, %v] and nil", got, err, ttl)
		}
		rep := srv.MustDo(t, "PTTL", key)
		if ms := rep.Int; ms <= 0 || ms > ttl.Milliseconds() {
			t.Errorf("the server's PTTL is %s, want (0, %d]", rep, ttl.Milliseconds())
		}
	})

	t.Run("ScriptLoad", func(t *testing.T) {
		src := "return 'loaded'"
		script := &redis.Script{KeyCount: 0, Src: src}
		if err := c.ScriptLoad(script); err != nil {
			t.Fatalf("ScriptLoad() = %v, want nil", err)
		}
		sum := sha1.Sum([]byte(src))
		if want := hex.EncodeToString(sum[:]); script.Hash != want {
			t.Errorf("ScriptLoad() set Hash = %q, want %q", script.Hash, want)
		}
		rep := srv.MustDo(t, "SCRIPT", "EXISTS", script.Hash)
		if len(rep.Elems) != 1 || rep.Elems[0].Int != 1 {
			t.Errorf("SCRIPT EXISTS after ScriptLoad() = %s, want [(integer) 1]", rep)
		}
	})

	t.Run("WrongTypeReply", func(t *testing.T) {
		key := "adaptertest:list"
		srv.MustDo(t, "RPUSH", key, "a")
		_, err := c.Get(key)
		checkErrorLine(t, "Get(list)", err, serverError(t, srv, "GET", key))
		if !strings.HasPrefix(errText(err), "WRONGTYPE") {
			t.Errorf("Get(list) error = %v, want WRONGTYPE first", err)
		}
		// The connection must still work after an error reply.
		if got, err := c.Get("adaptertest:missing"); got != "" || err != nil {
			t.Errorf(`Get(missing) after an error reply = %q, %v; want "", nil`, got, err)
		}
		if n := srv.MustDo(t, "LLEN", key).Int; n != 1 {
			t.Errorf("LLEN = %d after the failed GET, want 1", n)
		}
	})
}

// errText is err's text, or "" for nil.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// text returns a string reply as a string; drivers return bulk strings as
// string or []byte.
func text(reply any) (string, bool) {
	switch r := reply.(type) {
	case string:
		return r, true
	case []byte:
		return string(r), true
	}
	return "", false
}

func testEval(t *testing.T, srv *redistest.Server, eval evalFunc) {
	ctx := context.Background()
	// Every script must be unknown to the server at first, whichever path
	// ran before, so that the first call of each checks the fallback too.
	srv.MustDo(t, "SCRIPT", "FLUSH")

	t.Run("Integer", func(t *testing.T) {
		got, err := eval(ctx, intScript)
		if got != int64(42) || err != nil {
			t.Errorf("Eval(return 42) = %#v, %v; want int64(42), nil", got, err)
		}
	})

	t.Run("String", func(t *testing.T) {
		got, err := eval(ctx, stringScript, "adaptertest:k", "arg")
		if s, ok := text(got); !ok || s != "adaptertest:k|arg" || err != nil {
			t.Errorf(`Eval(KEYS[1] .. '|' .. ARGV[1]) = %#v, %v; want "adaptertest:k|arg", nil`, got, err)
		}
	})

	t.Run("Nil", func(t *testing.T) {
		got, err := eval(ctx, nilScript)
		if got != nil || err != nil {
			t.Errorf("Eval(return nil) = %#v, %v; want nil, nil", got, err)
		}
	})

	t.Run("KeyCountInArgs", func(t *testing.T) {
		// KeyCount -1: the first argument is the number of keys.
		got, err := eval(ctx, countScript, 2, "adaptertest:k1", "adaptertest:k2", "arg")
		if got != int64(21) || err != nil {
			t.Errorf("Eval(KeyCount -1, 2 keys, 1 arg) = %#v, %v; want int64(21), nil", got, err)
		}
		got, err = eval(ctx, countScript, 0, "arg1", "arg2")
		if got != int64(2) || err != nil {
			t.Errorf("Eval(KeyCount -1, 0 keys, 2 args) = %#v, %v; want int64(2), nil", got, err)
		}
	})

	t.Run("NoScriptFallback", func(t *testing.T) {
		if got, err := eval(ctx, intScript); got != int64(42) || err != nil {
			t.Fatalf("Eval() = %#v, %v; want int64(42), nil", got, err)
		}
		srv.MustDo(t, "SCRIPT", "FLUSH")
		if rep := srv.MustDo(t, "SCRIPT", "EXISTS", intScript.Hash); len(rep.Elems) != 1 || rep.Elems[0].Int != 0 {
			t.Fatalf("SCRIPT EXISTS after SCRIPT FLUSH = %s, want [(integer) 0]", rep)
		}
		got, err := eval(ctx, intScript)
		if got != int64(42) || err != nil {
			t.Errorf("Eval() after SCRIPT FLUSH = %#v, %v; want int64(42), nil", got, err)
		}
		got, err = eval(ctx, stringScript, "adaptertest:k", "x")
		if s, _ := text(got); s != "adaptertest:k|x" || err != nil {
			t.Errorf(`Eval() with keys after SCRIPT FLUSH = %#v, %v; want "adaptertest:k|x", nil`, got, err)
		}
	})

	t.Run("ErrorReply", func(t *testing.T) {
		_, err := eval(ctx, errScript)
		checkErrorLine(t, "Eval(error_reply)", err, "MYERR custom failure")
	})

	t.Run("WrongTypeReply", func(t *testing.T) {
		key := "adaptertest:evallist"
		srv.MustDo(t, "RPUSH", key, "a")
		t.Cleanup(func() { srv.Do("DEL", key) })
		_, err := eval(ctx, getScript, key)
		checkErrorLine(t, "Eval(GET list)", err, serverError(t, srv, "EVAL", getScript.Src, "1", key))
		if !strings.HasPrefix(errText(err), "WRONGTYPE") {
			t.Errorf("Eval(GET list) error = %v, want WRONGTYPE first", err)
		}
	})

	t.Run("CancelledContext", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if got, err := eval(cctx, intScript); err == nil {
			t.Errorf("Eval() with a cancelled ctx = %#v, nil; want an error", got)
		}
		if got, err := eval(ctx, intScript); got != int64(42) || err != nil {
			t.Errorf("Eval() after a cancelled one = %#v, %v; want int64(42), nil", got, err)
		}
	})
}

func testCancelledContext(t *testing.T, pool redis.Pool) {
	const key = "adaptertest:cancelled"
	commands := []struct {
		name string
		run  func(redis.Conn) error
	}{
		{"Get", func(c redis.Conn) error { _, err := c.Get(key); return err }},
		{"Set", func(c redis.Conn) error { _, err := c.Set(key, "v"); return err }},
		{"SetNX", func(c redis.Conn) error { _, err := c.SetNX(key, "v", time.Second); return err }},
		{"PTTL", func(c redis.Conn) error { _, err := c.PTTL(key); return err }},
		{"Eval", func(c redis.Conn) error { _, err := c.Eval(intScript); return err }},
		{"ScriptLoad", func(c redis.Conn) error { return c.ScriptLoad(redis.NewScript(0, "return 1", "")) }},
	}

	t.Run("BeforeGet", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		for _, cmd := range commands {
			c, err := pool.Get(ctx)
			if err != nil {
				continue // refusing the Conn is as good as failing its commands
			}
			if err := cmd.run(c); err == nil {
				t.Errorf("%s() on a Conn of a cancelled ctx = nil error, want one", cmd.name)
			}
			c.Close()
		}
	})

	t.Run("AfterGet", func(t *testing.T) {
		for _, cmd := range commands {
			ctx, cancel := context.WithCancel(context.Background())
			c, err := pool.Get(ctx)
			if err != nil {
				cancel()
				t.Fatalf("Get(ctx) = %v, want a Conn", err)
			}
			cancel()
			if err := cmd.run(c); err == nil {
				t.Errorf("%s() after its ctx was cancelled = nil error, want one", cmd.name)
			}
			c.Close()
		}
	})

	t.Run("PoolRecovers", func(t *testing.T) {
		c := conn(t, pool)
		if _, err := c.Get(key); err != nil {
			t.Errorf("Get() with a live ctx after cancelled ones = %v, want nil", err)
		}
	})
}

// testPausedServer checks that a ctx deadline bounds commands on a server
// that accepts connections but answers nothing.
func testPausedServer(t *testing.T, srv *redistest.Server, pool redis.Pool) {
	const key = "adaptertest:paused"
	// Warm the pool up, so that the commands below are sent on an
	// established connection as well as, possibly, on new ones.
	if _, err := conn(t, pool).Get(key); err != nil {
		t.Fatalf("Get() before the pause = %v, want nil", err)
	}
	srv.MustDo(t, "SCRIPT", "LOAD", intScript.Src)

	type call struct {
		name string
		run  func(ctx context.Context) error
	}
	calls := []call{
		{"Conn.Get", func(ctx context.Context) error {
			c, err := pool.Get(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Get(key)
			return err
		}},
	}
	for name, eval := range evalPaths(pool) {
		calls = append(calls, call{name, func(ctx context.Context) error {
			_, err := eval(ctx, intScript)
			return err
		}})
	}

	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			if err := srv.Pause(); err != nil {
				t.Fatalf("Pause() = %v", err)
			}
			resumed := false
			resume := func() {
				if !resumed {
					resumed = true
					if err := srv.Resume(); err != nil {
						t.Errorf("Resume() = %v", err)
					}
				}
			}
			defer resume()

			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			start := time.Now()
			done := make(chan error, 1)
			go func() { done <- c.run(ctx) }()

			timer := time.NewTimer(giveUp)
			defer timer.Stop()
			var err error
			select {
			case err = <-done:
			case <-timer.C:
				// Let the command end, so that it does not outlive the test.
				resume()
				err = <-done
				t.Errorf("%s with a %v deadline on a paused server returned only after the server was resumed, %v later (error %v); want an error within %v",
					c.name, deadline, time.Since(start).Round(time.Millisecond), err, deadline+slack)
				return
			}
			elapsed := time.Since(start)
			if err == nil {
				t.Errorf("%s with a %v deadline on a paused server = nil error, want one", c.name, deadline)
			}
			if elapsed > deadline+slack {
				t.Errorf("%s with a %v deadline on a paused server took %v, want at most %v",
					c.name, deadline, elapsed.Round(time.Millisecond), deadline+slack)
			}
		})
	}

	t.Run("AfterResume", func(t *testing.T) {
		// A connection whose command timed out must not hand a stale
		// reply to the next command.
		c := conn(t, pool)
		for range 3 {
			if got, err := c.Get(key); got != "" || err != nil {
				t.Errorf(`Get() after the pause = %q, %v; want "", nil`, got, err)
			}
		}
		if got, err := c.Eval(intScript); got != int64(42) || err != nil {
			t.Errorf("Eval() after the pause = %#v, %v; want int64(42), nil", got, err)
		}
	})
}

// RunLock checks redsync over three nodes, each a pool made by newPool:
// Lock, Extend, Valid and Unlock, a second holder turned away with
// *redsync.ErrTaken, and the EVAL fallback after SCRIPT FLUSH.
func RunLock(t *testing.T, newPool NewPoolFunc) {
	t.Helper()
	servers := redistest.StartN(t, 3)
	pools := make([]redis.Pool, len(servers))
	for i, srv := range servers {
		pools[i] = newPool(t, srv.Addr())
	}
	rs := redsync.New(pools...)
	const (
		name = "adaptertest:lock"
		// A per-node timeout of 1.5 s: these checks are about the
		// adapter, not about timeouts on a loaded machine.
		expiry = 30 * time.Second
	)

	t.Run("LockExtendUnlock", func(t *testing.T) {
		m := rs.NewMutex(name, redsync.WithExpiry(expiry))
		if err := m.Lock(); err != nil {
			t.Fatalf("Lock() = %v, want nil", err)
		}
		locked := time.Now()
		if until := m.Until(); !until.After(locked) || until.After(locked.Add(expiry)) {
			t.Errorf("Until() = %v, want in (%v, %v]", until, locked, locked.Add(expiry))
		}
		for i, srv := range servers {
			if rep := srv.MustDo(t, "GET", name); rep.Str != m.Value() {
				t.Errorf("node %d holds %s, want the value %q", i, rep, m.Value())
			}
			if ms := srv.MustDo(t, "PTTL", name).Int; ms <= 0 || ms > expiry.Milliseconds() {
				t.Errorf("node %d: PTTL = %d ms, want (0, %d]", i, ms, expiry.Milliseconds())
			}
		}

		other := rs.NewMutex(name, redsync.WithExpiry(expiry))
		err := other.TryLock()
		var taken *redsync.ErrTaken
		if !errors.As(err, &taken) || !errors.Is(err, redsync.ErrFailed) {
			t.Errorf("TryLock() of a held lock = %v, want a *ErrTaken matching ErrFailed", err)
		} else if len(taken.Nodes) != len(servers) {
			t.Errorf("TryLock() of a held lock: ErrTaken.Nodes = %v, want all %d nodes", taken.Nodes, len(servers))
		}

		until := m.Until()
		time.Sleep(10 * time.Millisecond)
		if ok, err := m.Extend(); !ok || err != nil {
			t.Errorf("Extend() = %v, %v; want true, nil", ok, err)
		}
		if !m.Until().After(until) {
			t.Errorf("Until() after Extend() = %v, want after %v", m.Until(), until)
		}
		//lint:ignore SA1019 the deprecated Valid is part of the v4 API and must keep working
		if ok, err := m.Valid(); !ok || err != nil {
			t.Errorf("Valid() = %v, %v; want true, nil", ok, err)
		}
		if ok, err := m.Unlock(); !ok || err != nil {
			t.Errorf("Unlock() = %v, %v; want true, nil", ok, err)
		}
		checkEmpty(t, servers)

		ok, err := m.Unlock()
		if ok || !errors.Is(err, redsync.ErrLockAlreadyExpired) {
			t.Errorf("second Unlock() = %v, %v; want false and ErrLockAlreadyExpired", ok, err)
		}
	})

	t.Run("NoScript", func(t *testing.T) {
		m := rs.NewMutex(name, redsync.WithExpiry(expiry))
		for _, srv := range servers {
			srv.MustDo(t, "SCRIPT", "FLUSH")
		}
		if err := m.Lock(); err != nil {
			t.Fatalf("Lock() after SCRIPT FLUSH = %v, want nil", err)
		}
		for _, srv := range servers {
			srv.MustDo(t, "SCRIPT", "FLUSH")
		}
		if ok, err := m.Extend(); !ok || err != nil {
			t.Errorf("Extend() after SCRIPT FLUSH = %v, %v; want true, nil", ok, err)
		}
		for _, srv := range servers {
			srv.MustDo(t, "SCRIPT", "FLUSH")
		}
		if ok, err := m.Unlock(); !ok || err != nil {
			t.Errorf("Unlock() after SCRIPT FLUSH = %v, %v; want true, nil", ok, err)
		}
		checkEmpty(t, servers)
	})

	t.Run("Fencing", func(t *testing.T) {
		// Two Redsyncs take turns, so that every acquisition needs the
		// fencing round (fencing.go): both fencing scripts run through
		// the adapter.
		other := redsync.New(pools...)
		var last uint64
		for i := range 4 {
			owner := rs
			if i%2 == 1 {
				owner = other
			}
			m := owner.NewMutex(name, redsync.WithExpiry(expiry), redsync.WithFencing())
			if err := m.Lock(); err != nil {
				t.Fatalf("Lock() with fencing = %v, want nil", err)
			}
			token := m.FencingToken()
			if token <= last {
				t.Errorf("acquisition %d: token %d, want more than %d", i, token, last)
			}
			if err := redsync.GuardedSet(context.Background(), pools[0], "adaptertest:resource", fmt.Sprint(i), token); err != nil {
				t.Errorf("GuardedSet with the current token %d = %v", token, err)
			}
			if last > 0 {
				err := redsync.GuardedSet(context.Background(), pools[0], "adaptertest:resource", "stale", last)
				if !errors.Is(err, redsync.ErrStaleToken) {
					t.Errorf("GuardedSet with the previous token %d = %v, want ErrStaleToken", last, err)
				}
			}
			last = token
			if ok, err := m.Unlock(); !ok || err != nil {
				t.Fatalf("Unlock() with fencing = %v, %v", ok, err)
			}
		}
		servers[0].MustDo(t, "DEL", "adaptertest:resource")
		// The counters have no expiry, by design.
		for i, srv := range servers {
			keys, err := srv.Keys("redsync:fence:*")
			if err != nil || len(keys) != 1 {
				t.Errorf("node %d: fencing counters %q (%v), want one", i, keys, err)
			}
			for _, k := range keys {
				srv.MustDo(t, "DEL", k)
			}
		}
		checkEmpty(t, servers)
	})

	t.Run("LocalHandOff", func(t *testing.T) {
		// A waiter of the same Redsync is handed the lock by Unlock
		// (transfer.lua through the adapter), with its own expiry. When
		// the waiter's turn and the Unlock cross (the Unlock comes just
		// before the waiter queued, say), the waiter takes the lock with
		// a try of its own: the outcome is the same, but transfer.lua
		// may not have run, so rounds repeat until one was a hand-off.
		const rounds = 5
		for round := 1; ; round++ {
			if handOffRound(t, rs, servers, name, expiry) {
				break
			}
			if round == rounds {
				t.Errorf("none of %d rounds was a hand-off: every Unlock released the lock instead", rounds)
				break
			}
			t.Logf("round %d: the waiter took the lock with a try of its own, not by a hand-off; again", round)
		}
	})

	t.Run("Contention", func(t *testing.T) {
		const workers, rounds = 4, 10
		var (
			holders = make(chan struct{}, 1)
			errs    = make(chan error, workers)
		)
		for range workers {
			go func() {
				m := rs.NewMutex(name, redsync.WithExpiry(expiry), redsync.WithRetryDelay(time.Millisecond), redsync.WithTries(1000))
				for range rounds {
					if err := m.Lock(); err != nil {
						errs <- fmt.Errorf("Lock() = %w", err)
						return
					}
					select {
					case holders <- struct{}{}:
					default:
						errs <- errors.New("two holders at once")
						return
					}
					<-holders
					if ok, err := m.Unlock(); !ok {
						errs <- fmt.Errorf("Unlock() = %v, %v; want true, nil", ok, err)
						return
					}
				}
				errs <- nil
			}()
		}
		for range workers {
			if err := <-errs; err != nil {
				t.Errorf("worker: %v", err)
			}
		}
		checkEmpty(t, servers)
	})
}

// handOffRound locks name with a holder, starts a waiter, unlocks the
// holder once the waiter's first try failed, and checks that the waiter
// then holds the lock with its own expiry: on every node after a hand-off,
// on a quorum after a try of its own. It reports whether the waiter was
// handed the lock (AcquireEvent.HandedOver).
func handOffRound(t *testing.T, rs *redsync.Redsync, servers []*redistest.Server, name string, expiry time.Duration) bool {
	t.Helper()
	holder := rs.NewMutex(name, redsync.WithExpiry(expiry))
	if err := holder.Lock(); err != nil {
		t.Fatalf("holder Lock() = %v, want nil", err)
	}
	// The delay function runs after the first try failed, just before
	// the waiter queues for a hand-off. Should the release come first,
	// the next try is a second later.
	const retryDelay = time.Second
	waiting := make(chan struct{})
	var once sync.Once
	delay := func(int) time.Duration {
		once.Do(func() { close(waiting) })
		return retryDelay
	}
	observed := make(chan redsync.AcquireEvent, 1)
	// Longer than the holder's, so that the PTTL tells whose key it is.
	waiterExpiry := 2 * expiry
	waiter := rs.NewMutex(name, redsync.WithExpiry(waiterExpiry), redsync.WithRetryDelayFunc(delay),
		redsync.WithObserver(acquireObserver(observed)))
	done := make(chan error, 1)
	go func() { done <- waiter.Lock() }()
	select {
	case <-waiting:
	case err := <-done:
		t.Fatalf("waiter Lock() of a held lock = %v before a retry delay, want it to wait", err)
	}
	if ok, err := holder.Unlock(); !ok || err != nil {
		t.Fatalf("holder Unlock() = %v, %v; want true, nil", ok, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("waiter Lock() = %v, want nil", err)
	}
	e := <-observed
	if got, quorum := holdersOf(t, servers, name, waiter.Value()), len(servers)/2+1; got < quorum {
		t.Errorf("%d nodes hold the waiter's value when its Lock returned, want at least a quorum of %d", got, quorum)
	}
	// A hand-off returns once a quorum took the waiter's value; the other
	// nodes take it when their command ends. A try of the waiter's own
	// needs a quorum too, and may have found a node still holding the
	// holder's value, whose release was on its way there: that node ends
	// up with no key.
	if !waitValues(t, servers, name, waiter.Value(), e.HandedOver) {
		for i, try := range e.Tries {
			t.Logf("the waiter's try %d: %v, nodes %v", i+1, try.Err, try.Nodes)
		}
	}
	for i, srv := range servers {
		if srv.MustDo(t, "GET", name).Str != waiter.Value() {
			continue
		}
		if ms := srv.MustDo(t, "PTTL", name).Int; ms <= expiry.Milliseconds() || ms > waiterExpiry.Milliseconds() {
			t.Errorf("node %d: PTTL = %d ms, want the waiter's expiry (%d, %d]", i, ms, expiry.Milliseconds(), waiterExpiry.Milliseconds())
		}
	}
	ok, err := waiter.Unlock()
	if !ok || (err != nil && e.HandedOver) {
		t.Errorf("waiter Unlock() = %v, %v; want true, nil", ok, err)
	}
	checkEmpty(t, servers)
	return e.HandedOver
}

// acquireObserver is an Observer that sends each AcquireEvent to events.
type acquireObserver chan<- redsync.AcquireEvent

func (o acquireObserver) OnAcquire(_ context.Context, e redsync.AcquireEvent) { o <- e }
func (acquireObserver) OnExtend(context.Context, redsync.ExtendEvent)         {}
func (acquireObserver) OnRelease(context.Context, redsync.ReleaseEvent)       {}
func (acquireObserver) OnLost(context.Context, redsync.LostEvent)             {}

// holdersOf returns how many servers hold value under key.
func holdersOf(t *testing.T, servers []*redistest.Server, key, value string) int {
	t.Helper()
	n := 0
	for _, srv := range servers {
		if srv.MustDo(t, "GET", key).Str == value {
			n++
		}
	}
	return n
}

// waitValues waits until every server holds value under key (all) or
// holds value or no key (not all), and reports whether they do. Commands
// of the rounds that made and released the lock may still be on their way
// to some nodes; it fails if they have not landed within 10 s, which no
// per-node timeout of these tests comes near.
func waitValues(t *testing.T, servers []*redistest.Server, key, value string, all bool) bool {
	t.Helper()
	wrong := func(rep redistest.Reply) bool {
		return rep.Str != value && (all || rep.Kind != redistest.KindNil)
	}
	settled := func() bool {
		for _, srv := range servers {
			if wrong(srv.MustDo(t, "GET", key)) {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(10 * time.Second)
	for !settled() {
		if time.Now().After(deadline) {
			for i, srv := range servers {
				if rep := srv.MustDo(t, "GET", key); wrong(rep) {
					t.Errorf("node %d holds %s 10s after the waiter's Lock returned, want %q", i, rep, value)
				}
			}
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// checkEmpty fails unless every server holds no key.
func checkEmpty(t *testing.T, servers []*redistest.Server) {
	t.Helper()
	for i, srv := range servers {
		keys, err := srv.Keys("*")
		if err != nil {
			t.Errorf("node %d: KEYS: %v", i, err)
		} else if len(keys) != 0 {
			t.Errorf("node %d holds keys %q, want none", i, keys)
		}
	}
}
