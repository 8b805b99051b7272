-- multi_extend.lua: reset the TTL of a multi-key lock on one node if every
-- key is still ours.
-- KEYS the lock keys; ARGV[1] the owner's value; ARGV[2] the TTL in ms;
-- ARGV[3] "1" to set the keys that are missing (WithSetNXOnExtend).
-- Returns 1 when extended (or set), 0 when another owner holds one of the
-- keys, -1 when one is missing (and ARGV[3] is not "1"); in both cases no
-- key is written.
local missing = false
for i = 1, #KEYS do
	local current = redis.call('GET', KEYS[i])
	if current == false then
		missing = true
	elseif current ~= ARGV[1] then
		return 0
	end
end
if missing and ARGV[3] ~= '1' then
	return -1
end
for i = 1, #KEYS do
	redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
end
return 1
