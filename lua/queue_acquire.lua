-- queue_acquire.lua: a try of a waiting Lock on one node (see handoff.go):
-- take the lock when it is free, else join (or stay in) the queue of
-- waiters kept next to it, which only decides whom a release wakes.
-- KEYS[1] the lock key; KEYS[2] its queue of waiters (queueKey in
-- handoff.go); ARGV[1] the try's value; ARGV[2] the TTL in ms;
-- ARGV[3] the waiter's member (<Redsync id>:<number>); ARGV[4] its ticket,
-- which orders the queue the same way on every node; ARGV[5] how long the
-- entry lives, in ms, unless a later try renews it.
-- The queue is a sorted set; each entry is '<member>|<end of its life, ms
-- by TIME>', scored with the ticket.
-- Returns 1 when the key now holds ARGV[1] (and the waiter left the
-- queue); when another owner holds the key, 65536 plus a fingerprint of
-- what it holds (as acquire.lua), with the waiter's entry added or
-- renewed; an error reply when the key holds a value of another type.
-- Without TIME in scripts (Redis before 3.2) it acquires as acquire.lua
-- does and keeps no queue.
local queued = redis.replicate_commands ~= nil
if queued then
	-- Redis 3.2 to 4: writes after TIME need effects replication.
	redis.replicate_commands()
end
local current = redis.pcall('GET', KEYS[1])
if type(current) == 'table' and current.err then
	return redis.error_reply('WRONGTYPE the key holds a value that is not a string')
end
local queue = KEYS[2]
-- leave removes the waiter's entry (found by its ticket); a queue of
-- another type is left alone.
local function leave()
	local entries = redis.pcall('ZRANGEBYSCORE', queue, ARGV[4], ARGV[4])
	if type(entries) ~= 'table' or entries.err then
		return
	end
	for _, entry in ipairs(entries) do
		if string.sub(entry, 1, #ARGV[3] + 1) == ARGV[3] .. '|' then
			redis.pcall('ZREM', queue, entry)
		end
	end
end
if current == ARGV[1] or current == false then
	-- Free, or an earlier try of the same owner landed after its reply
	-- was lost.
	redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
	if queued then
		leave()
	end
	return 1
end
-- mayQueue reports whether the user may run every command that keeps an
-- entry in the queue (Redis 7 and later tell; before, it is assumed): one
-- that could add an entry but not remove it would leave entries that
-- releases wake for nothing. Such a user's waiters poll.
local function mayQueue()
	if not redis.acl_check_cmd then
		return true
	end
	local checks = {
		{ 'ZADD', queue, '0', 'm' }, { 'ZREM', queue, 'm' }, { 'ZRANGE', queue, '0', '0' },
		{ 'ZRANGEBYSCORE', queue, '0', '0' }, { 'PTTL', queue }, { 'PEXPIRE', queue, '1' },
	}
	for _, check in ipairs(checks) do
		local ok, allowed = pcall(redis.acl_check_cmd, unpack(check))
		if not ok or not allowed then
			return false
		end
	end
	return true
end
-- Every queue command runs through pcall: a user without the right to
-- them (an ACL) still gets the plain try, and its waiters poll.
local time = queued and mayQueue() and redis.pcall('TIME')
if type(time) == 'table' and not time.err then
	local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
	leave()
	local added = redis.pcall('ZADD', queue, ARGV[4], ARGV[3] .. '|' .. (now + tonumber(ARGV[5])))
	if type(added) == 'number' then
		local ttl = redis.pcall('PTTL', queue)
		if type(ttl) == 'number' and ttl < tonumber(ARGV[5]) then
			redis.pcall('PEXPIRE', queue, ARGV[5])
		end
	end
end
return 65536 + tonumber(string.sub(redis.sha1hex(current), 1, 12), 16)
