package chaos

import (
	"context"
	"errors"
	"strconv"
	"time"

	goredislib "github.com/redis/go-redis/v9"
)

// The resource's scripts. enter sets the occupant if there is none and no
// shared holder is inside (gauge.go), and otherwise counts a conflict and
// returns the occupant found, or how many shared holders. leave counts a
// finished critical section and clears the occupant if it is the caller.
var (
	enterScript = goredislib.NewScript(`
local found = redis.call('GET', KEYS[1])
if not found then
	local shared = redis.call('SCARD', KEYS[3])
	if shared > 0 then
		found = shared .. ' shared holders'
	end
end
if found then
	redis.call('INCR', KEYS[2])
	return found
end
redis.call('SET', KEYS[1], ARGV[1])
return ''`)
	leaveScript = goredislib.NewScript(`
redis.call('INCR', KEYS[2])
if redis.call('GET', KEYS[1]) == ARGV[1] then
	redis.call('DEL', KEYS[1])
end
return 1`)
)

// Resource is what the workers' critical sections act on: keys on a Redis
// node that no fault touches. An occupancy flag catches two workers inside
// at once, and a counter updated by read, sleep, write loses updates when
// that happens.
type Resource struct {
	client    *goredislib.Client
	occupant  string
	conflicts string
	counter   string
	sections  string
	inside    string // the shared holders inside (gauge.go)
	peak      string // the most shared holders seen inside at once
}

// Totals are the resource's counts.
type Totals struct {
	Counter   int64 // the read-sleep-write counter
	Sections  int64 // critical sections finished
	Conflicts int64 // entries that found someone inside
	Peak      int64 // the most shared holders inside at once (gauge.go)
}

// LostUpdates returns how many counter updates were lost.
func (t Totals) LostUpdates() int64 { return t.Sections - t.Counter }

// NewResource returns the resource of the keys starting with prefix on the
// Redis server at addr. The caller must Close it.
func NewResource(addr, prefix string) *Resource {
	return &Resource{
		client: goredislib.NewClient(&goredislib.Options{
			Addr:        addr,
			DialTimeout: 5 * time.Second,
			ReadTimeout: 5 * time.Second,
		}),
		occupant:  prefix + ":occupant",
		conflicts: prefix + ":conflicts",
		counter:   prefix + ":counter",
		sections:  prefix + ":sections",
		inside:    prefix + ":inside",
		peak:      prefix + ":peak",
	}
}

// NamePrefix returns the key prefix of the resource of one lock name in a
// multi-key row whose resource keys start with prefix: each name has an
// occupancy flag and a counter of its own, since grants of disjoint sets
// may be inside at once.
func NamePrefix(prefix, name string) string {
	return prefix + "/" + name
}

// Close closes the connections.
func (r *Resource) Close() error { return r.client.Close() }

// Enter marks owner as inside. It returns "" or, when someone was already
// inside, that occupant (and counts a conflict).
func (r *Resource) Enter(ctx context.Context, owner string) (string, error) {
	return enterScript.Run(ctx, r.client, []string{r.occupant, r.conflicts, r.inside}, owner).Text()
}

// Leave counts a finished critical section and marks owner as out.
func (r *Resource) Leave(ctx context.Context, owner string) error {
	return leaveScript.Run(ctx, r.client, []string{r.occupant, r.sections}, owner).Err()
}

// CountGrant counts a grant of a multi-key row as a finished critical
// section, without entering: the grant's critical section is on the
// resources of its names (see [NamePrefix]), and this one counts the
// grants of the row.
func (r *Resource) CountGrant(ctx context.Context) error {
	return r.client.Incr(ctx, r.sections).Err()
}

// ReadCounter returns the counter.
func (r *Resource) ReadCounter(ctx context.Context) (int64, error) {
	n, err := r.client.Get(ctx, r.counter).Int64()
	if errors.Is(err, goredislib.Nil) {
		return 0, nil
	}
	return n, err
}

// WriteCounter sets the counter to n.
func (r *Resource) WriteCounter(ctx context.Context, n int64) error {
	return r.client.Set(ctx, r.counter, n, 0).Err()
}

// Occupant returns who is inside, or "".
func (r *Resource) Occupant(ctx context.Context) (string, error) {
	s, err := r.client.Get(ctx, r.occupant).Result()
	if errors.Is(err, goredislib.Nil) {
		return "", nil
	}
	return s, err
}

// Totals returns the counts.
func (r *Resource) Totals(ctx context.Context) (Totals, error) {
	vals, err := r.client.MGet(ctx, r.counter, r.sections, r.conflicts, r.peak).Result()
	if err != nil {
		return Totals{}, err
	}
	var n [4]int64
	for i, v := range vals {
		if s, ok := v.(string); ok {
			if n[i], err = strconv.ParseInt(s, 10, 64); err != nil {
				return Totals{}, err
			}
		}
	}
	return Totals{Counter: n[0], Sections: n[1], Conflicts: n[2], Peak: n[3]}, nil
}

// Reset deletes the resource's keys.
func (r *Resource) Reset(ctx context.Context) error {
	return r.client.Del(ctx, r.occupant, r.conflicts, r.counter, r.sections, r.inside, r.peak).Err()
}
