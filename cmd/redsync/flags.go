//go:build unix

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// options are the flags of the commands.
type options struct {
	nodes   string
	cacert  string
	ttl     time.Duration
	wait    time.Duration
	grace   time.Duration
	fencing bool
	permits int // exec --permits: a permit of a semaphore of that many; 0 for the lock
	quiet   bool
	verbose bool
}

// defaultTTL is the default of --ttl. The default of --grace is half the
// TTL: shorter than the validity left when a failed extension tells that
// the lock is lost.
const defaultTTL = 8 * time.Second

// flagSet returns the flags of command ("exec" or "status") bound to o.
// The flag package accepts both -name and --name.
func (o *options) flagSet(command string) *flag.FlagSet {
	fs := flag.NewFlagSet(command, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported by the caller
	fs.StringVar(&o.nodes, "nodes", "", "")
	fs.StringVar(&o.cacert, "cacert", "", "")
	fs.BoolVar(&o.quiet, "quiet", false, "")
	if command == "exec" {
		fs.DurationVar(&o.ttl, "ttl", defaultTTL, "")
		fs.DurationVar(&o.wait, "wait", 0, "")
		fs.DurationVar(&o.grace, "grace", 0, "")
		fs.BoolVar(&o.fencing, "fencing", false, "")
		fs.IntVar(&o.permits, "permits", 0, "")
		fs.BoolVar(&o.verbose, "verbose", false, "")
	}
	return fs
}

// parseArgs parses the flags in args and returns the other arguments:
// NAME first. Flags may also follow NAME, up to "--" or the command.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	rest := fs.Args()
	if len(rest) < 2 || rest[1] == "--" || !strings.HasPrefix(rest[1], "-") || rest[1] == "-" {
		return rest, nil
	}
	name := rest[0]
	if err := fs.Parse(rest[1:]); err != nil {
		return nil, err
	}
	return append([]string{name}, fs.Args()...), nil
}

// check returns the first problem with the values of o, or nil. Unless fs
// had --grace, it sets the grace to its default, half the TTL.
func (o *options) check(fs *flag.FlagSet) error {
	if !given(fs, "grace") {
		o.grace = o.ttl / 2
	}
	switch {
	case o.ttl <= 0:
		return fmt.Errorf("--ttl is %v; it must be positive", o.ttl)
	case o.wait < 0:
		return fmt.Errorf("--wait is %v; it must not be negative", o.wait)
	case o.grace < 0:
		return fmt.Errorf("--grace is %v; it must not be negative", o.grace)
	case o.grace >= o.ttl:
		return fmt.Errorf("--grace %v is not shorter than --ttl %v; COMMAND must be stopped before the lock's validity ends", o.grace, o.ttl)
	case given(fs, "permits") && o.permits < 1:
		return fmt.Errorf("--permits is %d; it must be at least 1", o.permits)
	case o.permits > 0 && o.fencing:
		return errors.New("--fencing cannot be combined with --permits: the holders of a semaphore hold at the same time, so there is no order of holders for tokens to follow")
	}
	return nil
}

// given reports whether the flag name was on the command line.
func given(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}

// nodeSpec returns the nodes named by --nodes, or by $REDIS_ADDRS.
func (o *options) nodeSpec() (string, error) {
	spec := o.nodes
	if spec == "" {
		spec = os.Getenv("REDIS_ADDRS")
	}
	if strings.TrimSpace(strings.ReplaceAll(spec, ",", "")) == "" {
		return "", errors.New("no Redis nodes: give --nodes or set REDIS_ADDRS")
	}
	return spec, nil
}

// flagError turns an error of parseArgs into an exit status: help goes to
// stdout, other errors are usage errors.
func flagError(err error, stdout, stderr io.Writer) int {
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, helpText)
		return 0
	}
	return usageError(stderr, err.Error())
}
