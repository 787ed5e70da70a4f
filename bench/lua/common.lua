-- Shared by every scenario script: per-thread seeding, a wall clock, the services read, and
-- the JSON summary that bench/load.py parses from wrk's output.
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_usec; } bench_timeval;
int gettimeofday(bench_timeval *tv, void *tz);
]]

local common = {}
local timeval = ffi.new("bench_timeval")
local threads = {}

function common.now()
  ffi.C.gettimeofday(timeval, nil)
  return tonumber(timeval.tv_sec) + tonumber(timeval.tv_usec) / 1e6
end

-- setup runs in the main state once per thread: number the threads so each seeds apart.
function common.setup(thread)
  thread:set("thread_number", #threads + 1)
  table.insert(threads, thread)
end

function common.seed()
  math.randomseed(os.time() * 1000 + (thread_number or 0))
end

-- GET /api/services/<id> of a random one of the loaded services: S1, the baselines, S4, S5.
function common.service_request(max_service_id)
  return wrk.format("GET", "/api/services/" .. math.random(1, max_service_id))
end

function common.threads()
  return threads
end

function common.summary_json(summary, latency)
  local errors = summary.errors
  return string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "non_2xx": %d, "timeouts": %d, ' ..
    '"latency_p50_us": %d, "latency_p99_us": %d, "latency_mean_us": %.1f, "latency_max_us": %d}',
    summary.requests, summary.duration, summary.bytes, errors.connect, errors.read,
    errors.write, errors.status, errors.timeout, latency:percentile(50),
    latency:percentile(99), latency.mean, latency.max)
end

function common.done(summary, latency, requests)
  io.write("BENCH_JSON " .. common.summary_json(summary, latency) .. "\n")
end

return common
