package chaos

import "testing"

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
