-- rw_read_release.lua: give a read share of a reader-writer lock back on
-- one node (RWMutex.RUnlock, and the undo of a failed RLock try).
-- KEYS[1] the readers' sorted set R (see rw_read_acquire.lua); ARGV[1] the
-- reader's value.
-- Returns 1 when a live share was removed; -1 when there was none, or only
-- an expired one (removed all the same).
if redis.replicate_commands then
	-- Redis 3.2 to 4: writes after TIME need effects replication.
	redis.replicate_commands()
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local score = redis.pcall('ZSCORE', KEYS[1], ARGV[1])
if type(score) == 'table' and score.err then
	return redis.error_reply('WRONGTYPE the readers key ' .. KEYS[1] .. ' holds a value that is not a sorted set')
end
if not score then
	return -1
end
redis.call('ZREM', KEYS[1], ARGV[1])
if tonumber(score) <= now then
	return -1
end
return 1
