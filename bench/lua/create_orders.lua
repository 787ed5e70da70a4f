-- S3: POST /api/orders with an Idempotency-Key, as a random signed-in user.
local common = require("common")
local writes = require("order_writes")

setup = common.setup
done = common.done
init = writes.init
request = writes.request
