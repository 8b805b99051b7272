package chaos

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/go-redlock/redsync/internal/redistest"
)

var (
	long       = flag.Bool("long", false, "run every row to at least 10,000 acquisitions (make chaos)")
	rowsRE     = flag.String("chaos.rows", "", "run only the rows whose name matches this regexp")
	reportPath = flag.String("chaos.report", "", "write the results table (Markdown) to this file")
)

func TestMain(m *testing.M) {
	if code, ok := WorkerMain(); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// TestChaos runs the fault table: every row starts five lock nodes behind
// proxies and three worker processes locking one key, injects its fault in
// cycles, and checks mutual exclusion with the validity sweep, the
// resource's occupancy flag and counter, and the auditor. go test runs
// the rows marked short at shortScale; -long runs every row at longScale.
func TestChaos(t *testing.T) {
	sc := runScale()
	resource := redistest.Start(t)
	var table []string
	for _, r := range rows() {
		if !selected(r.name, r.short) {
			continue
		}
		t.Run(r.name, func(t *testing.T) {
			res := runRow(t, resource, r, sc)
			table = append(table, res.markdownRow(1))
			t.Logf("%s: %d acquisitions in %v, %d fault cycles, %d double grants, %d lost updates, %d conflicts, try p99 %v, failed tries %v, auditor %+v",
				r.name, res.acquisitions, res.duration, res.cycles, res.doubleGrants, res.lostUpdates, res.conflicts, res.p99, res.failedTries, res.audit)
			check(t, &res, sc)
		})
	}
	out := markdownHeader + "\n" + strings.Join(table, "\n") + "\n"
	t.Logf("results:\n%s", out)
	if *reportPath != "" {
		if err := os.WriteFile(*reportPath, []byte(out), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// check asserts what the row's kind promises.
func check(t *testing.T, res *result, sc scale) {
	t.Helper()
	for i, o := range res.overlaps {
		if i == 3 {
			break
		}
		t.Logf("double grant: %v", o)
	}
	logConflicts(t, res.grants)
	if res.acquisitions == 0 {
		t.Errorf("no acquisitions")
	}
	switch res.row.kind {
	case safe:
		if res.violations() != 0 {
			t.Errorf("%d double grants, %d lost updates, %d occupancy conflicts; want none", res.doubleGrants, res.lostUpdates, res.conflicts)
		}
		if res.cycles < sc.minCycles && !res.row.oneShot {
			t.Errorf("%d fault cycles, want at least %d", res.cycles, sc.minCycles)
		}
	case canary:
		if res.violations() == 0 {
			t.Errorf("canary not detected: the checkers found no double grant, lost update or conflict in %d fault cycles", res.cycles)
		}
	}
	if res.row.name == "canary-restart-majority" && res.doubleGrants == 0 {
		t.Errorf("the validity sweep found no double grant after restarting a majority without the guard")
	}
}

// logConflicts logs the first occupancy conflicts of grants: the grant
// that found an occupant and the occupant's grant, on the monotonic clock
// (ms from the entering grant's Called), to tell a holder that outlived its
// validity from two grants at once.
func logConflicts(t *testing.T, grants []Grant) {
	t.Helper()
	byValue := map[string]*Grant{}
	for i := range grants {
		byValue[grants[i].Value] = &grants[i]
	}
	ms := func(base, at int64) string { return fmt.Sprintf("%+.3fms", float64(at-base)/1e6) }
	logged := 0
	for i := range grants {
		g := &grants[i]
		if g.Found == "" || logged == 3 {
			continue
		}
		logged++
		parts := strings.SplitN(g.Found, "/", 3)
		value := ""
		if len(parts) == 3 {
			value = strings.TrimSuffix(parts[2], "/L")
		}
		o := byValue[value]
		if o == nil {
			t.Logf("conflict: grant %d/%d %q (called 0, acquired %s, valid to %s, handed over %v) found %q, whose grant is not logged",
				g.Worker, g.Goroutine, g.Value, ms(g.Called, g.Acquired), ms(g.Called, g.ValidEnd), g.HandedOver, g.Found)
			continue
		}
		t.Logf("conflict: grant %d/%d (acquired %s, valid to %s, handed over %v, waited %v) found %d/%d (called %s, acquired %s, valid to %s, released %s, hold %v, handed over %v, waited %v)",
			g.Worker, g.Goroutine, ms(g.Called, g.Acquired), ms(g.Called, g.ValidEnd), g.HandedOver, g.Waited,
			o.Worker, o.Goroutine, ms(g.Called, o.Called), ms(g.Called, o.Acquired), ms(g.Called, o.ValidEnd), ms(g.Called, o.Released), o.Hold, o.HandedOver, o.Waited)
	}
}
