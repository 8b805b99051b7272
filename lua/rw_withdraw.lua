-- rw_withdraw.lua: take a waiting writer's mark back on one node, once its
-- Lock gave up (see rw_write_acquire.lua), so that it keeps readers out no
-- longer.
-- KEYS[1] the waiting-writer mark Q; ARGV[1] the intent id of the writer's
-- RWMutex.
-- Returns 1 when Q held ARGV[1] and was deleted, 0 otherwise (the mark of
-- another waiting writer stays).
if redis.pcall('GET', KEYS[1]) == ARGV[1] then
	redis.call('DEL', KEYS[1])
	return 1
end
return 0
