-- release_notify.lua: delete the lock on one node if it is still ours, and
-- announce the release to waiters (Unlock, and the undo of a failed try,
-- with release notification).
-- KEYS[1] the lock key; ARGV[1] the owner's value.
-- Returns 1 when deleted, 0 when another owner holds the key, -1 when the
-- key does not exist (it expired).
-- Only a real deletion is announced, on "redsync:released:" .. KEYS[1], with
-- the SHA1 of the value as the message: waiters group the messages of one
-- release across nodes by it, and the value itself is not revealed. When
-- more than one client (one per waiting process) received it, a second
-- message "<SHA1> <receivers>" follows, so that the processes woken by the
-- release can spread their tries; an uncontended release costs one
-- PUBLISH. The PUBLISHes run through pcall so that a user without the
-- right to publish (an ACL) still releases.
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
	redis.call('DEL', KEYS[1])
	local channel = 'redsync:released:' .. KEYS[1]
	local id = redis.sha1hex(ARGV[1])
	local receivers = redis.pcall('PUBLISH', channel, id)
	if type(receivers) == 'number' and receivers > 1 then
		redis.pcall('PUBLISH', channel, id .. ' ' .. receivers)
	end
	return 1
elseif current == false then
	return -1
end
return 0
