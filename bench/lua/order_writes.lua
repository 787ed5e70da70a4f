-- Shared by S3 and S4: the signed-in users, and POST /api/orders with a fresh Idempotency-Key.
-- Arguments of both scripts: the tokens file, the highest service id.
local common = require("common")
local tokens = require("tokens")
local writes = {}
local counter = 0
local run_id = tostring(os.time())

function writes.init(args)
  common.seed()
  writes.signed_in = tokens.read(args[1])
  writes.max_service_id = tonumber(args[2])
end

function writes.request()
  counter = counter + 1
  local body = string.format('{"service_id": %d, "quantity": %d}',
    math.random(1, writes.max_service_id), math.random(1, 5))
  return wrk.format("POST", "/api/orders", {
    Authorization = tokens.header(writes.signed_in),
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = string.format("bench-%s-%d-%d", run_id, thread_number or 0, counter),
  }, body)
end

return writes
