// Command benchtable runs the Lock+Unlock benchmarks of the benchmarks
// module and prints one side-by-side table of the libraries: a row per node
// count, and per library the median time/op, B/op and allocs/op, followed by
// the ratios redlock/redsyncv4 and redlock/redislock.
//
// Run it from the benchmarks directory:
//
//	go run ./cmd/benchtable                 # -count 6 -benchtime 1s
//	go run ./cmd/benchtable -count 10 -out new.txt
//	go run ./cmd/benchtable -in new.txt     # table of a saved run
//
// It runs
//
//	go test -run '^$' -bench BenchmarkLockUnlock -benchmem -count N -benchtime T -timeout D .
//
// in the benchmarks module's directory, echoing the raw output to stderr and,
// with -out, saving it verbatim to a file that benchstat reads. The table
// goes to stdout, headed by the exact command that produced the numbers.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// modulePath is the module whose benchmarks are run.
const modulePath = "github.com/go-redlock/redsync/benchmarks"

// commandPrefix starts the line that -out writes before the raw output to
// record the command. benchstat ignores it: it is neither a configuration
// line nor a benchmark line.
const commandPrefix = "# benchtable: "

// The libraries as named by the lib= element of the benchmark names, in
// table order; libraries not listed here follow in alphabetical order.
var knownLibs = []string{"redlock", "redsyncv4", "redislock", "redlock-redigo", "redsyncv4-redigo", "redlock-batched"}

// ratios lists the ratio columns: numerator / denominator of the medians.
var ratios = [][2]string{{"redlock", "redsyncv4"}, {"redlock", "redislock"}, {"redlock-redigo", "redsyncv4-redigo"}}

func main() {
	count := flag.Int("count", 6, "`n`umber of runs of each benchmark (go test -count)")
	benchtime := flag.String("benchtime", "1s", "run time or iteration count of each run (go test -benchtime)")
	bench := flag.String("bench", "BenchmarkLockUnlock", "`regexp` of the benchmarks to run (go test -bench)")
	timeout := flag.String("timeout", "30m", "`duration` after which go test panics (go test -timeout)")
	out := flag.String("out", "", "also save the raw benchmark output to `file`, for benchstat")
	in := flag.String("in", "", "do not run the benchmarks: print the table of the raw output saved in `file`")
	dir := flag.String("dir", "", "`directory` of the benchmarks module (default: found from the working directory)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go run ./cmd/benchtable [flags]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}

	if *in != "" {
		f, err := os.Open(*in)
		if err != nil {
			fatal(err)
		}
		defer f.Close()
		saved, err := parseOutput(f, nil)
		if err != nil {
			fatal(err)
		}
		if saved.command == "" {
			saved.command = "(unknown: raw output read from " + *in + ")"
		}
		if err := printTable(os.Stdout, saved); err != nil {
			fatal(err)
		}
		return
	}

	if *count < 1 {
		fatal(fmt.Errorf("-count must be at least 1, not %d", *count))
	}
	moduleDir := *dir
	if moduleDir == "" {
		wd, err := os.Getwd()
		if err != nil {
			fatal(err)
		}
		if moduleDir, err = findModuleDir(wd); err != nil {
			fatal(err)
		}
	}
	if abs, err := filepath.Abs(moduleDir); err == nil {
		moduleDir = abs
	}
	args := []string{"test", "-run", "^$", "-bench", *bench, "-benchmem",
		"-count", strconv.Itoa(*count), "-benchtime", *benchtime, "-timeout", *timeout, "."}
	command := "cd " + shellQuote(moduleDir) + " && go " + shellJoin(args)

	var save io.Writer
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			fatal(err)
		}
		defer f.Close()
		save = f
		fmt.Fprintln(f, commandPrefix+command)
	}

	fmt.Fprintln(os.Stderr, "running:", command)
	got, runErr := runBenchmarks(moduleDir, args, save)
	if got != nil && len(got.results) > 0 {
		got.command = command
		if err := printTable(os.Stdout, got); err != nil {
			fatal(err)
		}
	}
	if runErr != nil {
		fatal(runErr)
	}
	if len(got.results) == 0 {
		fatal(fmt.Errorf("no benchmark results matched -bench %q", *bench))
	}
	if *out != "" {
		fmt.Fprintf(os.Stderr, "raw output saved to %s (benchstat %s)\n", *out, *out)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "benchtable:", err)
	os.Exit(1)
}

