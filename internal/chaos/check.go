package chaos

import (
	"bufio"
	"encoding/json"
	"fmt"
	"maps"
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
	// Name is the lock name both grants held, found by [SweepNames]; ""
	// from [Sweep].
	Name string
	// Open, from [SweepHolders], is how many windows were open when Later
	// was acquired.
	Open int
}

func (o Overlap) String() string {
	s := fmt.Sprintf("worker %d acquired %v after worker %d, %v before the end of its window (window %v long)",
		o.Later.Worker, time.Duration(o.Later.Acquired-o.Earlier.Acquired),
		o.Earlier.Worker, time.Duration(o.Earlier.WindowEnd()-o.Later.Acquired),
		time.Duration(o.Earlier.WindowEnd()-o.Earlier.Acquired))
	if o.Name != "" {
		s = fmt.Sprintf("%s: %s (names %v and %v)", o.Name, s, o.Earlier.Names, o.Later.Names)
	}
	if o.Open > 0 {
		s = fmt.Sprintf("%s; %s acquired with %d windows open, the earlier %s", s, mode(o.Later), o.Open, mode(o.Earlier))
	}
	return s
}

func mode(g Grant) string {
	if g.Shared {
		return "shared"
	}
	return "exclusive"
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

// SweepHolders is [Sweep] for the primitives whose holders may hold at
// once (Grant.Shared): an exclusive grant (a writer) must be acquired
// while no other window is open, a shared grant (a reader, a permit) while
// no exclusive window is open and fewer than limit shared ones (limit 0:
// any number). Since windows only open at acquisitions, that bounds every
// instant: a writer's window never overlaps another, and at most limit
// shared windows are open at once. Each grant acquired in breach of it is
// one Overlap, with one of the windows it breached as Earlier. Grants
// whose window is empty are skipped.
func SweepHolders(grants []Grant, limit int) []Overlap {
	sorted := slices.Clone(grants)
	slices.SortFunc(sorted, func(a, b Grant) int { return compareInt64(a.Acquired, b.Acquired) })
	var (
		overlaps []Overlap
		open     []*Grant // the windows open at the acquisition at hand
	)
	for i := range sorted {
		g := &sorted[i]
		if g.WindowEnd() <= g.Acquired {
			continue
		}
		open = slices.DeleteFunc(open, func(o *Grant) bool { return o.WindowEnd() <= g.Acquired })
		var breached *Grant
		shared := 0
		for _, o := range open {
			switch {
			case !o.Shared:
				breached = o
			case breached == nil && !g.Shared:
				breached = o
			default:
				shared++
			}
		}
		if breached == nil && g.Shared && limit > 0 && shared >= limit {
			breached = open[0]
		}
		if breached != nil {
			overlaps = append(overlaps, Overlap{Earlier: *breached, Later: *g, Open: len(open)})
		}
		open = append(open, g)
	}
	return overlaps
}

// SweepNames is [Sweep] for grants of several names (Grant.Names): it
// sweeps the grants of each name apart, so that a double grant is two
// grants whose sets share a name and whose windows overlap; grants of
// disjoint sets may overlap. A pair of grants that overlap on several
// names is reported once, on the first of them in sorted order. Grants
// without names are ignored.
func SweepNames(grants []Grant) []Overlap {
	byName := map[string][]Grant{}
	for _, g := range grants {
		for _, name := range g.Names {
			byName[name] = append(byName[name], g)
		}
	}
	type grantID struct{ worker, seq int }
	type pair struct{ earlier, later grantID }
	seen := map[pair]bool{}
	var overlaps []Overlap
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		for _, o := range Sweep(byName[name]) {
			p := pair{grantID{o.Earlier.Worker, o.Earlier.Seq}, grantID{o.Later.Worker, o.Later.Seq}}
			if seen[p] {
				continue
			}
			seen[p] = true
			o.Name = name
			overlaps = append(overlaps, o)
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

// Conflicts counts the occupancy conflicts of the grants: one for each
// grant whose critical section found someone inside, and for a grant of a
// multi-key row one for each of its names where it did.
func Conflicts(grants []Grant) int {
	n := 0
	for _, g := range grants {
		if g.Found != "" {
			n++
		}
		n += len(g.FoundOn)
	}
	return n
}
