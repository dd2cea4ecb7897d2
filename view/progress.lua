-- Progress lines, never moved back: a late writer (a zombie, a slow heartbeat) reports less.
-- KEYS[1] = the progress hash; ARGV = (partition, line) pairs.
for i = 1, #ARGV, 2 do
  local stored = redis.call('HGET', KEYS[1], ARGV[i])
  local applied = tonumber(string.match(ARGV[i + 1], '^(-?%d+),'))
  if (not stored) or tonumber(string.match(stored, '^(-?%d+),')) <= applied then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return 0
