package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redlock/redsync/internal/redistest"
)

const (
	lockNodes  = 5
	quorum     = lockNodes/2 + 1
	numWorkers = 3
	lockKey    = "chaos:lock"
)

// rowKind tells what a row must show.
type rowKind int

const (
	safe   rowKind = iota // 0 double grants, 0 lost updates, 0 conflicts
	unsafe                // known unsafe: reported, not asserted
	canary                // known unsafe: the checkers must fire
)

func (k rowKind) String() string {
	return [...]string{"safe", "known unsafe", "canary"}[k]
}

// A row is one fault of the table, with the lock settings it runs with.
type row struct {
	name  string
	fault string // what is injected, for the report
	kind  rowKind

	ttl           time.Duration // the lock expiry
	guard         bool          // WithRestartGuard(ttl)
	timeoutFactor float64       // 0 for the default
	nodeArgs      []string      // extra redis-server arguments of the lock nodes
	longHold      bool          // one grant in longEvery holds longHold
	fencing       bool          // WithFencing and a guarded write (fencing.go)
	goroutines    int           // per worker, sharing a Redsync (local hand-off, or more tries at once); 0 for one
	oneShot       bool          // the fault happens once: one cycle
	short         bool          // also in the short table (go test)
	// sets, in a multi-key row, are the name sets the workers lock
	// (WorkerConfig.Sets) instead of lockKey; firstNameOnly makes worker 0
	// lock only the first name of each (a canary).
	sets          [][]string
	firstNameOnly bool
	// primitive, in the rows of the other primitives (holders.go), is what
	// the workers take of lockKey instead of a Mutex: an RWMutex, whose
	// tries write one time in writeEvery, a Semaphore of permits permits,
	// or the canary's counting semaphore. uncheckedReads makes worker 0
	// take its read shares unchecked (a canary).
	primitive      string
	permits        int
	writeEvery     int
	uncheckedReads bool
	workers        int // worker processes; 0 for numWorkers
	// wait makes each worker's one goroutine call Lock with retries: it
	// waits in the nodes' queue for another worker's release.
	wait bool
	// blind, with goroutines, lets their Unlock pass the lock on without
	// a round (WorkerConfig.Blind).
	blind bool

	// inject runs fault cycles until ctx ends, counting each in
	// h.cycles, and leaves every node and proxy healthy when it returns.
	inject func(ctx context.Context, h *harness) error
}

// Timing of the rows.
const (
	hold     = time.Millisecond       // a critical section's sleep
	longHold = 500 * time.Millisecond // a long critical section's sleep
)

// scale bounds a row's run.
type scale struct {
	target      int           // acquisitions wanted
	minCycles   int64         // fault cycles wanted
	minDuration time.Duration // shortest run
	maxDuration time.Duration // longest run, whatever was reached
	longEvery   int           // one grant in longEvery is long, in rows with long holds
}

var (
	shortScale = scale{target: 100, minCycles: 1, minDuration: 2 * time.Second, maxDuration: 20 * time.Second, longEvery: 20}
	longScale  = scale{target: 10000, minCycles: 10, minDuration: 30 * time.Second, maxDuration: 20 * time.Minute, longEvery: 100}
)

// harness is one row's run: its lock nodes, proxies, workers, and the
// resource.
type harness struct {
	t       *testing.T
	row     row
	dir     string
	nodes   []*redistest.Server
	proxies []*Proxy
	// res is the resource of the critical sections or, in a multi-key
	// row, where the grants are counted; the critical sections are then on
	// nameRes, the resources of names, one each.
	res     *Resource
	names   []string // the lock names: lockKey, or the names of the row's sets
	nameRes []*Resource

	workers []*WorkerProc
	notes   []string

	cycles atomic.Int64
	hits   atomic.Int64 // cycles during which the resource counted conflicts
}

// result is what a row's run measured.
type result struct {
	row          row
	duration     time.Duration
	cycles       int64
	acquisitions int
	failedTries  map[string]int
	doubleGrants int
	overlaps     []Overlap
	// concurrent, in a multi-key row, counts the grants acquired inside
	// the window of another, whatever their names: in a safe row, grants
	// of disjoint sets.
	concurrent  int
	peak        int64 // the most shared holders the resource saw inside at once
	lostUpdates int64
	conflicts   int64
	p50, p99    time.Duration
	audit       AuditResult
	grants      []Grant // every grant logged, for further checks
	resets      int64
	notes       []string
}

