-- fence_advance.lua: the second round of a fenced acquisition: raise the
-- node's fencing counter to the new token, only while the lock key still
-- holds our value.
-- KEYS[1] the lock key; KEYS[2] the fencing counter, which hashes to the
-- lock key's cluster slot. ARGV[1] the owner's value; ARGV[2] the token, a
-- decimal string without leading zeros.
-- Returns 1 when the counter now holds at least the token, 0 when another
-- owner holds the lock key, and an error reply starting with LOCKGONE when
-- the lock key no longer exists (it expired between the two rounds).
--
-- The counter is written only while our lock key is present: a later
-- holder's acquire on this node can only come after our key is gone, so it
-- reads a counter of at least our token. The counter never goes down ("set
-- only if greater"), so a slow write of an older token cannot undo a newer
-- one. Tokens are compared as decimal strings (length, then digits), which
-- is exact for every 64-bit value, where Lua numbers are not.
local current = redis.call('GET', KEYS[1])
if current == false then
	return redis.error_reply('LOCKGONE the lock key expired before the fencing token was written')
elseif current ~= ARGV[1] then
	return 0
end
local stored = redis.call('GET', KEYS[2])
if stored and not (stored == '0' or string.match(stored, '^[1-9]%d*$')) then
	return redis.error_reply('ERR fencing counter ' .. KEYS[2] .. ' holds ' ..
		string.format('%q', string.sub(stored, 1, 40)) .. ', not a token')
end
if not stored or #stored < #ARGV[2] or (#stored == #ARGV[2] and stored < ARGV[2]) then
	redis.call('SET', KEYS[2], ARGV[2])
end
return 1
