-- wrk script for bench/run.sh: POST one fixture body, with the headers sipgate sends.
--
-- Environment:
--   BENCH_PATH       request path, e.g. /new-call
--   BENCH_BODY       file holding the body (a tests/fixtures/*.form)
--   BENCH_SIGNATURE  optional file holding the X-Sipgate-Signature value
--
-- At the end it prints one line, "BENCH key=value …", which run.sh reads.

local function slurp(path)
  local file = assert(io.open(path, "rb"), "cannot open " .. tostring(path))
  local text = file:read("*a")
  file:close()
  return text
end

wrk.method = "POST"
wrk.path = os.getenv("BENCH_PATH") or "/"
wrk.body = slurp(os.getenv("BENCH_BODY"))
-- The headers of the real capture (tests/fixtures/README.md, fixture 18).
wrk.headers["User-Agent"] = "sipgate.io"
wrk.headers["Accept"] = "application/xml, text/plain, text/html"
wrk.headers["Accept-Charset"] = "utf-8"
wrk.headers["Accept-Encoding"] = "gzip,deflate"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded; charset=UTF-8"
wrk.headers["X-Forwarded-For"] = "217.116.118.254"
wrk.headers["X-Forwarded-Proto"] = "https"
wrk.headers["X-Sipgate-Jobs"] = "http://www.sipgate.de/jobs"

local signature = os.getenv("BENCH_SIGNATURE")
if signature and signature ~= "" then
  wrk.headers["X-Sipgate-Signature"] = (slurp(signature):gsub("%s+$", ""))
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d status_errors=%d "
      .. "connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    errors.status, errors.connect, errors.read, errors.write, errors.timeout))
end
