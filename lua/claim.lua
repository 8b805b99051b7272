-- claim.lua: tell the other processes woken by a release that the lock has
-- been taken again, so that those still waiting out their spread do not
-- send a try that would fail (see lockWait.spreadDelay).
-- KEYS[1] the lock key; ARGV[1] the SHA1 of the released value, as the
-- release announced it.
-- Publishes "<SHA1> claimed" on "redsync:released:" .. KEYS[1] through
-- pcall (a user without the right to publish is not an error: the claim
-- is a hint). Returns 1.
redis.pcall('PUBLISH', 'redsync:released:' .. KEYS[1], ARGV[1] .. ' claimed')
return 1
