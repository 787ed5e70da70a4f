-- S1, the floor and Pony: GET /api/services/<id>, a random one of the loaded services.
-- Arguments: the highest service id.
local common = require("common")
local max_service_id

setup = common.setup
done = common.done

function init(args)
  common.seed()
  max_service_id = tonumber(args[1])
end

function request()
  return common.service_request(max_service_id)
end
