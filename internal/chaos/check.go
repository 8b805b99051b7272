package chaos

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"time"
)

// ReadLog reads a worker's log: its grants and its summary (nil when the
// worker did not finish).
func ReadLog(path string) ([]Grant, *Summary, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	var (
		grants []Grant
		sum    *Summary
	)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var line LogLine
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		switch {
		case line.Grant != nil:
			grants = append(grants, *line.Grant)
		case line.Summary != nil:
			sum = line.Summary
		}
	}
	return grants, sum, sc.Err()
}

// An Overlap is a double grant: Later was acquired while the validity
// window of Earlier, another holder's, was still open.
type Overlap struct {
	Earlier, Later Grant
}

func (o Overlap) String() string {
	return fmt.Sprintf("worker %d acquired %v after worker %d, %v before the end of its window (window %v long)",
		o.Later.Worker, time.Duration(o.Later.Acquired-o.Earlier.Acquired),
		o.Earlier.Worker, time.Duration(o.Earlier.WindowEnd()-o.Later.Acquired),
		time.Duration(o.Earlier.WindowEnd()-o.Earlier.Acquired))
}

// Sweep finds the double grants: grants acquired while the validity window
// ([Acquired, WindowEnd]) of another grant was open, whatever their values
// (each acquisition has a value of its own). All
// timestamps are CLOCK_MONOTONIC, from every process, so they compare
// exactly. Grants whose window is empty are skipped.
func Sweep(grants []Grant) []Overlap {
	sorted := slices.Clone(grants)
	slices.SortFunc(sorted, func(a, b Grant) int { return compareInt64(a.Acquired, b.Acquired) })
	var (
		overlaps []Overlap
		open     *Grant // the window that ends last among those seen
	)
	for i := range sorted {
		g := &sorted[i]
		if g.WindowEnd() <= g.Acquired {
			continue
		}
		if open != nil && g.Acquired < open.WindowEnd() {
			overlaps = append(overlaps, Overlap{Earlier: *open, Later: *g})
		}
		if open == nil || g.WindowEnd() > open.WindowEnd() {
			open = g
		}
	}
	return overlaps
}

func compareInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TryLatency returns the q-quantile (0 < q <= 1) of the duration of the
// successful tries.
func TryLatency(grants []Grant, q float64) time.Duration {
	if len(grants) == 0 {
		return 0
	}
	d := make([]int64, len(grants))
	for i, g := range grants {
		d[i] = g.Acquired - g.Called
	}
	slices.Sort(d)
	i := int(q*float64(len(d))+0.5) - 1
	return time.Duration(d[max(0, min(i, len(d)-1))])
}

// Conflicts counts the grants whose critical section found someone inside.
func Conflicts(grants []Grant) int {
	n := 0
	for _, g := range grants {
		if g.Found != "" {
			n++
		}
	}
	return n
}
