-- queue_leave.lua: on one node, undo the failed try of a waiting Lock, or
-- take a waiter out of the queue when its Lock ends (see handoff.go and
-- queue_acquire.lua for the queue).
-- KEYS[1] the lock key; KEYS[2] its queue of waiters (queueKey in
-- handoff.go); ARGV[1] 'undo' or 'withdraw'; ARGV[2] the try's value
-- (undo); ARGV[3] the waiter's member; ARGV[4] its ticket; ARGV[5] the
-- entry's life in ms (undo).
-- undo: where the key holds the try's value, delete it and put the waiter
-- (which goes on waiting) back in the queue. Returns 1 when deleted, 0
-- when another owner holds the key, -1 when it does not exist. It wakes
-- nobody: the try took the key on too few nodes for a quorum, and every
-- process that tried at the same time tries again after a short back-off.
-- withdraw: remove the waiter's entry. Returns 0.
local queued = redis.replicate_commands ~= nil
if queued then
	-- Redis 3.2 to 4: writes after TIME need effects replication.
	redis.replicate_commands()
end
local member, queue = ARGV[3], KEYS[2]

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

if ARGV[1] ~= 'undo' then
	if queued then
		leave()
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
if not queued then
	return 1
end
-- Back in the queue, as the try put it where it failed; only a user that
-- may run every queue command adds entries (see queue_acquire.lua).
if redis.acl_check_cmd then
	for _, check in ipairs({
		{ 'ZADD', queue, '0', 'm' }, { 'ZREM', queue, 'm' }, { 'ZRANGE', queue, '0', '0' },
		{ 'ZRANGEBYSCORE', queue, '0', '0' }, { 'PTTL', queue }, { 'PEXPIRE', queue, '1' },
	}) do
		local ok, allowed = pcall(redis.acl_check_cmd, unpack(check))
		if not ok or not allowed then
			return 1
		end
	end
end
local time = redis.pcall('TIME')
if type(time) == 'table' and not time.err then
	local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
	leave()
	local added = redis.pcall('ZADD', queue, ARGV[4], member .. '|' .. (now + tonumber(ARGV[5])))
	if type(added) == 'number' then
		local ttl = redis.pcall('PTTL', queue)
		if type(ttl) == 'number' and ttl < tonumber(ARGV[5]) then
			redis.pcall('PEXPIRE', queue, ARGV[5])
		end
	end
end
return 1
