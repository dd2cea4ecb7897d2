-- One slot's marker through a rebuild. KEYS[1] = the marker.
-- ARGV[1] = 'begin': mark the slot pending (ARGV[2] = the pending value) unless complete.
-- ARGV[1] = 'finish': complete it (ARGV[3] = the epoch id) only if it still says what the
--   rebuild wrote at its start, so a shard that lost its data meanwhile (and with it the
--   pending mark) stays incomplete. Returns 1 when the slot is complete afterwards.
local value = redis.call('GET', KEYS[1])
local pending = (not value) or string.sub(value, 1, 8) == 'pending:'
if ARGV[1] == 'begin' then
  if pending then redis.call('SET', KEYS[1], ARGV[2]) end
  return 0
end
if value == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[3])
  return 1
end
return pending and 0 or 1
