-- fence_acquire.lua: the end of the fenced acquire scripts (WithFencing).
-- scripts.go builds each fenced script from an unfenced one, so that the
-- locking logic stays in one place:
--
--   local firstCounter = <index of the first counter key>
--   local function acquire()
--   <the unfenced script: acquire.lua or multi_acquire.lua, after
--    guard_check.lua with the restart guard>
--   end
--   <this file>
--
-- The keys are those of the unfenced script followed by the fencing
-- counters, one per lock key (KEYS[firstCounter..], each hashing to the
-- lock keys' cluster slot); the arguments are those of the unfenced script
-- followed by the proposed token (the last argument: a decimal string
-- without leading zeros).
-- Returns {status, counter}: status as the unfenced script returns it (1
-- acquired, 65536 plus the holder's fingerprint when taken by another
-- owner), counter the highest of the node's fencing counters before this
-- script, as a decimal string ("0" when no counter key exists). An error
-- reply of the unfenced script is returned as is.
--
-- When the lock was acquired and the counters are below the proposed
-- token, they are raised to it, in the same atomic step as the acquisition:
-- if every node of a quorum reports a counter below the proposal, the
-- proposal is the token, with no second round (see fencing.go).
--
-- The counters are read before the lock is taken, so that a counter key
-- that holds something else fails the script before it writes anything.
-- Tokens are compared as decimal strings (length, then digits), which is
-- exact for every 64-bit value, where Lua numbers are not.
local proposed = ARGV[#ARGV]
local counter = '0'
for i = firstCounter, #KEYS do
	local c = redis.call('GET', KEYS[i])
	if not c then
		c = '0'
	elseif not (c == '0' or string.match(c, '^[1-9]%d*$')) then
		return redis.error_reply('ERR fencing counter ' .. KEYS[i] .. ' holds ' ..
			string.format('%q', string.sub(c, 1, 40)) .. ', not a token')
	end
	if #c > #counter or (#c == #counter and c > counter) then
		counter = c
	end
end
local status = acquire()
if type(status) == 'table' then
	return status
end
if status == 1 and (#counter < #proposed or (#counter == #proposed and counter < proposed)) then
	for i = firstCounter, #KEYS do
		redis.call('SET', KEYS[i], proposed)
	end
end
return {status, counter}
