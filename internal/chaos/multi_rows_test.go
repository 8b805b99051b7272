package chaos

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-redlock/redsync/internal/redistest"
)

var multiReportPath = flag.String("chaos.multi.report", "", "write the multi-key results table (Markdown) to this file")

// multiSets are the name sets of the multi-key rows: four names, sets
// that overlap in a ring, the whole set, and one name alone (a Mutex of
// one name, which NewMultiMutex makes for a set of one). Each try of a
// worker takes one of them at random, so that every pair of sets meets;
// {n0,n1} and {n2,n3}, or {n1} and {n2,n3}, may be held at once.
var multiSets = [][]string{
	{"multi:n0", "multi:n1"},
	{"multi:n1", "multi:n2"},
	{"multi:n2", "multi:n3"},
	{"multi:n3", "multi:n0"},
	{"multi:n0", "multi:n1", "multi:n2", "multi:n3"},
	{"multi:n1"},
}

// multiRow is a row of the fault table run with multi-key locks.
type multiRow struct {
	base string // the name of the row in rows()
	// firstNameOnly: worker 0 locks only the first name of each set, and
	// acts as if it held them all: a canary, on which the per-name sweep
	// must find double grants.
	firstNameOnly bool
	short         bool // also in the short table (go test)
}

// multiRows are the rows of the fault table run again with the workers
// locking multiSets with redsync.NewMultiMutex. The restart guard and
// fencing are not available for several names, so the rows that need
// them are left out.
var multiRows = []multiRow{
	{base: "baseline"},
	{base: "kill-minority"},
	{base: "pause-minority"},
	{base: "restart-majority-aof-always"},
	{base: "connection-resets", short: true},
	{base: "baseline", firstNameOnly: true, short: true},
}

// TestChaosMulti runs rows of the fault table with the workers locking
// overlapping sets of names (multiSets): two grants whose sets share a
// name must not overlap. The validity sweep runs per name (SweepNames),
// each name has its own occupancy flag and read-sleep-write counter on the
// resource, and an auditor per name. go test runs the rows marked short:
// connection resets, and the canary until the checkers fire; -long runs
// all of them to at least 10,000 acquisitions each.
func TestChaosMulti(t *testing.T) {
	sc := runScale()
	resource := redistest.Start(t)
	var table []string
	for _, mr := range multiRows {
		r := baseRow(t, mr.base)
		r.name = "multi-" + r.name
		r.fault += fmt.Sprintf("; each try locks one of %d overlapping sets of 4 names", len(multiSets))
		r.sets = multiSets
		if mr.firstNameOnly {
			r.name = "multi-canary-first-name-only"
			r.fault += "; worker 0 locks only the first name of each set"
			r.kind = canary
			r.firstNameOnly = true
		}
		if !selected(r.name, mr.short) {
			continue
		}
		t.Run(r.name, func(t *testing.T) {
			res := runRow(t, resource, r, sc)
			bySize := map[int]int{}
			for _, g := range res.grants {
				bySize[len(g.Names)]++
			}
			t.Logf("%s: %d acquisitions (sets of 1, 2, 4 names: %d, %d, %d), %d acquired inside another's window, %d fault cycles, %d double grants, %d lost updates, %d conflicts, try p99 %v, failed tries %v, auditor %+v",
				r.name, res.acquisitions, bySize[1], bySize[2], bySize[4], res.concurrent, res.cycles,
				res.doubleGrants, res.lostUpdates, res.conflicts, res.p99, res.failedTries, res.audit)
			table = append(table, multiMarkdownRow(&res, bySize))
			check(t, &res, sc)
			if r.kind == canary && res.doubleGrants == 0 {
				t.Errorf("the per-name sweep found no double grant with worker 0 locking only the first name of each set")
			}
			if sc == longScale && r.kind == safe && res.concurrent == 0 {
				t.Errorf("no grant was acquired while a disjoint set was held: the row did not exercise the per-name sweep")
			}
		})
	}
	out := multiMarkdownHeader + "\n" + strings.Join(table, "\n") + "\n"
	t.Logf("multi-key results:\n%s", out)
	if *multiReportPath != "" {
		if err := os.WriteFile(*multiReportPath, []byte(out), 0o644); err != nil {
			t.Error(err)
		}
	}
}

const multiMarkdownHeader = `| row | kind | time | fault cycles | acquisitions | of sets of 1 / 2 / 4 names | acquired inside another's window (safe rows: a disjoint set's) | double grants (per name) | lost updates | occupancy conflicts | try p99 | auditor: samples with a quorum holding | failed tries |
|---|---|---|---|---|---|---|---|---|---|---|---|---|`

func multiMarkdownRow(res *result, bySize map[int]int) string {
	var failed []string
	for _, class := range []string{"taken", "nodes", "validity"} {
		if n := res.failedTries[class]; n > 0 {
			failed = append(failed, fmt.Sprintf("%s %d", class, n))
		}
	}
	return fmt.Sprintf("| %s | %s | %v | %d | %d | %d / %d / %d | %d | %d | %d | %d | %v | %d/%d (%d below quorum) | %s |",
		res.row.name, res.row.kind, res.duration.Round(time.Second), res.cycles, res.acquisitions,
		bySize[1], bySize[2], bySize[4], res.concurrent, res.doubleGrants, res.lostUpdates, res.conflicts,
		res.p99.Round(10*time.Microsecond),
		res.audit.Samples-res.audit.BelowQuorum, res.audit.Samples, res.audit.BelowQuorum,
		strings.Join(failed, ", "))
}
