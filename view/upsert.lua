-- Versioned upserts of bucket values, progress lines and counters, in one atomic call.
-- ARGV: n_buckets, n_progress, n_metrics,
--       then n_progress pairs (partition, line), n_metrics pairs (field, increment),
--       then n_buckets quintuples (account, field, version, calls, micro).
-- A bucket is written only when its version is newer than the stored one, so late writers
-- (a rebuild, a zombie worker) can never move a bucket backwards.
local n_buckets, n_progress, n_metrics = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local i = 4
for _ = 1, n_progress do
  -- Progress never moves back: a late writer (a zombie, a slow heartbeat) reports less.
  local stored = redis.call('HGET', 'cf:progress', ARGV[i])
  local applied = tonumber(string.match(ARGV[i + 1], '^(-?%d+),'))
  if (not stored) or tonumber(string.match(stored, '^(-?%d+),')) <= applied then
    redis.call('HSET', 'cf:progress', ARGV[i], ARGV[i + 1])
  end
  i = i + 2
end
for _ = 1, n_metrics do
  redis.call('HINCRBY', 'cf:metrics', ARGV[i], ARGV[i + 1])
  i = i + 2
end
local written = 0
for _ = 1, n_buckets do
  local account, field, version = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local key = 'cf:b:' .. account
  local current = redis.call('HGET', key, field)
  if (not current) or tonumber(string.match(current, '^(%d+):')) < version then
    redis.call('HSET', key, field, ARGV[i + 2] .. ':' .. ARGV[i + 3] .. ':' .. ARGV[i + 4])
    local seq = redis.call('INCR', 'cf:v:' .. account)
    redis.call('ZADD', 'cf:c:' .. account, seq, field)
    redis.call('SADD', 'cf:accounts', account)
    written = written + 1
  end
  i = i + 5
end
return written
