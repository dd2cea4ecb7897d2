-- What changed in an account's buckets since a sequence number, with the freshness lines.
-- ARGV: account, since.  Returns {epoch or false, top sequence, n_progress,
--   progress (partition, line) pairs..., changed (field, value) pairs...}
local account, since = ARGV[1], tonumber(ARGV[2])
local out = {redis.call('GET', 'cf:epoch'), since, 0}
local progress = redis.call('HGETALL', 'cf:progress')
out[3] = #progress / 2
for j = 1, #progress do out[#out + 1] = progress[j] end
local changed = redis.call('ZRANGEBYSCORE', 'cf:c:' .. account, '(' .. ARGV[2], '+inf', 'WITHSCORES')
local key = 'cf:b:' .. account
for j = 1, #changed, 2 do
  local score = tonumber(changed[j + 1])
  if score > out[2] then out[2] = score end
  out[#out + 1] = changed[j]
  out[#out + 1] = redis.call('HGET', key, changed[j]) or ''
end
return out
