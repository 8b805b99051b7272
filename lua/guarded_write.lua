-- guarded_write.lua: write a resource kept in Redis only if the writer's
-- fencing token is at least the one of the last accepted write (GuardedSet).
-- KEYS[1] the resource, a hash with the fields "value" and "fence".
-- ARGV[1] the value; ARGV[2] the writer's token, a decimal string without
-- leading zeros.
-- Returns {1, token} when the value and the token were stored, and
-- {0, stored} when the stored fence is greater than the token (a stale
-- writer); the fences are decimal strings. A key of another type fails
-- with WRONGTYPE, a fence that is not a token with an ERR reply.
--
-- Tokens are compared as decimal strings (length, then digits), which is
-- exact for every 64-bit value, where Lua numbers are not.
local stored = redis.call('HGET', KEYS[1], 'fence')
if stored then
	if not (stored == '0' or string.match(stored, '^[1-9]%d*$')) then
		return redis.error_reply('ERR guarded write: the fence of ' .. KEYS[1] .. ' holds ' ..
			string.format('%q', string.sub(stored, 1, 40)) .. ', not a token')
	end
	if #stored > #ARGV[2] or (#stored == #ARGV[2] and stored > ARGV[2]) then
		return {0, stored}
	end
end
redis.call('HSET', KEYS[1], 'value', ARGV[1], 'fence', ARGV[2])
return {1, ARGV[2]}
