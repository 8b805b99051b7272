-- extend.lua: reset the TTL of the lock on one node if it is still ours.
-- KEYS[1] the lock key; ARGV[1] the owner's value; ARGV[2] the TTL in ms;
-- ARGV[3] "1" to set the key when it is missing (WithSetNXOnExtend).
-- Returns 1 when extended (or set), 0 when another owner holds the key, -1
-- when the key does not exist.
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
	redis.call('PEXPIRE', KEYS[1], ARGV[2])
	return 1
elseif current == false then
	if ARGV[3] == '1' then
		redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
		return 1
	end
	return -1
end
return 0
