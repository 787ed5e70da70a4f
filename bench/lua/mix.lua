-- S4: 80% reads (half a service, half a page of one's orders), 20% order writes.
local common = require("common")
local tokens = require("tokens")
local writes = require("order_writes")

setup = common.setup
done = common.done
init = writes.init

function request()
  local draw = math.random()
  if draw < 0.4 then
    return common.service_request(writes.max_service_id)
  elseif draw < 0.8 then
    return wrk.format("GET", "/api/orders?per_page=20",
      {Authorization = tokens.header(writes.signed_in)})
  end
  return writes.request()
end
