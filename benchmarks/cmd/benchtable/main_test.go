package main

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// sampleOutput is go test -bench output as benchtable reads it, with the
// lines that must be skipped mixed in: the command line that -out writes,
// the PASS/ok trailer, log lines, a benchmark name printed alone before its
// logs, and a malformed result.
//
// Per cell, the values chosen give these medians:
//
//	redlock   nodes=1  times 150/170/160µs -> 160µs, B 1512/1520/1500 -> 1512, allocs 27
//	redsyncv4 nodes=1  times 200/240/900µs -> 240µs (the outlier does not count), B 1650, allocs 38
//	redislock nodes=1  two runs: 140/150µs -> 145µs, B 1248/1249 -> 1248.5, allocs 33
//	redlock   nodes=3  800/400/500µs -> 500µs, allocs 63
//	redsyncv4 nodes=3  450/460/1000µs -> 460µs, allocs 90/90/92 -> 90
//	redlock   nodes=5  one run without the -GOMAXPROCS suffix: 1.092854ms
//	redsyncv4 nodes=5  absent
const sampleOutput = `# benchtable: cd /src/benchmarks && go test -run '^$' -bench BenchmarkLockUnlock -benchmem -count 3 -benchtime 1s -timeout 30m .
goos: linux
goarch: amd64
pkg: github.com/go-redlock/redsync/benchmarks
cpu: Test CPU @ 2.00GHz         
BenchmarkLockUnlock/lib=redlock/nodes=1-2         	    1506	    150000 ns/op	    1512 B/op	      27 allocs/op
BenchmarkLockUnlock/lib=redlock/nodes=1-2         	    1400	    170000 ns/op	    1520 B/op	      27 allocs/op
BenchmarkLockUnlock/lib=redlock/nodes=1-2         	    1300	    160000 ns/op	    1500 B/op	      27 allocs/op
BenchmarkLockUnlock/lib=redlock/nodes=3-2         	     300	    800000 ns/op	    3270 B/op	      63 allocs/op
BenchmarkLockUnlock/lib=redlock/nodes=3-2         	     300	    400000 ns/op	    3270 B/op	      63 allocs/op
BenchmarkLockUnlock/lib=redlock/nodes=3-2         	     300	    500000 ns/op	    3270 B/op	      63 allocs/op
BenchmarkLockUnlock/lib=redlock/nodes=5           	     199	   1092854 ns/op	    4646 B/op	      91 allocs/op
BenchmarkLockUnlock/lib=redsyncv4/nodes=1-2       	    1000	    200000 ns/op	    1640 B/op	      38 allocs/op
BenchmarkLockUnlock/lib=redsyncv4/nodes=1-2       	    1000	    240000 ns/op	    1650 B/op	      38 allocs/op
BenchmarkLockUnlock/lib=redsyncv4/nodes=1-2
    lock_test.go:99: a log line written during the benchmark
BenchmarkLockUnlock/lib=redsyncv4/nodes=1-2       	    1000	    900000 ns/op	    1660 B/op	      38 allocs/op
BenchmarkLockUnlock/lib=redsyncv4/nodes=3-2       	     500	    450000 ns/op	    3515 B/op	      90 allocs/op
BenchmarkLockUnlock/lib=redsyncv4/nodes=3-2       	     500	    460000 ns/op	    3515 B/op	      90 allocs/op
BenchmarkLockUnlock/lib=redsyncv4/nodes=3-2       	     500	   1000000 ns/op	    3515 B/op	      92 allocs/op
BenchmarkLockUnlock/lib=redislock/nodes=1-2       	    2436	    140000 ns/op	    1248 B/op	      33 allocs/op
BenchmarkLockUnlock/lib=redislock/nodes=1-2       	    2436	    150000 ns/op	    1249 B/op	      33 allocs/op
BenchmarkBroken-2   	 many	    5 ns/op
--- BENCH: BenchmarkSomethingElse
PASS
ok  	github.com/go-redlock/redsync/benchmarks	30.018s
`

