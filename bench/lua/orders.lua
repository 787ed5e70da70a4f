-- S2: GET /api/orders, a page of 20, as a random one of the signed-in users.
-- Arguments: the tokens file.
local common = require("common")
local tokens = require("tokens")
local signed_in

setup = common.setup
done = common.done

function init(args)
  common.seed()
  signed_in = tokens.read(args[1])
end

function request()
  return wrk.format("GET", "/api/orders?per_page=20", {Authorization = tokens.header(signed_in)})
end
