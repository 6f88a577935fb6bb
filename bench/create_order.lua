-- wrk script: createOrder with a unique body per request (also the floor's load: same body).
--
--   wrk -t2 -c32 -d20s --latency -s bench/create_order.lua http://127.0.0.1:PORT \
--       -- RUN_ID PARTNER_ID API_KEY DATE1,DATE2,... [PATH [EXPECTED_STATUS]]
--
-- PATH defaults to /channelManager and EXPECTED_STATUS to 202; API_KEY "-" sends no
-- Authorization header (the floor, bench/floor, has none).
--
-- Each request is the benchmark's 3-line, 6-wallet order (2 DAY-ADULT, 1 FAMILY-GROUP of 3,
-- 3 PARK-AND-SHOW) with sellToOrderReference RUN_ID-<thread>-<counter>, so no two requests of a
-- run collide. Visit dates cycle through the dates given (and the show through both slots), so
-- that capacity never runs out. done() prints one line "BENCH_JSON {...}" for bench/bench.py.

local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
  table.insert(threads, thread)
end

local function split(text, sep)
  local out = {}
  for piece in string.gmatch(text, "([^" .. sep .. "]+)") do
    table.insert(out, piece)
  end
  return out
end

local template = '{"partnerId":"%s","sellToOrderReference":"%s","paymentReference":"PAY-%s",'
  .. '"customer":{"firstName":"Ada","lastName":"Lovelace","email":"ada@example.com"},'
  .. '"items":[{"itemId":"DAY-ADULT","quantity":2,"visitDate":"%s"},'
  .. '{"itemId":"FAMILY-GROUP","quantity":3,"visitDate":"%s"},'
  .. '{"itemId":"PARK-AND-SHOW","quantity":3,"visitDate":"%s","visitTime":"%s"}]}'

function init(args)
  run_id = args[1]
  partner_id = args[2]
  dates = split(args[4], ",")
  counter = 0
  path = args[5] or "/channelManager"
  expected = tonumber(args[6] or "202")
  unexpected = 0
  statuses = {}
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if args[3] ~= "-" then
    wrk.headers["Authorization"] = "Bearer " .. args[3]
  end
end

function request()
  counter = counter + 1
  local ref = string.format("%s-%d-%d", run_id, tid, counter)
  local n = tid * 7919 + counter
  local day = dates[(n % #dates) + 1]
  local slot = (math.floor(n / #dates) % 2 == 0) and "19:30" or "21:00"
  local body = string.format(template, partner_id, ref, ref, day, day, day, slot)
  return wrk.format("POST", path, nil, body)
end

function response(status, headers, body)
  if status ~= expected then
    unexpected = unexpected + 1
    local key = "s" .. status
    statuses[key] = (statuses[key] or 0) + 1
  end
end

function done(summary, latency, requests)
  local total_unexpected = 0
  local by_status = {}
  for _, thread in ipairs(threads) do
    total_unexpected = total_unexpected + thread:get("unexpected")
    local counts = thread:get("statuses")
    for key, count in pairs(counts) do
      by_status[key] = (by_status[key] or 0) + count
    end
  end
  local parts = {}
  for key, count in pairs(by_status) do
    table.insert(parts, string.format('"%s":%d', string.sub(key, 2), count))
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"unexpected":%d,"statuses":{%s},'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"mean":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes, total_unexpected, table.concat(parts, ","),
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
