-- queue_leave.lua: on one node, undo the failed try of a waiting Lock, or
-- take a waiter out of the queue when its Lock ends (see handoff.go and
-- queue_acquire.lua for the queue).
-- KEYS[1] the lock key; KEYS[2] its queue of waiters (queueKey in
-- handoff.go); KEYS[3] the count of releases in a row that gave a turn,
-- and when the first did (streakKey: '<count> <ms by TIME>'); ARGV[1] 'undo' or 'withdraw'; ARGV[2] the try's
-- value (undo); ARGV[3] the waiter's member; ARGV[4] its ticket; ARGV[5]
-- the entry's life in ms (undo).
-- undo: where the key holds the try's value, delete it, put the waiter
-- (which goes on waiting) back in the queue, and give the turn to the first
-- live waiter, as release_notify.lua does. Returns 1 when deleted, 0 when
-- another owner holds the key, -1 when it does not exist.
-- withdraw: remove the waiter's entry; where the key is the waiter's turn,
-- pass the turn on to the next live waiter (or free the key). Returns 1
-- when the key was the waiter's turn, else 0.
local queued = redis.replicate_commands ~= nil
if queued then
	-- Redis 3.2 to 4: writes after TIME need effects replication.
	redis.replicate_commands()
end
local current = redis.call('GET', KEYS[1])
local member = ARGV[3]
local queue, streak = KEYS[2], KEYS[3]

-- mayQueue reports whether the user may run every command that keeps an
-- entry in the queue (Redis 7 and later tell; before, it is assumed): one
-- that could add an entry but not remove it would leave entries that get
-- turns nobody takes. Such a user's waiters poll.
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

-- nodeTime is the node's clock in ms, or nil when TIME is not allowed.
local function nodeTime()
	local time = redis.pcall('TIME')
	if type(time) ~= 'table' or time.err then
		return nil
	end
	return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

-- leave removes the waiter's entry (found by its ticket).
local function leave()
	local entries = redis.pcall('ZRANGEBYSCORE', queue, ARGV[4], ARGV[4])
	if type(entries) ~= 'table' or entries.err then
		return
	end
	for _, entry in ipairs(entries) do
		if string.sub(entry, 1, #member + 1) == member .. '|' then
			redis.pcall('ZREM', queue, entry)
		end
	end
end

-- designate gives the turn to the first live waiter of the queue, tells
-- it, and names the next standbys live waiters as standbys of rank 1, 2,
-- ...: a standby of rank r tries after r turn windows without a turn of
-- its own (so a live waiter is tried after up to standbys crashed ones).
-- A release that finds a live waiter when maxStreak releases in a row
-- (this one included) did, over streakSpan ms at least, leaves the key
-- free instead, announces it on 'redsync:released:' .. KEYS[1] for the
-- clients that poll, and names the first live waiters standbys from
-- rank 1: pollers are not kept out for good by the queue. It reports
-- whether there was a live waiter. Every queue command runs through
-- pcall: a user without the right to one (an ACL) still releases; an
-- entry it cannot remove is skipped, and removed by its waiter's try.
local standbys, maxStreak, streakSpan = 2, 16, 1000
local function designate(id)
	if not queued then
		return false
	end
	local picked, now, i = {}, nil, 0
	while #picked < standbys + 1 do
		local entries = redis.pcall('ZRANGE', queue, i, i)
		if type(entries) ~= 'table' or entries.err or #entries == 0 then
			break
		end
		local member, life = string.match(entries[1], '^(.*)|(%d+)$')
		if not now then
			local time = redis.pcall('TIME')
			if type(time) ~= 'table' or time.err then
				break
			end
			now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
		end
		if member and tonumber(life) > now then
			picked[#picked + 1] = { entries[1], member }
			i = i + 1
		else
			local removed = redis.pcall('ZREM', queue, entries[1])
			if type(removed) ~= 'number' or removed == 0 then
				i = i + 1
			end
		end
	end
	if #picked == 0 then
		redis.pcall('DEL', streak)
		return false
	end
	local first, count, since = 2, 1, now
	local state = redis.pcall('GET', streak)
	if type(state) == 'string' then
		local c, s = string.match(state, '^(%d+) (%d+)$')
		if c then
			count, since = tonumber(c) + 1, tonumber(s)
		end
	end
	if count >= maxStreak and now - since >= streakSpan then
		redis.pcall('DEL', streak)
		redis.pcall('PUBLISH', 'redsync:released:' .. KEYS[1], id)
		first = 1
	else
		local ttl = redis.pcall('PTTL', queue)
		if type(ttl) ~= 'number' or ttl < streakSpan then
			ttl = streakSpan
		end
		redis.pcall('SET', streak, count .. ' ' .. since, 'PX', ttl)
		local head = picked[1][2]
		redis.pcall('ZREM', queue, picked[1][1])
		redis.call('SET', KEYS[1], 'redsync:turn:' .. head, 'PX', 100)
		redis.pcall('PUBLISH', 'redsync:wake:' .. string.match(head, '^[^:]*'), 'turn ' .. head .. ' ' .. id)
	end
	for k = first, math.min(#picked, first + standbys - 1) do
		local standby = picked[k][2]
		redis.pcall('PUBLISH', 'redsync:wake:' .. string.match(standby, '^[^:]*'),
			'next ' .. standby .. ' ' .. id .. ' ' .. (k - first + 1))
	end
	return true
end

if ARGV[1] == 'undo' then
	if current ~= ARGV[2] then
		if current == false then
			return -1
		end
		return 0
	end
	redis.call('DEL', KEYS[1])
	local now = queued and mayQueue() and nodeTime()
	if now then
		leave()
		local added = redis.pcall('ZADD', queue, ARGV[4], member .. '|' .. (now + tonumber(ARGV[5])))
		if type(added) == 'number' then
			local ttl = redis.pcall('PTTL', queue)
			if type(ttl) == 'number' and ttl < tonumber(ARGV[5]) then
				redis.pcall('PEXPIRE', queue, ARGV[5])
			end
		end
	end
	designate(redis.sha1hex(ARGV[2]))
	return 1
end
if queued then
	leave()
end
if current == 'redsync:turn:' .. member then
	redis.call('DEL', KEYS[1])
	designate(redis.sha1hex(current))
	return 1
end
return 0
