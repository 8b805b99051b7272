-- release.lua: delete the lock on one node if it is still ours.
-- KEYS[1] the lock key; ARGV[1] the owner's value.
-- Returns 1 when deleted, 0 when another owner holds the key, -1 when the
-- key does not exist (it expired).
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
	return redis.call('DEL', KEYS[1])
elseif current == false then
	return -1
end
return 0
