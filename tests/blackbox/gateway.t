#!/usr/bin/env node
// The gateway end to end: the real switchyard binary between stand-in upstreams
// (tests/tools/upstream: an OpenAI-compatible stand-in with controllable failures).
'use strict';
let L;
(async () => {
L = await import('./lib.mjs');
const { test, run, assert, eq, post, get, chat, sseEvents, sleep } = L;
const fs = await import('node:fs');

if (!fs.existsSync(L.SWITCHYARD) || !fs.existsSync(L.UPSTREAM)) {
  L.skipAll(`build ${L.SWITCHYARD} and ${L.UPSTREAM} first (make asan)`);
  return;
}

const edge = await L.startUpstream('edge');
const cloud = await L.startUpstream('cloud');
const config = (extra = {}) => `
listen: 127.0.0.1:0
workers: 2
store: sqlite:${extra.db || 'ledger.db'}
log_level: ${extra.log || 'warn'}
tiers:
  edge:
    kind: openai
    base_url: ${edge.url}/v1
    model: edge-small
    version: "v3"
    privacy: on_prem
    role: edge
    logprobs: true
    max_concurrency: ${extra.edgeConc || 4}
    max_queue: ${extra.edgeQueue ?? 8}
    retries: 0
    ttft_timeout_ms: ${extra.edgeTtft || 2000}
    breaker: { failures: 3, open_ms: ${extra.openMs || 60000} }
    cost: { usd_per_hour: 0.36, tokens_per_second: 100 }
  cloud:
    kind: openai
    base_url: ${cloud.url}/v1
    model: big-model
    privacy: external
    retries: ${extra.cloudRetries ?? 1}
    retry_backoff_ms: 5
    ttft_timeout_ms: ${extra.cloudTtft || 2000}
    breaker: { failures: ${extra.cloudFailures || 3}, open_ms: ${extra.openMs || 60000} }
    cost: { usd_per_mtok_in: 2.5, usd_per_mtok_out: 10 }
routing:
  pii: { action: local_only, min_score: 0.5 }
  token_budget: { cloud_above: 1024 }
  policy: rules
  escalation: { enabled: ${extra.escalation || 'false'}, min_confidence: 0.55 }
`;

async function resetAll() {
  for (const u of [edge, cloud]) {
    await u.reset();
    await u.control({ fail: 'none', down: false, latency_ms: 0, ttft_ms: 0, chunk_ms: 0, logprob: -0.1 });
  }
}

const gw = await L.startGateway(config());
const V1 = `${gw.url}/v1/chat/completions`;

test('non-stream chat answered by a forced tier, with the switchyard object and headers', async () => {
  await resetAll();
  const r = await post(V1, chat('Say hello', { model: 'cloud' }));
  eq(r.status, 200, 'status');
  assert(r.json.choices[0].message.content.startsWith('[cloud]'), 'cloud answered: ' + r.text);
  eq(r.json.switchyard.tier, 'cloud', 'switchyard.tier');
  eq(r.json.switchyard.model, 'big-model', 'switchyard.model');
  assert(r.json.switchyard.reasons.some((x) => x.startsWith('forced')), 'forced reason: ' + r.json.switchyard.reasons);
  assert(typeof r.json.switchyard.decision_us === 'number', 'decision_us');
  assert(r.json.switchyard.cost_usd > 0, 'cost_usd');
  eq(r.headers.get('x-switchyard-tier'), 'cloud', 'X-Switchyard-Tier');
  assert(r.headers.get('x-switchyard-reason').includes('forced'), 'X-Switchyard-Reason');
  const rec = await cloud.received();
  eq(rec.count, 1, 'cloud received one request');
  const sent = JSON.parse(rec.requests[0].body);
  eq(sent.model, 'big-model', 'model rewritten for the tier');
  assert(!('metadata' in sent), 'switchyard metadata stripped before forwarding');
});

test('streamed chat passes SSE through chunk by chunk and ends with switchyard and [DONE]', async () => {
  await resetAll();
  await cloud.control({ chunks: 5, chunk_ms: 5 });
  const r = await post(V1, chat('Tell a story', { model: 'cloud', stream: true }));
  eq(r.status, 200, 'status');
  assert((r.headers.get('content-type') || '').startsWith('text/event-stream'), 'SSE content type');
  const ev = sseEvents(r.text);
  eq(ev[ev.length - 1], '[DONE]', 'ends with [DONE]');
  const content = ev.filter((e) => e !== '[DONE]' && e.choices && e.choices.length)
    .map((e) => e.choices[0].delta.content || '').join('');
  assert(content.startsWith('[cloud]'), 'content reassembles: ' + content);
  const deltas = ev.filter((e) => e !== '[DONE]' && e.choices && e.choices.length && e.choices[0].delta.content);
  assert(deltas.length >= 5, `at least 5 content chunks, got ${deltas.length}`);
  const sy = ev.filter((e) => e !== '[DONE]' && e.switchyard);
  eq(sy.length, 1, 'one switchyard chunk');
  eq(sy[0].switchyard.tier, 'cloud', 'stream switchyard.tier');
  assert(!ev.some((e) => e !== '[DONE]' && e.usage && e.choices && e.choices.length === 0),
    'the usage chunk the client did not ask for is not passed on');
});

test('routing reasons: a long expected answer goes to the cloud for its token budget', async () => {
  await resetAll();
  const r = await post(V1, chat('Write a detailed report on the history of trains.', { max_tokens: 4000 }));
  eq(r.status, 200, 'status');
  eq(r.json.switchyard.tier, 'cloud', 'tier');
  assert(r.json.switchyard.reasons.some((x) => x.startsWith('budget')), 'budget reason: ' + r.json.switchyard.reasons);
});

test('/v1/route explains a decision without inference', async () => {
  await resetAll();
  const r = await post(`${gw.url}/v1/route`, chat('My email is jane.doe@example.com, what is 2+2?'));
  eq(r.status, 200, 'status');
  eq(r.json.decision.local_only, true, 'local_only');
  assert(r.json.decision.pii.includes('EMAIL_ADDRESS'), 'pii listed');
  assert(!r.json.decision.order.includes('cloud'), 'cloud not eligible: ' + JSON.stringify(r.json.decision.order));
  eq((await cloud.received()).count, 0, 'cloud received nothing');
  eq((await edge.received()).count, 0, 'edge received nothing');
});

test('switchyard route decides offline as the gateway does, with the configured models', async () => {
  await resetAll();
  const path = await import('node:path');
  const { spawnSync } = await import('node:child_process');
  const models = config({ db: 'models.db' }).replace('  policy: rules',
    `  policy: rules\n  model: ${path.join(L.ROOT, 'models/router.bin')}\n  classifier: ${path.join(L.ROOT, 'models/taskclass.bin')}`);
  const g = await L.startGateway(models, 'models');
  const cfgFile = path.join(L.tmp(), 'route-models.yaml');
  fs.writeFileSync(cfgFile, models);
  for (const text of ['Write a Python function that parses a CSV file and explains each step.',
    'What is the capital of France?', 'Prove that the square root of 2 is irrational, step by step.']) {
    const body = chat(text);
    const online = await post(`${g.url}/v1/route`, body);
    eq(online.status, 200, 'gateway /v1/route');
    const off = spawnSync(L.SWITCHYARD, ['route', '-c', cfgFile], { input: JSON.stringify(body), encoding: 'utf8' });
    eq(off.status, 0, 'switchyard route: ' + off.stderr);
    const d = JSON.parse(off.stdout).decision;
    eq(d.features.task_source, 'model', 'the task classifier is loaded');
    assert(typeof d.features.cloud_score === 'number', 'the need-of-cloud model is loaded');
    eq(d.tier, online.json.decision.tier, 'same tier: ' + text);
    eq(JSON.stringify(d.reasons), JSON.stringify(online.json.decision.reasons), 'same reasons: ' + text);
    eq(d.features.cloud_score, online.json.decision.features.cloud_score, 'same score');
  }
  const bad = spawnSync(L.SWITCHYARD, ['route', '-c', cfgFile.replace('.yaml', '-bad.yaml')], { input: '{}', encoding: 'utf8' });
  assert(bad.status !== 0, 'a missing config fails');
  fs.writeFileSync(cfgFile, models.replace(path.join(L.ROOT, 'models/router.bin'), '/nonexistent/router.bin'));
  const missing = spawnSync(L.SWITCHYARD, ['route', '-c', cfgFile], { input: JSON.stringify(chat('hi')), encoding: 'utf8' });
  assert(missing.status !== 0 && /nonexistent\/router.bin/.test(missing.stderr), 'a missing model is named: ' + missing.stderr);
  eq(await g.stop(), 0, 'clean exit');
});

test('a PII request is served only by the on-prem tier, even when forced to the cloud', async () => {
  await resetAll();
  for (const body of [
    chat('Please reply to jane.doe@example.com about the invoice'),
    chat('My card is 4111 1111 1111 1111, can you check it?', { model: 'cloud' }),
    { model: 'auto', messages: [{ role: 'user', content: [{ type: 'text', text: 'SSN ' }, { type: 'text', text: '078-05-1120 is mine' }] }], metadata: { tier: 'cloud' } },
  ]) {
    const r = await post(V1, body);
    if (r.status === 200) {
      eq(r.json.switchyard.tier, 'edge', 'served by edge');
      assert(r.json.switchyard.pii.length > 0, 'pii reported');
    } else {
      eq(r.status, 403, 'forced external tier refused with 403 or served locally: ' + r.text);
      assert(/personal data/.test(r.json.error.message), 'says why: ' + r.text);
    }
  }
  eq((await cloud.received()).count, 0, 'cloud received nothing');
});

test('a PII request while the local tier is down gets a 503 and the cloud received nothing', async () => {
  await resetAll();
  await edge.control({ down: true });
  const r = await post(V1, chat('Call me at +1 415 555 0132 tomorrow about the order'));
  eq(r.status, 503, 'status: ' + r.text);
  assert(r.json.error && /local|personal/.test(r.json.error.message), 'clear message: ' + r.text);
  eq((await cloud.received()).count, 0, 'cloud received nothing');
  await edge.control({ down: false });
});

test('failover cloud -> edge before the first byte, marked degraded', async () => {
  await resetAll();
  await cloud.control({ fail: '500' });
  const r = await post(V1, chat('Write a detailed report on the history of trains.', { max_tokens: 4000 }));
  eq(r.status, 200, 'status: ' + r.text);
  eq(r.json.switchyard.tier, 'edge', 'edge answered');
  eq(r.json.switchyard.failover, true, 'failover flag');
  eq(r.json.switchyard.degraded, true, 'degraded flag');
  assert(r.json.switchyard.warning, 'warning text');
  assert(r.headers.get('x-switchyard-degraded'), 'degraded header');
  assert(r.json.switchyard.reasons.some((x) => x.startsWith('failover:cloud')), 'failover reason');
  eq((await cloud.received()).count, 2, 'one retry on a 5xx, then failover');
});

test('failover edge -> cloud on a TTFT timeout', async () => {
  await resetAll();
  await edge.control({ latency_ms: 3000, ttft_ms: 3000 });
  const t0 = Date.now();
  const r = await post(V1, chat('hi', { model: 'auto', metadata: {} }), { 'x-switchyard-tier': 'edge' });
  // A forced tier has no alternative: expect the timeout to surface as 503.
  eq(r.status, 503, 'forced edge times out: ' + r.text);
  assert(Date.now() - t0 < 2900, 'gave up at the TTFT timeout, not the upstream delay');
  const r2 = await post(V1, chat('What is the capital of France?'));
  eq(r2.status, 200, 'unforced: ' + r2.text);
  if (r2.json.switchyard.reasons.some((x) => x.startsWith('failover:edge'))) {
    eq(r2.json.switchyard.tier, 'cloud', 'cloud answered after the edge timed out');
    assert(r2.json.switchyard.reasons.some((x) => x.includes('ttft')), 'ttft reason: ' + r2.json.switchyard.reasons);
  }
});

test('at least 30 malformed requests each get a clear 4xx, and the server still serves', async () => {
  await resetAll();
  const bad = [
    '', '{', 'null', '[]', '"x"', '42', '{"messages":', '{"messages": []}', '{"messages": "hi"}',
    '{"messages": [1]}', '{"messages": [{}]}', '{"messages": [{"role": 5, "content": "x"}]}',
    '{"messages": [{"role": "wizard", "content": "x"}]}', '{"messages": [{"role": "user"}]}',
    '{"messages": [{"role": "user", "content": 5}]}', '{"messages": [{"role": "user", "content": [5]}]}',
    '{"messages": [{"role": "user", "content": [{"type": "text"}]}]}',
    '{"messages": [{"role": "user", "content": [{"type": "video", "x": 1}]}]}',
    '{"messages": [{"role": "user", "content": "x"}], "n": 129}',
    '{"messages": [{"role": "user", "content": "x"}], "max_tokens": -1}',
    '{"messages": [{"role": "user", "content": "x"}], "max_tokens": 1.5}',
    '{"messages": [{"role": "user", "content": "x"}], "temperature": 9}',
    '{"messages": [{"role": "user", "content": "x"}], "top_p": "high"}',
    '{"messages": [{"role": "user", "content": "x"}], "stream": "yes"}',
    '{"messages": [{"role": "user", "content": "x"}], "stop": [1]}',
    '{"messages": [{"role": "user", "content": "x"}], "stop": ["a","b","c","d","e"]}',
    '{"messages": [{"role": "user", "content": "x", "content": "y"}]}',
    '{"messages": [{"role": "user", "content": "x"}], "verbosity": 5}',
    '{"messages": [{"role": "user", "content": "x"}], "metadata": "team-a"}',
    '{"messages": [{"role": "user", "content": "x"}], "metadata": {"team": 7}}',
    '{"messages": [{"role": "user", "content": "x"}], "metadata": {"privacy": "maybe"}}',
    '{"messages": [{"role": "user", "content": "x"}], "model": 5}',
    '{"messages": [{"role": "user", "content": "x"}], "logprobs": "yes"}',
    '{"messages": [{"role": "user", "content": "x"}], "tools": {}}',
    '{"messages": [{"role": "user", "content": "x"}]} trailing',
    '{"messages": [{"role": "user", "content": "x"}], "model": "nonexistent-tier", "metadata": {"tier": "nope"}}',
    '\u0000\u0001\u0002',
  ];
  for (const b of bad) {
    const r = await post(V1, b);
    assert(r.status >= 400 && r.status < 500, `4xx for ${JSON.stringify(b)}: got ${r.status}`);
    assert(r.json && r.json.error && typeof r.json.error.message === 'string' && r.json.error.message.length > 5,
      `OpenAI error object for ${JSON.stringify(b)}: ${r.text}`);
  }
  // Errors name the message and content part they are about, as param and in the text.
  const where = [
    ['{"messages": [{"role": "user"}]}', 'messages[0].content', 'messages[0].content is required'],
    ['{"messages": [{"role": "user", "content": "x"}, {"role": "wizard", "content": "x"}]}', 'messages[1]', "messages[1].role 'wizard'"],
    ['{"messages": [{"role": "user", "content": "x"}, {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text"}]}]}',
      'messages[1].content[1]', 'messages[1].content[1].text must be a string'],
    ['{"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}]}, {"role": "user", "content": 5}]}',
      'messages[1].content', 'messages[1].content must be a string or an array'],
    ['{"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}]}, {"role": "user", "content": "x", "name": 5}]}',
      'messages[1]', 'messages[1].name must be a string'],
  ];
  for (const [b, param, text] of where) {
    const r = await post(V1, b);
    eq(r.status, 400, 'status for ' + b);
    eq(r.json.error.param, param, 'param for ' + b);
    assert(r.json.error.message.includes(text), `message for ${b}: ${r.json.error.message}`);
  }
  const wrongType = await post(V1, '{"messages":[{"role":"user","content":"x"}]}', { 'content-type': 'text/plain' });
  eq(wrongType.status, 400, 'wrong content type');
  const big = await post(V1, JSON.stringify(chat('x'.repeat(5 * 1024 * 1024))));
  eq(big.status, 413, 'oversized body');
  const nf = await get(`${gw.url}/v1/nothing`);
  eq(nf.status, 404, 'unknown path');
  const meth = await get(V1);
  eq(meth.status, 405, 'wrong method');
  assert(bad.length + 4 >= 30, 'at least 30 cases');
  const ok = await post(V1, chat('still there?', { model: 'cloud' }));
  eq(ok.status, 200, 'still serving');
});

test('/v1/models lists tiers; /healthz and /readyz answer', async () => {
  const m = await get(`${gw.url}/v1/models`);
  eq(m.status, 200, 'models');
  const ids = m.json.data.map((d) => d.id);
  assert(ids.includes('edge') && ids.includes('cloud') && ids.includes('auto'), 'ids ' + ids);
  eq((await get(`${gw.url}/healthz`)).status, 200, 'healthz');
  eq((await get(`${gw.url}/readyz`)).status, 200, 'readyz');
});

test('/metrics is valid Prometheus text with the gateway series', async () => {
  const r = await get(`${gw.url}/metrics`);
  eq(r.status, 200, 'status');
  const lines = r.text.split('\n').filter((l) => l.length);
  const sample = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? -?[0-9.eE+-]+(Inf)?$/;
  for (const l of lines) {
    if (l.startsWith('# HELP ') || l.startsWith('# TYPE ')) continue;
    assert(sample.test(l), 'parses: ' + l);
  }
  for (const name of ['switchyard_requests_total', 'switchyard_decisions_total', 'switchyard_decision_seconds_bucket',
    'switchyard_ttft_seconds_bucket', 'switchyard_request_seconds_bucket', 'switchyard_failovers_total',
    'switchyard_circuit_state', 'switchyard_queue_depth', 'switchyard_pii_hits_total'])
    assert(r.text.includes(name), 'has ' + name);
  assert(/switchyard_pii_hits_total\{type="EMAIL_ADDRESS"\} [1-9]/.test(r.text), 'PII hits counted');
});

test('circuit opens after consecutive failures and closes after a successful probe', async () => {
  await resetAll();
  const g2 = await L.startGateway(config({ db: 'circuit.db', openMs: 300, cloudRetries: 0, cloudFailures: 2 }), 'circuit');
  await cloud.control({ fail: '500' });
  const force = { 'x-switchyard-tier': 'cloud' };
  for (let i = 0; i < 2; i++) eq((await post(`${g2.url}/v1/chat/completions`, chat('x'), force)).status, 503, 'failure ' + i);
  const before = (await cloud.received()).count;
  const open = await post(`${g2.url}/v1/chat/completions`, chat('x'), force);
  eq(open.status, 503, 'open circuit refuses');
  eq((await cloud.received()).count, before, 'open circuit sends nothing upstream');
  let metrics = (await get(`${g2.url}/metrics`)).text;
  assert(/switchyard_circuit_state\{tier="cloud",state="open"\} 1/.test(metrics), 'metrics show open');
  await cloud.control({ fail: 'none' });
  await sleep(350);
  const probe = await post(`${g2.url}/v1/chat/completions`, chat('x'), force);
  eq(probe.status, 200, 'half-open probe succeeds: ' + probe.text);
  metrics = (await get(`${g2.url}/metrics`)).text;
  assert(/switchyard_circuit_state\{tier="cloud",state="closed"\} 1/.test(metrics), 'metrics show closed');
  eq(await g2.stop(), 0, 'clean exit');
});

test('queue spillover: a saturated edge spills to the cloud', async () => {
  await resetAll();
  const g3 = await L.startGateway(config({ db: 'spill.db', edgeConc: 1, edgeQueue: 0 }), 'spill');
  await edge.control({ latency_ms: 400 });
  const simple = chat('What is the capital of France?');
  // Find out where this prompt routes when nothing is saturated.
  const plain = await post(`${g3.url}/v1/route`, simple);
  const first = plain.json.decision.tier;
  const body = first === 'edge' ? simple : chat('What is the capital of France?', { metadata: {} });
  const [a, b] = await Promise.all([
    post(`${g3.url}/v1/chat/completions`, body, { 'x-switchyard-team': 'spill' }),
    sleep(50).then(() => post(`${g3.url}/v1/chat/completions`, body, { 'x-switchyard-team': 'spill' })),
  ]);
  eq(a.status, 200, 'first');
  eq(b.status, 200, 'second');
  if (first === 'edge') {
    eq(a.json.switchyard.tier, 'edge', 'first on edge');
    eq(b.json.switchyard.tier, 'cloud', 'second spilled to cloud');
    assert(b.json.switchyard.reasons.some((x) => x.startsWith('spill:edge') || x.startsWith('skip:edge')),
      'spill reason ' + b.json.switchyard.reasons);
  }
  eq(await g3.stop(), 0, 'clean exit');
});

test('ledger rows and /v1/costs totals are right', async () => {
  await resetAll();
  const g4 = await L.startGateway(config({ db: 'costs.db' }), 'costs');
  const U = `${g4.url}/v1/chat/completions`;
  for (let i = 0; i < 3; i++) eq((await post(U, chat('hello there', { model: 'cloud', metadata: { team: 'alpha', tenant: 't1' } }))).status, 200, 'alpha');
  for (let i = 0; i < 2; i++) eq((await post(U, chat('hello there', { model: 'edge', metadata: { team: 'beta', tenant: 't1' } }))).status, 200, 'beta');
  const rc = await get(`${g4.url}/v1/costs?group_by=team`);
  eq(rc.status, 200, 'costs: ' + rc.text);
  const byKey = Object.fromEntries(rc.json.groups.map((g) => [g.key, g]));
  eq(byKey.alpha.requests, 3, 'alpha requests');
  eq(byKey.beta.requests, 2, 'beta requests');
  // The stand-in reports usage; cloud costs 2.5 $/Mtok in and 10 $/Mtok out.
  const rec = await cloud.received();
  const one = await post(U, chat('hello there', { model: 'cloud', metadata: { team: 'gamma' } }));
  const expect = one.json.usage.prompt_tokens * 2.5e-6 + one.json.usage.completion_tokens * 10e-6;
  assert(Math.abs(one.json.switchyard.cost_usd - expect) < 1e-9, `cost ${one.json.switchyard.cost_usd} vs ${expect}`);
  const rc2 = await get(`${g4.url}/v1/costs?group_by=team`);
  const gamma = rc2.json.groups.find((g) => g.key === 'gamma');
  assert(Math.abs(gamma.cost_usd - expect) < 1e-9, 'ledger cost matches the response');
  assert(Math.abs(byKey.alpha.saved_usd) < 1e-9, 'cloud requests save nothing');
  assert(byKey.beta.saved_usd > 0, 'edge requests save vs all-cloud');
  const total = rc2.json.total;
  eq(total.requests, 6, 'total requests');
  const byTier = (await get(`${g4.url}/v1/costs?group_by=tier`)).json;
  eq(byTier.groups.find((g) => g.key === 'cloud').requests, 4, 'by tier');
  const bad = await get(`${g4.url}/v1/costs?group_by=planet`);
  eq(bad.status, 400, 'bad group_by');
  const future = await get(`${g4.url}/v1/costs?group_by=team&since=2999-01-01`);
  eq(future.json.total.requests, 0, 'since filter');
  void rec;
  eq(await g4.stop(), 0, 'clean exit');
});

test('a cost report over a big ledger does not hold up other requests on its worker', async () => {
  await resetAll();
  const { execFileSync } = await import('node:child_process');
  const path = await import('node:path');
  const g = await L.startGateway(config({ db: 'bigledger.db' }).replace('workers: 2', 'workers: 1'), 'bigledger');
  eq((await post(`${g.url}/v1/chat/completions`, chat('hello there', { model: 'cloud' }))).status, 200, 'one request');
  // 400k rows written beside the gateway (WAL: the gateway's own connections stay open).
  const rows = 400000;
  execFileSync('sqlite3', [path.join(L.tmp(), 'bigledger.db'),
    `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${rows})
     INSERT INTO ledger (id, ts_ms, team, tier, tokens_in, tokens_out, cost_nusd)
     SELECT 'bulk-' || x, ${Date.now()}, 'team' || (x % 50), 'cloud', 10, 20, 1000 FROM c;`]);
  // Separate connections (no pooling), so only the server can order the answers.
  const http = await import('node:http');
  const order = [];
  const fresh = (p, tag) => new Promise((resolve, reject) => {
    http.get(`${g.url}${p}`, { agent: false }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        order.push(tag);
        let json = null;
        try { json = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, text, json });
      });
    }).on('error', reject);
  });
  const report = fresh('/v1/costs?group_by=team', 'costs');
  await sleep(20);
  const health = fresh('/healthz', 'healthz');
  const [rc, rh] = await Promise.all([report, health]);
  eq(rh.status, 200, 'healthz');
  eq(rc.status, 200, 'costs: ' + rc.text);
  eq(rc.json.total.requests, rows + 1, 'every row counted');
  eq(rc.json.groups.length, 51, 'groups');
  eq(order.join(','), 'healthz,costs', 'the worker kept serving while the report ran');
  eq(await g.stop(), 0, 'clean exit');
});

