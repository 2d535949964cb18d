#!/usr/bin/env node
// One decision path: the same requests through the server's POST /v1/route,
// `switchyard route --jsonl` and `switchyard replay --requests` give identical
// decisions (status, tier, reasons). And capabilities as routing constraints: a
// tools / response_format / image / audio request is never answered by a tier that
// lacks the capability; when no tier it may use has it, a 400 names it.
'use strict';
let L;
(async () => {
L = await import('./lib.mjs');
const { test, run, assert, eq, post, chat } = L;
const fs = await import('node:fs');
const path = await import('node:path');
const { spawnSync } = await import('node:child_process');
if (!fs.existsSync(L.SWITCHYARD) || !fs.existsSync(L.UPSTREAM)) { L.skipAll('build first'); return; }

const N = parseInt(process.env.SY_DECIDE_N || '10000', 10);
const edge = await L.startUpstream('edge');
const mid = await L.startUpstream('mid');
const cloud = await L.startUpstream('cloud');
const dbPath = path.join(L.tmp(), 'decide.db');
const config = (db = dbPath) => `
listen: 127.0.0.1:0
store: sqlite:${db}
log_level: warn
tiers:
  edge:
    kind: openai
    base_url: ${edge.url}/v1
    model: edge-small
    privacy: on_prem
    role: edge
    logprobs: true
    capabilities: []
    max_context: 2048
  mid:
    kind: openai
    base_url: ${mid.url}/v1
    model: mid-model
    privacy: on_prem
    role: cloud
    capabilities: [tools, json]
  cloud:
    kind: openai
    base_url: ${cloud.url}/v1
    model: big-model
    privacy: external
    cost: { usd_per_mtok_in: 2.5, usd_per_mtok_out: 10 }
routing:
  pii: { action: local_only, types: { US_SSN: block, IP_ADDRESS: allow, PHONE_NUMBER: mask } }
  token_budget: { cloud_above: 1024 }
  escalation: { enabled: true, min_confidence: 0.55 }
`;
const gw = await L.startGateway(config());
const V1 = `${gw.url}/v1`;

// ------------------------------------------------------------ requests ----
let seed = 0x2545f491;
const rnd = (n) => { seed ^= seed << 13; seed >>>= 0; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0; return seed % n; };
const pick = (a) => a[rnd(a.length)];
const PRIVATE = Array.from({ length: 8 }, (_, i) => `s-private-${i}`);
const TEXTS = [
  'What is the capital of France?', 'hello', 'Summarise the plot of Hamlet in two lines.',
  'Write a python function that reverses a linked list.\n```python\ndef rev(head):\n```',
  'Solve 3x + 5 = 20 for x and show the steps.', 'Translate "good morning" into German.',
  'Prove that the square root of 2 is irrational.', 'Explain TCP slow start to a new engineer.',
];
const PII = ['mail jane.doe@example.com about it', 'my card is 4111 1111 1111 1111',
  'SSN 536-22-8751 on file', 'ping 203.0.113.77 please', 'call +1 415 555 0132 tonight',
  Array.from({ length: 70 }, (_, i) => `user${i}@example.com`).join(', ')];
function body(i) {
  const msgs = [];
  if (rnd(4) === 0) msgs.push({ role: 'system', content: 'You are terse.' });
  let text = pick(TEXTS);
  if (rnd(4) === 0) text += ' ' + pick(PII);
  if (rnd(5) === 0) msgs.push({ role: 'user', content: 'earlier turn' }, { role: 'assistant', content: 'noted' });
  const parts = rnd(6) === 0;
  const content = parts ? [{ type: 'text', text }] : text;
  if (parts && rnd(2)) content.push({ type: 'image_url', image_url: { url: 'https://example.com/a.png' } });
  if (parts && rnd(4) === 0) content.push({ type: 'input_audio', input_audio: { data: 'AAAA', format: 'wav' } });
  msgs.push({ role: 'user', content });
  const b = { model: pick(['auto', 'auto', 'auto', 'gpt-4o', 'switchyard/edge', 'switchyard/cloud', 'switchyard/mid', 'edge', 'cloud', 'switchyard/nope']), messages: msgs };
  const md = {};
  if (rnd(2)) md.tenant = `t${rnd(5)}`;
  if (rnd(2)) md.team = pick(['search', 'ads', 'support']);
  if (rnd(3) === 0) md.feature = pick(['chat', 'summary']);
  const s = rnd(4);
  if (s === 0) md.session = pick(PRIVATE);
  else if (s === 1) md.session = `s-fresh-${rnd(50)}`;
  if (rnd(12) === 0) md.tier = pick(['edge', 'mid', 'cloud', 'bogus']);
  if (rnd(10) === 0) md.privacy = 'local_only';
  if (Object.keys(md).length) b.metadata = md;
  const mt = rnd(6);
  if (mt === 0) b.max_tokens = 5000; else if (mt === 1) b.max_tokens = 64; else if (mt === 2) b.max_tokens = 1900;
  if (rnd(6) === 0) b.tools = [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: {} } } }];
  if (rnd(6) === 0) b.response_format = { type: pick(['json_object', 'text']) };
  if (i % 997 === 5) return '{"model": "auto", "messages": [}'; // not JSON: 400 everywhere
  return JSON.stringify(b);
}

