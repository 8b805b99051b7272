-- release_notify.lua: delete the lock on one node if it is still ours, and
-- give the free lock's turn to the first waiter of its queue (Unlock, and
-- the undo of a failed first try, with release notification).
-- KEYS[1] the lock key; KEYS[2] its queue of waiters (queueKey in
-- handoff.go); KEYS[3] the count of releases in a row that gave a turn,
-- and when the first did (streakKey: '<count> <ms by TIME>'); ARGV[1] the owner's value; ARGV[2] and ARGV[3],
-- when given, the owner's member and ticket in the queue of waiters: an
-- acquisition made by a try of a waiting Lock takes its entry out of the
-- queue of the nodes where that try failed (whatever the key holds).
-- Returns 1 when deleted, 0 when another owner holds the key, -1 when the
-- key does not exist (it expired).
-- The queue of waiters is kept by queue_acquire.lua (see there for its
-- key and entries). After a real deletion, the first live entry is taken
-- out of the queue and the lock key set to 'redsync:turn:<member>' for
-- 100 ms: only that waiter's try takes the lock then (any try once the
-- turn has expired). The waiter is told on its Redsync's channel
-- 'redsync:wake:<Redsync id>' with 'turn <member> <id>', and the next two
-- live entries with 'next <member> <id> <rank>' (standbys, see designate),
-- where <id> is the SHA1 of the released value: waiters group the
-- messages of one release across nodes by it. Entries past their life are
-- dropped on the way. With no live entry, or once in a long run of
-- releases that found one (see designate), the release is announced on
-- 'redsync:released:' .. KEYS[1] with the SHA1 as before. The PUBLISHes
-- and the queue commands run through pcall so that a user without the
-- right to them (an ACL) still releases.
local queued = redis.replicate_commands ~= nil
if queued then
	-- Redis 3.2 to 4: writes after TIME need effects replication.
	redis.replicate_commands()
end
local queue, streak = KEYS[2], KEYS[3]
if ARGV[2] and ARGV[2] ~= '' then
	local entries = redis.pcall('ZRANGEBYSCORE', queue, ARGV[3], ARGV[3])
	if type(entries) == 'table' and not entries.err then
		for _, entry in ipairs(entries) do
			if string.sub(entry, 1, #ARGV[2] + 1) == ARGV[2] .. '|' then
				redis.pcall('ZREM', queue, entry)
			end
		end
	end
end
local current = redis.call('GET', KEYS[1])
local stale = ARGV[2] and ARGV[2] ~= '' and current == 'redsync:turn:' .. ARGV[2]
if current ~= ARGV[1] and not stale then
	if current == false then
		return -1
	end
	return 0
end
-- A turn given to the owner after its try had already taken the lock
-- elsewhere (its entry was still here) is nobody's: it passes on, though
-- the node did not hold the owner's value.
redis.call('DEL', KEYS[1])
local id = redis.sha1hex(ARGV[1])

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

if not designate(id) then
	redis.pcall('PUBLISH', 'redsync:released:' .. KEYS[1], id)
end
if stale then
	return 0
end
return 1
