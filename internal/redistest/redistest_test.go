package redistest

import (
	"bufio"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// requireRedis fails the test when redis-server is not installed: the test
// command (scripts/test.sh) installs it, so a missing one is an error.
func requireRedis(t *testing.T) {
	t.Helper()
	if _, err := RedisServerPath(); err != nil {
		t.Fatal(err)
	}
}

// processGone reports whether pid no longer exists (not even as a zombie).
func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func TestStartPing(t *testing.T) {
	t.Parallel()
	requireRedis(t)
	s := Start(t)

	if s.Port() <= 0 || s.Port() > 65535 {
		t.Fatalf("Port() = %d", s.Port())
	}
	if want := "127.0.0.1:" + strconv.Itoa(s.Port()); s.Addr() != want {
		t.Fatalf("Addr() = %q, want %q", s.Addr(), want)
	}
	if s.Pid() <= 0 || !s.Running() {
		t.Fatalf("Pid() = %d, Running() = %v", s.Pid(), s.Running())
	}
	if fi, err := os.Stat(s.Dir()); err != nil || !fi.IsDir() {
		t.Fatalf("Dir() %q: %v", s.Dir(), err)
	}
	rep := s.MustDo(t, "PING")
	if rep.Kind != KindStatus || rep.Str != "PONG" {
		t.Fatalf("PING = %v", rep)
	}
	// The server reached by Addr is the process we started.
	info := s.MustDo(t, "INFO", "server").Str
	if !strings.Contains(info, "process_id:"+strconv.Itoa(s.Pid())+"\r\n") {
		t.Fatalf("INFO server does not name pid %d:\n%s", s.Pid(), info)
	}
	// The defaults: no persistence, bound to loopback only.
	for param, want := range map[string]string{"save": "", "appendonly": "no", "bind": "127.0.0.1", "dir": s.Dir()} {
		rep := s.MustDo(t, "CONFIG", "GET", param)
		if got, _ := rep.Strings(); len(got) != 2 || got[1] != want {
			t.Errorf("CONFIG GET %s = %v, want %q", param, rep, want)
		}
	}
	if _, err := os.Stat(s.LogPath()); err != nil {
		t.Errorf("log file: %v", err)
	}
	if !strings.Contains(s.Log(), "Ready to accept connections") {
		t.Errorf("log lacks the ready line:\n%s", s.Log())
	}
}

func TestDoReplyTypes(t *testing.T) {
	t.Parallel()
	requireRedis(t)
	s := Start(t)

	// Simple string.
	if rep := s.MustDo(t, "SET", "str", "hello"); rep.Kind != KindStatus || rep.Str != "OK" {
		t.Fatalf("SET = %v", rep)
	}
	// Bulk string.
	if rep := s.MustDo(t, "GET", "str"); rep.Kind != KindBulk || rep.Str != "hello" {
		t.Fatalf("GET = %v", rep)
	}
	// Binary-safe bulk strings, including CRLF and the empty string.
	for _, v := range []string{"a\r\nb\x00c", ""} {
		s.MustDo(t, "SET", "bin", v)
		if rep := s.MustDo(t, "GET", "bin"); rep.Kind != KindBulk || rep.Str != v {
			t.Fatalf("GET bin = %v, want %q", rep, v)
		}
	}
	// Nil bulk string.
	if rep := s.MustDo(t, "GET", "missing"); rep.Kind != KindNil || !rep.IsNil() {
		t.Fatalf("GET missing = %v", rep)
	}
	// Integers.
	for want := int64(1); want <= 3; want++ {
		if rep := s.MustDo(t, "INCR", "counter"); rep.Kind != KindInt || rep.Int != want {
			t.Fatalf("INCR = %v, want %d", rep, want)
		}
	}
	if n, err := s.MustDo(t, "GET", "counter").Integer(); err != nil || n != 3 {
		t.Fatalf("GET counter as integer = %d, %v", n, err)
	}
	if rep := s.MustDo(t, "DECRBY", "counter", "10"); rep.Int != -7 || rep.Text() != "-7" {
		t.Fatalf("DECRBY = %v", rep)
	}
	// Arrays.
	if rep := s.MustDo(t, "LPUSH", "list", "a", "b", "c"); rep.Int != 3 {
		t.Fatalf("LPUSH = %v", rep)
	}
	rep := s.MustDo(t, "LRANGE", "list", "0", "-1")
	if got, err := rep.Strings(); err != nil || !reflect.DeepEqual(got, []string{"c", "b", "a"}) {
		t.Fatalf("LRANGE = %v (%v)", rep, err)
	}
	if rep := s.MustDo(t, "LRANGE", "nolist", "0", "-1"); rep.Kind != KindArray || len(rep.Elems) != 0 {
		t.Fatalf("LRANGE of a missing key = %v", rep)
	}
	// Error reply: a Go error whose text is the server's line.
	rep, err := s.Do("LPUSH", "str", "x")
	var se ServerError
	if !errors.As(err, &se) {
		t.Fatalf("LPUSH on a string: err = %v (%T), want a ServerError", err, err)
	}
	if !strings.HasPrefix(err.Error(), "WRONGTYPE ") || se.Prefix() != "WRONGTYPE" {
		t.Fatalf("error text = %q", err.Error())
	}
	if rep.Kind != KindError || rep.Str != err.Error() {
		t.Fatalf("reply with the error = %v", rep)
	}
	if _, err := s.Do("NOSUCHCOMMAND"); err == nil || !strings.HasPrefix(err.Error(), "ERR unknown command") {
		t.Fatalf("unknown command: err = %v", err)
	}
	// Nested arrays, with integers, statuses, nils and errors inside.
	rep = s.MustDo(t, "EVAL", `return {1, "two", {3, {"four"}}, false, redis.status_reply("FINE"), redis.error_reply("ERR boom")}`, "0")
	want := Reply{Kind: KindArray, Elems: []Reply{
		{Kind: KindInt, Int: 1},
		{Kind: KindBulk, Str: "two"},
		{Kind: KindArray, Elems: []Reply{
			{Kind: KindInt, Int: 3},
			{Kind: KindArray, Elems: []Reply{{Kind: KindBulk, Str: "four"}}},
		}},
		{Kind: KindNil},
		{Kind: KindStatus, Str: "FINE"},
		{Kind: KindError, Str: "ERR boom"},
	}}
	if !reflect.DeepEqual(rep, want) {
		t.Fatalf("EVAL nested = %v\nwant %v", rep, want)
	}
	if _, err := rep.Strings(); err == nil {
		t.Fatal("Strings of a nested array did not fail")
	}
	if got := rep.String(); got != `[(integer) 1, "two", [(integer) 3, ["four"]], (nil), FINE, (error) ERR boom]` {
		t.Fatalf("String() = %s", got)
	}
	if _, err := s.Do(); err == nil {
		t.Fatal("Do with no command did not fail")
	}
}

func TestDBSizeAndKeys(t *testing.T) {
	t.Parallel()
	requireRedis(t)
	s := Start(t)
	if n, err := s.DBSize(); err != nil || n != 0 {
		t.Fatalf("DBSize of a new server = %d, %v", n, err)
	}
	if keys, err := s.Keys("*"); err != nil || len(keys) != 0 {
		t.Fatalf("Keys of a new server = %q, %v", keys, err)
	}
	for _, k := range []string{"lock:b", "lock:a", "other"} {
		s.MustDo(t, "SET", k, "1")
	}
	if n, err := s.DBSize(); err != nil || n != 3 {
		t.Fatalf("DBSize = %d, %v", n, err)
	}
	if keys, err := s.Keys("lock:*"); err != nil || !reflect.DeepEqual(keys, []string{"lock:a", "lock:b"}) {
		t.Fatalf("Keys(lock:*) = %q, %v", keys, err)
	}
}

func TestKillRestartKeepsPortAndAOFData(t *testing.T) {
	t.Parallel()
	requireRedis(t)
	s := Start(t, "--appendonly", "yes", "--appendfsync", "always")
	port, addr, pid := s.Port(), s.Addr(), s.Pid()
	s.MustDo(t, "SET", "survivor", "v1")
	s.MustDo(t, "RPUSH", "list", "x", "y")

	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if s.Pid() != 0 || s.Running() {
		t.Fatalf("after Kill: Pid() = %d", s.Pid())
	}
	if !processGone(pid) {
		t.Fatalf("process %d still exists (not reaped?) after Kill", pid)
	}
	if err := s.Kill(); err != nil {
		t.Fatalf("second Kill: %v", err)
	}
	if _, err := s.DoTimeout(time.Second, "PING"); err == nil {
		t.Fatal("PING succeeded after Kill")
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "appendonlydir")); err != nil {
		t.Fatalf("no AOF directory: %v", err)
	}

	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if s.Port() != port || s.Addr() != addr {
		t.Fatalf("port changed: %s -> %s", addr, s.Addr())
	}
	if s.Pid() == 0 || s.Pid() == pid {
		t.Fatalf("Pid() after Restart = %d (before %d)", s.Pid(), pid)
	}
	if rep := s.MustDo(t, "GET", "survivor"); rep.Str != "v1" {
		t.Fatalf("GET after restart = %v", rep)
	}
	if rep := s.MustDo(t, "LRANGE", "list", "0", "-1"); rep.String() != `["x", "y"]` {
		t.Fatalf("LRANGE after restart = %v", rep)
	}
	// The original extra arguments were reused.
	if got, _ := s.MustDo(t, "CONFIG", "GET", "appendfsync").Strings(); len(got) != 2 || got[1] != "always" {
		t.Fatalf("appendfsync after restart = %q", got)
	}
}