// The decision as compared: status, tier, reasons.
const key = (j) => JSON.stringify([j.status, j.decision ? j.decision.tier : null, j.decision ? j.decision.reasons : null]);

test('sessions marked private by personal data, through the server', async () => {
  for (const s of PRIVATE) {
    const r = await post(`${V1}/chat/completions`, chat(`mail jane.doe@example.com (${s})`, { metadata: { session: s } }));
    eq(r.status, 200, 'served: ' + r.text);
    eq(r.json.switchyard.local_only, true, 'kept local');
  }
  const r = await post(`${V1}/route`, chat('hello', { metadata: { session: PRIVATE[0] } }));
  assert(r.json.decision.reasons.includes('session:private->local_only'), 'the mark holds: ' + r.text);
  eq((await cloud.received()).count, 0, 'the cloud saw none of it');
});

test(`${N} requests: POST /v1/route, switchyard route and switchyard replay decide alike`, async () => {
  const bodies = Array.from({ length: N }, (_, i) => body(i));
  const file = path.join(L.tmp(), 'requests.jsonl');
  fs.writeFileSync(file, bodies.join('\n') + '\n');
  const server = new Array(N);
  let next = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < N) {
      const i = next++;
      const r = await post(`${V1}/route`, bodies[i]);
      // A body the server cannot parse is an HTTP 400 error object; a decision is a 200
      // carrying the status the request would get.
      server[i] = r.status === 200 ? r.json : { status: r.status };
    }
  }));
  const opts = { encoding: 'utf8', maxBuffer: 1 << 30, cwd: L.tmp() };
  const rt = spawnSync(L.SWITCHYARD, ['route', '-c', gw.cfg, '--jsonl'], { ...opts, input: fs.readFileSync(file) });
  eq(rt.status, 0, 'switchyard route ran: ' + rt.stderr.slice(-2000));
  const rp = spawnSync(L.SWITCHYARD, ['replay', '-c', gw.cfg, '--requests', file], opts);
  eq(rp.status, 0, 'switchyard replay ran: ' + rp.stderr.slice(-2000));
  const a = rt.stdout.trim().split('\n').map((l) => JSON.parse(l));
  const b = rp.stdout.trim().split('\n').map((l) => JSON.parse(l));
  eq(a.length, N, 'route answered every request');
  eq(b.length, N, 'replay answered every request');
  const seen = { status: new Set(), tier: new Set(), reason: new Set() };
  let diffs = 0;
  for (let i = 0; i < N; i++) {
    const s = key(server[i]);
    if (s !== key(a[i]) || s !== key(b[i])) {
      if (diffs++ < 5) console.log(`# request ${i}: ${bodies[i].slice(0, 300)}\n#  server ${s}\n#  route  ${key(a[i])}\n#  replay ${key(b[i])}`);
    }
    seen.status.add(server[i].status);
    if (server[i].decision) {
      seen.tier.add(server[i].decision.tier);
      for (const r of server[i].decision.reasons) seen.reason.add(r.replace(/[:(].*/, ''));
    }
  }
  eq(diffs, 0, 'decisions that differ');
  // The set covered what it claims to: refusals, every tier, the hard rules (all tiers are
  // healthy, so no 503: the offline tools take every tier as healthy).
  for (const st of [200, 400, 403]) assert(seen.status.has(st), `status ${st} seen: ${[...seen.status]}`);
  for (const t of ['edge', 'mid', 'cloud']) assert(seen.tier.has(t), `tier ${t} chosen`);
  for (const r of ['forced', 'pii', 'session', 'client', 'cap', 'skip', 'budget', 'task', 'tier'])
    assert(seen.reason.has(r), `reason ${r} seen: ${[...seen.reason]}`);
});

