-- wrk script for Warren's benchmarks (bench/lib/wrk.ts sets the environment):
--   BENCH_TOKEN   bearer token sent as "Authorization: Bearer …" (unset: no header)
--   BENCH_COOKIE  a Cookie header ("name=value"), for a browser-style session (unset: none)
--   BENCH_PATHS   requests separated by newlines; each thread cycles through them, starting at a
--                 different offset, so a "get by id" run spreads over several rows. A line is a
--                 path ("/api/v1/me", a GET) or "METHOD path body" ("PATCH /api/v1/me/preferences
--                 {…}"; the body, if any, is sent as application/json)
-- done() prints one machine-readable line, "BENCH_JSON {…}", with latencies in microseconds.

local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end
local cookie = os.getenv("BENCH_COOKIE")
if cookie and cookie ~= "" then wrk.headers["Cookie"] = cookie end

local requests = {}
for line in string.gmatch(os.getenv("BENCH_PATHS") or "/", "[^\n]+") do
  local method, path, body = string.match(line, "^(%u+) (%S+) ?(.*)$")
  if method then
    requests[#requests + 1] = { method = method, path = path, body = body ~= "" and body or nil }
  else
    requests[#requests + 1] = { method = "GET", path = line }
  end
end

local counter = 1
local threads = {}

function setup(thread)
  thread:set("offset", #threads * 7)
  table.insert(threads, thread)
end

function init(args)
  counter = (offset or 0) % #requests
end

function request()
  counter = counter + 1
  local r = requests[(counter % #requests) + 1]
  if r.body then
    -- wrk.format uses the headers given instead of wrk.headers (not in addition): copy them.
    local headers = { ["Content-Type"] = "application/json" }
    for k, v in pairs(wrk.headers) do headers[k] = v end
    return wrk.format(r.method, r.path, headers, r.body)
  end
  return wrk.format(r.method, r.path)
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
