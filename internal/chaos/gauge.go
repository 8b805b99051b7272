package chaos

import (
	"context"

	goredislib "github.com/redis/go-redis/v9"
)

// The gauge of concurrent holders, for the primitives whose holders may
// be inside at once (holders.go): the read shares of an RWMutex and the
// permits of a Semaphore. A shared holder enters the set of the holders
// inside; an exclusive holder (a writer, or the one holder of a Mutex)
// enters with [Resource.Enter], which counts a conflict when a shared
// holder is inside, as enterShared does when the occupant is there. So
// the gauge never shows a writer together with anyone else, nor more
// shared holders than the limit, without counting a conflict.
//
// A shared holder's section counts itself on the read-sleep-write
// counter with one atomic increment, so that an exclusive holder inside
// at the same time (whose read, sleep and write would overwrite it) makes
// the counter lose an update.
var (
	// enterShared adds ARGV[1] to the holders inside, raises the peak,
	// and counts a conflict and returns what it found when the occupant is
	// inside, or when the holders now number more than ARGV[2] (0: any
	// number).
	enterSharedScript = goredislib.NewScript(`
redis.call('SADD', KEYS[3], ARGV[1])
local n = redis.call('SCARD', KEYS[3])
if n > tonumber(redis.call('GET', KEYS[4]) or '0') then
	redis.call('SET', KEYS[4], n)
end
local found = redis.call('GET', KEYS[1])
local limit = tonumber(ARGV[2])
if not found and limit > 0 and n > limit then
	found = n .. ' shared holders'
end
if found then
	redis.call('INCR', KEYS[2])
	return found
end
return ''`)
	// leaveShared removes ARGV[1] from the holders inside and counts the
	// section, on the sections and on the counter.
	leaveSharedScript = goredislib.NewScript(`
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('INCR', KEYS[2])
redis.call('INCR', KEYS[3])
return 1`)
)

// EnterShared marks owner as a shared holder inside. It returns "" or,
// when the occupant (an exclusive holder) is inside, that occupant, or,
// when more than limit shared holders are now inside (limit 0: no bound),
// how many; and then it counts a conflict.
func (r *Resource) EnterShared(ctx context.Context, owner string, limit int) (string, error) {
	return enterSharedScript.Run(ctx, r.client, []string{r.occupant, r.conflicts, r.inside, r.peak}, owner, limit).Text()
}

// LeaveShared marks owner as out, and counts its section on the sections
// and on the counter.
func (r *Resource) LeaveShared(ctx context.Context, owner string) error {
	return leaveSharedScript.Run(ctx, r.client, []string{r.inside, r.sections, r.counter}, owner).Err()
}

// Inside returns the shared holders inside.
func (r *Resource) Inside(ctx context.Context) ([]string, error) {
	return r.client.SMembers(ctx, r.inside).Result()
}
