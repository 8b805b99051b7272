-- queue_acquire.lua: a try of a waiting Lock on one node (see handoff.go):
-- take the lock when it is free, else join (or stay in) the queue of
-- waiters kept next to it, which only decides whom a release wakes.
-- KEYS[1] the lock key; KEYS[2] its queue of waiters (queueKey in
-- handoff.go); ARGV[1] the try's value; ARGV[2] the TTL in ms;
-- ARGV[3] the waiter's member (<Redsync id>:<number>); ARGV[4] its ticket,
-- which orders the queue the same way on every node; ARGV[5] how long the
-- entry lives, in ms, unless a later try renews it; ARGV[6] '1' when no
-- try of this waiter added an entry before (there is none to remove).
-- The queue is a sorted set; each entry is '<member>|<end of its life, ms
-- by TIME>', scored with the ticket.
-- Returns 1 when the key now holds ARGV[1] (and the waiter left the
-- queue); when another owner holds the key, 65536 plus a fingerprint of
-- what it holds (as acquire.lua), with the waiter's entry added or
-- renewed; an error reply when the key holds a value of another type.
-- Without TIME in scripts (Redis before 3.2) it acquires as acquire.lua
-- does and keeps no queue. queue_lib.lua comes before it (scripts.go).
local current = redis.pcall('GET', KEYS[1])
if type(current) == 'table' and current.err then
	return redis.error_reply('WRONGTYPE the key holds a value that is not a string')
end
local queue = KEYS[2]
if current == ARGV[1] or current == false then
	-- Free, or an earlier try of the same owner landed after its reply
	-- was lost.
	redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
	if ARGV[6] ~= '1' then
		leave(queue, ARGV[3], ARGV[4])
	end
	return 1
end
join(queue, ARGV[3], ARGV[4], ARGV[5], ARGV[6] == '1')
return 65536 + tonumber(string.sub(redis.sha1hex(current), 1, 12), 16)
