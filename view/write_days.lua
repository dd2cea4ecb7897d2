-- Versioned writes of an account's days, with their month rows and change stamps: one call.
-- KEYS[1] = the account's change hash, then per month: day totals hash, day buckets hash.
-- ARGV[1] = number of months, then per month: month id, number of days, then per day: app,
--   day of month, version, day value, month-row entry (narrow or wide, see view/codec.py).
-- A day is written only when its version is newer than the stored one, so late writers (a
-- rebuild, a zombie worker, a retry) can never move a day backwards. No arithmetic on usage:
-- the values are bytes made by view/codec.py, and a narrow entry (buckets 1 byte, calls and
-- micro-credits 8 bytes each) becomes wide (12 and 20 bytes) by padding its parts with zeros.
local sub, rep = string.sub, string.rep
local DAYS, NARROW, WIDE = 31, 17, 33

local function widen(entry)
  return sub(entry, 1, 9) .. rep('\0', 4) .. sub(entry, 10, 17) .. rep('\0', 12)
end

-- The row with one day's entry replaced; a narrow row is widened when a wide day arrives.
local function with_day(row, day, entry)
  if not row then row = rep('\0', DAYS * #entry) end
  local size = #row / DAYS
  if #entry > size then
    local days = {}
    for d = 0, DAYS - 1 do days[d + 1] = widen(sub(row, d * NARROW + 1, (d + 1) * NARROW)) end
    row, size = table.concat(days), WIDE
  elseif #entry < size then
    entry = widen(entry)
  end
  return sub(row, 1, (day - 1) * size) .. entry .. sub(row, day * size + 1)
end

local n_months = tonumber(ARGV[1])
local i = 2
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
      rows[app] = with_day(rows[app] or redis.call('HGET', totals_key, app), day, ARGV[i + 4])
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