func TestKillRestartWithoutPersistenceLosesData(t *testing.T) {
	t.Parallel()
	requireRedis(t)
	s := Start(t)
	s.MustDo(t, "SET", "k", "v")
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DBSize(); err != nil || n != 0 {
		t.Fatalf("DBSize after restart without persistence = %d, %v", n, err)
	}
}

func TestRestartWhileRunningAndWithOtherArgs(t *testing.T) {
	t.Parallel()
	requireRedis(t)
	s := Start(t)
	port, pid := s.Port(), s.Pid()

	// Restart of a running server stops it first.
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if s.Port() != port || s.Pid() == pid || !processGone(pid) {
		t.Fatalf("Restart while running: port %d->%d, pid %d->%d", port, s.Port(), pid, s.Pid())
	}

	// Other arguments, here a password: Do authenticates by itself, a
	// client that does not gets NOAUTH.
	if err := s.Restart("--requirepass", "s3cret"); err != nil {
		t.Fatal(err)
	}
	if rep := s.MustDo(t, "PING"); rep.Str != "PONG" {
		t.Fatalf("PING with password = %v", rep)
	}
	_, err := roundTrip(s.Addr(), "", time.Second, "PING")
	var se ServerError
	if !errors.As(err, &se) || se.Prefix() != "NOAUTH" {
		t.Fatalf("PING without AUTH: err = %v", err)
	}

	// No arguments again means the original (none): no password.
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if _, err := roundTrip(s.Addr(), "", time.Second, "PING"); err != nil {
		t.Fatalf("PING without password after Restart(): %v", err)
	}
	if err := s.Restart("--port", "1"); err == nil {
		t.Fatal("Restart accepted --port")
	}
}

