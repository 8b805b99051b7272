-- guarded_acquire.lua: take the lock on one node, as acquire.lua does, but
-- only if the node process has been up for at least the restart guard's
-- span (WithRestartGuard): a node that crashed and came back empty must not
-- vote while a lock it forgot may still be held.
-- KEYS[1] the lock key; KEYS[2] the guard's marker key, which hashes to the
-- lock key's cluster slot. ARGV[1] the owner's value; ARGV[2] the TTL in ms;
-- ARGV[3] the guard's span (maxTTL) in ms.
-- Returns what acquire.lua returns (1 when the key now holds ARGV[1], 65536
-- plus the holder's fingerprint when another owner holds it), and an error
-- reply starting with RESTARTED when the node is too young.
--
-- The marker caches "LASTSAVE:START", START being the unix time in ms by
-- which the node process had certainly started. A new process sets
-- LASTSAVE to its start time (and every save moves it on), so a marker
-- reloaded from an RDB or AOF file by a later process never matches, and
-- the start is read again from INFO. The marker is not written in the
-- second of LASTSAVE itself: a process restarted within that second would
-- report the same LASTSAVE.
local now = redis.call('TIME')
local nowSec = tonumber(now[1])
local lastsave = redis.call('LASTSAVE')
local start
local marker = redis.call('GET', KEYS[2])
if marker then
	local saved, cached = string.match(marker, '^(%d+):(%d+)$')
	if tonumber(saved) == lastsave then
		start = tonumber(cached)
	end
end
if not start then
	local info = redis.call('INFO', 'server')
	local uptime = tonumber(string.match(info, 'uptime_in_seconds:(%d+)'))
	if not uptime then
		return redis.error_reply('ERR restart guard: INFO server reports no uptime_in_seconds')
	end
	-- Uptime counts whole seconds from a truncated start second: the
	-- process started before the end of that second.
	start = (nowSec - uptime + 1) * 1000
	if nowSec > lastsave then
		redis.call('SET', KEYS[2], string.format('%.0f:%.0f', lastsave, start), 'PX', 3600000)
	end
end
local age = nowSec * 1000 + math.floor(tonumber(now[2]) / 1000) - start
if age < tonumber(ARGV[3]) then
	return redis.error_reply(string.format('RESTARTED node up for %.0f ms, less than the restart guard of %s ms: no vote',
		math.max(age, 0), ARGV[3]))
end

if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
	return 1
end
local current = redis.pcall('GET', KEYS[1])
if type(current) == 'table' and current.err then
	return redis.error_reply('WRONGTYPE the key holds a value that is not a string')
end
if current == ARGV[1] then
	redis.call('PEXPIRE', KEYS[1], ARGV[2])
	return 1
end
return 65536 + tonumber(string.sub(redis.sha1hex(current), 1, 12), 16)
