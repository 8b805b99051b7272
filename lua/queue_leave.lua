-- queue_leave.lua: on one node, undo the failed try of a waiting Lock, or
-- take a waiter out of the queue when its Lock ends (see handoff.go and
-- queue_acquire.lua for the queue).
-- KEYS[1] the lock key; KEYS[2] its queue of waiters (queueKey in
-- handoff.go); ARGV[1] 'undo' or 'withdraw'; ARGV[2] the try's value
-- (undo); ARGV[3] the waiter's member; ARGV[4] its ticket; ARGV[5] the
-- entry's life in ms (undo); ARGV[6] '1' to wake the queue (undo: '0'
-- when the try found another owner holding the lock on a quorum, whose
-- release will wake it; a wake then would only make waiters try in vain).
-- undo: where the key holds the try's value, delete it, put the waiter
-- (which goes on waiting, unless its Lock is ending) back in the queue,
-- and wake the first live waiter, leaving it first (a turned try that
-- failed, cancelled or timed out after it set the key everywhere, must
-- not leave the queue waiting for nobody). Returns 1 when deleted, 0 when
-- another owner holds the key, -1 when it does not exist.
-- withdraw: remove the waiter's entry and, where the key is free, wake the
-- first live waiter, leaving it first (a release may have woken this
-- waiter as its Lock ended). Returns 0.
-- queue_lib.lua comes before it (scripts.go).
local queue, member = KEYS[2], ARGV[3]
if ARGV[1] ~= 'undo' then
	leave(queue, member, ARGV[4])
	-- A release may have woken this waiter as its Lock ended: where the
	-- key is free, the (new) first waiter is told instead.
	if redis.pcall('GET', KEYS[1]) == false then
		wake(queue, redis.sha1hex(member), false)
	end
	return 0
end
local current = redis.call('GET', KEYS[1])
if current ~= ARGV[2] then
	if current == false then
		return -1
	end
	return 0
end
redis.call('DEL', KEYS[1])
-- Back in the queue, as the try put it where it failed; then the key is
-- free, and the first waiter is told, and left first.
join(queue, member, ARGV[4], ARGV[5], false)
if ARGV[6] == '1' then
	wake(queue, redis.sha1hex(ARGV[2]), false)
end
return 1
