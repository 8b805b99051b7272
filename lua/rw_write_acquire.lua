-- rw_write_acquire.lua: take the writer's side of a reader-writer lock on
-- one node (RWMutex.Lock).
-- KEYS[1] the writer key W (the lock's name); KEYS[2] the readers' key R, a
-- sorted set with one member per read share: the reader's value, scored
-- with the end of the share's life in ms by this node's clock (TIME);
-- KEYS[3] the waiting-writer mark Q. ARGV[1] the writer's value; ARGV[2] the
-- TTL in ms; ARGV[3] the intent id of the writer's RWMutex.
-- Returns 1 when W now holds ARGV[1]; when another writer holds W, 65536
-- plus a fingerprint of that writer's value (as acquire.lua); 0 when live
-- read shares remain. In the last two cases Q is set to ARGV[3] for the
-- TTL, which keeps new readers out until this writer has had its turn or
-- given up (rw_withdraw.lua). An error reply when W or R holds a value of
-- another type.
--
-- W is set only where no live share remains, and rw_read_acquire.lua adds
-- a share only where W does not exist: on one node, a writer and a live
-- share never coexist.
if redis.replicate_commands and not redis.REDIS_VERSION_NUM then
	-- Redis 3.2 to 4: writes after TIME need effects replication (Redis 5
	-- and later replicate effects anyway; Redis 7 tells its version).
	redis.replicate_commands()
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local purged = redis.pcall('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if type(purged) == 'table' and purged.err then
	return redis.error_reply('WRONGTYPE the readers key ' .. KEYS[2] .. ' holds a value that is not a sorted set')
end
local current = redis.pcall('GET', KEYS[1])
if type(current) == 'table' and current.err then
	return redis.error_reply('WRONGTYPE the key ' .. KEYS[1] .. ' holds a value that is not a string')
end
-- dropMark deletes Q if it is this RWMutex's: a mark of another waiting
-- writer stays.
local function dropMark()
	if redis.pcall('GET', KEYS[3]) == ARGV[3] then
		redis.call('DEL', KEYS[3])
	end
end
if current == ARGV[1] then
	-- An earlier try of the same writer landed after its reply was lost.
	redis.call('PEXPIRE', KEYS[1], ARGV[2])
	dropMark()
	return 1
end
if current then
	redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[2])
	return 65536 + tonumber(string.sub(redis.sha1hex(current), 1, 12), 16)
end
if redis.call('ZCARD', KEYS[2]) > 0 then
	redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[2])
	return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
dropMark()
return 1
