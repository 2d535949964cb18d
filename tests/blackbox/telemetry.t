#!/usr/bin/env node
// OpenTelemetry export: a stand-in OTLP/HTTP collector (a node HTTP server on port
// 0 that records every POST body) receives the gateway's spans; the test checks the
// span tree (the request's server span joined to the client's traceparent, the
// decision and each upstream call as its children, the first_token event), the
// attributes, that a planted personal value never appears in what was exported,
// and that spans a collector cannot take are counted as dropped.
'use strict';
let L;
(async () => {
L = await import('./lib.mjs');
const { test, run, assert, eq, post, get, chat, sleep } = L;
const fs = await import('node:fs');
const http = await import('node:http');

if (!fs.existsSync(L.SWITCHYARD) || !fs.existsSync(L.UPSTREAM)) {
  L.skipAll(`build ${L.SWITCHYARD} and ${L.UPSTREAM} first (make asan)`);
  return;
}

// The stand-in collector.
const posts = [];
const collector = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    posts.push({ method: req.method, url: req.url, type: req.headers['content-type'], body: Buffer.concat(chunks).toString('utf8') });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{}');
  });
});
await new Promise((r) => collector.listen(0, '127.0.0.1', r));
const collectorUrl = `http://127.0.0.1:${collector.address().port}`;
// A port with nothing behind it, for the drop count.
const closed = http.createServer();
await new Promise((r) => closed.listen(0, '127.0.0.1', r));
const deadUrl = `http://127.0.0.1:${closed.address().port}`;
await new Promise((r) => closed.close(r));

const edge = await L.startUpstream('edge');
const cloud = await L.startUpstream('cloud');
const yaml = (endpoint) => `
listen: 127.0.0.1:0
store: sqlite:telemetry.db
log_level: warn
tiers:
  edge:
    kind: openai
    base_url: ${edge.url}/v1
    model: edge-small
    version: "e7"
    privacy: on_prem
    role: edge
    logprobs: true
    retries: 0
  cloud:
    kind: openai
    base_url: ${cloud.url}/v1
    model: big-model
    version: "c2"
    privacy: external
    retries: 0
    cost: { usd_per_mtok_in: 2.5, usd_per_mtok_out: 10 }
routing:
  pii: { action: local_only, min_score: 0.5 }
  policy: rules
  escalation: { enabled: true, min_confidence: 0.55 }
telemetry: { otlp_endpoint: "${endpoint}/", service_name: sy-test, batch: 4, interval_ms: 50, queue: 64 }
`;
const gw = await L.startGateway(yaml(collectorUrl), 'otel');
const V1 = `${gw.url}/v1/chat/completions`;
const EMAIL = 'jane.q.doe@example.org';
const CLIENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CLIENT_SPAN = '00f067aa0ba902b7';

const attrs = (span) => Object.fromEntries((span.attributes || []).map((a) => {
  const v = a.value;
  return [a.key, 'stringValue' in v ? v.stringValue : 'intValue' in v ? Number(v.intValue) : 'doubleValue' in v ? v.doubleValue : v.boolValue];
}));
async function spansOf(traceId, want) {
  for (let i = 0; i < 200; i++) {
    const all = posts.flatMap((p) => JSON.parse(p.body).resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans)));
    const mine = all.filter((s) => s.traceId === traceId);
    if (mine.length >= want) return mine;
    await sleep(25);
  }
  throw new Error(`spans of ${traceId} did not arrive: ${posts.length} posts`);
}