func TestStopAndRestart(t *testing.T) {
	t.Parallel()
	requireRedis(t)
	s := Start(t, "--appendonly", "yes")
	s.MustDo(t, "SET", "k", "v")
	pid := s.Pid()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	// The server's last words on SIGTERM; a SIGKILL after StopTimeout
	// leaves none.
	if !strings.Contains(s.Log(), "ready to exit") {
		t.Errorf("the log does not show a shutdown on SIGTERM: SIGTERM was not honoured\n%s", s.Log())
	}
	if s.Pid() != 0 || !processGone(pid) {
		t.Fatalf("process %d survived Stop", pid)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	// A graceful shutdown flushes the AOF even without appendfsync always.
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if rep := s.MustDo(t, "GET", "k"); rep.Str != "v" {
		t.Fatalf("GET after Stop/Restart = %v", rep)
	}
}

func TestPauseResume(t *testing.T) {
	t.Parallel()
	requireRedis(t)
	s := Start(t)
	s.MustDo(t, "SET", "k", "v")
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	if !s.Running() {
		t.Fatal("a paused server is not Running")
	}
	start := time.Now()
	_, err := s.DoTimeout(200*time.Millisecond, "GET", "k")
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("GET on a paused server: err = %v, want a timeout", err)
	}
	// Well below Do's own timeout, which a GET ignoring 200 ms would take.
	if d := time.Since(start); d >= DoTimeout {
		t.Fatalf("the timed out GET took %v, want the 200ms given, not Do's %v", d, DoTimeout)
	}
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	if rep := s.MustDo(t, "GET", "k"); rep.Str != "v" {
		t.Fatalf("GET after Resume = %v", rep)
	}
	// Stop and Close work on a paused server.
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	pid := s.Pid()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if !processGone(pid) {
		t.Fatalf("paused process %d survived Stop", pid)
	}
	if err := s.Pause(); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Pause of a stopped server: %v", err)
	}
	if err := s.Resume(); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Resume of a stopped server: %v", err)
	}
}

