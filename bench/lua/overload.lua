-- S5: GET /api/services/<id> recording every response's end time, status, latency and the
-- error code of its JSON body ("-" when it has none).
-- Run with as many threads as connections, so each thread's one connection has one request
-- in flight and request() to response() is that request's latency.
-- Arguments: the highest service id. Environment: BENCH_RECORDS, the file to write
-- "end_s status latency_s code" lines to (done() runs in the main state, which sees no arguments).
local common = require("common")
local max_service_id, sent_at
records = {}

setup = common.setup

function init(args)
  common.seed()
  max_service_id = tonumber(args[1])
end

function request()
  sent_at = common.now()
  return common.service_request(max_service_id)
end

function response(status, headers, body)
  local ended_at = common.now()
  local code = status >= 400 and body and body:match('"code":%s*"([%w_]+)"') or "-"
  table.insert(records,
    string.format("%.6f %d %.6f %s", ended_at, status, ended_at - sent_at, code))
end

function done(summary, latency, requests)
  local out = assert(io.open(os.getenv("BENCH_RECORDS"), "w"))
  for _, thread in ipairs(common.threads()) do
    for _, line in ipairs(thread:get("records")) do
      out:write(line, "\n")
    end
  end
  out:close()
  common.done(summary, latency, requests)
end
