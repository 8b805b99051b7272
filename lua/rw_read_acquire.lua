-- rw_read_acquire.lua: take a read share of a reader-writer lock on one
-- node (RWMutex.RLock).
-- KEYS[1] the writer key W; KEYS[2] the readers' sorted set R; KEYS[3] the
-- waiting-writer mark Q (see rw_write_acquire.lua). ARGV[1] the reader's
-- value; ARGV[2] the TTL in ms.
-- Returns 1 when R now holds ARGV[1] scored with the end of its life (this
-- node's time plus the TTL, in ms); when a writer holds W, 65536 plus a
-- fingerprint of its value (as acquire.lua); 0 when a writer waits (Q
-- exists). An error reply when W or R holds a value of another type.
-- R's own expiry is kept at least as late as its latest share's, so that
-- R disappears by itself once every share has expired. Expired shares do
-- not keep readers out; they are removed when R was there before (other
-- readers keep it, and those that died must not pile up in it), so that a
-- lone reader's path is one EXISTS, TIME, one ZADD and R's expiry.
if redis.replicate_commands and not redis.REDIS_VERSION_NUM then
	-- Redis 3.2 to 4: writes after TIME need effects replication (Redis 5
	-- and later replicate effects anyway; Redis 7 tells its version).
	redis.replicate_commands()
end
-- One EXISTS counts W, Q and R: where it finds none of them (a lone
-- reader), R's remaining life need not be read.
local found = redis.call('EXISTS', KEYS[1], KEYS[3], KEYS[2])
local left = -2 -- R's remaining life in ms, as PTTL replies
if found > 0 then
	left = redis.call('PTTL', KEYS[2])
	if left == -2 or found > 1 then
		-- W or Q exists: found counts more than R.
		local writer = redis.pcall('GET', KEYS[1])
		if type(writer) == 'table' and writer.err then
			return redis.error_reply('WRONGTYPE the key ' .. KEYS[1] .. ' holds a value that is not a string')
		end
		if writer then
			return 65536 + tonumber(string.sub(redis.sha1hex(writer), 1, 12), 16)
		end
		return 0
	end
end
local time = redis.call('TIME')
-- Arithmetic converts TIME's strings once each (tonumber would twice).
local now = time[1] * 1000 + math.floor(time[2] / 1000)
local ttl = ARGV[2] + 0
local added = redis.pcall('ZADD', KEYS[2], now + ttl, ARGV[1])
if type(added) == 'table' and added.err then
	return redis.error_reply('WRONGTYPE the readers key ' .. KEYS[2] .. ' holds a value that is not a sorted set')
end
if left >= 0 then
	-- R was there before this share, with the expiry these scripts give it.
	redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
end
if left < ttl then
	redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return 1
