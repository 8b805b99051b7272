-- fence_advance.lua: the second round of a fenced acquisition: raise the
-- node's fencing counters to the new token, only while the lock keys still
-- hold our value, and only where every counter is below the token.
-- KEYS[1..n] the lock keys (one, or those of a multi-key lock);
-- KEYS[n+1..2n] their fencing counters, in the same order, which hash to
-- the lock keys' cluster slot. ARGV[1] the owner's value; ARGV[2] the
-- token, a decimal string without leading zeros.
-- Returns 1 when this script raised the counters to the token, 0 when
-- another owner holds a lock key, an error reply starting with LOCKGONE
-- when a lock key no longer exists (it expired, or vanished, between the
-- two rounds), and one starting with FENCED when a counter is already at
-- or above the token; in those cases it writes nothing.
--
-- A node confirms the token only by raising its counters to it while our
-- lock keys are there: the counter never goes down, so of two acquisitions
-- confirmed on the same node, the one confirmed later has the greater
-- token, and any two quorums share a node (see fencing.go). A counter
-- already at or above the token was raised by another acquisition, which
-- may have held the lock with that token: it had this node before our key
-- landed here (our acquire command arrived late, or its reply was lost),
-- and counting the node would hand that token out a second time. Tokens
-- are compared as decimal strings (length, then digits), which is exact
-- for every 64-bit value, where Lua numbers are not.
local n = #KEYS / 2
for i = 1, n do
	local current = redis.call('GET', KEYS[i])
	if current == false then
		return redis.error_reply('LOCKGONE the lock key expired before the fencing token was written')
	elseif current ~= ARGV[1] then
		return 0
	end
end
for i = n + 1, #KEYS do
	local stored = redis.call('GET', KEYS[i])
	if stored and not (stored == '0' or string.match(stored, '^[1-9]%d*$')) then
		return redis.error_reply('ERR fencing counter ' .. KEYS[i] .. ' holds ' ..
			string.format('%q', string.sub(stored, 1, 40)) .. ', not a token')
	end
	if stored and (#stored > #ARGV[2] or (#stored == #ARGV[2] and stored >= ARGV[2])) then
		return redis.error_reply('FENCED fencing counter ' .. KEYS[i] .. ' is at ' .. stored ..
			', not below token ' .. ARGV[2] .. ': another holder took this node first')
	end
end
for i = n + 1, #KEYS do
	redis.call('SET', KEYS[i], ARGV[2])
end
return 1
