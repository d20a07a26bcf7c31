-- Load for a fleet of gateways sharing a session store (docs/cluster.md):
-- each wrk thread holds one conversation on one connection and sends its
-- turns in order, "turn 1", "turn 2", ..., through the load balancer, so
-- consecutive turns land on different gateways. A reply must be the echo
-- model's "[turn K] turn K": a K out of step means a gateway did not see
-- the turns another one served. Reports, at the end, the turns answered,
-- the answers that were not 200 and the replies out of step.
--
--   wrk -t4 -c4 -d10s -s examples/fleet-wrk.lua http://127.0.0.1:PORT/ -- RUN
--
-- RUN: a name that makes this run's conversations new (default: the time).

local threads = {}
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("id", counter)
   table.insert(threads, thread)
end

function init(args)
   run = args[1] or tostring(os.time())
   turns = 0
   non_200 = 0
   out_of_step = 0
end

function request()
   local path = string.format("/chat/fleet-%s-%d", run, id)
   return wrk.format("POST", path, nil, string.format("turn %d", turns + 1))
end

function response(status, headers, body)
   if status ~= 200 then
      non_200 = non_200 + 1
      return
   end
   local k = turns + 1
   if body == string.format("[turn %d] turn %d", k, k) then
      turns = k
   else
      out_of_step = out_of_step + 1
   end
end

function done(summary, latency, requests)
   local answered, bad_status, bad_step = 0, 0, 0
   for _, thread in ipairs(threads) do
      answered = answered + thread:get("turns")
      bad_status = bad_status + thread:get("non_200")
      bad_step = bad_step + thread:get("out_of_step")
   end
   local e = summary.errors
   io.write(string.format("turns %d, non-200 %d, out of step %d, socket errors: " ..
                          "connect %d, read %d, write %d, timeout %d\n",
                          answered, bad_status, bad_step,
                          e.connect, e.read, e.write, e.timeout))
end