// runBenchmarks runs go with args in dir and parses its standard output,
// which it also echoes to stderr and copies to save (when not nil).
func runBenchmarks(dir string, args []string, save io.Writer) (*run, error) {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	echo := io.Writer(os.Stderr)
	if save != nil {
		echo = io.MultiWriter(os.Stderr, save)
	}
	r, parseErr := parseOutput(stdout, echo)
	waitErr := cmd.Wait()
	if waitErr != nil {
		return r, fmt.Errorf("go test: %w", waitErr)
	}
	return r, parseErr
}

// findModuleDir returns the directory of the benchmarks module: start, one
// of its parents, or the benchmarks directory of one of them.
func findModuleDir(start string) (string, error) {
	for d := start; ; {
		for _, candidate := range []string{d, filepath.Join(d, "benchmarks")} {
			if moduleOf(filepath.Join(candidate, "go.mod")) == modulePath {
				return candidate, nil
			}
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("module %s not found in or above %s; run from the benchmarks directory or use -dir", modulePath, start)
		}
		d = parent
	}
}

// moduleOf returns the module path declared in the go.mod file at path, or
// "" when it cannot be read.
func moduleOf(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module"); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}

// shellJoin quotes args for a POSIX shell and joins them with spaces.
func shellJoin(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = shellQuote(a)
	}
	return strings.Join(quoted, " ")
}

// shellQuote returns s, single-quoted when a POSIX shell would otherwise
// interpret part of it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// result is one benchmark line of go test's output.
type result struct {
	name   string  // full name without the -GOMAXPROCS suffix
	procs  int     // the GOMAXPROCS suffix, 1 when absent
	iters  int64   // number of iterations
	nsOp   float64 // ns/op
	bOp    float64 // B/op, NaN when not reported
	allocs float64 // allocs/op, NaN when not reported
}

// run is the parsed output of one go test invocation (or saved file).
type run struct {
	command string   // the command that produced it, when known
	config  []string // "key: value" lines such as goos, goarch and cpu
	results []result
}

// parseOutput reads go test -bench output from r, copying every line to
// echo when it is not nil. Lines other than benchmark results and
// configuration lines are skipped.
func parseOutput(r io.Reader, echo io.Writer) (*run, error) {
	out := &run{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if echo != nil {
			if _, err := fmt.Fprintln(echo, line); err != nil {
				return out, err
			}
		}
		if cmd, ok := strings.CutPrefix(line, commandPrefix); ok {
			out.command = cmd
			continue
		}
		if res, ok := parseLine(line); ok {
			out.results = append(out.results, res)
			continue
		}
		if config := strings.TrimSpace(line); isConfigLine(config) && !slices.Contains(out.config, config) {
			out.config = append(out.config, config)
		}
	}
	return out, sc.Err()
}

// isConfigLine reports whether line is one of the goos/goarch/cpu/pkg
// lines that go test prints before the results.
func isConfigLine(line string) bool {
	for _, key := range []string{"goos: ", "goarch: ", "cpu: ", "pkg: "} {
		if strings.HasPrefix(line, key) {
			return true
		}
	}
	return false
}

// parseLine parses a standard benchmark result line such as
//
//	BenchmarkLockUnlock/lib=redlock/nodes=1-2   1506   154589 ns/op   1512 B/op   27 allocs/op
//
// It reports false for any other line.
func parseLine(line string) (result, bool) {
	fields := strings.Fields(line)
	if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") || len(fields)%2 != 0 {
		return result{}, false
	}
	iters, err := strconv.ParseInt(fields[1], 10, 64)
	if err != nil || iters <= 0 {
		return result{}, false
	}
	res := result{iters: iters, nsOp: math.NaN(), bOp: math.NaN(), allocs: math.NaN()}
	res.name, res.procs = splitProcs(fields[0])
	for i := 2; i < len(fields); i += 2 {
		v, err := strconv.ParseFloat(fields[i], 64)
		if err != nil {
			return result{}, false
		}
		switch fields[i+1] {
		case "ns/op":
			res.nsOp = v
		case "B/op":
			res.bOp = v
		case "allocs/op":
			res.allocs = v
		}
	}
	if math.IsNaN(res.nsOp) {
		return result{}, false
	}
	return res, true
}

// splitProcs splits the -GOMAXPROCS suffix that go test appends to
// benchmark names (when GOMAXPROCS > 1) from name.
func splitProcs(name string) (string, int) {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return name, 1
	}
	suffix := name[i+1:]
	if suffix == "" || strings.IndexFunc(suffix, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return name, 1
	}
	procs, err := strconv.Atoi(suffix)
	if err != nil || procs <= 0 {
		return name, 1
	}
	return name[:i], procs
}

// cellKey identifies one library at one node count.
type cellKey struct {
	lib   string
	nodes int
}