func TestParseLine(t *testing.T) {
	tests := []struct {
		line string
		want result
		ok   bool
	}{
		{
			line: "BenchmarkLockUnlock/lib=redlock/nodes=1-2 \t    1506\t    154589 ns/op\t    1512 B/op\t      27 allocs/op",
			want: result{name: "BenchmarkLockUnlock/lib=redlock/nodes=1", procs: 2, iters: 1506, nsOp: 154589, bOp: 1512, allocs: 27},
			ok:   true,
		},
		{ // GOMAXPROCS=1: no suffix; fractional ns/op.
			line: "BenchmarkLockUnlock/lib=redislock/nodes=1   100000   12.5 ns/op   0 B/op   0 allocs/op",
			want: result{name: "BenchmarkLockUnlock/lib=redislock/nodes=1", procs: 1, iters: 100000, nsOp: 12.5, bOp: 0, allocs: 0},
			ok:   true,
		},
		{ // Without -benchmem, and with an extra custom metric.
			line: "BenchmarkX-16   20   3000000 ns/op   7.00 MB/s",
			want: result{name: "BenchmarkX", procs: 16, iters: 20, nsOp: 3e6, bOp: math.NaN(), allocs: math.NaN()},
			ok:   true,
		},
		{line: "BenchmarkLockUnlock/lib=redlock/nodes=1-2"},
		{line: "BenchmarkX-2   many   5 ns/op"},
		{line: "BenchmarkX-2   0   5 ns/op"},
		{line: "BenchmarkX-2   10   five ns/op"},
		{line: "BenchmarkX-2   10   5 B/op"}, // no ns/op
		{line: "BenchmarkX-2   10   5 ns/op  3"},
		{line: "PASS"},
		{line: "ok  \tgithub.com/go-redlock/redsync/benchmarks\t3.018s"},
		{line: "goos: linux"},
		{line: ""},
	}
	for _, tt := range tests {
		got, ok := parseLine(tt.line)
		if ok != tt.ok {
			t.Errorf("parseLine(%q) ok = %v, want %v", tt.line, ok, tt.ok)
			continue
		}
		if !ok {
			continue
		}
		if got.name != tt.want.name || got.procs != tt.want.procs || got.iters != tt.want.iters ||
			!sameFloat(got.nsOp, tt.want.nsOp) || !sameFloat(got.bOp, tt.want.bOp) || !sameFloat(got.allocs, tt.want.allocs) {
			t.Errorf("parseLine(%q) = %+v, want %+v", tt.line, got, tt.want)
		}
	}
}

func sameFloat(a, b float64) bool {
	return a == b || math.IsNaN(a) && math.IsNaN(b)
}

func TestSplitProcs(t *testing.T) {
	tests := []struct {
		in    string
		name  string
		procs int
	}{
		{"BenchmarkA/nodes=1-2", "BenchmarkA/nodes=1", 2},
		{"BenchmarkA/nodes=1-128", "BenchmarkA/nodes=1", 128},
		{"BenchmarkA/nodes=1", "BenchmarkA/nodes=1", 1},
		{"BenchmarkA/lib=redlock-redigo/nodes=5-4", "BenchmarkA/lib=redlock-redigo/nodes=5", 4},
		{"BenchmarkA/lib=redlock-redigo/nodes=5", "BenchmarkA/lib=redlock-redigo/nodes=5", 1},
		{"BenchmarkA-", "BenchmarkA-", 1},
		{"BenchmarkA-+2", "BenchmarkA-+2", 1},
		{"BenchmarkA-0", "BenchmarkA-0", 1},
	}
	for _, tt := range tests {
		name, procs := splitProcs(tt.in)
		if name != tt.name || procs != tt.procs {
			t.Errorf("splitProcs(%q) = %q, %d; want %q, %d", tt.in, name, procs, tt.name, tt.procs)
		}
	}
}

