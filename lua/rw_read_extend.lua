-- rw_read_extend.lua: extend a read share of a reader-writer lock on one
-- node (RWMutex.RExtend, and automatic extension of a reader).
-- KEYS[1] the readers' sorted set R (see rw_read_acquire.lua); ARGV[1] the
-- reader's value; ARGV[2] the TTL in ms; ARGV[3] the flag of
-- WithSetNXOnExtend, which an RWMutex refuses: a share set again where it
-- is missing could land next to a writer.
-- Returns 1 when the share was live and now ends TTL ms from now; -1 when
-- there is no live share (an expired one is removed).
-- Expired shares of other readers are removed too. An error reply when
-- R holds a value of another type, or the flag is set.
if ARGV[3] == '1' then
	return redis.error_reply('ERR a read share cannot be set again where it is missing (WithSetNXOnExtend)')
end
if redis.replicate_commands and not redis.REDIS_VERSION_NUM then
	-- Redis 3.2 to 4: writes after TIME need effects replication (Redis 5
	-- and later replicate effects anyway; Redis 7 tells its version).
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
if tonumber(score) <= now then
	-- Expired: a writer may have been granted this node since.
	redis.call('ZREM', KEYS[1], ARGV[1])
	return -1
end
-- The shares of readers that died are removed here and by a writer's
-- acquire (RLock leaves them: they keep no reader out).
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then
	redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
