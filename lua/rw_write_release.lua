-- rw_write_release.lua: release the writer's side of a reader-writer lock
-- on one node (RWMutex.Unlock).
-- KEYS[1] the writer key W; KEYS[2] the waiting-writer mark Q (see
-- rw_write_acquire.lua). ARGV[1] the writer's value; ARGV[2] the intent id
-- of the writer's RWMutex.
-- Deletes W if it holds ARGV[1], and Q if it holds ARGV[2]: the mark that a
-- try of this writer left where readers stayed a moment longer than on the
-- nodes that granted it (the mark of another waiting writer stays).
-- Returns 1 when W was deleted, 0 when another owner holds it, -1 when it
-- does not exist (it expired), as release.lua. The undo of a failed try
-- is release.lua on W: the writer still waits, and its mark stays.
local current = redis.call('GET', KEYS[1])
if redis.pcall('GET', KEYS[2]) == ARGV[2] then
	redis.call('DEL', KEYS[2])
end
if current == ARGV[1] then
	redis.call('DEL', KEYS[1])
	return 1
elseif current == false then
	return -1
end
return 0