// -------------------------------------------------------- capabilities ----
const TOOLS = [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: {} } } }];
const IMAGE = (t) => ({ model: 'auto', messages: [{ role: 'user', content: [{ type: 'text', text: t }, { type: 'image_url', image_url: { url: 'https://example.com/cat.png' } }] }] });
async function reset() { for (const u of [edge, mid, cloud]) await u.reset(); }
async function servedBy() {
  const n = {};
  for (const u of [edge, mid, cloud]) n[u.name] = (await u.received()).count;
  return n;
}

test('tools, response_format, images and audio reach only tiers that serve them', async () => {
  await reset();
  const cases = [
    [chat('look it up', { tools: TOOLS }), ['mid', 'cloud']],
    [chat('answer in JSON', { response_format: { type: 'json_object' } }), ['mid', 'cloud']],
    [IMAGE('what is in this picture?'), ['cloud']],
    [{ model: 'auto', messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: 'AAAA', format: 'wav' } }] }] }, ['cloud']],
    [chat('look it up for jane.doe@example.com', { tools: TOOLS }), ['mid']], // personal data: local tiers only
    [chat('hello', { tools: TOOLS, model: 'switchyard/mid' }), ['mid']],
  ];
  for (const [b, ok] of cases) {
    await reset();
    const r = await post(`${V1}/chat/completions`, b);
    eq(r.status, 200, 'served: ' + r.text);
    assert(ok.includes(r.json.switchyard.tier), `served by ${r.json.switchyard.tier}, one of ${ok}`);
    const n = await servedBy();
    eq(n.edge, 0, 'the edge (no capabilities) saw nothing: ' + JSON.stringify(r.json.switchyard.reasons));
    assert(r.json.switchyard.reasons.some((x) => x.startsWith('cap:')), 'the trace says why');
  }
});

test('no eligible tier has the capability: 400 capability_unavailable naming it', async () => {
  const cases = [
    [IMAGE('who is on this photo? mail jane.doe@example.com'), 'vision', 'messages'], // local only, no local vision
    [chat('hi', { tools: TOOLS, model: 'switchyard/edge' }), 'tools', 'tools'], // forced tier lacks it
    [chat('hi', { response_format: { type: 'json_object' }, metadata: { tier: 'edge' } }), 'json', 'response_format'],
    [chat('my card is 4111 1111 1111 1111', { tools: TOOLS, metadata: { privacy: 'local_only' }, model: 'edge' }), 'tools', 'tools'],
  ];
  for (const [b, cap, param] of cases) {
    await reset();
    const r = await post(`${V1}/chat/completions`, b);
    eq(r.status, 400, 'refused: ' + r.text);
    eq(r.json.error.code, 'capability_unavailable', 'code');
    eq(r.json.error.param, param, 'param');
    assert(r.json.error.message.includes(cap), `names ${cap}: ${r.json.error.message}`);
    const n = await servedBy();
    eq(n.edge + n.mid + n.cloud, 0, 'no upstream saw the request');
    // /v1/route tells the same, with the missing capability.
    const d = await post(`${V1}/route`, b);
    eq(d.json.status, 400, 'route status');
    eq(d.json.decision.missing, cap, 'route names the missing capability');
  }
  // Context length: a prompt + max_tokens the forced tier cannot hold.
  const r = await post(`${V1}/chat/completions`, chat('mail jane.doe@example.com ' + 'word '.repeat(400), { max_tokens: 1900, model: 'switchyard/edge' }));
  eq(r.status, 400, 'refused: ' + r.text);
  eq(r.json.error.code, 'capability_unavailable', 'code');
  assert(/context length/.test(r.json.error.message), 'names the context length: ' + r.json.error.message);
});

