-- One account's usage for a query: completeness marker, change stamps, then per month the
-- day totals and the days the query's edges fall inside, skipping what the caller holds.
-- KEYS[1] = the marker of the account's slot, KEYS[2] = the account's change hash, then per
--   month: day totals hash, day buckets hash.
-- ARGV, per month: month id, the stamp the caller holds ('' for none), days to read if that
--   stamp is current, days to read if not ('' none, '*' all, else 'day,day,...').
-- Returns {marker or nil, change hash as field/value pairs, per month:
--   {stamp or nil, day totals pairs or nil when the caller's are current, day pairs}}.
local out = {redis.call('GET', KEYS[1]), redis.call('HGETALL', KEYS[2])}
local stamps = {}
for j = 1, #out[2], 2 do stamps[out[2][j]] = out[2][j + 1] end

local function days(totals_key, days_key, spec, apps)
  if spec == '' then return {} end
  if spec == '*' then return redis.call('HGETALL', days_key) end
  apps = apps or redis.call('HKEYS', totals_key)
  local found, fields = {}, {}
  local function read()
    local values = redis.call('HMGET', days_key, unpack(fields))
    for j = 1, #fields do
      if values[j] then
        found[#found + 1] = fields[j]
        found[#found + 1] = values[j]
      end
    end
    fields = {}
  end
  for day in string.gmatch(spec, '[^,]+') do
    for _, app in ipairs(apps) do
      fields[#fields + 1] = app .. ':' .. day
      if #fields == 1000 then read() end
    end
  end
  if #fields > 0 then read() end
  return found
end

for m = 1, (#KEYS - 2) / 2 do
  local totals_key, days_key = KEYS[1 + 2 * m], KEYS[2 + 2 * m]
  local a = 4 * (m - 1)
  local stamp = stamps[ARGV[a + 1]]
  if not stamp then
    out[#out + 1] = {false, false, {}}
  elseif stamp == ARGV[a + 2] then
    out[#out + 1] = {stamp, false, days(totals_key, days_key, ARGV[a + 3], nil)}
  else
    local totals = redis.call('HGETALL', totals_key)
    local apps = {}
    for j = 1, #totals, 2 do apps[#apps + 1] = totals[j] end
    out[#out + 1] = {stamp, totals, days(totals_key, days_key, ARGV[a + 4], apps)}
  end
end
return out