// samples holds every run's values of one cell.
type samples struct {
	nsOp, bOp, allocs []float64
}

// libAndNodes extracts the values of the lib= and nodes= elements of a
// benchmark name.
func libAndNodes(name string) (lib string, nodes int, ok bool) {
	nodes = -1
	for _, elem := range strings.Split(name, "/") {
		if v, found := strings.CutPrefix(elem, "lib="); found {
			lib = v
		} else if v, found := strings.CutPrefix(elem, "nodes="); found {
			n, err := strconv.Atoi(v)
			if err != nil {
				return "", 0, false
			}
			nodes = n
		}
	}
	return lib, nodes, lib != "" && nodes >= 0
}

// groupResults collects the results by library and node count. Results whose
// names carry no lib= and nodes= elements are skipped.
func groupResults(results []result) map[cellKey]*samples {
	cells := make(map[cellKey]*samples)
	for _, r := range results {
		lib, nodes, ok := libAndNodes(r.name)
		if !ok {
			continue
		}
		k := cellKey{lib, nodes}
		s := cells[k]
		if s == nil {
			s = &samples{}
			cells[k] = s
		}
		s.nsOp = append(s.nsOp, r.nsOp)
		if !math.IsNaN(r.bOp) {
			s.bOp = append(s.bOp, r.bOp)
		}
		if !math.IsNaN(r.allocs) {
			s.allocs = append(s.allocs, r.allocs)
		}
	}
	return cells
}

// median returns the median of xs (the mean of the two middle values when
// their number is even), or NaN when xs is empty. xs is not modified.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	mid := len(s) / 2
	if len(s)%2 == 1 {
		return s[mid]
	}
	return (s[mid-1] + s[mid]) / 2
}

// medians is the median time/op, B/op and allocs/op of one cell.
type medians struct {
	nsOp, bOp, allocs float64
	n                 int // number of runs
}

func (s *samples) medians() medians {
	return medians{nsOp: median(s.nsOp), bOp: median(s.bOp), allocs: median(s.allocs), n: len(s.nsOp)}
}

// table is the side-by-side comparison computed from a run.
type table struct {
	libs  []string // columns, in order
	nodes []int    // rows, ascending
	cells map[cellKey]medians
}

func buildTable(results []result) table {
	t := table{cells: make(map[cellKey]medians)}
	seenLib := make(map[string]bool)
	seenNodes := make(map[int]bool)
	for k, s := range groupResults(results) {
		t.cells[k] = s.medians()
		seenLib[k.lib] = true
		seenNodes[k.nodes] = true
	}
	for _, lib := range knownLibs {
		if seenLib[lib] {
			t.libs = append(t.libs, lib)
			delete(seenLib, lib)
		}
	}
	var others []string
	for lib := range seenLib {
		others = append(others, lib)
	}
	slices.Sort(others)
	t.libs = append(t.libs, others...)
	for n := range seenNodes {
		t.nodes = append(t.nodes, n)
	}
	slices.Sort(t.nodes)
	return t
}

// ratio returns the ratio of the medians of field for num and den at
// nodes, or NaN when either is missing or the denominator is zero.
func (t table) ratio(num, den string, nodes int, field func(medians) float64) float64 {
	a, okA := t.cells[cellKey{num, nodes}]
	b, okB := t.cells[cellKey{den, nodes}]
	if !okA || !okB {
		return math.NaN()
	}
	x, y := field(a), field(b)
	if math.IsNaN(x) || math.IsNaN(y) || y == 0 {
		return math.NaN()
	}
	return x / y
}

// has reports whether lib has a cell at any node count.
func (t table) has(lib string) bool { return slices.Contains(t.libs, lib) }

func nsOf(m medians) float64     { return m.nsOp }
func allocsOf(m medians) float64 { return m.allocs }