func TestLibAndNodes(t *testing.T) {
	tests := []struct {
		in    string
		lib   string
		nodes int
		ok    bool
	}{
		{"BenchmarkLockUnlock/lib=redlock/nodes=3", "redlock", 3, true},
		{"BenchmarkLockUnlock/lib=redlock-redigo/nodes=5", "redlock-redigo", 5, true},
		{"BenchmarkLockUnlock/nodes=1/lib=redislock", "redislock", 1, true},
		{"BenchmarkLockUnlock/lib=redlock", "", 0, false},
		{"BenchmarkLockUnlock/nodes=1", "", 0, false},
		{"BenchmarkLockUnlock/lib=redlock/nodes=x", "", 0, false},
		{"BenchmarkOther", "", 0, false},
	}
	for _, tt := range tests {
		lib, nodes, ok := libAndNodes(tt.in)
		if ok != tt.ok || ok && (lib != tt.lib || nodes != tt.nodes) {
			t.Errorf("libAndNodes(%q) = %q, %d, %v; want %q, %d, %v", tt.in, lib, nodes, ok, tt.lib, tt.nodes, tt.ok)
		}
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{[]float64{7}, 7},
		{[]float64{3, 1, 2}, 2},
		{[]float64{200, 240, 900}, 240},   // an outlier does not move it
		{[]float64{4, 1, 3, 2}, 2.5},      // even: mean of the two middle values
		{[]float64{1248, 1249}, 1248.5},   // even
		{[]float64{5, 5, 5, 1, 100}, 5},   // duplicates
		{[]float64{-1, 0, 1, 1000, 2}, 1}, // unsorted
	}
	for _, tt := range tests {
		in := slices.Clone(tt.in)
		if got := median(in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
		if !slices.Equal(in, tt.in) {
			t.Errorf("median reordered its input: %v, was %v", in, tt.in)
		}
	}
	if got := median(nil); !math.IsNaN(got) {
		t.Errorf("median(nil) = %v, want NaN", got)
	}
}

func TestParseOutputAndBuildTable(t *testing.T) {
	var echo strings.Builder
	r, err := parseOutput(strings.NewReader(sampleOutput), &echo)
	if err != nil {
		t.Fatal(err)
	}
	if echo.String() != sampleOutput {
		t.Errorf("echoed output differs from the input:\n%s", echo.String())
	}
	wantCommand := `cd /src/benchmarks && go test -run '^$' -bench BenchmarkLockUnlock -benchmem -count 3 -benchtime 1s -timeout 30m .`
	if r.command != wantCommand {
		t.Errorf("command = %q, want %q", r.command, wantCommand)
	}
	wantConfig := []string{"goos: linux", "goarch: amd64", "pkg: github.com/go-redlock/redsync/benchmarks", "cpu: Test CPU @ 2.00GHz"}
	if !slices.Equal(r.config, wantConfig) {
		t.Errorf("config = %q, want %q", r.config, wantConfig)
	}
	if len(r.results) != 15 {
		t.Fatalf("parsed %d results, want 15", len(r.results))
	}

	tab := buildTable(r.results)
	if want := []string{"redlock", "redsyncv4", "redislock"}; !slices.Equal(tab.libs, want) {
		t.Errorf("libs = %q, want %q", tab.libs, want)
	}
	if want := []int{1, 3, 5}; !slices.Equal(tab.nodes, want) {
		t.Errorf("nodes = %v, want %v", tab.nodes, want)
	}
	wantCells := map[cellKey]medians{
		{"redlock", 1}:   {nsOp: 160000, bOp: 1512, allocs: 27, n: 3},
		{"redlock", 3}:   {nsOp: 500000, bOp: 3270, allocs: 63, n: 3},
		{"redlock", 5}:   {nsOp: 1092854, bOp: 4646, allocs: 91, n: 1},
		{"redsyncv4", 1}: {nsOp: 240000, bOp: 1650, allocs: 38, n: 3},
		{"redsyncv4", 3}: {nsOp: 460000, bOp: 3515, allocs: 90, n: 3},
		{"redislock", 1}: {nsOp: 145000, bOp: 1248.5, allocs: 33, n: 2},
	}
	if len(tab.cells) != len(wantCells) {
		t.Errorf("%d cells, want %d: %+v", len(tab.cells), len(wantCells), tab.cells)
	}
	for k, want := range wantCells {
		if got, ok := tab.cells[k]; !ok || got != want {
			t.Errorf("cell %v = %+v (present %v), want %+v", k, got, ok, want)
		}
	}

	ratioTests := []struct {
		num, den string
		nodes    int
		field    func(medians) float64
		want     float64
	}{
		{"redlock", "redsyncv4", 1, nsOf, 160000.0 / 240000},
		{"redlock", "redsyncv4", 1, allocsOf, 27.0 / 38},
		{"redlock", "redsyncv4", 3, nsOf, 500000.0 / 460000},
		{"redlock", "redsyncv4", 3, allocsOf, 63.0 / 90},
		{"redlock", "redislock", 1, nsOf, 160000.0 / 145000},
		{"redlock", "redislock", 1, allocsOf, 27.0 / 33},
		{"redlock", "redsyncv4", 5, nsOf, math.NaN()}, // redsyncv4 missing
		{"redlock", "redislock", 3, nsOf, math.NaN()}, // redislock missing
	}
	for _, tt := range ratioTests {
		if got := tab.ratio(tt.num, tt.den, tt.nodes, tt.field); !sameFloat(got, tt.want) {
			t.Errorf("ratio %s/%s at %d = %v, want %v", tt.num, tt.den, tt.nodes, got, tt.want)
		}
	}
}

func TestPrintTable(t *testing.T) {
	r, err := parseOutput(strings.NewReader(sampleOutput), nil)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := printTable(&b, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if !strings.HasPrefix(lines[0], "command: cd /src/benchmarks && go test -run '^$' -bench BenchmarkLockUnlock -benchmem -count 3") {
		t.Errorf("first line does not give the command:\n%s", out)
	}
	if !strings.Contains(out, "medians of 1/2/3 runs per cell") {
		t.Errorf("the numbers of runs are not stated:\n%s", out)
	}

	// The table's rows, as their cells without the group separators.
	rows := make(map[string][]string)
	var header [][]string
	for _, line := range lines {
		f := slices.DeleteFunc(strings.Fields(line), func(s string) bool { return s == "|" })
		switch {
		case len(f) > 0 && f[0] == "nodes", len(f) > 0 && f[0] == "redlock":
			header = append(header, f)
		case len(f) > 0 && strings.Contains("135", f[0]) && len(f[0]) == 1:
			rows[f[0]] = f
		}
	}
	wantHeader := [][]string{
		{"redlock", "redsyncv4", "redislock", "redlock/redsyncv4", "redlock/redislock"},
		{"nodes", "time/op", "B/op", "allocs/op", "time/op", "B/op", "allocs/op", "time/op", "B/op", "allocs/op", "time", "allocs", "time", "allocs"},
	}
	if len(header) != 2 || !slices.Equal(header[0], wantHeader[0]) || !slices.Equal(header[1], wantHeader[1]) {
		t.Errorf("header = %q, want %q\n%s", header, wantHeader, out)
	}
	wantRows := map[string][]string{
		"1": {"1", "160.0µs", "1512", "27", "240.0µs", "1650", "38", "145.0µs", "1248.5", "33", "0.67x", "0.71x", "1.10x", "0.82x"},
		"3": {"3", "500.0µs", "3270", "63", "460.0µs", "3515", "90", "-", "-", "-", "1.09x", "0.70x", "-", "-"},
		"5": {"5", "1.093ms", "4646", "91", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-"},
	}
	for n, want := range wantRows {
		if got := rows[n]; !slices.Equal(got, want) {
			t.Errorf("row nodes=%s = %q, want %q\n%s", n, got, want, out)
		}
	}
	// The group separators line up on every line of the grid.
	var grid []string
	for _, line := range lines {
		if strings.Contains(line, " | ") {
			grid = append(grid, line)
		}
	}
	if len(grid) != 5 {
		t.Fatalf("%d grid lines, want 5 (2 header rows, 3 rows):\n%s", len(grid), out)
	}
	bars := func(s string) (pos []int) {
		for i, r := range []rune(s) {
			if r == '|' {
				pos = append(pos, i)
			}
		}
		return pos
	}
	for _, line := range grid[1:] {
		if !slices.Equal(bars(line), bars(grid[0])) {
			t.Errorf("separators of %q at %v, want %v", line, bars(line), bars(grid[0]))
		}
	}
	// The rows come in ascending order of nodes.
	i1, i3, i5 := strings.Index(out, "\n1 "), strings.Index(out, "\n3 "), strings.Index(out, "\n5 ")
	if i1 < 0 || i1 > i3 || i3 > i5 {
		t.Errorf("rows not in ascending order of nodes:\n%s", out)
	}
}

func TestPrintTableWithoutResults(t *testing.T) {
	r, err := parseOutput(strings.NewReader("PASS\nBenchmarkOther-2 10 5 ns/op\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := printTable(&strings.Builder{}, r); err == nil {
		t.Error("printTable of results without lib= and nodes= returned no error")
	}
}

func TestFormat(t *testing.T) {
	tests := []struct{ got, want string }{
		{formatNs(999), "999.0ns"},
		{formatNs(12.345), "12.35ns"},
		{formatNs(1000), "1.000µs"},
		{formatNs(154589), "154.6µs"},
		{formatNs(1092854), "1.093ms"},
		{formatNs(25e6), "25.00ms"},
		{formatNs(3.5e9), "3.500s"},
		{formatNs(math.NaN()), "-"},
		{formatCount(1512), "1512"},
		{formatCount(1248.5), "1248.5"},
		{formatCount(0), "0"},
		{formatCount(math.NaN()), "-"},
		{formatRatio(0.6666), "0.67x"},
		{formatRatio(1), "1.00x"},
		{formatRatio(math.NaN()), "-"},
		{formatRatio(math.Inf(1)), "-"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestShellQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"test", "test"},
		{"-count", "-count"},
		{"BenchmarkLockUnlock/lib=redlock", "BenchmarkLockUnlock/lib=redlock"},
		{"^$", "'^$'"},
		{"a b", "'a b'"},
		{"it's", `'it'\''s'`},
		{"", "''"},
		{"/work/main/benchmarks", "/work/main/benchmarks"},
	}
	for _, tt := range tests {
		if got := shellQuote(tt.in); got != tt.want {
			t.Errorf("shellQuote(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
	if got, want := shellJoin([]string{"test", "-run", "^$", "."}), "test -run '^$' ."; got != want {
		t.Errorf("shellJoin = %s, want %s", got, want)
	}
}

func TestFindModuleDir(t *testing.T) {
	root := t.TempDir()
	mod := filepath.Join(root, "benchmarks")
	deep := filepath.Join(mod, "cmd", "benchtable")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(path, text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "go.mod"), "module github.com/go-redlock/redsync\n")
	write(filepath.Join(mod, "go.mod"), "// comment\nmodule github.com/go-redlock/redsync/benchmarks\n\ngo 1.26.0\n")
	for _, start := range []string{root, mod, deep} {
		got, err := findModuleDir(start)
		if err != nil || got != mod {
			t.Errorf("findModuleDir(%s) = %q, %v; want %q", start, got, err, mod)
		}
	}
	if got, err := findModuleDir(t.TempDir()); err == nil {
		t.Errorf("findModuleDir of an unrelated directory = %q, want an error", got)
	}
}
