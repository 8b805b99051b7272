-- rw_read_release.lua: give a read share of a reader-writer lock back on
-- one node (RWMutex.RUnlock, and the undo of a failed RLock try).
-- KEYS[1] the readers' sorted set R (see rw_read_acquire.lua); ARGV[1] the
-- reader's value.
-- Returns 1 when a live share was removed; -1 when there was none, or only
-- an expired one (removed all the same).
-- The expired shares of R are removed first, those of other readers with
-- this one's (they keep nobody out, and a writer's acquire or a reader's
-- extension would remove them): what ZREM still finds was live. That
-- reads no score back, which would cost a double's formatting and parsing.
if redis.replicate_commands and not redis.REDIS_VERSION_NUM then
	-- Redis 3.2 to 4: writes after TIME need effects replication (Redis 5
	-- and later replicate effects anyway; Redis 7 tells its version).
	redis.replicate_commands()
end
local time = redis.call('TIME')
-- Now in ms, as text: the seconds, then the first 3 of the microseconds'
-- 6 digits (TIME does not pad them). A share ending now has expired.
local now = time[1] .. string.sub('00000' .. time[2], -6, -4)
local purged = redis.pcall('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if type(purged) == 'table' and purged.err then
	return redis.error_reply('WRONGTYPE the readers key ' .. KEYS[1] .. ' holds a value that is not a sorted set')
end
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
	return 1
end
return -1
