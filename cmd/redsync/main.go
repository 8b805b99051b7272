//go:build unix

// Command redsync runs commands under a Redlock distributed lock, for
// shell scripts and cron jobs that must run on one host at a time.
//
//	redsync exec [flags] NAME -- COMMAND [ARG...]
//	redsync status [flags] NAME
//	redsync help [COMMAND]
//
// Install it with
//
//	go install github.com/go-redlock/redsync/cmd/redsync@latest
//
// Run "redsync help" for the flags, the environment, the exit statuses and
// examples; docs/CLI.md in the repository says the same at more length.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	goredislib "github.com/redis/go-redis/v9"
)

// Exit statuses besides the command's own. They follow sysexits.h where it
// has one, and the shells for a command not found (127) or not executable
// (126).
const (
	exitHeld        = 0   // status: the lock is held by a quorum
	exitNotHeld     = 1   // status: the lock is not held
	exitUsage       = 64  // EX_USAGE: bad flags or arguments
	exitUnavailable = 69  // EX_UNAVAILABLE: too many nodes unreachable or failing
	exitSoftware    = 70  // EX_SOFTWARE: an unexpected failure of redsync itself
	exitNotObtained = 75  // EX_TEMPFAIL: the lock is held elsewhere
	exitLost        = 76  // the lock was lost while the command ran
	exitNotExec     = 126 // the command could not be run
	exitNotFound    = 127 // the command was not found
)

const usageLines = `usage: redsync exec [flags] NAME -- COMMAND [ARG...]
       redsync status [flags] NAME
       redsync help [COMMAND]
`

const helpText = `redsync - run a command under a Redlock distributed lock

` + usageLines + `
redsync exec takes the lock NAME on a majority (quorum) of the Redis nodes,
runs COMMAND while it holds the lock, extending the lock every TTL/3, and
releases it once COMMAND and every process it started are gone: when
COMMAND exits, what it left running gets SIGTERM, then SIGKILL after the
grace. COMMAND runs in a process group of its own; on Linux, redsync also
adopts the processes that leave it (setsid) once their parent exits.
If the lock is lost while COMMAND runs (the extensions fail: nodes
unreachable, the key deleted or expired), redsync sends SIGTERM to all of
it, then SIGKILL after the grace but before the lock's validity ends, and
exits with 76. SIGINT, SIGTERM, SIGHUP, SIGTSTP and SIGCONT that redsync
receives are passed on to COMMAND (Ctrl-Z stops both). If redsync dies, a
guard process kills COMMAND's process group. With --permits N, redsync
exec holds one of N permits of the semaphore NAME instead of the lock, so
that at most N commands run at once; all else is the same.

redsync status prints, for each node, whether the lock key exists, its
value and its time to live, and says whether a quorum holds the lock.

Flags:
  --nodes URLS       the Redis nodes, comma-separated: redis://[USER:PASSWORD@]HOST:PORT[/DB],
                     rediss://... for TLS, or HOST:PORT (default: $REDIS_ADDRS); a comma
                     in a password is written %2C
  --cacert FILE      PEM file of the certificate authorities trusted for rediss://
                     nodes (default: the system's)
  --ttl DURATION     time to live of the lock on the nodes (default 8s)
  --wait DURATION    exec: how long to wait for a lock held elsewhere; 0 tries once (default 0)
  --grace DURATION   exec: time between SIGTERM and SIGKILL when COMMAND's processes must stop;
                     shorter than the TTL, and cut short by the end of the lock's validity
                     (default TTL/2: 4s)
  --fencing          exec: issue a fencing token, passed in REDSYNC_FENCING_TOKEN
  --permits N        exec: hold one of N permits of the semaphore NAME rather than the lock
                     NAME, so that at most N commands run at once (every host must give
                     the same N); not with --fencing
  --quiet            exec: say nothing when the lock is held elsewhere
  --verbose          log the lock's acquisition, extensions, release and loss to stderr
  -h, --help         show this help

Flags go before NAME; DURATION is a number with a unit: 500ms, 8s, 2m, 1h.

Environment:
  REDIS_ADDRS            the nodes, when --nodes is not given
COMMAND also gets:
  REDSYNC_LOCK_NAME      NAME
  REDSYNC_LOCK_VALUE     the random value of this acquisition, stored on the nodes
  REDSYNC_FENCING_TOKEN  with --fencing: a number that grows from one holder of
                         NAME to the next; pass it to the resource you write to
  REDSYNC_PERMIT         with --permits: the permit held, 0 to N-1 (no two commands
                         that run at once have the same)

Exit status:
  exec     COMMAND's exit status, or 128+N if a signal N killed it; or
            64  usage error
            69  the lock was not obtained: too many nodes unreachable or failing
            70  redsync could not prepare COMMAND's run; COMMAND did not run
            75  the lock was not obtained: it is held elsewhere (within --wait);
                with --permits, all N permits are
            76  the lock was lost before COMMAND and its processes were gone;
                what still ran was stopped
           126  COMMAND could not be run
           127  COMMAND was not found
           130  interrupted (SIGINT, 143 for SIGTERM, 129 for SIGHUP) while
                waiting for the lock
  status    0   the lock is held by a quorum of nodes
            1   the lock is not held by a quorum
           64   usage error
           69   a quorum of nodes could not be reached

Examples:
  Run a nightly job on one host of many (the same crontab on every host):
    REDIS_ADDRS=redis://r1:6379,redis://r2:6379,redis://r3:6379
    0 3 * * * redsync exec --quiet backup -- /usr/local/bin/backup --full

  Wait up to a minute for the lock, and pass a fencing token on:
    redsync exec --wait 1m --fencing reindex -- ./reindex.sh

  At most 4 encoders at once across the hosts; wait up to 10 minutes for a turn:
    redsync exec --permits 4 --wait 10m encode -- ./encode.sh

  Who holds the lock?
    redsync status backup

Passwords in --nodes are visible to other users in the process list; prefer
REDIS_ADDRS.
`

func main() {
	if isGuard(os.Args) {
		os.Exit(runGuard(os.Stdin))
	}
	// go-redis logs failed dials and the like on its own; redsync reports
	// what matters itself.
	goredislib.SetLogger(quietLogger{})
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// quietLogger drops go-redis's log lines.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// run runs the command line args and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return usageError(stderr, "no command")
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "exec":
		return runExec(rest, stdout, stderr)
	case "status":
		return runStatus(rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		if len(rest) > 1 || len(rest) == 1 && rest[0] != "exec" && rest[0] != "status" {
			return usageError(stderr, "help takes no argument but exec or status")
		}
		fmt.Fprint(stdout, helpText)
		return 0
	default:
		if strings.HasPrefix(cmd, "-") {
			return usageError(stderr, "flags go after the command: redsync exec [flags] NAME -- COMMAND")
		}
		return usageError(stderr, fmt.Sprintf("unknown command %q", cmd))
	}
}

// usageError reports a usage error and returns its exit status.
func usageError(stderr io.Writer, msg string) int {
	fmt.Fprintf(stderr, "redsync: %s\n%sRun 'redsync help' for more.\n", msg, usageLines)
	return exitUsage
}

// errorf reports an error on stderr.
func errorf(stderr io.Writer, format string, args ...any) {
	fmt.Fprintf(stderr, "redsync: "+format+"\n", args...)
}
