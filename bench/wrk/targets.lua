-- bench/wrk/targets.lua: wrk (https://github.com/wg/wrk, Debian's wrk
-- 4.1) sends the lines of the file named by TARGETS ("PATH<TAB>TOKEN
-- [<TAB>PATIENT]", as bench/cmd/pool writes them) as GETs with the line's
-- bearer token, each thread from its own offset, so that the pool's
-- distinct tokens and paths go round as with bench/cmd/load. bench/data.sh
-- runs it for its wrk-read and wrk-search modes, a cross-check of the
-- load generator: the same requests measured by a peer tool.
--
-- It defines no response(): wrk then skips handing every body to Lua,
-- which would make it the heavier of the two. Statuses of 400 and up are
-- counted by wrk itself (summary.errors.status); done() prints one line
-- "WRK {json}" with the counts and the latency percentiles in ms.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local reqs = {}
local n = 0
local idx = 0

function init(args)
  local path = os.getenv("TARGETS")
  local f = assert(io.open(path, "r"), "TARGETS: cannot open " .. tostring(path))
  for line in f:lines() do
    local p, t = line:match("^(%S+)\t(%S+)")
    if p then
      n = n + 1
      reqs[n] = wrk.format("GET", p, {
        ["Authorization"] = "Bearer " .. t,
        ["Accept"] = "application/fhir+json",
        ["User-Agent"] = "smartgate-bench-wrk",
      })
    end
  end
  f:close()
  assert(n > 0, "TARGETS: no PATH<TAB>TOKEN line in " .. path)
  -- Threads start spread over the file.
  idx = (id * 7919 * math.floor(n / 16 + 1)) % n
end

function request()
  idx = idx % n + 1
  return reqs[idx]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests":%d,"seconds":%.3f,"rps":%.0f,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,' ..
    '"errors":%d,"error_status":%d,"error_connect":%d,"error_read":%d,"error_write":%d,"error_timeout":%d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.status + e.connect + e.read + e.write + e.timeout, e.status, e.connect, e.read, e.write, e.timeout))
end