func TestStartN(t *testing.T) {
	t.Parallel()
	requireRedis(t)
	servers := StartN(t, 3)
	if len(servers) != 3 {
		t.Fatalf("StartN(3) gave %d servers", len(servers))
	}
	ports := map[int]bool{}
	dirs := map[string]bool{}
	for _, s := range servers {
		ports[s.Port()] = true
		dirs[s.Dir()] = true
		s.MustDo(t, "SET", "who", s.Addr())
	}
	if len(ports) != 3 || len(dirs) != 3 {
		t.Fatalf("ports %v, dirs %v: not distinct", ports, dirs)
	}
	// They are independent servers.
	for _, s := range servers {
		if rep := s.MustDo(t, "GET", "who"); rep.Str != s.Addr() {
			t.Fatalf("%s holds who=%v", s.Addr(), rep)
		}
	}
	if got := StartN(t, 0); len(got) != 0 {
		t.Fatalf("StartN(0) = %v", got)
	}
}

func TestLaunchNAndClose(t *testing.T) {
	t.Parallel()
	requireRedis(t)
	servers, err := LaunchN(2, "--requirepass", "pw")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range servers {
		pid, dir := s.Pid(), s.Dir()
		s.MustDo(t, "PING")
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if !processGone(pid) {
			t.Fatalf("process %d still exists after Close (zombie?)", pid)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Fatalf("dir %s still exists after Close: %v", dir, err)
		}
		if s.Pid() != 0 {
			t.Fatalf("Pid() after Close = %d", s.Pid())
		}
		for name, f := range map[string]func() error{"Close": s.Close, "Stop": s.Stop, "Kill": s.Kill} {
			if err := f(); err != nil {
				t.Fatalf("%s after Close: %v", name, err)
			}
		}
		if err := s.Restart(); !errors.Is(err, ErrClosed) {
			t.Fatalf("Restart after Close: %v", err)
		}
	}
	if _, err := LaunchN(2, "--definitely-not-an-option", "1"); err == nil {
		t.Fatal("LaunchN with a bad argument did not fail")
	}
}

