package chaos

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/go-redlock/redsync/internal/redistest"
)

var fencingReportPath = flag.String("chaos.fencing.report", "", "write the fencing results table (Markdown) to this file")

// fencingRow is a row of the fault table run with fencing.
type fencingRow struct {
	base string // the name of the row in rows()
	// losesCounters: nodes restart without persistence, so tokens may
	// repeat (the known limit of fencing); their order is reported, not
	// asserted.
	losesCounters bool
	// mustReject: the fault makes holders write after their validity,
	// and the resource must refuse at least one such write.
	mustReject bool
	short      bool // also in the short table (go test)
}

// fencingRows are the rows of the fault table run again with
// WithFencing and the guarded write.
var fencingRows = []fencingRow{
	{base: "canary-paused-worker", mustReject: true, short: true},
	{base: "baseline"},
	{base: "restart-majority-aof-always"},
	{base: "restart-minority-immediate-guard", losesCounters: true},
	{base: "restart-majority-immediate-guard", losesCounters: true},
	{base: "pause-majority"},
	{base: "blackhole-majority"},
	{base: "slow-majority-validity"},
	{base: "connection-resets"},
}

// TestChaosFencing runs rows of the fault table with fencing on: besides
// the usual checks of each row, the resource must accept no stale write
// (one called after the resource confirmed a write with a greater token),
// and tokens must strictly increase from one holder to the next, except in
// rows where nodes lose their counters. go test runs the rows marked
// short; -long runs all of them to at least 10,000 acquisitions each.
func TestChaosFencing(t *testing.T) {
	sc := runScale()
	resource := redistest.Start(t)
	var table []string
	for _, fr := range fencingRows {
		r := baseRow(t, fr.base)
		r.name = "fencing-" + strings.TrimPrefix(r.name, "canary-")
		r.fault += "; WithFencing, guarded write"
		r.fencing = true
		if !selected(r.name, fr.short) {
			continue
		}
		t.Run(r.name, func(t *testing.T) {
			res := runRow(t, resource, r, sc)
			fence := CheckFencing(res.grants)
			// A short canary run ends at its first conflict, which may
			// come before anyone wrote with a newer token: the late write
			// is then accepted, rightly (the resource knows no newer
			// holder yet). Run it again until a late write meets a newer
			// token, a few times at most.
			for n := 0; fr.mustReject && fence.LateRejected == 0 && fence.StaleAccepted == 0 && n < 3; n++ {
				t.Logf("%s: %d late writes, none refused (no newer token had been written yet): running the row again", r.name, fence.Late)
				again := r
				again.name = fmt.Sprintf("%s-again-%d", r.name, n+1) // fresh keys on the resource
				res = runRow(t, resource, again, sc)
				fence = CheckFencing(res.grants)
			}
			t.Logf("%s: %d acquisitions, %d fault cycles, %d double grants, %d lost updates, %d conflicts; fencing: %v",
				r.name, res.acquisitions, res.cycles, res.doubleGrants, res.lostUpdates, res.conflicts, fence)
			for _, e := range fence.Examples {
				t.Logf("tokens not increasing: %s", e)
			}
			table = append(table, fencingMarkdownRow(&res, fence, fr))
			check(t, &res, sc)
			checkFencing(t, fence, fr)
		})
	}
	out := fencingMarkdownHeader + "\n" + strings.Join(table, "\n") + "\n"
	t.Logf("fencing results:\n%s", out)
	if *fencingReportPath != "" {
		if err := os.WriteFile(*fencingReportPath, []byte(out), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// checkFencing asserts what fencing promises in the row.
func checkFencing(t *testing.T, fence FenceResult, fr fencingRow) {
	t.Helper()
	if fence.Grants == 0 {
		t.Errorf("no grant carried a fencing token")
	}
	if fence.StaleAccepted != 0 {
		t.Errorf("the resource accepted %d stale writes; want 0", fence.StaleAccepted)
	}
	if fence.Errors != 0 {
		t.Errorf("%d guarded writes failed; want 0 (the resource node is never faulted)", fence.Errors)
	}
	if fence.NotIncreasing != 0 && !fr.losesCounters {
		t.Errorf("%d pairs of successive holders with tokens not increasing; want 0", fence.NotIncreasing)
	}
	if fr.mustReject && fence.LateRejected == 0 {
		t.Errorf("no write made after its validity was refused (%d late writes): the fault did not hit, or fencing failed", fence.Late)
	}
}

const fencingMarkdownHeader = `| row | acquisitions | fault cycles | double grants | lost updates (unguarded counter) | tokens not increasing | guarded writes | accepted | rejected as stale | stale writes accepted | writes after validity (rejected) |
|---|---|---|---|---|---|---|---|---|---|---|`

func fencingMarkdownRow(res *result, fence FenceResult, fr fencingRow) string {
	notIncreasing := fmt.Sprint(fence.NotIncreasing)
	if fr.losesCounters {
		notIncreasing += " (counters lost: not asserted)"
	}
	return fmt.Sprintf("| %s | %d | %d | %d | %d | %s | %d | %d | %d | %d | %d (%d) |",
		res.row.name, res.acquisitions, res.cycles, res.doubleGrants, res.lostUpdates,
		notIncreasing, fence.Writes, fence.Accepted, fence.Rejected, fence.StaleAccepted,
		fence.Late, fence.LateRejected)
}
