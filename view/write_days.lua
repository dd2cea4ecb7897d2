-- Versioned writes of an account's days, with their month rows and change stamps: one call.
-- KEYS[1] = the account's change hash, then per month: day totals hash, day buckets hash.
-- ARGV[1] = size of a month-row entry, ARGV[2] = number of months, then per month:
--   month id, number of days, then per day: app, day of month, version, day value, row entry.
-- A day is written only when its version is newer than the stored one, so late writers (a
-- rebuild, a zombie worker, a retry) can never move a day backwards. No arithmetic on usage:
-- the values are bytes made by view/codec.py.
local size, n_months = tonumber(ARGV[1]), tonumber(ARGV[2])
local i = 3
local written, seq = 0, nil
for m = 1, n_months do
  local totals_key, days_key = KEYS[2 * m], KEYS[2 * m + 1]
  local month, n_days = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  local rows = {}
  for _ = 1, n_days do
    local app, day, version = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
    local field = app .. ':' .. ARGV[i + 1]
    local current = redis.call('HGET', days_key, field)
    if (not current) or tonumber(string.match(current, '^(%d+):')) < version then
      redis.call('HSET', days_key, field, ARGV[i + 3])
      local row = rows[app] or redis.call('HGET', totals_key, app) or string.rep('\0', 31 * size)
      rows[app] = string.sub(row, 1, (day - 1) * size) .. ARGV[i + 4] .. string.sub(row, day * size + 1)
      written = written + 1
    end
    i = i + 5
  end
  local changed = false
  for app, row in pairs(rows) do
    redis.call('HSET', totals_key, app, row)
    changed = true
  end
  if changed then
    seq = seq or redis.call('HINCRBY', KEYS[1], '#', 1)
    redis.call('HSET', KEYS[1], month, seq)
  end
end
return written
