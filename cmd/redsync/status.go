//go:build unix

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	goredislib "github.com/redis/go-redis/v9"
)

// statusTimeout bounds the commands of "redsync status" on each node.
const statusTimeout = 2 * time.Second

// nodeState is what "redsync status" found on one node.
type nodeState struct {
	err    error
	exists bool
	value  string
	ttl    time.Duration // -1: no expiry
}

// runStatus runs "redsync status".
func runStatus(args []string, stdout, stderr io.Writer) int {
	var o options
	pos, err := parseArgs(o.flagSet("status"), args)
	if err != nil {
		return flagError(err, stdout, stderr)
	}
	switch {
	case len(pos) == 0:
		return usageError(stderr, "status: no lock NAME")
	case len(pos) > 1:
		return usageError(stderr, fmt.Sprintf("status: one lock NAME, not %d arguments", len(pos)))
	case pos[0] == "":
		return usageError(stderr, "status: empty lock NAME")
	}
	name := pos[0]
	spec, err := o.nodeSpec()
	if err != nil {
		return usageError(stderr, "status: "+err.Error())
	}
	nodes, err := openNodes(spec, o.cacert)
	if err != nil {
		return usageError(stderr, "status: "+err.Error())
	}
	defer closeNodes(nodes)
	infos := connect(nodes)
	if err := checkServers(nodes, infos, stderr); err != nil {
		return usageError(stderr, "status: "+err.Error())
	}

	states := make([]nodeState, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		if err := infos[i].err; err != nil && uncheckedReason(err) == "" {
			// It failed already: do not wait for it twice.
			states[i] = nodeState{err: err}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			states[i] = readState(n.client, name)
		}()
	}
	wg.Wait()

	quorum := len(nodes)/2 + 1
	holders := map[string][]time.Duration{} // TTLs by value
	failed := 0
	for _, s := range states {
		switch {
		case s.err != nil:
			failed++
		case s.exists:
			holders[s.value] = append(holders[s.value], s.ttl)
		}
	}
	var value string
	for v, ttls := range holders {
		if len(ttls) >= quorum {
			value = v
		}
	}

	out := stdout
	if o.quiet {
		out = io.Discard
	}
	printStates(out, nodes, states)
	switch {
	case value != "":
		// A quorum holds the lock until the quorum-th longest TTL ends.
		ttls := slices.Clone(holders[value])
		slices.SortFunc(ttls, func(a, b time.Duration) int { return compareTTL(b, a) })
		until := "no expiry"
		if ttl := ttls[quorum-1]; ttl >= 0 {
			until = "for " + ttl.Round(time.Millisecond).String() + " more unless extended"
		}
		fmt.Fprintf(out, "lock %q: held by a quorum (%d of %d nodes, quorum %d), %s\n", name, len(holders[value]), len(nodes), quorum, until)
		return exitHeld
	case len(nodes)-failed < quorum:
		fmt.Fprintf(out, "lock %q: unknown: %d of %d nodes failed, and a quorum (%d) must answer\n", name, failed, len(nodes), quorum)
		return exitUnavailable
	}
	fmt.Fprintf(out, "lock %q: not held by a quorum (quorum %d of %d nodes)\n", name, quorum, len(nodes))
	return exitNotHeld
}

// compareTTL orders TTLs, a key without expiry (-1) last.
func compareTTL(a, b time.Duration) int {
	switch {
	case a == b:
		return 0
	case a < 0:
		return 1
	case b < 0:
		return -1
	case a < b:
		return -1
	}
	return 1
}

// readState reads the lock key and its TTL on one node, in one
// transaction.
func readState(client *goredislib.Client, name string) nodeState {
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	var (
		get  *goredislib.StringCmd
		pttl *goredislib.DurationCmd
	)
	_, err := client.TxPipelined(ctx, func(p goredislib.Pipeliner) error {
		get = p.Get(ctx, name)
		pttl = p.PTTL(ctx, name)
		return nil
	})
	switch {
	case errors.Is(err, goredislib.Nil):
		return nodeState{}
	case err != nil:
		if strings.HasPrefix(err.Error(), "WRONGTYPE") {
			return nodeState{err: errors.New("the key is not a lock (WRONGTYPE)")}
		}
		return nodeState{err: err}
	}
	s := nodeState{exists: true, value: get.Val(), ttl: pttl.Val()}
	if s.ttl < 0 {
		s.ttl = -1
	}
	return s
}

// printStates prints the table of the nodes.
func printStates(w io.Writer, nodes []node, states []nodeState) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATE\tTTL\tVALUE")
	for i, s := range states {
		switch {
		case s.err != nil:
			fmt.Fprintf(tw, "%s\terror\t-\t%v\n", nodes[i].label, s.err)
		case !s.exists:
			fmt.Fprintf(tw, "%s\tfree\t-\t-\n", nodes[i].label)
		default:
			ttl := "none"
			if s.ttl >= 0 {
				ttl = s.ttl.Round(time.Millisecond).String()
			}
			fmt.Fprintf(tw, "%s\theld\t%s\t%s\n", nodes[i].label, ttl, printable(s.value))
		}
	}
	tw.Flush()
}

// printable returns v as is when it is printable text, quoted otherwise.
func printable(v string) string {
	if q := strconv.Quote(v); q[1:len(q)-1] == v && !strings.ContainsAny(v, " \t") && v != "" {
		return v
	}
	return strconv.Quote(v)
}
