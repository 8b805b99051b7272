-- acquire.lua: take the lock on one node.
-- KEYS[1] the lock key; ARGV[1] the owner's value; ARGV[2] the TTL in ms.
-- Returns 1 when the key now holds ARGV[1]; when another owner holds it,
-- 65536 plus a fingerprint of that owner's value (the first 48 bits of its
-- SHA1), so that the client can tell one owner on several nodes from
-- several owners; an error reply when the key holds a value of another
-- type.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
	return 1
end
local current = redis.pcall('GET', KEYS[1])
if type(current) == 'table' and current.err then
	return redis.error_reply('WRONGTYPE the key holds a value that is not a string')
end
-- An earlier try of the same owner may have landed after its reply was
-- lost; the key is ours, so renew it instead of counting it as taken.
if current == ARGV[1] then
	redis.call('PEXPIRE', KEYS[1], ARGV[2])
	return 1
end
return 65536 + tonumber(string.sub(redis.sha1hex(current), 1, 12), 16)