func TestServerDiesOnItsOwn(t *testing.T) {
	t.Parallel()
	requireRedis(t)
	s := Start(t)
	pid := s.Pid()
	// SHUTDOWN closes the connection without a reply.
	if _, err := s.Do("SHUTDOWN", "NOSAVE"); err == nil {
		t.Fatal("SHUTDOWN answered")
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Pid() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("Pid() still set 5s after SHUTDOWN")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !processGone(pid) {
		t.Fatalf("process %d not reaped after it exited", pid)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	s.MustDo(t, "PING")
}

func TestRestartWaitsForBusyPort(t *testing.T) {
	t.Parallel()
	requireRedis(t)
	s := Start(t)
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	// Someone else holds the port for a while.
	l, err := net.Listen("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(500*time.Millisecond, func() { l.Close() })
	if err := s.Restart(); err != nil {
		t.Fatalf("Restart did not wait for the port: %v", err)
	}
	s.MustDo(t, "PING")
	if !strings.Contains(s.Log(), "already in use") {
		t.Errorf("the log does not show the refused bind:\n%s", s.Log())
	}
}

func TestBadArguments(t *testing.T) {
	t.Parallel()
	requireRedis(t)
	start := time.Now()
	_, err := Launch("--definitely-not-an-option", "1")
	if err == nil {
		t.Fatal("Launch with a bad option did not fail")
	}
	if !strings.Contains(err.Error(), "definitely-not-an-option") {
		t.Errorf("the error does not quote redis-server's complaint: %v", err)
	}
	if d := time.Since(start); d >= ReadyTimeout {
		t.Errorf("failing took %v: Launch waited for ReadyTimeout instead of seeing the process exit", d)
	}
	for _, extra := range [][]string{{"--port", "6379"}, {"--daemonize", "yes"}} {
		if _, err := Launch(extra...); err == nil {
			t.Errorf("Launch(%q) did not fail", extra)
		}
	}
}

// TestMissingRedisServer must not run in parallel: it changes PATH.
func TestMissingRedisServer(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv(ServerPathEnv, "")
	const want = "redistest: redis-server not found in PATH; install it (Debian: apt-get install -y redis-server)"

	if _, err := RedisServerPath(); err == nil || err.Error() != want {
		t.Fatalf("RedisServerPath: %v", err)
	}
	s, err := Launch()
	if err == nil {
		s.Close()
		t.Fatal("Launch succeeded without redis-server")
	}
	if err.Error() != want || !errors.Is(err, ErrRedisServerNotFound) {
		t.Fatalf("Launch: %v", err)
	}
	if _, err := LaunchN(3); err == nil || err.Error() != want {
		t.Fatalf("LaunchN: %v", err)
	}
}

func TestServerPathEnv(t *testing.T) {
	requireRedis(t)
	path, _ := RedisServerPath()
	t.Setenv("PATH", t.TempDir())
	t.Setenv(ServerPathEnv, path)
	s := Start(t)
	s.MustDo(t, "PING")

	t.Setenv(ServerPathEnv, filepath.Join(t.TempDir(), "nothing"))
	if _, err := RedisServerPath(); err == nil || !strings.Contains(err.Error(), ServerPathEnv) {
		t.Fatalf("RedisServerPath with a bad %s: %v", ServerPathEnv, err)
	}
}

func TestAppendCommand(t *testing.T) {
	got := string(appendCommand(nil, "SET", "k", "a\r\nb", ""))
	want := "*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n$0\r\n\r\n"
	if got != want {
		t.Fatalf("appendCommand = %q, want %q", got, want)
	}
}

func TestReadReply(t *testing.T) {
	tests := []struct {
		in   string
		want Reply
	}{
		{"+OK\r\n", Reply{Kind: KindStatus, Str: "OK"}},
		{"+\r\n", Reply{Kind: KindStatus}},
		{"-ERR bad thing\r\n", Reply{Kind: KindError, Str: "ERR bad thing"}},
		{":0\r\n", Reply{Kind: KindInt}},
		{":-42\r\n", Reply{Kind: KindInt, Int: -42}},
		{"$5\r\nhello\r\n", Reply{Kind: KindBulk, Str: "hello"}},
		{"$0\r\n\r\n", Reply{Kind: KindBulk}},
		{"$4\r\na\r\nb\r\n", Reply{Kind: KindBulk, Str: "a\r\nb"}},
		{"$-1\r\n", Reply{Kind: KindNil}},
		{"*-1\r\n", Reply{Kind: KindNil}},
		{"*0\r\n", Reply{Kind: KindArray, Elems: []Reply{}}},
		{"*3\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n-ERR x\r\n", Reply{Kind: KindArray, Elems: []Reply{
			{Kind: KindInt, Int: 1},
			{Kind: KindArray, Elems: []Reply{{Kind: KindBulk, Str: "a"}, {Kind: KindNil}}},
			{Kind: KindError, Str: "ERR x"},
		}}},
	}
	for _, tt := range tests {
		r := bufio.NewReader(strings.NewReader(tt.in + "+NEXT\r\n"))
		got, err := readReply(r)
		if err != nil {
			t.Errorf("readReply(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("readReply(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
		// Exactly one reply was consumed.
		if next, err := readReply(r); err != nil || next.Str != "NEXT" {
			t.Errorf("after %q: next reply %v, %v", tt.in, next, err)
		}
	}

	bad := []string{
		"",                  // EOF
		"+OK",               // no CRLF
		"+OK\n",             // LF only
		"\r\n",              // empty line
		"?what\r\n",         // unknown type
		":12x\r\n",          // bad integer
		"$abc\r\n",          // bad length
		"$-2\r\n",           // bad length
		"$5\r\nhel",         // short bulk
		"$3\r\nhelXX",       // bulk without CRLF
		"*2\r\n:1\r\n",      // short array
		"$999999999999\r\n", // too long
		strings.Repeat("*1\r\n", maxDepth+2) + ":1\r\n", // too deep
	}
	for _, in := range bad {
		if got, err := readReply(bufio.NewReader(strings.NewReader(in))); err == nil {
			t.Errorf("readReply(%q) = %v, want an error", in, got)
		}
	}
}

func TestReplyHelpers(t *testing.T) {
	if n, err := (Reply{Kind: KindBulk, Str: "12"}).Integer(); err != nil || n != 12 {
		t.Errorf("Integer of bulk 12 = %d, %v", n, err)
	}
	if _, err := (Reply{Kind: KindBulk, Str: "x"}).Integer(); err == nil {
		t.Error("Integer of bulk x did not fail")
	}
	if _, err := (Reply{Kind: KindArray}).Integer(); err == nil {
		t.Error("Integer of an array did not fail")
	}
	if got, err := (Reply{Kind: KindNil}).Strings(); err != nil || got != nil {
		t.Errorf("Strings of nil = %q, %v", got, err)
	}
	if _, err := (Reply{Kind: KindBulk}).Strings(); err == nil {
		t.Error("Strings of a bulk did not fail")
	}
	arr := Reply{Kind: KindArray, Elems: []Reply{{Kind: KindBulk, Str: "a"}, {Kind: KindNil}, {Kind: KindInt, Int: 7}}}
	if got, err := arr.Strings(); err != nil || !reflect.DeepEqual(got, []string{"a", "", "7"}) {
		t.Errorf("Strings = %q, %v", got, err)
	}
	if got := (Reply{}).String(); got != "(invalid reply)" {
		t.Errorf("zero Reply String = %q", got)
	}
	if KindBulk.String() != "bulk" || Kind(99).String() != "Kind(99)" {
		t.Error("Kind.String")
	}
	if ServerError("NOAUTH Authentication required.").Prefix() != "NOAUTH" || ServerError("ERR").Prefix() != "ERR" {
		t.Error("ServerError.Prefix")
	}
}
