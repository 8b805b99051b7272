-- release_notify.lua: delete the lock on one node if it is still ours, and
-- announce the release to waiters (Unlock, and the undo of a failed try,
-- with release notification).
-- KEYS[1] the lock key; ARGV[1] the owner's value.
-- Returns 1 when deleted, 0 when another owner holds the key, -1 when the
-- key does not exist (it expired).
-- Only a real deletion is announced, on "redsync:released:" .. KEYS[1], with
-- the message "<SHA1 of the value> <listeners>": waiters group the messages
-- of one release across nodes by the SHA1 (the value itself is not
-- revealed), and listeners, the clients subscribed to the channel on this
-- node (PUBSUB NUMSUB; 0 when unknown), tells them how many processes
-- compete, to spread their retries. PUBSUB and PUBLISH run through pcall
-- so that a user without the right to them (an ACL) still releases.
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
	redis.call('DEL', KEYS[1])
	local channel = 'redsync:released:' .. KEYS[1]
	local listeners = 0
	local numsub = redis.pcall('PUBSUB', 'NUMSUB', channel)
	if type(numsub) == 'table' and type(numsub[2]) == 'number' then
		listeners = numsub[2]
	end
	redis.pcall('PUBLISH', channel, redis.sha1hex(ARGV[1]) .. ' ' .. listeners)
	return 1
elseif current == false then
	return -1
end
return 0
