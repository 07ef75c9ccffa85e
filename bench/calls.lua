-- wrk script for bench/journal-load.sh: whole calls, each a newCall, an answer and a
-- hangup with a callId of its own, until exactly LOAD_EVENTS events have been answered.
--
-- Environment:
--   LOAD_EVENTS   events to send in all (split over wrk's threads)
--   LOAD_FIXTURES folder holding 01-newcall-in.form, 07-answer-in.form and
--                 09-hangup-normalclearing.form (tests/fixtures)
--   LOAD_MARKS    folder where each thread writes done-N once all its events are answered
--
-- A thread sends its events in blocks of BLOCK calls: BLOCK newCalls, then their answers,
-- then their hangups. With BLOCK above the connections per thread, a call's answer is
-- sent after its newCall has been answered (as sipgate sends them), although wrk spreads
-- the three over different connections. A connection that asks for a request after its
-- thread has sent all its events gets GET /health ("ok"), which is not counted, so that
-- the thread's last events are answered before the thread stops; events are never cut
-- off in flight, and the 200s counted are exactly the events the server acknowledged.
--
-- At the end it prints "LOAD key=value ...", which journal-load.sh reads.

local BLOCK = 64

local function slurp(path)
  local file = assert(io.open(path, "rb"), "cannot open " .. tostring(path))
  local text = file:read("*a")
  file:close()
  return text
end

-- ---- main state: one id per thread, the totals at the end ------------------------------
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  threads[#threads + 1] = thread
end

function done(summary, latency, requests)
  local totals = { sent = 0, answered = 0, ok = 0, other = 0, fillers = 0 }
  for _, thread in ipairs(threads) do
    for key, _ in pairs(totals) do
      totals[key] = totals[key] + (thread:get(key) or 0)
    end
  end
  local errors = summary.errors
  io.write(string.format(
    "LOAD sent=%d answered=%d ok=%d other_status=%d fillers=%d wrk_duration_us=%d "
      .. "p50_us=%d p99_us=%d max_us=%d connect_errors=%d read_errors=%d write_errors=%d "
      .. "timeouts=%d\n",
    totals.sent, totals.answered, totals.ok, totals.other, totals.fillers, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.max,
    errors.connect, errors.read, errors.write, errors.timeout))
end

-- ---- each thread ------------------------------------------------------------------------
-- The fixture's callId, 76 hex digits; each call replaces its last 16 with the thread's
-- number and the call's, so that ids keep sipgate's length (the rows' size stays real).
local FIXTURE_CALL_ID = "54566B150B0C0D3A5D534D5F565D7C5F54535A5C5B53525A7E5B5D5745504457444C425D5057"
local HEADERS = {
  ["User-Agent"] = "sipgate.io",
  ["Accept"] = "application/xml, text/plain, text/html",
  ["Content-Type"] = "application/x-www-form-urlencoded; charset=UTF-8",
  ["X-Forwarded-For"] = "217.116.118.254",
  ["X-Forwarded-Proto"] = "https",
}
local KINDS -- { path, body with CALLID in place of the id }
local quota, marks
-- wrk calls thread 0's request() once before the load, to check the request, and sends
-- nothing of it: that call gets a filler, so that no event is counted but never sent.
local checked_by_wrk
sent, answered, ok, other, fillers = 0, 0, 0, 0, 0

function init(args)
  local total = tonumber(os.getenv("LOAD_EVENTS") or error("LOAD_EVENTS is not set"))
  local fixtures = os.getenv("LOAD_FIXTURES") or error("LOAD_FIXTURES is not set")
  marks = os.getenv("LOAD_MARKS") or error("LOAD_MARKS is not set")
  local count = tonumber(os.getenv("LOAD_THREADS") or error("LOAD_THREADS is not set"))
  -- id is set by setup(); the first threads take the remainder.
  quota = math.floor(total / count) + ((id < total % count) and 1 or 0)
  local function template(name)
    return (slurp(fixtures .. "/" .. name):gsub("%s+$", ""):gsub(FIXTURE_CALL_ID, "CALLID"))
  end
  KINDS = {
    { "/new-call", template("01-newcall-in.form") },
    { "/on-answer", template("07-answer-in.form") },
    { "/on-hangup", template("09-hangup-normalclearing.form") },
  }
  checked_by_wrk = id ~= 0
  if quota == 0 then
    io.open(marks .. "/done-" .. id, "w"):close()
  end
end

function request()
  if not checked_by_wrk then
    checked_by_wrk = true
    return wrk.format("GET", "/health", {}, nil)
  end
  if sent >= quota then
    fillers = fillers + 1
    return wrk.format("GET", "/health", {}, nil)
  end
  local block = math.floor(sent / (3 * BLOCK))
  local within = sent % (3 * BLOCK)
  local kind = KINDS[math.floor(within / BLOCK) + 1]
  local call = block * BLOCK + within % BLOCK
  local call_id = FIXTURE_CALL_ID:sub(1, 60) .. string.format("%04X%012X", id, call)
  sent = sent + 1
  return wrk.format("POST", kind[1], HEADERS, (kind[2]:gsub("CALLID", call_id)))
end

function response(status, headers, body)
  -- An event's answer is empty or XML; /health's is "ok".
  if body:sub(1, 2) == "ok" then
    return
  end
  answered = answered + 1
  if status == 200 then
    ok = ok + 1
  else
    other = other + 1
  end
  if answered == quota then
    io.open(marks .. "/done-" .. id, "w"):close()
    wrk.thread:stop()
  end
end