let piiId, escId;
test('requests with a traceparent and with personal data, and one escalated', async () => {
  await edge.control({ logprob: -0.05 });
  const a = await post(V1, chat(`Please write to ${EMAIL} about the invoice`, { max_tokens: 20 }),
    { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01` });
  eq(a.status, 200, 'PII request: ' + a.text);
  eq(a.json.switchyard.tier, 'edge', 'kept local');
  piiId = a.json.switchyard.id;
  await edge.control({ logprob: -4 });
  const b = await post(V1, chat('Tell me a short fact about the moon', { max_tokens: 20 }),
    { traceparent: 'not-a-valid-header' });
  eq(b.status, 200, 'escalated request: ' + b.text);
  eq(b.json.switchyard.escalated, true, 'escalated');
  escId = b.json.switchyard.id;
});

test('the collector received the span tree, joined to the client trace', async () => {
  const spans = await spansOf(CLIENT_TRACE, 3);
  for (const p of posts) {
    eq(p.method, 'POST', 'method');
    eq(p.url, '/v1/traces', 'path');
    assert(/application\/json/.test(p.type), 'JSON encoding: ' + p.type);
  }
  const body = JSON.parse(posts[0].body);
  const res = attrs(body.resourceSpans[0].resource);
  eq(res['service.name'], 'sy-test', 'service.name');
  const root = spans.find((s) => s.parentSpanId === CLIENT_SPAN);
  assert(root, 'a span whose parent is the client span: ' + JSON.stringify(spans));
  eq(root.kind, 2, 'server span');
  assert(/^[0-9a-f]{16}$/.test(root.spanId) && root.spanId !== CLIENT_SPAN, 'own span id');
  const ra = attrs(root);
  eq(ra['switchyard.request_id'], piiId, 'request id');
  eq(ra['switchyard.tier'], 'edge', 'tier');
  eq(ra['switchyard.model'], 'edge-small', 'model');
  eq(ra['switchyard.version'], 'e7', 'version');
  eq(ra['http.response.status_code'], 200, 'status');
  assert(ra['switchyard.pii_types'].split(',').includes('EMAIL_ADDRESS'), 'PII type named: ' + ra['switchyard.pii_types']);
  assert(ra['switchyard.reasons'].includes('pii:EMAIL_ADDRESS'), 'reasons: ' + ra['switchyard.reasons']);
  assert(ra['gen_ai.usage.output_tokens'] > 0 && ra['gen_ai.usage.input_tokens'] > 0, 'tokens');
  assert(typeof ra['switchyard.cost_usd'] === 'number', 'cost');
  assert(typeof root.startTimeUnixNano === 'string' && BigInt(root.startTimeUnixNano) <= BigInt(root.endTimeUnixNano), 'times as strings, ordered');
  const now = BigInt(Date.now()) * 1000000n;
  assert(now - BigInt(root.startTimeUnixNano) < 120000000000n, 'Unix nanoseconds');
  const ev = (root.events || []).find((e) => e.name === 'first_token');
  assert(ev && BigInt(ev.timeUnixNano) >= BigInt(root.startTimeUnixNano) && BigInt(ev.timeUnixNano) <= BigInt(root.endTimeUnixNano), 'first_token event inside the request');
  const kids = spans.filter((s) => s.parentSpanId === root.spanId);
  const dec = kids.find((s) => s.name === 'decision');
  assert(dec, 'decision span: ' + kids.map((s) => s.name));
  assert(attrs(dec)['switchyard.reasons'].includes('pii:EMAIL_ADDRESS'), 'decision reasons');
  eq(attrs(dec)['switchyard.local_only'], true, 'local only');
  const att = kids.filter((s) => s.name.startsWith('attempt '));
  eq(att.length, 1, 'one attempt');
  eq(attrs(att[0])['switchyard.tier'], 'edge', 'attempt tier');
  eq(att[0].status.code, 1, 'attempt ok');
  assert(BigInt(dec.endTimeUnixNano) <= BigInt(att[0].startTimeUnixNano), 'decided before the attempt');
  eq(spans.length, 3, 'root, decision and one attempt');
  // Personal data never leaves in telemetry: not the value, not a fragment of it.
  for (const p of posts) {
    assert(!p.body.includes(EMAIL) && !p.body.includes('jane.q.doe') && !p.body.includes('invoice'), 'no request text exported');
  }
});

test('an escalation shows both upstream calls; a bad traceparent starts a new trace', async () => {
  let trace;
  for (let i = 0; i < 200 && !trace; i++) {
    const all = posts.flatMap((p) => JSON.parse(p.body).resourceSpans[0].scopeSpans[0].spans);
    const root = all.find((s) => s.kind === 2 && attrs(s)['switchyard.request_id'] === escId);
    if (root) trace = root.traceId; else await sleep(25);
  }
  assert(trace && /^[0-9a-f]{32}$/.test(trace) && trace !== CLIENT_TRACE, 'a new trace id: ' + trace);
  const spans = await spansOf(trace, 4);
  const root = spans.find((s) => !s.parentSpanId);
  assert(root, 'the root has no parent');
  eq(attrs(root)['switchyard.tier'], 'cloud', 'answered by the cloud');
  eq(attrs(root)['switchyard.version'], 'c2', 'cloud version');
  eq(attrs(root)['switchyard.escalated'], true, 'escalated');
  assert(attrs(root)['switchyard.confidence'] < 0.55, 'low confidence recorded');
  const att = spans.filter((s) => s.parentSpanId === root.spanId && s.name.startsWith('attempt '))
    .sort((x, y) => attrs(x)['switchyard.attempt'] - attrs(y)['switchyard.attempt']);
  eq(att.map((s) => attrs(s)['switchyard.tier']).join(','), 'edge,cloud', 'edge then cloud');
  eq(attrs(att[0])['switchyard.version'], 'e7', 'edge version');
  assert(BigInt(att[0].endTimeUnixNano) <= BigInt(att[1].startTimeUnixNano), 'in order');
  const m = (await get(`${gw.url}/metrics`)).text;
  assert(/switchyard_otlp_exported_total [1-9]/.test(m), 'exported counted');
  assert(/switchyard_otlp_dropped_total 0\n/.test(m), 'nothing dropped');
});

test('spans a collector cannot take are counted as dropped', async () => {
  const dead = await L.startGateway(yaml(deadUrl), 'otel-dead');
  await edge.control({ logprob: -0.05 });
  eq((await post(`${dead.url}/v1/chat/completions`, chat('hello', { max_tokens: 5 }))).status, 200, 'served anyway');
  let dropped = 0;
  for (let i = 0; i < 200 && dropped < 3; i++) {
    const m = (await get(`${dead.url}/metrics`)).text.match(/switchyard_otlp_dropped_total (\d+)/);
    dropped = m ? Number(m[1]) : 0;
    if (dropped < 3) await sleep(25);
  }
  eq(dropped, 3, 'root, decision and attempt dropped');
  eq(await dead.stop(), 0, 'exit code');
  const warns = dead.proc.stderrText.split('\n').filter((l) => l.includes('otlp: export'));
  eq(warns.length, 1, 'one warning: ' + warns.join('\n'));
});

await run();
eq(await gw.stop(), 0, 'switchyard exit code');
assert(!/ERROR: (AddressSanitizer|LeakSanitizer)/.test(gw.proc.stderrText), 'sanitizers clean');
collector.close();
await edge.stop();
await cloud.stop();
L.cleanup();
})().catch((e) => { console.log(`not ok - harness: ${e.stack}`); process.exitCode = 1; if (L) L.cleanup(); });
