-- wrk script: POST /gate/scans, half the scans accepted, half rejected (bench/bench.py phase f).
--
--   wrk -t2 -c16 -d20s --latency -s bench/gate_scan.lua http://127.0.0.1:PORT/gate/scans \
--       -- FRESH_FILE REDEEMED_FILE TOKEN1,TOKEN2,... THREADS
--
-- FRESH_FILE lists unused asset numbers valid today, REDEEMED_FILE used ones, one a line
-- (bench/scan_setup.py writes both). Thread k of THREADS takes every THREADS-th fresh number
-- from the k-th on, so each is scanned once in the whole run. Each thread repeats
--   fresh (accepted), unknown (rejected: unknown_code), fresh (accepted), used (already_redeemed)
-- where an unknown code is 16 random symbols of the asset-number alphabet (80 bits: never one
-- that exists). Requests take the device tokens in turn. When a thread has no fresh number left
-- it sends unknown codes instead and counts them ("exhausted"): then the mix is no longer half
-- accepted, and bench.py says so. done() prints one line "BENCH_JSON {...}".

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

local function read_lines(path, every, offset)
  local out = {}
  local n = 0
  for line in io.lines(path) do
    if line ~= "" then
      if n % every == offset then
        table.insert(out, line)
      end
      n = n + 1
    end
  end
  return out
end

local ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"

local function unknown_code()
  local chars = {}
  for i = 1, 16 do
    local k = math.random(1, 32)
    chars[i] = string.sub(ALPHABET, k, k)
  end
  return table.concat(chars)
end

function init(args)
  local nthreads = tonumber(args[4])
  fresh = read_lines(args[1], nthreads, tid - 1)
  redeemed = read_lines(args[2], 1, 0)
  tokens = split(args[3], ",")
  math.randomseed(os.time() * 1000 + tid)
  counter, next_fresh, next_redeemed = 0, 1, 1
  exhausted, non200, accepted = 0, 0, 0
  reasons = {}
  statuses = {}
end

function request()
  counter = counter + 1
  local kind = counter % 4
  local code
  if kind == 1 or kind == 3 then
    code = fresh[next_fresh]
    next_fresh = next_fresh + 1
    if code == nil then
      exhausted = exhausted + 1
      code = unknown_code()
    end
  elseif kind == 2 then
    code = unknown_code()
  else
    code = redeemed[next_redeemed]
    next_redeemed = next_redeemed % #redeemed + 1
  end
  local token = tokens[counter % #tokens + 1]
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token},
    '{"code":"' .. code .. '"}')
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
    local key = "s" .. status
    statuses[key] = (statuses[key] or 0) + 1
    return
  end
  if string.find(body, '"result":"accepted"', 1, true) then
    accepted = accepted + 1
  else
    local reason = string.match(body, '"reason":"([%w_]+)"') or "none"
    reasons[reason] = (reasons[reason] or 0) + 1
  end
end

local function merge(name)
  local total = {}
  for _, thread in ipairs(threads) do
    for key, count in pairs(thread:get(name)) do
      total[key] = (total[key] or 0) + count
    end
  end
  local parts = {}
  for key, count in pairs(total) do
    table.insert(parts, string.format('"%s":%d', key, count))
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function sum(name)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get(name)
  end
  return total
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"unexpected":%d,"accepted":%d,"exhausted":%d,'
      .. '"reasons":%s,"statuses":%s,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"mean":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes, sum("non200"), sum("accepted"), sum("exhausted"),
    merge("reasons"), (string.gsub(merge("statuses"), '"s(%d+)"', '"%1"')),
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
