-- wrk script: the floor endpoint (bench/floor), with the intake's order body.
--
--   wrk -t2 -c32 -d20s --latency -s bench/floor.lua http://127.0.0.1:PORT -- RUN_ID PARTNER_ID DATE
--
-- Each request POSTs /floor with the same JSON as bench/create_order.lua sends to createOrder
-- (same fields, same size), reference RUN_ID-<thread>-<counter>. The floor validates the flat
-- part and inserts one row; it answers 201. done() prints one line "BENCH_JSON {...}".

local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
  table.insert(threads, thread)
end

local template = '{"partnerId":"%s","sellToOrderReference":"%s","paymentReference":"PAY-%s",'
  .. '"customer":{"firstName":"Ada","lastName":"Lovelace","email":"ada@example.com"},'
  .. '"items":[{"itemId":"DAY-ADULT","quantity":2,"visitDate":"%s"},'
  .. '{"itemId":"FAMILY-GROUP","quantity":3,"visitDate":"%s"},'
  .. '{"itemId":"PARK-AND-SHOW","quantity":3,"visitDate":"%s","visitTime":"%s"}]}'

function init(args)
  run_id = args[1]
  partner_id = args[2]
  day = args[3]
  counter = 0
  non201 = 0
  statuses = {}
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local ref = string.format("%s-%d-%d", run_id, tid, counter)
  local slot = (counter % 2 == 0) and "19:30" or "21:00"
  local body = string.format(template, partner_id, ref, ref, day, day, day, slot)
  return wrk.format("POST", "/floor", nil, body)
end

function response(status, headers, body)
  if status ~= 201 then
    non201 = non201 + 1
    local key = "s" .. status
    statuses[key] = (statuses[key] or 0) + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  local by_status = {}
  for _, thread in ipairs(threads) do
    total = total + thread:get("non201")
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
    summary.requests, summary.duration, summary.bytes, total, table.concat(parts, ","),
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
