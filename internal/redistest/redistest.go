// Package redistest starts throwaway redis-server processes for tests,
// benchmarks and demos.
//
// Every server listens on a free port of 127.0.0.1, runs in a fresh temporary
// directory and, unless told otherwise through extra arguments, persists
// nothing. Readiness is detected by sending PING until the server answers
// +PONG (and checking, through INFO, that the answer comes from the process
// that was started), never by watching log lines.
//
//	func TestSomething(t *testing.T) {
//		srv := redistest.Start(t) // stopped and removed by t.Cleanup
//		client := newClient(srv.Addr())
//		...
//		srv.Kill()    // simulate a crash
//		srv.Restart() // same port, same directory
//	}
//
// [StartCluster] starts a Redis Cluster of three masters, and
// [WriteTLSFiles] and [StartTLS] a server that accepts TLS connections.
//
// The package uses only the standard library and talks to the servers with
// its own minimal RESP2 client ([Server.Do]). redis-server must be installed;
// [RedisServerPath] tells where it is found.
//
// On Linux the servers are started with a parent-death signal, so they are
// killed even when the test binary exits without running its cleanups
// (a panic or a -timeout expiry).
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Timeouts and retry budgets.
const (
	// ReadyTimeout is how long Launch and Restart wait for a started
	// redis-server to answer PING.
	ReadyTimeout = 10 * time.Second
	// StopTimeout is how long Stop waits after SIGTERM before it sends
	// SIGKILL.
	StopTimeout = 3 * time.Second
	// DoTimeout is the timeout Do uses for dialling, writing and reading.
	DoTimeout = 5 * time.Second

	launchAttempts  = 5  // fresh ports tried by Launch
	restartAttempts = 20 // tries of the same port by Restart
)

// ServerPathEnv is the environment variable that, when set, names the
// redis-server binary to use instead of looking "redis-server" up in PATH.
const ServerPathEnv = "REDISTEST_REDIS_SERVER"

// ErrRedisServerNotFound is returned (possibly wrapped) by RedisServerPath,
// Launch and LaunchN when no redis-server binary can be found. Tests that
// prefer skipping to failing can check for it with errors.Is.
var ErrRedisServerNotFound = errors.New("redistest: redis-server not found in PATH; install it (Debian: apt-get install -y redis-server)")

// ErrNotRunning is returned by Pause and Resume when the server has no
// running process.
var ErrNotRunning = errors.New("redistest: redis-server is not running")

// ErrClosed is returned by Restart after Close.
var ErrClosed = errors.New("redistest: server is closed")

// errPortInUse marks start failures caused by another socket holding the
// port; they are retried.
var errPortInUse = errors.New("port already in use")

// Names of the files redis-server writes in its directory.
const (
	logFileName    = "redis.log"
	stderrFileName = "redis.stderr"
)

// RedisServerPath returns the path of the redis-server binary: the value of
// $REDISTEST_REDIS_SERVER when set, otherwise the result of looking up
// "redis-server" in PATH. When nothing is found the error wraps
// ErrRedisServerNotFound and says how to install it.
func RedisServerPath() (string, error) {
	if p := os.Getenv(ServerPathEnv); p != "" {
		path, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("redistest: $%s=%q is not an executable: %w", ServerPathEnv, p, err)
		}
		return path, nil
	}
	path, err := exec.LookPath("redis-server")
	if err != nil {
		return "", ErrRedisServerNotFound
	}
	return path, nil
}

// Server is one redis-server started by Launch or Start. Its port and
// directory stay the same across Kill, Stop and Restart; the process changes.
// All methods are safe for concurrent use, except MustDo which, like
// t.Fatal, must be called from the test goroutine.
type Server struct {
	bin   string
	dir   string
	port  int
	extra []string // the arguments given to Launch

	mu       sync.Mutex
	proc     *process // nil when no process was started since the last Kill/Stop
	password string   // from --requirepass of the running process, used by Do
	closed   bool
}

