-- transfer.lua: hand the lock from its holder straight to the next owner
-- on one node (a local hand-off, see transfer.go), or undo such a hand-off.
-- KEYS[1] the lock key; KEYS[2] its queue of waiters (queueKey in
-- handoff.go); ARGV[1] the holder's value; ARGV[2] the next
-- owner's value; ARGV[3] the next owner's TTL in ms; ARGV[4] "undo" to
-- delete the key when it holds either value; ARGV[5] and ARGV[6], when
-- given, the next owner's member and ticket in the queue of waiters (see
-- queue_acquire.lua), from which a hand-off takes it out; ARGV[7] and
-- ARGV[8] the holder's, likewise.
-- Hand-off: returns 1 when the key held the holder's value (or, on a
-- repeat, the next owner's) and now holds the next owner's; 2 when the
-- key did not exist and now holds the next owner's; 0 when another owner
-- holds the key, which is left alone.
-- Undo: returns 1 when the key was deleted (and wakes the first waiter of
-- the queue, leaving it there), -1 when it did not exist, 0 when another
-- owner holds it. queue_lib.lua comes before it (scripts.go).
local current = redis.call('GET', KEYS[1])
local queue = KEYS[2]
if ARGV[4] == 'undo' then
	if current == ARGV[1] or current == ARGV[2] then
		-- The key is free now: the first waiter is told as after a
		-- release.
		redis.call('DEL', KEYS[1])
		wake(queue, redis.sha1hex(ARGV[1]), false)
		return 1
	elseif current == false then
		return -1
	end
	return 0
end
-- The next owner leaves the queue of waiters whatever the outcome here:
-- it has the lock now, or tries again (and queues again) when the hand-off
-- failed on a quorum. So does the holder, when its acquisition was made by
-- a try of a waiting Lock (ARGV[7] and ARGV[8]: its member and ticket),
-- which left its entry where that try failed.
leave(queue, ARGV[5], ARGV[6])
leave(queue, ARGV[7], ARGV[8])
local result
if current == ARGV[1] or current == ARGV[2] then
	result = 1
elseif current == false then
	result = 2 -- expired
else
	return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return result
