-- overhead.lua: wrk script for bench/overhead.sh. POSTs a small chat completion
-- (streamed when the first script argument is "stream") and prints one
-- machine-readable line: RESULT requests seconds p50_us p99_us errors non2xx.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function init(args)
  local stream = args[1] == "stream"
  -- switchyard-auth: the key of the config's auth section. A budgeted request
  -- without max_tokens gets one, which changes its route, so with a key every
  -- target is sent the same explicit max_tokens.
  local key = os.getenv("BENCH_KEY")
  local keyed = key and key ~= ""
  if keyed then wrk.headers["Authorization"] = "Bearer " .. key end
  local model = os.getenv("BENCH_MODEL")
  if not model or model == "" then model = "bench" end
  wrk.body = '{"model":"' .. model .. '","messages":[{"role":"user","content":' ..
             '"Summarize the benefits of keep-alive connections in one line."}]' ..
             (keyed and ',"max_tokens":256' or '') ..
             (stream and ',"stream":true' or '') .. '}'
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %.3f %d %d %d %d\n", summary.requests,
    summary.duration / 1e6, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