test('GET /v1/models lists what each tier serves', async () => {
  const m = await L.get(`${V1}/models`);
  eq(m.status, 200, 'models');
  const by = Object.fromEntries(m.json.data.filter((x) => x.switchyard).map((x) => [x.id, x.switchyard]));
  eq(JSON.stringify(by.edge.capabilities), '[]', 'edge: none');
  eq(by.edge.max_context, 2048, 'edge context');
  eq(JSON.stringify(by.mid.capabilities), '["tools","json"]', 'mid');
  eq(JSON.stringify(by.cloud.capabilities), '["tools","json","vision","audio","embeddings"]', 'cloud: all (kind openai)');
  eq(by.cloud.max_context, null, 'cloud: no limit known');
});

test('a forced external tier under local_only is a privacy refusal; switchyard/<unknown> a 400', async () => {
  const f = await post(`${V1}/chat/completions`, chat('mail jane.doe@example.com', { model: 'switchyard/cloud' }));
  eq(f.status, 403, 'refused: ' + f.text);
  eq(f.json.error.type, 'privacy_blocked', 'type');
  const u = await post(`${V1}/chat/completions`, chat('hi', { model: 'switchyard/nope' }));
  eq(u.status, 400, 'unknown tier: ' + u.text);
  eq(u.json.error.param, 'tier', 'param');
  eq((await cloud.received()).count, 0, 'the cloud saw nothing');
});

test('the ledger records per type what was done; audit reports only data sent in clear', async () => {
  const db = path.join(L.tmp(), 'audit.db');
  const g = await L.startGateway(config(db), 'audit');
  await reset();
  const send = (b) => post(`${g.url}/v1/chat/completions`, b);
  const masked = await send(chat('call +1 415 555 0132 tonight', { model: 'switchyard/cloud' }));
  eq(masked.status, 200, 'masked and served: ' + masked.text);
  assert(!JSON.stringify(await cloud.received()).includes('555 0132'), 'the cloud got a placeholder');
  const clear = await send(chat('ping 203.0.113.77 please', { model: 'switchyard/cloud' }));
  eq(clear.status, 200, 'allowed and served: ' + clear.text);
  const local = await send(chat('mail jane.doe@example.com today'));
  eq(local.status, 200, 'kept local: ' + local.text);
  const blocked = await send(chat('SSN 536-22-8751 on file'));
  eq(blocked.status, 403, 'blocked: ' + blocked.text);
  eq(await g.stop(), 0, 'clean exit (ledger flushed)');
  const a = spawnSync(L.SWITCHYARD, ['audit', '--store', `sqlite:${db}`, '--json'], { encoding: 'utf8' });
  eq(a.status, 1, 'violations found: ' + a.stderr);
  const v = JSON.parse(a.stdout).violations;
  eq(v.length, 1, 'only the value sent in clear: ' + a.stdout);
  eq(v[0].pii_types, 'IP_ADDRESS', 'the type in clear');
  eq(v[0].tier, 'cloud', 'where it went');
  // The per-type record itself, where the sqlite3 shell is at hand.
  const q = spawnSync('sqlite3', [db, 'SELECT pii_kept_local, pii_masked, pii_allowed, pii_blocked FROM ledger ORDER BY ts_ms, rowid'], { encoding: 'utf8' });
  if (q.status === 0) {
    const bit = (t) => String(1 << ['EMAIL_ADDRESS', 'PHONE_NUMBER', 'CREDIT_CARD', 'US_SSN', 'IBAN_CODE', 'IP_ADDRESS'].indexOf(t));
    eq(q.stdout.trim(), [`0|${bit('PHONE_NUMBER')}|0|0`, `0|0|${bit('IP_ADDRESS')}|0`, `${bit('EMAIL_ADDRESS')}|0|0|0`, `0|0|0|${bit('US_SSN')}`].join('\n'), 'per-type actions');
  } else console.log('# sqlite3 shell not found: per-type columns checked through audit only');
});

await run();
if (gw.proc.exitCode === null) eq(await gw.stop(), 0, 'clean exit');
await edge.stop(); await mid.stop(); await cloud.stop();
L.cleanup();
})().catch((e) => { console.log(`not ok - harness: ${e.stack}`); process.exitCode = 1; if (L) L.cleanup(); });