// violations sums what the checkers found.
func (r *result) violations() int64 {
	return int64(r.doubleGrants) + r.lostUpdates + r.conflicts
}

// runScale returns the scale of this run: longScale with -long.
func runScale() scale {
	if *long {
		return longScale
	}
	return shortScale
}

// selected reports whether a row named name that derives from the fault
// table runs: it must match -chaos.rows when that is given, and otherwise
// be short or the run long.
func selected(name string, short bool) bool {
	if *rowsRE != "" {
		return regexp.MustCompile(*rowsRE).MatchString(name)
	}
	return short || *long
}

// workerCount returns how many worker processes r runs.
func (r row) workerCount() int {
	if r.workers > 0 {
		return r.workers
	}
	return numWorkers
}

// sharedLimit returns how many shared holders r's primitive allows at
// once: its permits, or 0 (any number) for read shares.
func (r row) sharedLimit() int {
	if r.primitive == primitiveRWMutex {
		return 0
	}
	return r.permits
}

// auditNames returns the keys the auditor samples in r: the lock names,
// the writer's key of an RWMutex (its readers are members of a sorted
// set), or the keys of a semaphore's slots (semaphore.go); none for the
// canary's counting semaphore, whose holders are members of a sorted set.
func (r row) auditNames() []string {
	switch r.primitive {
	case "":
		return lockNames(r.sets)
	case primitiveRWMutex:
		return []string{lockKey}
	case primitiveSemaphore:
		var keys []string
		for i := range r.permits {
			keys = append(keys, fmt.Sprintf("%s:permit:%d", lockKey, i))
		}
		return keys
	}
	return nil
}

// holdersOf returns the grants that held the lock name: those whose
// Names contain it, or all of them in a row whose grants carry no names.
func holdersOf(grants []Grant, name string) []Grant {
	if !slices.ContainsFunc(grants, func(g Grant) bool { return g.Names != nil }) {
		return grants
	}
	return slices.DeleteFunc(slices.Clone(grants), func(g Grant) bool { return !slices.Contains(g.Names, name) })
}

