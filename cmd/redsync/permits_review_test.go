//go:build unix

package main

// Tests from a review that tried to break the promise of exec --permits
// (docs/CLI.md): at most N jobs run at once across hosts, also with a
// minority of the nodes down, and nothing is left on the nodes.

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestReviewExecPermitsMinorityDown: with one node of three stopped, two
// jobs of --permits 2 hold the two permits at once (each its own slot,
// on both running nodes), a third exec finds them all held and exits 75
// without running its command, and once the jobs end no permit is left.
func TestReviewExecPermitsMinorityDown(t *testing.T) {
	servers, addrs := cluster(t, 3)
	if err := servers[2].Stop(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := []string{filepath.Join(dir, "a"), filepath.Join(dir, "b")}
	var procs []*proc
	for _, f := range files {
		r := start(t, addrs, nil, append([]string{"exec", "--permits", "2", "--wait", "30s", "jobs"}, childArgs("await", f)...)...)
		waitFile(t, f+".ready", 30*time.Second, r)
		procs = append(procs, r)
	}
	// Both jobs run now: each holds a slot on both running nodes, and the
	// slots differ.
	for i, s := range servers[:2] {
		var values []string
		for slot := range 2 {
			v := s.MustDo(t, "GET", "jobs:permit:"+strconv.Itoa(slot)).Str
			if v == "" {
				t.Errorf("node %d: permit %d is not held while both jobs run", i, slot)
			}
			values = append(values, v)
		}
		if len(slices.Compact(slices.Clone(values))) != 2 {
			t.Errorf("node %d: permit values %q; want two different holders", i, values)
		}
	}
	third := filepath.Join(dir, "third-ran")
	code, _, stderr := runToEnd(t, addrs, append([]string{"exec", "--permits", "2", "jobs"}, childArgs("await", third)...)...)
	if code != exitNotObtained || !strings.Contains(stderr, `all 2 permits of semaphore "jobs" are held elsewhere`) {
		t.Errorf("a third exec while both permits are held = %d, stderr %q; want %d and all permits held", code, stderr, exitNotObtained)
	}
	if _, err := os.Stat(third + ".ready"); err == nil {
		t.Error("the third exec ran its command while both permits were held")
	}
	for i, f := range files {
		writeAtomic(f+".go", "")
		if code := procs[i].wait(t); code != 0 {
			t.Errorf("job %d exit status = %d; want 0; stderr:\n%s", i, code, procs[i].stderr.String())
		}
	}
	for i, s := range servers[:2] {
		if n, err := s.DBSize(); n != 0 || err != nil {
			t.Errorf("node %d: DBSIZE after the jobs = %d, %v; want 0", i, n, err)
		}
	}
}
