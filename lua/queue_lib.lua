-- queue_lib.lua: the start of every script that keeps a queue of waiters
-- (see queue_acquire.lua) or frees a lock key with release notification on
-- (queue_acquire.lua, queue_leave.lua, release_notify.lua, transfer.lua,
-- multi_release.lua; scripts.go puts it before each). It defines leave and
-- join, which take a waiter's entry out of a queue and put it in, and
-- wake, which tells the first live waiter of a queue that its key was
-- freed.
local queued = redis.replicate_commands ~= nil
if queued and not redis.REDIS_VERSION_NUM then
	-- Redis 3.2 to 4: writes after TIME need effects replication (Redis 5
	-- and later replicate effects anyway; Redis 7 tells its version).
	redis.replicate_commands()
end

-- leave removes member's entry (found by its ticket) from queue; a queue
-- of another type, or a user without the right (an ACL), is left alone.
local function leave(queue, member, ticket)
	if not queued or not member or member == '' then
		return
	end
	local entries = redis.pcall('ZRANGEBYSCORE', queue, ticket, ticket)
	if type(entries) ~= 'table' or entries.err then
		return
	end
	for _, entry in ipairs(entries) do
		if string.sub(entry, 1, #member + 1) == member .. '|' then
			redis.pcall('ZREM', queue, entry)
		end
	end
end

-- join adds member's entry to queue, scored with its ticket, living life
-- ms on the node's clock, in place of its earlier one unless fresh (no
-- earlier try of the waiter added one), and keeps the queue at least as
-- long. It adds nothing for a user who may not run every command that
-- keeps an entry (Redis 7 and later tell, redis.acl_check_cmd): one that
-- could add an entry but not remove it would leave entries that releases
-- wake for nothing. Such a user's waiters poll.
local function join(queue, member, ticket, life, fresh)
	if not queued then
		return
	end
	if redis.acl_check_cmd then
		for _, check in ipairs({
			{ 'ZADD', queue, '0', 'm' }, { 'ZREM', queue, 'm' }, { 'ZRANGE', queue, '0', '0' },
			{ 'ZRANGEBYSCORE', queue, '0', '0' }, { 'PTTL', queue }, { 'PEXPIRE', queue, '1' },
		}) do
			local ok, allowed = pcall(redis.acl_check_cmd, unpack(check))
			if not ok or not allowed then
				return
			end
		end
	end
	local time = redis.pcall('TIME')
	if type(time) ~= 'table' or time.err then
		return
	end
	local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
	if not fresh then
		leave(queue, member, ticket)
	end
	local added = redis.pcall('ZADD', queue, ticket, member .. '|' .. (now + tonumber(life)))
	if type(added) == 'number' then
		local ttl = redis.pcall('PTTL', queue)
		if type(ttl) == 'number' and ttl < tonumber(life) then
			redis.pcall('PEXPIRE', queue, life)
		end
	end
end

-- wake tells the first live waiter of queue 'turn <member> <id>' on its
-- Redsync's channel ('redsync:wake:<Redsync id>'), where id names the
-- event on every node alike (the SHA1 of the freed value): waiters group
-- the messages of one release across nodes by it. When that PUBLISH
-- reaches nobody on this node (the waiter's process may have ended, and
-- its connections with it; on a Redis Cluster the count covers this
-- node's subscribers only, so it proves nothing), it also tells the next
-- two live waiters of other Redsyncs (than the first's and each other's)
-- that hear it 'next <member> <id> <rank>', ranks 1 and 2: standbys, which
-- try after rank standby waits without a turn of their own, in case the
-- first never comes (a 'next' that reaches nobody names no standby; at
-- most maxTold messages go out). A release whose turn was heard wakes one
-- process. With pop, the
-- first's entry leaves the queue: a release (Unlock) frees the key on
-- every node alike. Without, the queue stays as it is: an undo or a
-- withdrawal may free the key on fewer nodes than a quorum, and taking
-- the head out there alone would set the nodes' queues apart. Entries
-- past their life are removed on the way (at most maxLooked entries
-- looked at). It reports whether it woke a waiter.
-- Every command runs through pcall: a user without the right to one (an
-- ACL) still frees the key, and an entry it cannot remove is skipped.
local function wake(queue, id, pop)
	-- Most releases find no queue: EXISTS tells that for less than ZRANGE
	-- (a user who may not run it, an ACL, looks the long way).
	if not queued or redis.pcall('EXISTS', queue) == 0 then
		return false
	end
	local standbys, maxTold, batch, maxLooked = 2, 8, 8, 1000
	local heard, told, seen, now, from, looked = 0, 0, {}, nil, 0, 0
	while heard < standbys and told < maxTold and looked < maxLooked do
		local entries = redis.pcall('ZRANGE', queue, from, from + batch - 1)
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
		for _, entry in ipairs(entries) do
			looked = looked + 1
			local member, life = string.match(entry, '^(.*)|(%d+)$')
			if member and tonumber(life) > now then
				local process = string.match(member, '^[^:]*')
				local popped = false
				if heard < standbys and told < maxTold and not seen[process] then
					seen[process] = true
					local message = 'turn ' .. member .. ' ' .. id
					if told > 0 then
						message = 'next ' .. member .. ' ' .. id .. ' ' .. (heard + 1)
					end
					local receivers = redis.pcall('PUBLISH', 'redsync:wake:' .. process, message)
					if type(receivers) ~= 'number' then
						-- A user without the right to publish (an ACL)
						-- tells nobody, and takes nobody out.
						return true
					end
					if told == 0 and pop then
						popped = redis.pcall('ZREM', queue, entry) == 1
					end
					if told == 0 and receivers > 0 then
						return true -- heard: no standbys
					end
					told = told + 1
					if told > 1 and receivers > 0 then
						heard = heard + 1
					end
				end
				if not popped then
					from = from + 1
				end
			else
				local removed = redis.pcall('ZREM', queue, entry)
				if type(removed) ~= 'number' or removed == 0 then
					from = from + 1
				end
			end
		end
		if #entries < batch then
			break -- the end of the queue
		end
		batch = 64 -- past the head: many waiters of one process, or dead ones
	end
	return told > 0
end