// process is one redis-server process and its reaper.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once Wait returned: the process is reaped
	err  error         // Wait's result, valid after done is closed
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Launch starts one redis-server on a free 127.0.0.1 port, in a fresh
// temporary directory, and waits (up to ReadyTimeout) until it answers PING.
//
// The server is started with
//
//	--port PORT --bind 127.0.0.1 --protected-mode no --daemonize no
//	--dir DIR --logfile DIR/redis.log --save "" --appendonly no
//
// followed by extra, so extra can override any of these, for example
// "--appendonly", "yes", "--appendfsync", "always" or "--requirepass", "x"
// (Do then authenticates automatically). extra must not contain --port or
// --daemonize, and should not change --dir, --bind or --logfile. Each
// option and each of its values is one element: "--save", "60 1".
//
// If the port turns out to be taken by the time redis-server binds it, Launch
// retries with a new port a few times. When redis-server is missing the
// error wraps ErrRedisServerNotFound; when it fails to start, the error
// quotes the end of its log.
//
// The caller must call Close when done with the server.
func Launch(extra ...string) (*Server, error) {
	bin, err := RedisServerPath()
	if err != nil {
		return nil, err
	}
	return launch(bin, extra)
}

func launch(bin string, extra []string) (*Server, error) {
	if err := checkExtra(extra); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		return nil, fmt.Errorf("redistest: %w", err)
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	s := &Server{bin: bin, dir: dir, extra: slices.Clone(extra)}
	s.mu.Lock()
	defer s.mu.Unlock()
	for attempt := 1; ; attempt++ {
		port, perr := freePort()
		if perr != nil {
			err = perr
			break
		}
		s.port = port
		err = s.start(s.extra)
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, errPortInUse) || attempt >= launchAttempts {
			break
		}
	}
	os.RemoveAll(dir)
	return nil, err
}

// LaunchN starts n servers concurrently, each like Launch(extra...). If any
// of them fails, it closes those that started and returns the errors.
func LaunchN(n int, extra ...string) ([]*Server, error) {
	if n < 0 {
		return nil, fmt.Errorf("redistest: LaunchN: negative count %d", n)
	}
	bin, err := RedisServerPath()
	if err != nil {
		return nil, err
	}
	servers := make([]*Server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			servers[i], errs[i] = launch(bin, extra)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, s := range servers {
			if s != nil {
				s.Close()
			}
		}
		return nil, err
	}
	return servers, nil
}

// Start is Launch for tests and benchmarks: it calls t.Fatal when the server
// cannot be started and registers a t.Cleanup that closes the server (stops
// the process and removes its directory). When the test failed, the cleanup
// also logs the end of the server's log.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	s, err := Launch(extra...)
	if err != nil {
		t.Fatal(err)
	}
	s.cleanupWith(t)
	return s
}

// StartN is LaunchN for tests and benchmarks: it starts n servers
// concurrently, calls t.Fatal if any of them fails, and registers a cleanup
// closing each of them.
func StartN(t testing.TB, n int, extra ...string) []*Server {
	t.Helper()
	servers, err := LaunchN(n, extra...)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range servers {
		s.cleanupWith(t)
	}
	return servers
}

func (s *Server) cleanupWith(t testing.TB) {
	t.Cleanup(func() {
		if t.Failed() {
			if tail := lastLines(s.readLog(), 20); tail != "" {
				t.Logf("redistest: end of the log of redis-server %s:\n%s", s.Addr(), tail)
			}
		}
		if err := s.Close(); err != nil {
			t.Errorf("redistest: closing redis-server %s: %v", s.Addr(), err)
		}
	})
}

// Addr returns the server's address, "127.0.0.1:PORT".
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Port returns the server's TCP port. It does not change across restarts.
func (s *Server) Port() int { return s.port }

// Dir returns the server's working directory, where RDB and AOF files (Redis
// 7 keeps the AOF files in Dir()/appendonlydir) and the log live. Close
// removes it.
func (s *Server) Dir() string { return s.dir }

// LogPath returns the path of the server's log file. Errors redis-server
// reports before it opened the log (such as a bad argument) go to
// Dir()/redis.stderr instead.
func (s *Server) LogPath() string { return filepath.Join(s.dir, logFileName) }

// Log returns the content of the server's log file and of its standard error
// (all processes since Launch, appended). It returns "" after Close.
func (s *Server) Log() string { return s.readLog() }

func (s *Server) readLog() string {
	var b strings.Builder
	for _, name := range []string{logFileName, stderrFileName} {
		data, err := os.ReadFile(filepath.Join(s.dir, name))
		if err == nil {
			b.Write(data)
		}
	}
	return b.String()
}

