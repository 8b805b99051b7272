package chaos

import (
	"slices"
	"strings"
	"testing"
)

func TestSweep(t *testing.T) {
	g := func(value string, acquired, validEnd, released int64) Grant {
		return Grant{Value: value, Acquired: acquired, ValidEnd: validEnd, Released: released}
	}
	tests := []struct {
		name   string
		grants []Grant
		want   int
	}{
		{"none", nil, 0},
		{"one after the other", []Grant{g("a", 0, 100, 10), g("b", 11, 100, 20), g("c", 21, 100, 30)}, 0},
		{"released at the same instant", []Grant{g("a", 0, 100, 10), g("b", 10, 100, 20)}, 0},
		{"inside a release", []Grant{g("a", 0, 100, 10), g("b", 9, 100, 20)}, 1},
		{"after the validity, before the release", []Grant{g("a", 0, 10, 100), g("b", 11, 100, 120)}, 0},
		{"before the validity end", []Grant{g("a", 0, 10, 100), g("b", 9, 100, 120)}, 1},
		{"inside a long window", []Grant{g("a", 0, 100, 100), g("b", 10, 100, 20), g("c", 30, 100, 40)}, 2},
		{"same value", []Grant{g("a", 0, 100, 100), g("a", 10, 100, 20)}, 1},
		{"empty window", []Grant{g("a", 0, 0, 100), g("b", 0, 100, 20)}, 0},
		{"unsorted", []Grant{g("b", 9, 100, 20), g("a", 0, 100, 10)}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := len(Sweep(tt.grants)); got != tt.want {
				t.Errorf("len(Sweep()) = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestAudit(t *testing.T) {
	grants := []Grant{{Value: "a", Acquired: 0, ValidEnd: 100, Released: 100}}
	samples := []Sample{
		{Start: 10, End: 20, Values: []string{"a", "a", "a", "", ""}, Known: []bool{true, true, true, true, true}},
		{Start: 30, End: 40, Values: []string{"a", "a", "", "", ""}, Known: []bool{true, true, true, true, true}},
		{Start: 50, End: 60, Values: []string{"a", "a", "", "", ""}, Known: []bool{true, true, false, true, true}},
		{Start: 90, End: 110, Values: []string{"", "", "", "", ""}, Known: []bool{true, true, true, true, true}}, // past the window
	}
	got := Audit(samples, grants, 3)
	if got.Samples != 3 || got.BelowQuorum != 1 || got.Unknown != 1 || got.Holders[2] != 2 || got.Holders[3] != 1 {
		t.Errorf("Audit() = %+v, want 3 samples, 1 below quorum, 1 with a silent node, holders 2: 2, 3: 1", got)
	}
}

func TestSweepNames(t *testing.T) {
	seq := 0
	g := func(worker int, names string, acquired, released int64) Grant {
		seq++
		return Grant{Worker: worker, Seq: seq, Names: strings.Split(names, ","), Acquired: acquired, ValidEnd: 1000, Released: released}
	}
	tests := []struct {
		name   string
		grants []Grant
		want   []string // the names of the overlaps found
	}{
		{"none", nil, nil},
		{"disjoint sets at once", []Grant{g(0, "n0,n1", 0, 100), g(1, "n2,n3", 10, 90), g(2, "n1", 20, 30)}, []string{"n1"}},
		{"disjoint sets only", []Grant{g(0, "n0,n1", 0, 100), g(1, "n2,n3", 10, 90)}, nil},
		{"one shared name", []Grant{g(0, "n0,n1", 0, 100), g(1, "n1,n2", 50, 150)}, []string{"n1"}},
		{"one after the other", []Grant{g(0, "n0,n1", 0, 100), g(1, "n1,n2", 100, 150), g(2, "n0,n1,n2,n3", 150, 200)}, nil},
		{"several shared names, one pair", []Grant{g(0, "n0,n1,n2,n3", 0, 100), g(1, "n3,n0", 50, 150)}, []string{"n0"}},
		{"a single name inside a set", []Grant{g(0, "n1,n2", 0, 100), g(1, "n1", 99, 150)}, []string{"n1"}},
		{"two earlier holders", []Grant{g(0, "n0,n1", 0, 100), g(1, "n2,n3", 0, 100), g(2, "n1,n2", 50, 150)}, []string{"n1", "n2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, o := range SweepNames(tt.grants) {
				got = append(got, o.Name)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("SweepNames() found overlaps on %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSweepHolders(t *testing.T) {
	seq := 0
	grant := func(shared bool, acquired, validEnd, released int64) Grant {
		seq++
		return Grant{Seq: seq, Shared: shared, Acquired: acquired, ValidEnd: validEnd, Released: released}
	}
	r := func(acquired, released int64) Grant { return grant(true, acquired, 1000, released) }
	w := func(acquired, released int64) Grant { return grant(false, acquired, 1000, released) }
	tests := []struct {
		name   string
		limit  int
		grants []Grant
		want   []int // the Open of each overlap found
	}{
		{"none", 0, nil, nil},
		{"readers at once", 0, []Grant{r(0, 100), r(10, 90), r(20, 30)}, nil},
		{"writers one after the other", 0, []Grant{w(0, 10), w(10, 20), r(20, 30), w(30, 40)}, nil},
		{"writer among readers", 0, []Grant{r(0, 100), r(10, 90), w(20, 30)}, []int{2}},
		{"reader inside a writer", 0, []Grant{w(0, 100), r(50, 150)}, []int{1}},
		{"writer inside a writer", 0, []Grant{w(0, 100), w(99, 150)}, []int{1}},
		{"reader after the writer's validity", 0, []Grant{grant(false, 0, 10, 100), r(10, 150)}, nil},
		{"reader before the writer's validity end", 0, []Grant{grant(false, 0, 10, 100), r(9, 150)}, []int{1}},
		{"empty window", 0, []Grant{grant(false, 0, 0, 100), r(1, 150)}, nil},
		{"permits up to the limit", 2, []Grant{r(0, 100), r(10, 20), r(20, 30), r(30, 100)}, nil},
		{"permits above the limit", 2, []Grant{r(0, 100), r(10, 90), r(20, 30), r(90, 150)}, []int{2}},
		{"three at once, unsorted", 2, []Grant{r(20, 30), r(10, 90), r(0, 100)}, []int{2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []int
			for _, o := range SweepHolders(tt.grants, tt.limit) {
				got = append(got, o.Open)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("SweepHolders(limit %d) found overlaps with %v windows open, want %v", tt.limit, got, tt.want)
			}
		})
	}
}

func TestConflicts(t *testing.T) {
	grants := []Grant{
		{Found: "1/0/a"},
		{},
		{Names: []string{"n0", "n1"}, FoundOn: map[string]string{"n0": "1/0/a", "n1": "2/0/b"}},
		{Names: []string{"n2"}},
	}
	if got := Conflicts(grants); got != 3 {
		t.Errorf("Conflicts() = %d, want 3", got)
	}
}
