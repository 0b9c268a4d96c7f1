-- wrk script: POST realistic partner webhooks, mostly unique, ~10 % exact redeliveries.
--
-- Usage: wrk -s bench/post_events.lua <url> -- <run-tag> <secret>
-- Each body carries a top-level `id` made of the run tag, the wrk thread and a counter, so
-- runs against the same database never collide; one request in ten re-sends a body this
-- thread sent recently (what 360dialog does when an acknowledgement is slow). Event types
-- and channel / client ids vary as in bench/events.py. `done` prints one JSON line.

local events = {
  "channel_created", "channel_submitted", "channel_ready", "channel_running", "channel_live",
  "account_violation", "account_restriction", "cancellation_request", "cancellation_revoke",
  "template_messaging_enabled", "template_messaging_disabled", "waba_template_status_changed",
  "client_created", "permission_granted_v2",
}
local statuses = { "created", "submitted", "ready", "running", "pending_deletion" }

local channel_body = [[{"id":"%s-%d-%d","event":"%s","data":{"id":"B%05dCH","client_id":"B%03dCL",]]
  .. [["client":{"id":"B%03dCL","name":"Bench Client %d","partner_payload":"crm-%d",]]
  .. [["contact_info":{"email":"client%d@bench.example","full_name":"Bench Client %d","language":"en"}},]]
  .. [["status":"%s","account_mode":"live","created_at":"2026-03-02T09:14:07Z",]]
  .. [["modified_at":"2026-03-02T10:03:%02dZ","billing_started_at":null,"terminated_at":null,]]
  .. [["setup_info":{"phone_number":"+49151%07d","phone_name":"Bench %d","was_in_use":false,]]
  .. [["ivr":false,"verification_method":"sms","default_language":"en"},]]
  .. [["waba_account":{"id":"B%05dWA","name":"Bench %d","external_id":"1098765%08d",]]
  .. [["client_id":"B%03dCL","status":"approved","fb_account_status":"verified",]]
  .. [["on_behalf_of_business_info":{"id":"3487283452%05d","name":"Bench %d GmbH",]]
  .. [["status":"approved","type":"OWNERSHIP"}},]]
  .. [["integration":{"enabled":true,"app_id":"2047%02d","state":"running"}}}]]

local counter = 0
local filled = 0 -- fresh bodies kept in `recent`, a ring filled without holes
local recent = {}
local headers = { ["Content-Type"] = "application/json" }
local tag = "run"

function setup(thread)
  thread:set("tid", thread_count)
  thread_count = (thread_count or 0) + 1
end
thread_count = 1

function init(args)
  tag = args[1] or "run"
  if args[2] then
    headers["x-webhook-token"] = args[2]
  end
  math.randomseed(os.time() * 100 + (tid or 0))
end

local function fresh_body()
  local ev = events[math.random(#events)]
  local ch = math.random(0, 499)
  local cl = ch % 100
  return string.format(channel_body, tag, tid or 0, counter, ev, ch, cl, cl, cl, cl, cl, cl,
    statuses[(ch % #statuses) + 1], counter % 60, ch, ch, ch, ch, ch, cl, ch, ch, ch % 100)
end

function request()
  counter = counter + 1
  local body
  if filled >= 20 and math.random() < 0.10 then
    body = recent[math.random(math.min(filled, 200))]
  else
    body = fresh_body()
    filled = filled + 1
    recent[((filled - 1) % 200) + 1] = body
  end
  return wrk.format("POST", "/webhooks/partner", headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