// Pid returns the process id of the running redis-server, or 0 when there is
// none (after Kill, Stop or Close, or after the process died by itself).
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || s.proc.exited() {
		return 0
	}
	return s.proc.cmd.Process.Pid
}

// Running reports whether the server has a live process. A paused process
// counts as running.
func (s *Server) Running() bool { return s.Pid() != 0 }

// Kill sends SIGKILL to the process and waits until it has exited and has been
// reaped. It does nothing when no process is running. Data not yet written
// to disk is lost, as in a crash.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.killLocked()
}

func (s *Server) killLocked() error {
	if s.proc == nil {
		return nil
	}
	if err := killProc(s.proc); err != nil {
		return err
	}
	s.proc = nil
	return nil
}

func killProc(p *process) error {
	if !p.exited() {
		if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("redistest: killing redis-server: %w", err)
		}
	}
	<-p.done
	return nil
}

// Stop asks the process to shut down with SIGTERM (resuming it first if it
// is paused), sends SIGKILL if it is still alive after StopTimeout, and waits
// until it has exited and has been reaped. It does nothing when no process
// is running. It removes nothing: the server can be restarted.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked()
}

func (s *Server) stopLocked() error {
	p := s.proc
	if p == nil {
		return nil
	}
	if !p.exited() {
		err := p.cmd.Process.Signal(syscall.SIGTERM)
		if err == nil {
			// A stopped process only handles SIGTERM once continued.
			p.cmd.Process.Signal(syscall.SIGCONT)
			timer := time.NewTimer(StopTimeout)
			select {
			case <-p.done:
			case <-timer.C:
			}
			timer.Stop()
		}
	}
	return s.killLocked()
}

// Close stops the server like Stop and removes its directory. It is
// idempotent; after Close the server cannot be restarted.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	err := s.stopLocked()
	if err != nil {
		// Make sure nothing is left behind even if SIGTERM handling failed.
		err = errors.Join(err, s.killLocked())
	}
	s.closed = true
	if rerr := os.RemoveAll(s.dir); rerr != nil {
		err = errors.Join(err, fmt.Errorf("redistest: %w", rerr))
	}
	return err
}

// Restart starts a new redis-server process on the same port and in the same
// directory, and waits until it answers PING. If a process is running it is
// stopped first (as by Stop); use Kill before Restart to simulate a crash.
//
// With no arguments (nil extra), the new process gets the extra arguments
// originally given to Launch. Otherwise it gets the given ones instead; to
// restart with no extra arguments at all pass an empty non-nil slice:
// Restart([]string{}...).
//
// If the port is still busy (for instance a connection of the previous
// process lingering in the kernel), Restart retries for a few seconds.
func (s *Server) Restart(extra ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if extra == nil {
		extra = s.extra
	} else if err := checkExtra(extra); err != nil {
		return err
	}
	if err := s.stopLocked(); err != nil {
		return err
	}
	var err error
	for attempt := 1; ; attempt++ {
		err = s.start(extra)
		if err == nil || !errors.Is(err, errPortInUse) || attempt >= restartAttempts {
			return err
		}
		time.Sleep(min(time.Duration(attempt)*50*time.Millisecond, 500*time.Millisecond))
	}
}

// Pause freezes the process with SIGSTOP: it keeps its port and its
// connections but answers nothing until Resume. The kernel still accepts new
// connections into the listen backlog, so clients see timeouts rather than
// refused connections.
func (s *Server) Pause() error { return s.signal(syscall.SIGSTOP) }

// Resume continues a process frozen by Pause, with SIGCONT.
func (s *Server) Resume() error { return s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig os.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || s.proc.exited() {
		return ErrNotRunning
	}
	if err := s.proc.cmd.Process.Signal(sig); err != nil {
		if errors.Is(err, os.ErrProcessDone) {
			return ErrNotRunning
		}
		return fmt.Errorf("redistest: %w", err)
	}
	return nil
}

// Do sends one command over a new TCP connection, reads its reply and closes
// the connection, all within DoTimeout. When the server was started with
// --requirepass, Do authenticates first.
//
// An error reply of the server is returned as a ServerError whose text is the
// server's error line (for example "WRONGTYPE Operation against a key holding
// the wrong kind of value"), together with a Reply of KindError. Other errors
// (network, timeout, protocol) come with a zero Reply.
func (s *Server) Do(args ...string) (Reply, error) {
	return s.DoTimeout(DoTimeout, args...)
}

