#!/usr/bin/env node
// Keys, rate limits and budgets end to end: the real switchyard binary in front of a
// stand-in OpenAI-compatible upstream (tests/tools/upstream), driven over HTTP and by
// the official OpenAI client.
'use strict';
let L;
(async () => {
L = await import('./lib.mjs');
const { test, run, assert, eq, post, get, chat, sleep } = L;
const fs = await import('node:fs');
const path = await import('node:path');
const { createRequire } = await import('node:module');

if (!fs.existsSync(L.SWITCHYARD) || !fs.existsSync(L.UPSTREAM)) {
  L.skipAll(`build ${L.SWITCHYARD} and ${L.UPSTREAM} first (make asan)`);
  return;
}

const KEYS = { SY_T_ADMIN: 'admin-7f3c', SY_T_SEARCH: 'sk-search-41d2', SY_T_ADS: 'sk-ads-9a0b',
  SY_T_SLOW: 'sk-slow-55aa', SY_T_TIGHT: 'sk-tight-0c11' };
Object.assign(process.env, KEYS);
const bearer = (k) => ({ authorization: `Bearer ${k}` });
const ADMIN = bearer(KEYS.SY_T_ADMIN), SEARCH = bearer(KEYS.SY_T_SEARCH), ADS = bearer(KEYS.SY_T_ADS);
const BUDGET = 0.01;

const cloud = await L.startUpstream('cloud');
const gw = await L.startGateway(`
listen: 127.0.0.1:0
workers: 2
store: sqlite:auth.db
log_level: info
tiers:
  cloud:
    kind: openai
    base_url: ${cloud.url}/v1
    model: big-model
    privacy: external
    retries: 0
    cost: { usd_per_mtok_in: 2.5, usd_per_mtok_out: 10 }
models: { gpt-4o-mini: auto, fast: cloud }
auth:
  admin_key_env: SY_T_ADMIN
  keys:
    - { name: search, key_env: SY_T_SEARCH, team: search, tenant: acme }
    - { name: ads, key_env: SY_T_ADS, team: ads, tenant: globex }
    - { name: slow, key_env: SY_T_SLOW, team: slow, rpm: 3 }
    - { name: tight, key_env: SY_T_TIGHT, team: tight, budget_usd: ${BUDGET}, budget_period: day }
`);
const U = gw.url;

test('no key or a wrong key is 401 in the OpenAI error shape; probes stay open', async () => {
  let r = await post(`${U}/v1/chat/completions`, chat('hello'));
  eq(r.status, 401, 'no key');
  eq(r.json.error.code, 'invalid_api_key', 'code');
  assert(/Missing API key/.test(r.json.error.message), r.text);
  r = await post(`${U}/v1/chat/completions`, chat('hello'), bearer('sk-search-41d3'));
  eq(r.status, 401, 'wrong key');
  assert(/Incorrect API key/.test(r.json.error.message), r.text);
  eq((await post(`${U}/v1/chat/completions`, chat('hello'), { authorization: 'Basic eA==' })).status,
    401, 'not a bearer token');
  eq((await get(`${U}/v1/models`)).status, 401, 'models need a key');
  eq((await get(`${U}/healthz`)).status, 200, 'healthz open');
  eq((await get(`${U}/readyz`)).status, 200, 'readyz open');
  assert(!gw.proc.stderrText.includes('sk-search-41d3'), 'a presented key is never logged');
});

test('a key serves; x-api-key works too; the key fixes team and tenant', async () => {
  let r = await post(`${U}/v1/chat/completions`, chat('hi', { metadata: { team: 'ads', tenant: 'x' } }), SEARCH);
  eq(r.status, 200, r.text);
  r = await post(`${U}/v1/chat/completions`, chat('hi'), { 'x-api-key': KEYS.SY_T_ADS });
  eq(r.status, 200, r.text);
  await sleep(400); // ledger flush
  r = await get(`${U}/v1/costs?group_by=team`, ADMIN);
  eq(r.status, 200, r.text);
  const teams = Object.fromEntries(r.json.groups.map((x) => [x.key, x.requests]));
  eq(teams.search, 1, 'charged to the key\'s team, not the metadata\'s: ' + r.text);
  eq(teams.ads, 1, 'x-api-key request');
  r = await get(`${U}/v1/costs?group_by=tenant`, ADMIN);
  assert(r.json.groups.some((x) => x.key === 'acme'), 'tenant from the key: ' + r.text);
  assert(!r.json.groups.some((x) => x.key === 'x'), 'metadata tenant ignored: ' + r.text);
  for (const k of Object.values(KEYS))
    assert(!gw.proc.stderrText.includes(k), 'no key in the log');
});

test('admin endpoints need the admin key', async () => {
  for (const p of ['/v1/costs?group_by=team', '/metrics']) {
    eq((await get(`${U}${p}`, SEARCH)).status, 403, `${p} with a user key`);
    eq((await get(`${U}${p}`)).status, 401, `${p} without a key`);
    eq((await get(`${U}${p}`, ADMIN)).status, 200, `${p} with the admin key`);
  }
  const m = (await get(`${U}/metrics`, ADMIN)).text;
  assert(/switchyard_auth_refused_total [1-9]/.test(m), 'refusals counted');
});

test('feedback only for the key\'s own requests (or the admin\'s)', async () => {
  const a = await post(`${U}/v1/chat/completions`, chat('rate me'), SEARCH);
  const b = await post(`${U}/v1/chat/completions`, chat('rate me too'), SEARCH);
  eq(a.status, 200, a.text);
  eq((await post(`${U}/v1/feedback`, { id: a.json.switchyard.id, reward: 1 }, ADS)).status, 404, 'another key');
  eq((await post(`${U}/v1/feedback`, { id: a.json.switchyard.id, reward: 1 }, SEARCH)).status, 200, 'own key');
  eq((await post(`${U}/v1/feedback`, { id: b.json.switchyard.id, reward: 1 }, ADMIN)).status, 200, 'admin');
});

test('rpm: past the limit a 429 with Retry-After and code rate_limit_exceeded', async () => {
  const H = bearer(KEYS.SY_T_SLOW);
  for (let i = 0; i < 3; i++) eq((await post(`${U}/v1/chat/completions`, chat('x'), H)).status, 200, `request ${i}`);
  const r = await post(`${U}/v1/chat/completions`, chat('x'), H);
  eq(r.status, 429, r.text);
  eq(r.json.error.code, 'rate_limit_exceeded', 'code');
  const ra = Number(r.headers.get('retry-after'));
  assert(ra >= 1 && ra <= 20, 'Retry-After ' + ra);
  eq((await post(`${U}/v1/chat/completions`, chat('x'), SEARCH)).status, 200, 'other keys unaffected');
});

test('40 concurrent requests against a small budget never overspend it', async () => {
  await cloud.control({ latency_ms: 150 });
  const H = bearer(KEYS.SY_T_TIGHT);
  let ok = 0, refused = 0, other = 0;
  for (let round = 0; round < 3; round++) {
    const rs = await Promise.all(Array.from({ length: 40 }, (_, i) =>
      post(`${U}/v1/chat/completions`, chat(`budget probe ${round} ${i} `.repeat(4), { max_tokens: 120 }), H)));
    for (const r of rs) {
      if (r.status === 200) ok++;
      else if (r.status === 429 && r.json.error.code === 'budget_exceeded') refused++;
      else other++;
    }
  }
  await cloud.control({ latency_ms: 0 });
  eq(other, 0, 'only answers and budget refusals');
  assert(ok > 0, 'some fit the budget');
  assert(refused > 0, 'some were refused');
  await sleep(500);
  const r = await get(`${U}/v1/costs?group_by=team`, ADMIN);
  const row = r.json.groups.find((x) => x.key === 'tight');
  assert(row, 'rows for the key: ' + r.text);
  eq(row.requests, ok + refused, 'every request has a ledger row');
  assert(row.cost_usd <= BUDGET + 1e-12, `spent ${row.cost_usd} <= budget ${BUDGET}`);
  assert(row.cost_usd > BUDGET / 4, `the budget was in fact used: ${row.cost_usd}`);
  // Sequentially, the rest of the budget is used up and then refused.
  let last = null;
  for (let i = 0; i < 400; i++) {
    last = await post(`${U}/v1/chat/completions`, chat(`budget probe seq ${i} `.repeat(4), { max_tokens: 120 }), H);
    if (last.status !== 200) break;
  }
  eq(last.status, 429, `spent: refused (after ${ok} + ${refused}, ${row.cost_usd} USD)`);
  assert(/budget exceeded for key 'tight'/.test(last.json.error.message), last.text);
  await sleep(500);
  const fin = (await get(`${U}/v1/costs?group_by=team`, ADMIN)).json.groups.find((x) => x.key === 'tight');
  assert(fin.cost_usd <= BUDGET + 1e-12 && fin.cost_usd > BUDGET * 0.8,
    `spent ${fin.cost_usd} within and near the budget ${BUDGET}`);
});

test('GET /v1/models/{id}; JSON media types other than application/json are accepted', async () => {
  let r = await get(`${U}/v1/models/cloud`, SEARCH);
  eq(r.status, 200, r.text);
  eq(r.json.id, 'cloud', 'id');
  eq(r.json.object, 'model', 'object');
  eq(r.json.switchyard.model, 'big-model', 'upstream model');
  eq((await get(`${U}/v1/models/auto`, SEARCH)).json.id, 'auto', 'auto');
  eq((await get(`${U}/v1/models/switchyard/cloud`, SEARCH)).json.id, 'cloud', 'switchyard/ prefix');
  r = await get(`${U}/v1/models/gpt-9`, SEARCH);
  eq(r.status, 404, r.text);
  eq(r.json.error.code, 'model_not_found', 'code');
  eq((await get(`${U}/v1/models/cloud`)).status, 401, 'needs a key');
  for (const ct of ['application/json; charset=utf-8', 'text/json', 'application/vnd.api+json']) {
    r = await post(`${U}/v1/chat/completions`, JSON.stringify(chat('hi')), { ...SEARCH, 'content-type': ct });
    eq(r.status, 200, `${ct}: ${r.text}`);
  }
  r = await post(`${U}/v1/chat/completions`, JSON.stringify(chat('hi')), { ...SEARCH, 'content-type': 'text/plain' });
  eq(r.status, 400, 'text/plain refused');
  assert(/Content-Type must be JSON/.test(r.json.error.message), r.text);
});

test('model names: auto, tiers, aliases of the models: map; anything else is 404 model_not_found', async () => {
  let r = await post(`${U}/v1/chat/completions`, chat('hi', { model: 'gpt-4o-mini' }), SEARCH);
  eq(r.status, 200, 'alias to auto: ' + r.text);
  assert(!r.json.switchyard.reasons.some((x) => x.startsWith('forced:')), 'routed, not forced');
  r = await post(`${U}/v1/chat/completions`, chat('hi', { model: 'fast' }), SEARCH);
  eq(r.status, 200, 'alias to a tier: ' + r.text);
  assert(r.json.switchyard.reasons.includes('forced:cloud'), 'forced by the alias: ' + r.json.switchyard.reasons);
  r = await post(`${U}/v1/chat/completions`, chat('hi', { model: 'gpt-4o-minii' }), SEARCH);
  eq(r.status, 404, 'a misspelt model: ' + r.text);
  eq(r.json.error.code, 'model_not_found', 'code');
  eq(r.json.error.param, 'model', 'param');
  assert(/gpt-4o-minii/.test(r.json.error.message), r.text);
  r = await post(`${U}/v1/route`, chat('hi', { model: 'gpt-4o-minii' }), SEARCH);
  eq(r.json.status, 404, '/v1/route explains the same refusal');
  r = await post(`${U}/v1/chat/completions`, chat('hi', { model: 'gpt-4o-minii', metadata: { tier: 'cloud' } }), SEARCH);
  eq(r.status, 200, 'a forced tier makes the model name irrelevant');
});

test('the official OpenAI client with a key; a wrong key raises AuthenticationError', async () => {
  const nodeDir = path.join(L.ROOT, 'tests', 'node');
  if (!fs.existsSync(path.join(nodeDir, 'node_modules', 'openai'))) return; // covered elsewhere
  const req = createRequire(path.join(nodeDir, 'package.json'));
  const OpenAI = req('openai').default || req('openai');
  const good = new OpenAI({ baseURL: `${U}/v1`, apiKey: KEYS.SY_T_SEARCH, maxRetries: 0 });
  const c = await good.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'hi' }] });
  assert(c.choices[0].message.content.length > 0, 'answer');
  const bad = new OpenAI({ baseURL: `${U}/v1`, apiKey: 'sk-nope', maxRetries: 0 });
  let err = null;
  try { await bad.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'hi' }] }); } catch (e) { err = e; }
  assert(err && err.status === 401, 'status 401: ' + err);
  assert(err instanceof OpenAI.AuthenticationError, 'AuthenticationError');
  const m = await good.models.retrieve('cloud');
  eq(m.id, 'cloud', 'client.models.retrieve');
  err = null;
  try { await good.chat.completions.create({ model: 'gpt-9', messages: [{ role: 'user', content: 'hi' }] }); } catch (e) { err = e; }
  assert(err instanceof OpenAI.NotFoundError, 'unknown model: NotFoundError, got ' + err);
});

await run();
const code = await gw.stop();
if (code !== 0) { console.log(`# switchyard exited with ${code}\n# ${gw.proc.stderrText.split('\n').slice(-20).join('\n# ')}`); process.exitCode = 1; }
await cloud.stop();
L.cleanup();
})().catch((e) => { console.log(`not ok - harness: ${e.stack}`); process.exitCode = 1; if (L) L.cleanup(); });
