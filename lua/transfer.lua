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
-- Undo: returns 1 when the key was deleted, -1 when it did not exist, 0
-- when another owner holds it.
local current = redis.call('GET', KEYS[1])
if ARGV[4] == 'undo' then
	if current == ARGV[1] or current == ARGV[2] then
		redis.call('DEL', KEYS[1])
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
local member = ARGV[5]
local queue = KEYS[2]
local function leave(who, ticket)
	if not who or who == '' then
		return
	end
	local entries = redis.pcall('ZRANGEBYSCORE', queue, ticket, ticket)
	if type(entries) == 'table' and not entries.err then
		for _, entry in ipairs(entries) do
			if string.sub(entry, 1, #who + 1) == who .. '|' then
				redis.pcall('ZREM', queue, entry)
			end
		end
	end
end
leave(member, ARGV[6])
leave(ARGV[7], ARGV[8])
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
