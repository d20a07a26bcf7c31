-- Load for examples/gateway: every request POSTs one turn to a conversation
-- picked at random from a pool per wrk thread, so turns of one conversation
-- sometimes overlap (the gateway queues them) and every conversation keeps
-- growing its history. Checks each reply and reports, at the end, how many
-- answers were not 200 and how many bodies were not the echo model's reply.
--
--   wrk -t2 -c100 -d10s -s examples/gateway-wrk.lua http://127.0.0.1:PORT/ [-- SESSIONS]
--
-- SESSIONS: conversations per wrk thread (default 1000).

local threads = {}
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("id", counter)
   table.insert(threads, thread)
end

local message = "hello from wrk"
local expected = "^%[turn %d+%] " .. message .. "$"

function init(args)
   sessions = tonumber(args[1]) or 1000
   non_200 = 0
   bad_body = 0
   math.randomseed(id * 7919 + os.time())
end

function request()
   local path = string.format("/chat/wrk-%d-%d", id, math.random(sessions))
   return wrk.format("POST", path, nil, message)
end

function response(status, headers, body)
   if status ~= 200 then
      non_200 = non_200 + 1
   elseif not string.match(body, expected) then
      bad_body = bad_body + 1
   end
end

function done(summary, latency, requests)
   local total_non_200, total_bad = 0, 0
   for _, thread in ipairs(threads) do
      total_non_200 = total_non_200 + thread:get("non_200")
      total_bad = total_bad + thread:get("bad_body")
   end
   local e = summary.errors
   io.write(string.format("requests %d, non-200 %d, wrong bodies %d, socket errors: " ..
                          "connect %d, read %d, write %d, timeout %d\n",
                          summary.requests, total_non_200, total_bad,
                          e.connect, e.read, e.write, e.timeout))
end
