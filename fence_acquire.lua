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
-- arguments are those of the unfenced script.
-- Returns {status, counter}: status as the unfenced script returns it (1
-- acquired, 0 taken by another owner), counter the node's fencing counter
-- as a decimal string ("0" when the key does not exist). An error reply of
-- the unfenced script is returned as is.
--
-- The counter is read before the lock is taken, so that a counter key that
-- holds something else fails the script before it writes anything.
local counter = redis.call('GET', KEYS[#KEYS])
if not counter then
	counter = '0'
elseif not (counter == '0' or string.match(counter, '^[1-9]%d*$')) then
	return redis.error_reply('ERR fencing counter ' .. KEYS[#KEYS] .. ' holds ' ..
		string.format('%q', string.sub(counter, 1, 40)) .. ', not a token')
end
local status = acquire()
if type(status) == 'table' then
	return status
end
return {status, counter}
