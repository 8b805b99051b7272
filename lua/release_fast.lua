-- release_fast.lua: the start of release_notify.lua (scripts.go puts it
-- before queue_lib.lua and release_notify.lua), the release that most
-- Unlocks are: the owner has no entry to take out of the queue (ARGV[2]
-- not given) and nobody is queued for the key. It does what the rest
-- would do then, without defining the queue's functions first: frees the
-- key if it still holds ARGV[1] and announces the release on
-- 'redsync:released:' .. KEYS[1]; it falls through to the rest, having
-- written nothing, when there is an entry to take out or a queue to wake
-- (or a user who may not run EXISTS, an ACL, whom the rest serves).
if not ARGV[2] or ARGV[2] == '' then
	local current = redis.call('GET', KEYS[1])
	if current ~= ARGV[1] then
		if current == false then
			return -1
		end
		return 0
	end
	if redis.pcall('EXISTS', KEYS[2]) == 0 then
		redis.call('DEL', KEYS[1])
		redis.pcall('PUBLISH', 'redsync:released:' .. KEYS[1], redis.sha1hex(ARGV[1]))
		return 1
	end
end
