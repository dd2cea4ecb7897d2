-- One account's usage for a query: completeness marker, change stamps, then per month the
-- day totals and, for every edge that falls inside a day, that day's usage before the edge.
-- KEYS[1] = the marker of the account's slot, KEYS[2] = the account's change hash, then per
--   month: day totals hash, day buckets hash.
-- ARGV, per month: month id, the stamp the caller holds ('' for none), the edges to read if
--   that stamp is current, the edges to read if not ('' none, else 'day.slot,day.slot,...':
--   day of month and 15-minute slot, ascending).
-- Returns {marker or nil, change hash as field/value pairs, per month:
--   {stamp or nil, day totals pairs or nil when the caller's are current,
--    {app, records, app, records, ...}}}: per app, one record per edge asked, in order.
-- A record is the totals of the app's day before the edge's slot in the month-row entry format
-- of view/codec.py (buckets: 1 byte, then calls and micro-credits little-endian, 8 bytes each
-- if every record of the app's month fits, else 12 and 20 bytes). The count is the day's count
-- of non-empty slots in the bitmap's whole bytes below the slot, plus the bits of the byte the
-- slot is in (a day written before the counts were, without the calls width's high bit, counts
-- the bits of every byte below); the two totals are bytes cut from the day value, padded with
-- zeros. Lua never adds usage (its numbers are doubles), only bucket counts.
local byte, char, find, sub = string.byte, string.char, string.find, string.sub
local PAD, CHAR = {}, {}
for n = 0, 20 do PAD[n] = string.rep('\0', n) end
for n = 1, 96 do CHAR[n] = char(n) end
local NARROW = {calls = 8, micro = 8, zero = PAD[17]}
local WIDE = {calls = 12, micro = 20, zero = string.rep('\0', 33)}
local COUNTED, COUNTS = 128, 11  -- the calls width's flag that 11 counts follow the widths
local LOW = {[0] = 1, 2, 4, 8, 16, 32, 64, 128}  -- byte % LOW[r]: its lowest r bits
-- Bits set in each byte value (a literal: building it with a loop costs more than a small read).
local POP = {[0] = 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 1, 2, 2, 3, 2, 3, 3, 4, 2, 3, 3,
  4, 3, 4, 4, 5, 1, 2, 2, 3, 2, 3, 3, 4, 2, 3, 3, 4, 3, 4, 4, 5, 2, 3, 3, 4, 3, 4, 4, 5, 3, 4, 4,
  5, 4, 5, 5, 6, 1, 2, 2, 3, 2, 3, 3, 4, 2, 3, 3, 4, 3, 4, 4, 5, 2, 3, 3, 4, 3, 4, 4, 5, 3, 4, 4,
  5, 4, 5, 5, 6, 2, 3, 3, 4, 3, 4, 4, 5, 3, 4, 4, 5, 4, 5, 5, 6, 3, 4, 4, 5, 4, 5, 5, 6, 4, 5, 5,
  6, 5, 6, 6, 7, 1, 2, 2, 3, 2, 3, 3, 4, 2, 3, 3, 4, 3, 4, 4, 5, 2, 3, 3, 4, 3, 4, 4, 5, 3, 4, 4,
  5, 4, 5, 5, 6, 2, 3, 3, 4, 3, 4, 4, 5, 3, 4, 4, 5, 4, 5, 5, 6, 3, 4, 4, 5, 4, 5, 5, 6, 4, 5, 5,
  6, 5, 6, 6, 7, 2, 3, 3, 4, 3, 4, 4, 5, 3, 4, 4, 5, 4, 5, 5, 6, 3, 4, 4, 5, 4, 5, 5, 6, 4, 5, 5,
  6, 5, 6, 6, 7, 3, 4, 4, 5, 4, 5, 5, 6, 4, 5, 5, 6, 5, 6, 6, 7, 4, 5, 5, 6, 5, 6, 6, 7, 5, 6, 6,
  7, 6, 7, 7, 8}

local out = {redis.call('GET', KEYS[1]), redis.call('HGETALL', KEYS[2])}
local stamps = {}
for j = 1, #out[2], 2 do stamps[out[2][j]] = out[2][j + 1] end

-- The records of one app's edges in one form (nil if a day's totals are too wide for it).
local function records(values, first, wholes, parts, form)
  local found, zero, calls_room, micro_room = {}, form.zero, form.calls, form.micro
  for i = 1, #first do
    local value = values[first[i]]
    local record = zero
    if value then
      local head = find(value, ':', 1, true)  -- after the version
      local count, whole, part = 0, wholes[i], parts[i]
      local calls_width, micro_width = byte(value, head + 13, head + 14)
      local entries = head + 15
      if calls_width >= COUNTED then
        calls_width, entries = calls_width - COUNTED, entries + COUNTS
        if whole > 0 then count = byte(value, head + 14 + whole) end
      else
        for j = head + 1, head + whole do count = count + POP[byte(value, j)] end
      end
      if part > 0 then count = count + POP[byte(value, head + 1 + whole) % LOW[part]] end
      if count > 0 then
        if calls_width > calls_room or micro_width > micro_room then return nil end
        local at = entries + (count - 1) * (calls_width + micro_width)
        local middle = at + calls_width
        record = CHAR[count] .. sub(value, at, middle - 1) .. PAD[calls_room - calls_width]
          .. sub(value, middle, middle + micro_width - 1) .. PAD[micro_room - micro_width]
      end
    end
    found[i] = record
  end
  return table.concat(found)
end

local function edges(days_key, spec, apps)
  if spec == '' then return {} end
  local days, wholes, parts, first = {}, {}, {}, {}
  for day, slot in string.gmatch(spec, '(%d+)%.(%d+)') do
    slot = tonumber(slot)
    if day ~= days[#days] then days[#days + 1] = day end
    first[#first + 1] = #days
    wholes[#wholes + 1] = (slot - slot % 8) / 8
    parts[#parts + 1] = slot % 8
  end
  local found = {}
  for _, app in ipairs(apps) do
    local fields = {}
    for j = 1, #days do fields[j] = app .. ':' .. days[j] end
    local values = redis.call('HMGET', days_key, unpack(fields))
    found[#found + 1] = app
    found[#found + 1] = records(values, first, wholes, parts, NARROW)
      or records(values, first, wholes, parts, WIDE)
  end
  return found
end

for m = 1, (#KEYS - 2) / 2 do
  local totals_key, days_key = KEYS[1 + 2 * m], KEYS[2 + 2 * m]
  local a = 4 * (m - 1)
  local stamp = stamps[ARGV[a + 1]]
  if not stamp then
    out[#out + 1] = {false, false, {}}
  elseif stamp == ARGV[a + 2] then
    local spec = ARGV[a + 3]
    local apps = spec ~= '' and redis.call('HKEYS', totals_key) or {}
    out[#out + 1] = {stamp, false, edges(days_key, spec, apps)}
  else
    local totals = redis.call('HGETALL', totals_key)
    local apps = {}
    for j = 1, #totals, 2 do apps[#apps + 1] = totals[j] end
    out[#out + 1] = {stamp, totals, edges(days_key, ARGV[a + 4], apps)}
  end
end
return out
