-- multi_acquire.lua: take a lock on several keys on one node (a Mutex of
-- NewMultiMutex): every key, or none. scripts.go composes it with the
-- restart guard's check and fencing, as acquire.lua; it needs the local n,
-- set before it: the number of lock keys.
-- KEYS[1..n] the lock keys; ARGV[1] the owner's value; ARGV[2] the TTL in
-- ms.
-- Returns 1 when every key now holds ARGV[1]; when another owner holds one
-- of them, 65536 plus a fingerprint of that owner's value (as acquire.lua)
-- and no key is written; an error reply when a key holds a value of
-- another type. Keys that hold ARGV[1] already (an earlier try of the same
-- owner that landed after its reply was lost) count as free.
for i = 1, n do
	local current = redis.pcall('GET', KEYS[i])
	if type(current) == 'table' and current.err then
		return redis.error_reply('WRONGTYPE the key ' .. KEYS[i] .. ' holds a value that is not a string')
	end
	if current and current ~= ARGV[1] then
		return 65536 + tonumber(string.sub(redis.sha1hex(current), 1, 12), 16)
	end
end
for i = 1, n do
	redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
end
return 1
