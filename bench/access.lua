-- wrk script for the access-check phase: a fixed request rate (not a closed loop) over random
-- accounts. Each thread keeps its own schedule of send slots, RATE/threads per second: a
-- connection whose answer came back waits for the next free slot (wrk's delay hook), so the
-- offered rate stays RATE whatever the latency, as long as some connection is idle.
-- Environment: RATE (requests/s, all threads), THREADS (wrk -t), ACCOUNTS (count), PREFIX,
-- SUFFIX (the route after the account, default /access), TOKEN.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } cf_timespec;
int clock_gettime(int clock, cf_timespec *now);
]]
local now_buf = ffi.new("cf_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, now_buf) -- CLOCK_MONOTONIC
  return tonumber(now_buf.tv_sec) * 1000 + tonumber(now_buf.tv_nsec) / 1e6
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function init(args)
  interval = 1000 * tonumber(os.getenv("THREADS") or "1") / tonumber(os.getenv("RATE") or "2000")
  accounts = tonumber(os.getenv("ACCOUNTS") or "1000")
  prefix = os.getenv("PREFIX") or "acct-"
  suffix = os.getenv("SUFFIX") or "/access"
  headers = { ["Authorization"] = "Bearer " .. (os.getenv("TOKEN") or "") }
  math.randomseed(os.time() + (id or 0) * 7919)
  next_slot = now_ms()
end

function delay()
  local now = now_ms()
  -- Never bank slots while all connections were busy: at most one interval behind now.
  next_slot = math.max(next_slot + interval, now - interval)
  return math.max(0, next_slot - now)
end

function request()
  local path = "/v1/accounts/" .. prefix .. math.random(1, accounts) .. suffix
  return wrk.format("GET", path, headers)
end

function done(summary, latency, requests)
  io.write(string.format("paced: %d requests, %d non-2xx\n", summary.requests, summary.errors.status))
end