test('bandit feedback: rewards by request id, validated, counted once, state kept across a restart', async () => {
  await resetAll();
  const bandit = config({ db: 'bandit.db', log: 'info' }).replace('policy: rules', 'policy: bandit\n  bandit: { algorithm: linucb, alpha: 0.5, explore: true }');
  let g = await L.startGateway(bandit, 'bandit');
  const ids = [];
  for (let i = 0; i < 3; i++) {
    const r = await post(`${g.url}/v1/chat/completions`, chat('What is the capital of France?'));
    eq(r.status, 200, 'answer');
    ids.push(r.json.switchyard.id);
  }
  const F = `${g.url}/v1/feedback`;
  eq((await post(F, { id: ids[0], reward: 1 })).status, 200, 'accepted');
  eq((await post(F, { id: ids[0], reward: 1 })).status, 404, 'counted once');
  eq((await post(F, { id: 'chatcmpl-unknown', reward: 1 })).status, 404, 'unknown id');
  eq((await post(F, { id: ids[1], reward: 7 })).status, 400, 'reward out of range');
  eq((await post(F, { reward: 1 })).status, 400, 'id required');
  eq((await post(F, 'nope')).status, 400, 'not JSON');
  eq((await post(F, { id: ids[1], reward: 0.5 })).status, 200, 'second id');
  eq(await g.stop(), 0, 'clean exit');
  g = await L.startGateway(bandit, 'bandit2');
  await sleep(100);
  assert(/bandit state restored/.test(g.proc.stderrText), 'state restored at start: ' + g.proc.stderrText.slice(-500));
  eq(await g.stop(), 0, 'clean exit');
});

test('graceful drain on SIGTERM finishes an in-flight request and exits 0', async () => {
  await resetAll();
  const g5 = await L.startGateway(config({ db: 'drain.db' }), 'drain');
  await cloud.control({ latency_ms: 300 });
  const inflight = post(`${g5.url}/v1/chat/completions`, chat('slow one', { model: 'cloud' }));
  await sleep(100);
  const code = g5.stop();
  const r = await inflight;
  eq(r.status, 200, 'in-flight request finished');
  eq(await code, 0, 'exit code');
});

await run();
const code = await gw.stop();
if (code !== 0) { console.log(`# switchyard exited with ${code}\n# ${gw.proc.stderrText.split('\n').slice(-20).join('\n# ')}`); process.exitCode = 1; }
await edge.stop(); await cloud.stop();
L.cleanup();
})().catch((e) => { console.log(`not ok - harness: ${e.stack}`); process.exitCode = 1; if (L) L.cleanup(); });
