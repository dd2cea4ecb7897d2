-- Completes one slot's marker: only if it still says what the rebuild wrote at its start, so
-- a shard that lost its data meanwhile (and with it the pending marker) stays incomplete.
-- KEYS[1] = the marker; ARGV[1] = the pending value, ARGV[2] = the new epoch id.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