// DoTimeout is Do with a timeout of d for the whole exchange (dial, write and
// read). A short timeout is useful to check that a paused or overloaded
// server does not answer.
func (s *Server) DoTimeout(d time.Duration, args ...string) (Reply, error) {
	if len(args) == 0 {
		return Reply{}, errors.New("redistest: Do: no command")
	}
	s.mu.Lock()
	pw := s.password
	s.mu.Unlock()
	rep, err := roundTrip(s.Addr(), pw, d, args...)
	if err != nil {
		var se ServerError
		if errors.As(err, &se) && rep.Kind == KindError {
			return rep, err
		}
		return Reply{}, fmt.Errorf("redistest: %s on %s: %w", args[0], s.Addr(), err)
	}
	return rep, nil
}

// MustDo is Do that calls t.Fatal on any error, including error replies. Like
// t.Fatal it must only be called from the goroutine running the test.
func (s *Server) MustDo(t testing.TB, args ...string) Reply {
	t.Helper()
	rep, err := s.Do(args...)
	if err != nil {
		t.Fatalf("redistest: %s: %v", strings.Join(args, " "), err)
	}
	return rep
}

// DBSize returns the number of keys in the current database (DBSIZE).
func (s *Server) DBSize() (int, error) {
	rep, err := s.Do("DBSIZE")
	if err != nil {
		return 0, err
	}
	n, err := rep.Integer()
	return int(n), err
}

// Keys returns the keys matching the glob-style pattern (KEYS pattern),
// sorted. Use "*" for all keys.
func (s *Server) Keys(pattern string) ([]string, error) {
	rep, err := s.Do("KEYS", pattern)
	if err != nil {
		return nil, err
	}
	keys, err := rep.Strings()
	if err != nil {
		return nil, err
	}
	slices.Sort(keys)
	return keys, nil
}

// roundTrip dials addr, optionally authenticates with pw, sends one command
// and reads its reply. An error reply to the command is returned both as a
// Reply of KindError and as a ServerError.
func roundTrip(addr, pw string, d time.Duration, args ...string) (Reply, error) {
	deadline := time.Now().Add(d)
	conn, err := net.DialTimeout("tcp", addr, d)
	if err != nil {
		return Reply{}, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(deadline); err != nil {
		return Reply{}, err
	}
	var buf []byte
	if pw != "" {
		buf = appendCommand(buf, "AUTH", pw)
	}
	buf = appendCommand(buf, args...)
	if _, err := conn.Write(buf); err != nil {
		return Reply{}, err
	}
	r := bufio.NewReader(conn)
	if pw != "" {
		rep, err := readReply(r)
		if err != nil {
			return Reply{}, err
		}
		if rep.Kind == KindError {
			return Reply{}, fmt.Errorf("AUTH: %w", ServerError(rep.Str))
		}
	}
	rep, err := readReply(r)
	if err != nil {
		return Reply{}, err
	}
	if rep.Kind == KindError {
		return rep, ServerError(rep.Str)
	}
	return rep, nil
}

// checkExtra rejects arguments that would break the helper.
func checkExtra(extra []string) error {
	for _, a := range extra {
		switch strings.ToLower(a) {
		case "--port", "--daemonize":
			return fmt.Errorf("redistest: extra argument %s is not allowed: the helper sets it", a)
		}
	}
	return nil
}

// passwordFrom returns the value of the last --requirepass in args.
func passwordFrom(args []string) string {
	pw := ""
	for i := 0; i+1 < len(args); i++ {
		if strings.EqualFold(args[i], "--requirepass") {
			pw = args[i+1]
		}
	}
	return pw
}

// freePort asks the kernel for a free port of 127.0.0.1. Another process may
// grab it before redis-server binds it; callers retry in that case.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("redistest: finding a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("redistest: finding a free port: %w", err)
	}
	return port, nil
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// readFrom returns the content of path from offset off.
func readFrom(path string, off int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return ""
	}
	data, _ := io.ReadAll(f)
	return string(data)
}

