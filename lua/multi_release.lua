-- multi_release.lua: delete the keys of a multi-key lock on one node where
-- they are still ours, and announce each release as release_notify.lua
-- does (Unlock of a Mutex of NewMultiMutex, and the undo of a failed try).
-- KEYS the lock keys; ARGV[1] the owner's value; ARGV[2] "1" to announce
-- the releases (release notification), "0" not to.
-- Returns 1 when a key was deleted, 0 when none was ours and another owner
-- holds one of them (or it holds a value of another type), -1 when none
-- exists (the lock expired).
local deleted, taken = false, false
local id = redis.sha1hex(ARGV[1])
for i = 1, #KEYS do
	-- pcall: a name that holds a value of another type is not ours, and
	-- must not keep the names after it from being released.
	local current = redis.pcall('GET', KEYS[i])
	if current == ARGV[1] then
		redis.call('DEL', KEYS[i])
		deleted = true
		if ARGV[2] == '1' then
			local channel = 'redsync:released:' .. KEYS[i]
			local receivers = redis.pcall('PUBLISH', channel, id)
			if type(receivers) == 'number' and receivers > 1 then
				redis.pcall('PUBLISH', channel, id .. ' ' .. receivers)
			end
		end
	elseif current then
		taken = true
	end
end
if deleted then
	return 1
elseif taken then
	return 0
end
return -1
