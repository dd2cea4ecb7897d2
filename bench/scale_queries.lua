-- wrk script of the scale benchmark (bench/scale.py): every request a dashboard's question.
--
-- CF_MODE=random (the default): a random account; a random range aligned to 15 minutes inside
--   the history, its length log-uniform from 15 minutes to 13 months (as many hour-long asks as
--   year-long ones); a random zone, half-hour and 45-minute offsets included; a window drawn
--   among those a dashboard would use for that length (none always; hour up to 7 days; day
--   from 1 day to 13 months; month from 2 months); per-app breakdown 4 times in 5.
-- CF_MODE=year: a one-year daily per-app series, in a random zone, of a random account, for
--   local dates ending within the last month of the history.
-- CF_THINK_MS: each client waits a random 0..CF_THINK_MS ms after an answer (0: none).
local accounts = tonumber(os.getenv("CF_ACCOUNTS"))
local first = tonumber(os.getenv("CF_FIRST"))  -- epoch seconds, start of the history
local last = tonumber(os.getenv("CF_LAST"))  -- epoch seconds, end of the history
local mode = os.getenv("CF_MODE") or "random"
local think = tonumber(os.getenv("CF_THINK_MS") or "0")
local token = os.getenv("CF_TOKEN")

local zones = {
  "UTC", "Europe/London", "Europe/Berlin", "America/New_York", "America/Los_Angeles",
  "America/Sao_Paulo", "Asia/Seoul", "Asia/Tokyo", "Asia/Shanghai", "Australia/Sydney",
  "Asia/Kolkata", "Asia/Kathmandu", "Australia/Eucla", "Pacific/Chatham", "Australia/Adelaide",
  "America/St_Johns", "Asia/Tehran", "Asia/Kabul", "Asia/Yangon", "Australia/Lord_Howe",
}

local QUARTER, DAY = 900, 86400
local MAX_QUARTERS = 13 * 31 * 96 - 96 * 8  -- 13 months of 30.4 days

local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end

function init(args)
  math.randomseed(os.time() * 1000 + (id or 0) * 7919)
end

local function utc(t) return os.date("!%Y-%m-%dT%H:%M:%SZ", t) end

local function random_query()
  local quarters = math.floor(math.exp(math.random() * math.log(MAX_QUARTERS)))
  local span = math.floor((last - first) / QUARTER)
  local start = first + math.random(0, span - quarters) * QUARTER
  local length = quarters * QUARTER
  local windows = {"none"}
  if length >= 3600 and length <= 7 * DAY then windows[#windows + 1] = "hour" end
  if length >= DAY and length <= 400 * DAY then windows[#windows + 1] = "day" end
  if length >= 62 * DAY then windows[#windows + 1] = "month" end
  local group = math.random() < 0.8 and "app" or "none"
  return string.format("from=%s&to=%s&tz=%s&window=%s&group_by=%s", utc(start),
    utc(start + length), zones[math.random(#zones)], windows[math.random(#windows)], group)
end

local function year_query()
  local ending = last - math.random(1, 30) * DAY
  local from = os.date("!%Y-%m-%d", ending - 365 * DAY)
  return string.format("from=%s&to=%s&tz=%s&window=day&group_by=app", from,
    os.date("!%Y-%m-%d", ending), zones[math.random(#zones)])
end

function request()
  local query = mode == "year" and year_query() or random_query()
  local path = string.format("/v1/accounts/acct-%04d/usage?%s", math.random(0, accounts - 1), query)
  return wrk.format("GET", path, {["Authorization"] = "Bearer " .. token})
end

function delay()
  if think > 0 then return math.random(0, think) end
  return 0
end
