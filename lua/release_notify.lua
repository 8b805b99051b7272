-- release_notify.lua: delete the lock on one node if it is still ours, and
-- wake the first waiter of its queue (Unlock with release notification).
-- KEYS[1] the lock key; KEYS[2] its queue of waiters (queueKey in
-- handoff.go); ARGV[1] the owner's value; ARGV[2] and ARGV[3], when given,
-- the owner's member and ticket in the queue: an acquisition made by a try
-- of a waiting Lock takes its entry out of the queue of the nodes where
-- that try failed (whatever the key holds).
-- Returns 1 when deleted, 0 when another owner holds the key, -1 when the
-- key does not exist (it expired).
-- The queue is kept by queue_acquire.lua (see there for its entries). It
-- never changes the key: after a real deletion the key is free for any
-- try, and the queue only decides whom to wake (wake, in queue_lib.lua,
-- which scripts.go puts before this). With no live entry, the release is
-- announced on 'redsync:released:' .. KEYS[1] with the SHA1 of the value.
-- The PUBLISHes and the queue commands run through pcall so that a user
-- without the right to them (an ACL) still releases. release_fast.lua,
-- before queue_lib.lua, has already served the common release (no entry
-- of the owner, no queue) when this part runs.
local queue = KEYS[2]
leave(queue, ARGV[2], ARGV[3])
local current = redis.call('GET', KEYS[1])
if current ~= ARGV[1] then
	if current == false then
		return -1
	end
	return 0
end
redis.call('DEL', KEYS[1])
local id = redis.sha1hex(ARGV[1])

if not wake(queue, id, true) then
	redis.pcall('PUBLISH', 'redsync:released:' .. KEYS[1], id)
end
return 1
