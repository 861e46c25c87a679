-- wrk script for Warren's benchmarks (bench/sandboxes.ts sets the environment):
--   BENCH_TOKEN  bearer token sent as "Authorization: Bearer …" (unset: no header)
--   BENCH_PATHS  request paths separated by newlines; each thread cycles through them, starting
--                at a different offset, so a "get by id" run spreads over several rows
-- done() prints one machine-readable line, "BENCH_JSON {…}", with latencies in microseconds.

local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end

local paths = {}
for p in string.gmatch(os.getenv("BENCH_PATHS") or "/", "[^\n]+") do paths[#paths + 1] = p end

local counter = 1
local threads = {}

function setup(thread)
  thread:set("offset", #threads * 7)
  table.insert(threads, thread)
end

function init(args)
  counter = (offset or 0) % #paths
end

function request()
  counter = counter + 1
  return wrk.format("GET", paths[(counter % #paths) + 1])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"durationUs":%d,"bytes":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latencyUs":{"min":%d,"mean":%.1f,"stdev":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d}}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max))
end
