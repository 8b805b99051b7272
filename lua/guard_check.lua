-- guard_check.lua: the restart guard's check (WithRestartGuard), the start
-- of every guarded acquire script (scripts.go composes them): the node
-- votes only if its process has been up for at least the guard's span, so
-- that a node that crashed and came back empty cannot grant a lock that
-- another client may still hold.
-- It needs two locals, set before it: markerKey, the guard's marker key
-- (which hashes to the lock keys' cluster slot), and guardSpan, the span
-- (maxTTL) in ms. It returns an error reply starting with RESTARTED when
-- the node is too young, and goes on to the acquisition otherwise.
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
local marker = redis.call('GET', markerKey)
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
		redis.call('SET', markerKey, string.format('%.0f:%.0f', lastsave, start), 'PX', 3600000)
	end
end
local age = nowSec * 1000 + math.floor(tonumber(now[2]) / 1000) - start
if age < tonumber(guardSpan) then
	return redis.error_reply(string.format('RESTARTED node up for %.0f ms, less than the restart guard of %s ms: no vote',
		math.max(age, 0), guardSpan))
end