// lockNames returns the names of sets, each once, in the order of first
// appearance; lockKey when there are none.
func lockNames(sets [][]string) []string {
	var names []string
	for _, set := range sets {
		for _, name := range set {
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	if names == nil {
		return []string{lockKey}
	}
	return names
}

// baseRow returns the row of the fault table named name.
func baseRow(t *testing.T, name string) row {
	t.Helper()
	all := rows()
	i := slices.IndexFunc(all, func(r row) bool { return r.name == name })
	if i < 0 {
		t.Fatalf("no row %q in the fault table", name)
	}
	return all[i]
}

// runRow runs r at scale sc against the resource node and returns what
// the checkers found.
func runRow(t *testing.T, resource *redistest.Server, r row, sc scale) result {
	ctx := context.Background()
	h := &harness{t: t, row: r, dir: t.TempDir()}
	h.nodes = redistest.StartN(t, lockNodes, r.nodeArgs...)
	started := time.Now()
	var nodeAddrs []string
	for _, n := range h.nodes {
		p, err := StartProxy(n.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		h.proxies = append(h.proxies, p)
		nodeAddrs = append(nodeAddrs, n.Addr())
	}
	prefix := "chaos:" + r.name
	h.res = NewResource(resource.Addr(), prefix)
	defer h.res.Close()
	if err := h.res.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	h.names = r.auditNames()
	if r.sets != nil {
		for _, name := range h.names {
			nr := NewResource(resource.Addr(), NamePrefix(prefix, name))
			defer nr.Close()
			if err := nr.Reset(ctx); err != nil {
				t.Fatal(err)
			}
			h.nameRes = append(h.nameRes, nr)
		}
	}
	if r.guard {
		// The nodes vote once up for the guard's span (plus a second).
		time.Sleep(time.Until(started.Add(r.ttl + 1100*time.Millisecond)))
	}

	// One auditor per name: in a multi-key row, the grants of a name
	// are audited against the samples of that name.
	auditors := make([]*Auditor, len(h.names))
	for i, name := range h.names {
		a := StartAuditor(nodeAddrs, name, 10*time.Millisecond)
		t.Cleanup(func() { a.Stop() })
		auditors[i] = a
	}
	stopAuditors := func() [][]Sample {
		samples := make([][]Sample, len(auditors))
		for i, a := range auditors {
			samples[i] = a.Stop()
		}
		return samples
	}
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for id := range r.workerCount() {
		cfg := WorkerConfig{
			ID:            id,
			Resource:      resource.Addr(),
			Prefix:        prefix,
			Key:           lockKey,
			Expiry:        r.ttl,
			Hold:          hold,
			TimeoutFactor: r.timeoutFactor,
			Fencing:       r.fencing,
			Goroutines:    r.goroutines,
			Wait:          r.wait,
			Blind:         r.blind,
			Sets:          r.sets,
			FirstNameOnly: r.firstNameOnly && id == 0,
			Log:           filepath.Join(h.dir, fmt.Sprintf("worker%d.jsonl", id)),

			Primitive:      r.primitive,
			Permits:        r.permits,
			WriteEvery:     r.writeEvery,
			UncheckedReads: r.uncheckedReads && id == 0,
		}
		for _, p := range h.proxies {
			cfg.Nodes = append(cfg.Nodes, p.Addr())
		}
		if r.guard {
			cfg.Guard = r.ttl
		}
		if r.longHold {
			cfg.LongHold, cfg.LongEvery = longHold, sc.longEvery
		}
		stderr, err := os.Create(filepath.Join(h.dir, fmt.Sprintf("worker%d.stderr", id)))
		if err != nil {
			t.Fatal(err)
		}
		defer stderr.Close()
		w, err := StartWorker(bin, cfg, stderr)
		if err != nil {
			t.Fatal(err)
		}
		// Workers of a row cut short by t.Fatal must not run on; a worker
		// stopped already is left alone.
		t.Cleanup(func() { w.Stop(5 * time.Second) })
		h.workers = append(h.workers, w)
	}
	stopWorkers := func() {
		for _, w := range h.workers {
			w.Terminate()
		}
		for _, w := range h.workers {
			if err := w.Stop(30 * time.Second); err != nil {
				t.Errorf("worker %d: %v", w.Config.ID, err)
			}
		}
	}

	// Faults start once the workers are locking.
	spawned := time.Now()
	if err := h.waitSections(ctx, 1, 30*time.Second); err != nil {
		stopWorkers()
		stopAuditors()
		t.Fatalf("the workers never finished a critical section: %v%s", err, h.workerErrors())
	}
	begin := time.Now()
	t.Logf("workers locking %v after they were started", begin.Sub(spawned).Round(time.Millisecond))
	faultCtx, stopFault := context.WithCancel(ctx)
	faultDone := make(chan error, 1)
	go func() { faultDone <- r.inject(faultCtx, h) }()

	deadline := begin.Add(sc.maxDuration)
	for {
		time.Sleep(100 * time.Millisecond)
		acquired, tot, err := h.totals(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cycles := h.cycles.Load()
		if r.oneShot {
			cycles = sc.minCycles
		}
		enough := acquired >= int64(sc.target) && cycles >= sc.minCycles && time.Since(begin) >= sc.minDuration
		if r.kind == canary && sc == shortScale {
			// A short canary run ends at its first detection.
			enough = tot.Conflicts > 0 && h.cycles.Load() >= 1 && time.Since(begin) >= sc.minDuration/2
		}
		if enough || time.Now().After(deadline) {
			break
		}
	}
	stopFault()
	if err := <-faultDone; err != nil {
		t.Errorf("fault injection: %v", err)
	}
	duration := time.Since(begin)
	stopWorkers()
	samples := stopAuditors()
	t.Logf("workers stopped in %v", (time.Since(begin) - duration).Round(time.Millisecond))

	res := result{row: r, duration: duration, cycles: h.cycles.Load(), failedTries: map[string]int{}}
	var grants []Grant
	for _, w := range h.workers {
		g, sum, err := ReadLog(w.Config.Log)
		if err != nil {
			t.Fatalf("worker %d: %v", w.Config.ID, err)
		}
		if sum == nil {
			t.Errorf("worker %d wrote no summary%s", w.Config.ID, h.workerErrors())
		} else {
			for class, n := range sum.Failures {
				res.failedTries[class] += n
			}
		}
		for _, gr := range g {
			if gr.ResourceErr != "" {
				t.Errorf("worker %d: the resource failed: %s", gr.Worker, gr.ResourceErr)
			}
		}
		grants = append(grants, g...)
	}
	acquired, tot, err := h.totals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res.acquisitions = len(grants)
	res.grants = grants
	switch {
	case r.primitive != "":
		res.overlaps = SweepHolders(grants, r.sharedLimit())
	case r.sets == nil:
		res.overlaps = Sweep(grants)
	default:
		res.overlaps = SweepNames(grants)
		res.concurrent = len(Sweep(grants))
	}
	res.peak = tot.Peak
	res.doubleGrants = len(res.overlaps)
	res.lostUpdates = tot.LostUpdates()
	res.conflicts = tot.Conflicts
	if c := int64(Conflicts(grants)); c != tot.Conflicts {
		t.Errorf("the workers logged %d conflicts, the resource counted %d", c, tot.Conflicts)
	}
	if acquired != int64(len(grants)) {
		t.Errorf("the resource counted %d grants, the workers logged %d", acquired, len(grants))
	}
	if r.sets != nil {
		sections := 0
		for _, g := range grants {
			sections += len(g.Names)
		}
		if tot.Sections != int64(sections) {
			t.Errorf("the resources of the names counted %d critical sections, the workers logged %d", tot.Sections, sections)
		}
	}
	res.p50, res.p99 = TryLatency(grants, 0.5), TryLatency(grants, 0.99)
	for i, name := range h.names {
		res.audit.add(Audit(samples[i], holdersOf(grants, name), quorum))
	}
	if r.kind == safe && len(res.overlaps) > 0 && len(samples) > 0 {
		o := res.overlaps[0]
		i := max(0, slices.Index(h.names, o.Name))
		logSamples(t, samples[i], o)
	}
	for _, p := range h.proxies {
		res.resets += p.Resets()
	}
	res.notes = h.notes
	if res.row.longHold {
		res.notes = append(res.notes, fmt.Sprintf("conflicts in %d of %d cycles", h.hits.Load(), res.cycles))
	}
	return res
}

// logSamples logs what the auditor saw around a double grant: A marks a
// node holding the earlier holder's value, B the later's, x another value,
// - none, ? no answer.
func logSamples(t *testing.T, samples []Sample, o Overlap) {
	t.Logf("earlier holder: called %+.1fms, acquired 0, released %+.1fms; later holder: called %+.1fms, acquired %+.1fms",
		ms(o.Earlier.Called-o.Earlier.Acquired), ms(o.Earlier.Released-o.Earlier.Acquired),
		ms(o.Later.Called-o.Earlier.Acquired), ms(o.Later.Acquired-o.Earlier.Acquired))
	for _, s := range samples {
		if s.Start < o.Earlier.Called-100e6 || s.Start > o.Later.Acquired+50e6 {
			continue
		}
		var nodes []string
		for i, v := range s.Values {
			tag := "-"
			switch {
			case !s.Known[i]:
				tag = "?"
			case v == o.Earlier.Value:
				tag = "A"
			case v == o.Later.Value:
				tag = "B"
			case v != "":
				tag = "x"
			}
			nodes = append(nodes, tag)
		}
		t.Logf("auditor at %+.1fms: %v", ms(s.Start-o.Earlier.Acquired), nodes)
	}
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }

// workerErrors returns the end of the workers' standard error, for
// failure messages.
func (h *harness) workerErrors() string {
	var b strings.Builder
	for id := range h.row.workerCount() {
		data, _ := os.ReadFile(filepath.Join(h.dir, fmt.Sprintf("worker%d.stderr", id)))
		if s := strings.TrimSpace(string(data)); s != "" {
			fmt.Fprintf(&b, "\nworker %d stderr:\n%s", id, lastLines(s, 10))
		}
	}
	return b.String()
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// totals returns how many grants the workers finished, and the counts of
// the resource of their critical sections: h.res, or, in a multi-key row,
// the sums over the resources of the names.
func (h *harness) totals(ctx context.Context) (grants int64, sum Totals, err error) {
	tot, err := h.res.Totals(ctx)
	if err != nil || h.nameRes == nil {
		return tot.Sections, tot, err
	}
	for _, r := range h.nameRes {
		t, err := r.Totals(ctx)
		if err != nil {
			return 0, Totals{}, err
		}
		sum.Counter += t.Counter
		sum.Sections += t.Sections
		sum.Conflicts += t.Conflicts
	}
	return tot.Sections, sum, nil
}

// sectionResources returns the resources where the critical sections are.
func (h *harness) sectionResources() []*Resource {
	if h.nameRes != nil {
		return h.nameRes
	}
	return []*Resource{h.res}
}

// waitSections waits until the workers finished n grants.
func (h *harness) waitSections(ctx context.Context, n int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		grants, _, err := h.totals(ctx)
		if err != nil {
			return err
		}
		if grants >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d critical sections after %v", grants, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// conflicts returns the resource's conflict count, or -1.
func (h *harness) conflicts() int64 {
	_, tot, err := h.totals(context.Background())
	if err != nil {
		return -1
	}
	return tot.Conflicts
}

// cycleDone counts a fault cycle, and a hit if the resource counted
// conflicts since before (the count taken when the cycle began).
func (h *harness) cycleDone(before int64) {
	h.cycles.Add(1)
	if c := h.conflicts(); before >= 0 && c > before {
		h.hits.Add(1)
	}
}

// waitLongHolder waits until a worker is inside a long critical section
// and returns its id; ok is false when ctx ended first.
func (h *harness) waitLongHolder(ctx context.Context) (id int, ok bool) {
	for ctx.Err() == nil {
		if ids := h.longHolders(ctx); len(ids) > 0 {
			return ids[0], true
		}
		time.Sleep(time.Millisecond)
	}
	return 0, false
}

// longHolders returns the ids of the workers inside a long critical
// section, as the resources show them now: as the occupant, or among the
// shared holders.
func (h *harness) longHolders(ctx context.Context) []int {
	var ids []int
	for _, r := range h.sectionResources() {
		occ, err := r.Occupant(ctx)
		if err != nil {
			continue
		}
		inside, err := r.Inside(ctx)
		if err != nil {
			continue
		}
		for _, o := range append(inside, occ) {
			if !IsLongHold(o) {
				continue
			}
			if id, ok := WorkerOf(o); ok && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// waitFor waits d or until ctx ends, and reports whether d passed.
func waitFor(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// each runs fn on the nodes of idx concurrently and joins the errors.
func (h *harness) each(idx []int, fn func(*redistest.Server) error) error {
	errs := make([]error, len(idx))
	var wg sync.WaitGroup
	for i, n := range idx {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(h.nodes[n])
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// markdownRow formats res as a row of the results table.
func (res *result) markdownRow(runs int) string {
	var failed []string
	for _, class := range []string{"taken", "nodes", "validity", "restarted"} {
		if n := res.failedTries[class]; n > 0 {
			failed = append(failed, fmt.Sprintf("%s %d", class, n))
		}
	}
	notes := slices.Clone(res.notes)
	if res.resets > 0 {
		notes = append(notes, fmt.Sprintf("%d connections reset", res.resets))
	}
	return fmt.Sprintf("| %s | %s | %d | %v | %d | %d | %d | %d | %d | %v | %v | %d/%d (%d below quorum) | %s | %s |",
		res.row.name, res.row.kind, runs, res.duration.Round(time.Second), res.cycles,
		res.acquisitions, res.doubleGrants, res.lostUpdates, res.conflicts,
		res.p50.Round(10*time.Microsecond), res.p99.Round(10*time.Microsecond),
		res.audit.Samples-res.audit.BelowQuorum, res.audit.Samples, res.audit.BelowQuorum,
		strings.Join(failed, ", "), strings.Join(notes, "; "))
}

const markdownHeader = `| row | kind | runs | time | fault cycles | acquisitions | double grants | lost updates | occupancy conflicts | try p50 | try p99 | auditor: samples with a quorum holding | failed tries | notes |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|`

const holdersMarkdownHeader = `| row | kind | time | fault cycles | acquisitions | of them shared (read shares, permits) | most shared holders inside at once | acquired in breach (sweep) | gauge conflicts | lost updates | try p99 | auditor: samples with a quorum holding | failed tries |
|---|---|---|---|---|---|---|---|---|---|---|---|---|`

// holdersMarkdownRow formats res, of a row of a primitive with shared
// holders, as a row of its results table.
func holdersMarkdownRow(res *result) string {
	var failed []string
	for _, class := range []string{"taken", "nodes", "validity", "restarted"} {
		if n := res.failedTries[class]; n > 0 {
			failed = append(failed, fmt.Sprintf("%s %d", class, n))
		}
	}
	shared := 0
	for _, g := range res.grants {
		if g.Shared {
			shared++
		}
	}
	audit := "-"
	if res.audit.Samples > 0 {
		audit = fmt.Sprintf("%d/%d (%d below quorum)", res.audit.Samples-res.audit.BelowQuorum, res.audit.Samples, res.audit.BelowQuorum)
	}
	return fmt.Sprintf("| %s | %s | %v | %d | %d | %d | %d | %d | %d | %d | %v | %s | %s |",
		res.row.name, res.row.kind, res.duration.Round(time.Second), res.cycles, res.acquisitions, shared,
		res.peak, res.doubleGrants, res.conflicts, res.lostUpdates,
		res.p99.Round(10*time.Microsecond), audit, strings.Join(failed, ", "))
}
