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
-- try, and the queue only decides whom to wake. The first live entry is
-- taken out of the queue and its waiter told on its Redsync's channel
-- 'redsync:wake:<Redsync id>' with 'turn <member> <id>', and the next two
-- live waiters with 'next <member> <id> <rank>' (standbys: each tries
-- after rank standby waits without a turn, in case the first never comes),
-- where <id> is the SHA1 of the released value: waiters group the
-- messages of one release across nodes by it. Entries past their life are
-- dropped on the way. With no live entry, the release is announced on
-- 'redsync:released:' .. KEYS[1] with the SHA1. The PUBLISHes and the
-- queue commands run through pcall so that a user without the right to
-- them (an ACL) still releases.
local queued = redis.replicate_commands ~= nil
if queued then
	-- Redis 3.2 to 4: writes after TIME need effects replication.
	redis.replicate_commands()
end
local queue = KEYS[2]
if queued and ARGV[2] and ARGV[2] ~= '' then
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
if current ~= ARGV[1] then
	if current == false then
		return -1
	end
	return 0
end
redis.call('DEL', KEYS[1])
local id = redis.sha1hex(ARGV[1])

-- wake tells the first live waiter of the queue its turn and the next
-- ones that they stand by, and reports whether there was a live waiter.
local standbys = 2
local function wake()
	if not queued then
		return false
	end
	local picked, now, i = {}, nil, 0
	while #picked < standbys + 1 do
		local entries = redis.pcall('ZRANGE', queue, i, i)
		if type(entries) ~= 'table' or entries.err or #entries == 0 then
			break
		end
		if not now then
			local time = redis.pcall('TIME')
			if type(time) ~= 'table' or time.err then
				break
			end
			now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
		end
		local member, life = string.match(entries[1], '^(.*)|(%d+)$')
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
		return false
	end
	redis.pcall('ZREM', queue, picked[1][1])
	for k, pick in ipairs(picked) do
		local member = pick[2]
		local message = 'turn ' .. member .. ' ' .. id
		if k > 1 then
			message = 'next ' .. member .. ' ' .. id .. ' ' .. (k - 1)
		end
		redis.pcall('PUBLISH', 'redsync:wake:' .. string.match(member, '^[^:]*'), message)
	end
	return true
end

if not wake() then
	redis.pcall('PUBLISH', 'redsync:released:' .. KEYS[1], id)
end
return 1
