package chaos

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/go-redlock/redsync/internal/redistest"
)

var semaphoreReportPath = flag.String("chaos.semaphore.report", "", "write the semaphore results table (Markdown) to this file")

// The semaphore rows: each of the three workers runs semaphoreGoroutines
// goroutines that take permits of one semaphore of semaphorePermits, so
// that three times as many tries as permits contend.
const (
	semaphorePermits    = 2
	semaphoreGoroutines = 2
)

// semaphoreRow is a row of the fault table run with a semaphore.
type semaphoreRow struct {
	base string // the name of the row in rows()
	// counting runs the canary's majority-counting semaphore
	// (counting.go) instead of redsync's: the checkers must see it exceed
	// its permits.
	counting bool
	// reported: a row of the counting semaphore whose fault leaves no
	// room for its breach, so that it is reported, not asserted. Three
	// holders on majorities of 5 nodes take 3 x 3 node grants of the 2 x
	// 5 the nodes can give: with 2 nodes down, or with grants left over by
	// releases that a reset lost (they live out the expiry), too few are
	// left.
	reported bool
	short    bool // also in the short table (go test)
}

// semaphoreRows are the rows of the fault table run again with the
// workers taking permits (redsync.Semaphore.TryAcquire), and the
// canaries, which take them from the counting semaphore.
var semaphoreRows = []semaphoreRow{
	{base: "baseline"},
	{base: "kill-minority"},
	{base: "restart-majority-immediate-guard"},
	{base: "restart-majority-aof-always"},
	{base: "pause-majority"},
	{base: "slow-majority-validity"},
	{base: "blackhole-majority"},
	{base: "connection-resets", short: true},
	{base: "baseline", counting: true, short: true},
	{base: "kill-minority", counting: true, reported: true},
	{base: "pause-majority", counting: true},
	{base: "connection-resets", counting: true, reported: true},
	{base: "canary-restart-majority"},
}

// TestChaosSemaphore runs rows of the fault table with the workers taking
// permits of one semaphore: at no instant may more than its permits be
// held. The checkers: the resource's gauge of the holders inside (a
// conflict when more than the permits are), the sweep of the validity
// windows (SweepHolders: no permit acquired while the permits' windows
// are all open), the counter (each holder counts itself with one atomic
// increment, so it loses none), and an auditor per slot of the semaphore.
// The canaries run the same workers with a semaphore that counts its
// holders on each node and grants at a majority: it must be caught
// exceeding its permits. go test runs the rows marked short; -long runs
// all of them to at least 10,000 acquisitions each.
func TestChaosSemaphore(t *testing.T) {
	sc := runScale()
	resource := redistest.Start(t)
	var table []string
	for _, sr := range semaphoreRows {
		r := baseRow(t, sr.base)
		r.name = "semaphore-" + r.name
		r.primitive, r.permits, r.goroutines = primitiveSemaphore, semaphorePermits, semaphoreGoroutines
		r.fault += fmt.Sprintf("; %d workers x %d goroutines take permits of a Semaphore of %d", r.workerCount(), r.goroutines, r.permits)
		if sr.counting {
			r.name = "semaphore-canary-counting-" + sr.base
			r.fault = strings.Replace(r.fault, "a Semaphore", "a semaphore counting at a majority", 1)
			r.kind = canary
			if sr.reported {
				r.kind = unsafe
			}
			r.primitive = primitiveCounting
		}
		if !selected(r.name, sr.short) {
			continue
		}
		t.Run(r.name, func(t *testing.T) {
			res := runRow(t, resource, r, sc)
			t.Logf("%s: %d acquisitions, at most %d holders inside at once, %d fault cycles, %d acquired beyond the permits, %d lost updates, %d conflicts, try p99 %v, failed tries %v, auditor %+v",
				r.name, res.acquisitions, res.peak, res.cycles, res.doubleGrants, res.lostUpdates, res.conflicts, res.p99, res.failedTries, res.audit)
			table = append(table, holdersMarkdownRow(&res))
			check(t, &res, sc)
			if r.primitive == primitiveCounting {
				logBreaches(t, &res)
			}
			if r.kind == canary && (res.doubleGrants == 0 || res.conflicts == 0) {
				t.Errorf("the sweep found %d acquisitions beyond %d permits and the gauge %d conflicts; want both above 0", res.doubleGrants, r.permits, res.conflicts)
			}
			if sc == longScale && r.kind == safe && res.peak < int64(r.permits) {
				t.Errorf("at most %d holders were inside at once: the row did not reach the bound of %d", res.peak, r.permits)
			}
		})
	}
	out := holdersMarkdownHeader + "\n" + strings.Join(table, "\n") + "\n"
	t.Logf("semaphore results:\n%s", out)
	if *semaphoreReportPath != "" {
		if err := os.WriteFile(*semaphoreReportPath, []byte(out), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// logBreaches logs, for the first breaches of the permits that the sweep
// found in a row of the counting semaphore, the nodes that granted each
// holder, and counts the breaches where no node granted more holders than
// the permits: those that counting at a majority allows.
func logBreaches(t *testing.T, res *result) {
	t.Helper()
	quorumOnly := 0
	for i, o := range res.overlaps {
		var sets [][]int
		perNode := make([]int, lockNodes)
		for _, g := range res.grants {
			if g.Acquired <= o.Later.Acquired && o.Later.Acquired < g.WindowEnd() {
				sets = append(sets, g.Granted)
				for _, n := range g.Granted {
					perNode[n]++
				}
			}
		}
		if slices.Max(perNode) <= res.row.permits {
			quorumOnly++
		}
		if i < 3 {
			t.Logf("%d holders at once, granted by the nodes %v; holders counted per node %v", len(sets), sets, perNode)
		}
	}
	t.Logf("in %d of %d breaches no node granted more than %d holders", quorumOnly, len(res.overlaps), res.row.permits)
}