// lastLines returns the last n non-empty lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// start starts a process with the given extra arguments on s.port and waits
// until it is ready. s.mu must be held and no process may be running. On
// success it sets s.proc; on failure nothing is left running.
func (s *Server) start(extra []string) error {
	logPath := filepath.Join(s.dir, logFileName)
	stderrPath := filepath.Join(s.dir, stderrFileName)
	logOff, stderrOff := fileSize(logPath), fileSize(stderrPath)

	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--protected-mode", "no",
		"--daemonize", "no",
		"--dir", s.dir,
		"--logfile", logPath,
		"--save", "",
		"--appendonly", "no",
	}
	args = append(args, extra...)

	// redis-server writes nothing to stdout when it has a log file, but
	// reports errors found before opening the log (bad arguments) on stderr;
	// keep those in a file of its directory. Using an *os.File (rather than a
	// pipe) means Wait never waits for a copying goroutine, so forked
	// children of redis-server cannot delay the reaping of the parent.
	stderr, err := os.OpenFile(stderrPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("redistest: %w", err)
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	cmd.Stderr = stderr
	err = startCmd(cmd)
	stderr.Close() // the child has its own descriptor
	if err != nil {
		return fmt.Errorf("redistest: starting %s: %w", s.bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()

	pw := passwordFrom(extra)
	readyErr := waitReady(p, s.Addr(), pw, ReadyTimeout)
	if readyErr == nil {
		s.proc = p
		s.password = pw
		return nil
	}
	exited := p.exited()
	killProc(p)
	output := readFrom(logPath, logOff) + readFrom(stderrPath, stderrOff)
	inUse := errors.Is(readyErr, errPortInUse) ||
		(exited && strings.Contains(output, "already in use"))
	var msg strings.Builder
	fmt.Fprintf(&msg, "redistest: redis-server on %s did not start: %v", s.Addr(), readyErr)
	if exited && p.err != nil {
		fmt.Fprintf(&msg, " (%v)", p.err)
	}
	if tail := lastLines(output, 15); tail != "" {
		fmt.Fprintf(&msg, "; its output ends with:\n%s", tail)
	}
	if inUse {
		return fmt.Errorf("%s: %w", msg.String(), errPortInUse)
	}
	return errors.New(msg.String())
}

// waitReady polls addr until the server answers PING, the process exits or
// the timeout expires. If the server that answers is not process p (another
// process owns the port), it returns an error wrapping errPortInUse.
func waitReady(p *process, addr, pw string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	lastErr := errors.New("no answer yet")
	for {
		if p.exited() {
			return errors.New("the process exited")
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("no PONG within %v (last error: %v)", timeout, lastErr)
		}
		pid, err := probe(addr, pw, min(time.Until(deadline), time.Second))
		if err == nil {
			if pid != 0 && pid != p.cmd.Process.Pid {
				// Our process may not have noticed yet that the port
				// is taken; it will exit, but do not wait for that.
				return fmt.Errorf("port answered by another redis-server (pid %d): %w", pid, errPortInUse)
			}
			return nil
		}
		lastErr = err
		timer := time.NewTimer(10 * time.Millisecond)
		select {
		case <-p.done:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// probe sends PING (after AUTH when pw is set) and INFO server, and returns
// the process_id the server reports (0 if it cannot tell). It fails unless
// PING is answered with +PONG; a -NOAUTH answer (a password given in a way
// the helper does not know) also counts as ready, with an unknown pid.
func probe(addr, pw string, d time.Duration) (int, error) {
	conn, err := net.DialTimeout("tcp", addr, d)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(d)); err != nil {
		return 0, err
	}
	var buf []byte
	if pw != "" {
		buf = appendCommand(buf, "AUTH", pw)
	}
	buf = appendCommand(buf, "PING")
	buf = appendCommand(buf, "INFO", "server")
	if _, err := conn.Write(buf); err != nil {
		return 0, err
	}
	r := bufio.NewReader(conn)
	if pw != "" {
		if _, err := readReply(r); err != nil {
			return 0, err
		}
	}
	ping, err := readReply(r)
	if err != nil {
		return 0, err
	}
	switch {
	case ping.Kind == KindStatus && ping.Str == "PONG":
	case ping.Kind == KindError && ServerError(ping.Str).Prefix() == "NOAUTH":
		return 0, nil
	default:
		return 0, fmt.Errorf("PING answered %s", ping)
	}
	info, err := readReply(r)
	if err != nil || info.Kind != KindBulk {
		return 0, nil // answered PING; INFO may be disabled
	}
	for line := range strings.SplitSeq(info.Str, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			pid, _ := strconv.Atoi(v)
			return pid, nil
		}
	}
	return 0, nil
}
