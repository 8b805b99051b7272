-- transfer.lua: hand the lock from its holder straight to the next owner
-- on one node (a local hand-off, see transfer.go), or undo such a hand-off.
-- KEYS[1] the lock key; ARGV[1] the holder's value; ARGV[2] the next
-- owner's value; ARGV[3] the next owner's TTL in ms; ARGV[4] "undo" to
-- delete the key when it holds either value.
-- Hand-off: returns 1 when the key held the holder's value (or, on a
-- repeat, the next owner's) and now holds the next owner's; 2 when the
-- key did not exist and now holds the next owner's; 0 when another owner
-- holds the key, which is left alone.
-- Undo: returns 1 when the key was deleted, -1 when it did not exist, 0
-- when another owner holds it.
local current = redis.call('GET', KEYS[1])
if ARGV[4] == 'undo' then
	if current == ARGV[1] or current == ARGV[2] then
		redis.call('DEL', KEYS[1])
		return 1
	elseif current == false then
		return -1
	end
	return 0
end
if current == ARGV[1] or current == ARGV[2] then
	redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
	return 1
elseif current == false then
	redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
	return 2
end
return 0
