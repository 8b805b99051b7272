-- multi_release.lua: delete the keys of a multi-key lock on one node where
-- they are still ours, and wake the first waiter of each one's queue as
-- release_notify.lua does (Unlock of a Mutex of NewMultiMutex, and the
-- undo of a failed try).
-- KEYS the lock keys, then, with ARGV[2] "1", as many queues of waiters
-- (queueKey in handoff.go), the i-th of the i-th key; ARGV[1] the owner's
-- value; ARGV[2] "1" to wake the waiters (release notification), "0" not
-- to. queue_lib.lua comes before it (scripts.go).
-- Returns 1 when a key was deleted, 0 when none was ours and another owner
-- holds one of them (or it holds a value of another type), -1 when none
-- exists (the lock expired).
local deleted, taken = false, false
local id = redis.sha1hex(ARGV[1])
local names = #KEYS
if ARGV[2] == '1' then
	names = #KEYS / 2
end
for i = 1, names do
	-- pcall: a name that holds a value of another type is not ours, and
	-- must not keep the names after it from being released.
	local current = redis.pcall('GET', KEYS[i])
	if current == ARGV[1] then
		redis.call('DEL', KEYS[i])
		deleted = true
		if ARGV[2] == '1' and not wake(KEYS[names + i], id, true) then
			redis.pcall('PUBLISH', 'redsync:released:' .. KEYS[i], id)
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