// printTable writes the command, the configuration and the table of r.
func printTable(w io.Writer, r *run) error {
	t := buildTable(r.results)
	if len(t.libs) == 0 {
		return errors.New("no results with lib= and nodes= in their names")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "command: %s\n", r.command)
	if len(r.config) > 0 {
		fmt.Fprintf(&b, "%s\n", strings.Join(r.config, "; "))
	}
	runs := make(map[int]bool)
	for _, m := range t.cells {
		runs[m.n] = true
	}
	counts := make([]int, 0, len(runs))
	for n := range runs {
		counts = append(counts, n)
	}
	slices.Sort(counts)
	countText := strings.Trim(strings.ReplaceAll(fmt.Sprint(counts), " ", "/"), "[]")
	fmt.Fprintf(&b, "medians of %s runs per cell; ratio < 1 means redlock is cheaper\n\n", countText)

	// Column groups: the node count, one group per library, one per ratio.
	groups := []colGroup{{label: "", cols: 1}}
	head := []string{"nodes"}
	for _, lib := range t.libs {
		groups = append(groups, colGroup{label: lib, cols: 3})
		head = append(head, "time/op", "B/op", "allocs/op")
	}
	var shown [][2]string
	for _, rt := range ratios {
		if t.has(rt[0]) && t.has(rt[1]) {
			shown = append(shown, rt)
			groups = append(groups, colGroup{label: rt[0] + "/" + rt[1], cols: 2})
			head = append(head, "time", "allocs")
		}
	}
	rows := [][]string{head}
	for _, n := range t.nodes {
		row := []string{strconv.Itoa(n)}
		for _, lib := range t.libs {
			m, ok := t.cells[cellKey{lib, n}]
			if !ok {
				row = append(row, "-", "-", "-")
				continue
			}
			row = append(row, formatNs(m.nsOp), formatCount(m.bOp), formatCount(m.allocs))
		}
		for _, rt := range shown {
			row = append(row,
				formatRatio(t.ratio(rt[0], rt[1], n, nsOf)),
				formatRatio(t.ratio(rt[0], rt[1], n, allocsOf)))
		}
		rows = append(rows, row)
	}
	writeGrid(&b, groups, rows)
	_, err := io.WriteString(w, b.String())
	return err
}

// formatNs formats a duration in nanoseconds with four significant digits
// and a unit chosen for its size: 154.6µs, 1.093ms.
func formatNs(ns float64) string {
	if math.IsNaN(ns) {
		return "-"
	}
	unit, scale := "ns", 1.0
	switch {
	case ns >= 1e9:
		unit, scale = "s", 1e9
	case ns >= 1e6:
		unit, scale = "ms", 1e6
	case ns >= 1e3:
		unit, scale = "µs", 1e3
	}
	v := ns / scale
	switch {
	case v >= 100:
		return fmt.Sprintf("%.1f%s", v, unit)
	case v >= 10:
		return fmt.Sprintf("%.2f%s", v, unit)
	default:
		return fmt.Sprintf("%.3f%s", v, unit)
	}
}

// formatCount formats a median count: without decimals when it is whole
// (the median of an even number of runs can end in .5).
func formatCount(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case v == math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 0, 64)
	default:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
}

// formatRatio formats a ratio as 0.74x, or "-" when it is not defined.
func formatRatio(r float64) string {
	if math.IsNaN(r) || math.IsInf(r, 0) {
		return "-"
	}
	return fmt.Sprintf("%.2fx", r)
}

// colGroup is a run of adjacent columns under one label.
type colGroup struct {
	label string
	cols  int
}

// writeGrid writes rows (the first one being the column names) under a line
// of group labels, separating the groups with " | ". The first column is
// left-aligned and the others right-aligned. Every row has one cell per
// column of the groups.
func writeGrid(b *strings.Builder, groups []colGroup, rows [][]string) {
	const gap, sep = "  ", " | "
	var ncols int
	for _, g := range groups {
		ncols += g.cols
	}
	width := make([]int, ncols)
	for _, row := range rows {
		for j, cell := range row {
			width[j] = max(width[j], utf8.RuneCountInString(cell))
		}
	}
	// Widen the last column of a group whose label is wider than it.
	first := 0
	for _, g := range groups {
		span := len(gap) * (g.cols - 1)
		for j := first; j < first+g.cols; j++ {
			span += width[j]
		}
		if extra := utf8.RuneCountInString(g.label) - span; extra > 0 {
			width[first+g.cols-1] += extra
		}
		first += g.cols
	}
	pad := func(s string, w int, left bool) string {
		fill := strings.Repeat(" ", max(0, w-utf8.RuneCountInString(s)))
		if left {
			return s + fill
		}
		return fill + s
	}
	var labels []string
	first = 0
	for _, g := range groups {
		span := len(gap) * (g.cols - 1)
		for j := first; j < first+g.cols; j++ {
			span += width[j]
		}
		labels = append(labels, pad(g.label, span, true))
		first += g.cols
	}
	b.WriteString(strings.TrimRight(strings.Join(labels, sep), " ") + "\n")
	for _, row := range rows {
		var parts []string
		j := 0
		for _, g := range groups {
			cells := make([]string, g.cols)
			for k := range cells {
				cells[k] = pad(row[j], width[j], j == 0)
				j++
			}
			parts = append(parts, strings.Join(cells, gap))
		}
		b.WriteString(strings.TrimRight(strings.Join(parts, sep), " ") + "\n")
	}
}
