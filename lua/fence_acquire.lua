-- fence_acquire.lua: the end of the fenced acquire scripts (WithFencing).
-- fencing.go builds each fenced script from an unfenced one, so that the
-- locking logic stays in one place:
--
--   local function acquire()
--   <acquire.lua or guarded_acquire.lua>
--   end
--   <this file>
--
-- The keys are those of the unfenced script followed by the fencing
-- counter (the last key, which hashes to the lock key's cluster slot); the
-- arguments are those of the unfenced script followed by the proposed
-- token (the last argument: a decimal string without leading zeros).
-- Returns {status, counter}: status as the unfenced script returns it (1
-- acquired, 65536 plus the holder's fingerprint when taken by another
-- owner), counter the node's fencing counter
-- before this script, as a decimal string ("0" when the key does not
-- exist). An error reply of the unfenced script is returned as is.
--
-- When the lock was acquired and the counter is below the proposed token,
-- the counter is raised to it, in the same atomic step as the acquisition:
-- if every node of a quorum reports a counter below the proposal, the
-- proposal is the token, with no second round (see fencing.go).
--
-- The counter is read before the lock is taken, so that a counter key that
-- holds something else fails the script before it writes anything.
-- Tokens are compared as decimal strings (length, then digits), which is
-- exact for every 64-bit value, where Lua numbers are not.
local counterKey, proposed = KEYS[#KEYS], ARGV[#ARGV]
local counter = redis.call('GET', counterKey)
if not counter then
	counter = '0'
elseif not (counter == '0' or string.match(counter, '^[1-9]%d*$')) then
	return redis.error_reply('ERR fencing counter ' .. counterKey .. ' holds ' ..
		string.format('%q', string.sub(counter, 1, 40)) .. ', not a token')
end
local status = acquire()
if type(status) == 'table' then
	return status
end
if status == 1 and (#counter < #proposed or (#counter == #proposed and counter < proposed)) then
	redis.call('SET', counterKey, proposed)
end
return {status, counter}
