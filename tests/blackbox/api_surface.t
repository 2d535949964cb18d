#!/usr/bin/env node
// The API surface beyond chat, driven by the official OpenAI client where one exists:
// POST /v1/embeddings (typed, PII-scanned, routed by capability, masked, accounted),
// n > 1 (one tier, indexed choices, summed usage, on the cloud and the local engine),
// streams (one id on every chunk, usage and the switchyard object on the last), and
// errors that name each tier's cause, withholding an upstream's text that may hold
// personal data.
'use strict';
let L;
(async () => {
L = await import('./lib.mjs');
const { test, run, assert, eq, post, get } = L;
const fs = await import('node:fs');
const path = await import('node:path');
const { createRequire } = await import('node:module');

const nodeDir = path.join(L.ROOT, 'tests', 'node');
if (!fs.existsSync(path.join(nodeDir, 'node_modules', 'openai'))) {
  L.skipAll('the openai npm package is not installed (scripts/install-deps.sh installs it)');
  return;
}
if (!fs.existsSync(L.SWITCHYARD) || !fs.existsSync(L.UPSTREAM)) {
  L.skipAll(`build ${L.SWITCHYARD} and ${L.UPSTREAM} first`);
  return;
}
const OpenAI = createRequire(path.join(nodeDir, 'package.json'))('openai');
const Client = OpenAI.default || OpenAI;
const MODEL = path.join(L.ROOT, 'data', 'models', 'stories260K');

const cloud = await L.startUpstream('cloud');
const slow = await L.startUpstream('slow', ['--latency-ms', '3000']);
const gone = await L.startUpstream('gone');
const goneUrl = gone.url;
await gone.stop(); /* its port now refuses connections */

// Breakers that never open, no retries: every request shows its own cause.
const noBreak = 'breaker: { failures: 1000000, error_rate: 1, window: 1000000 }\n    retries: 0';
const gw = await L.startGateway(`
listen: 127.0.0.1:0
store: sqlite:${path.join(L.tmp(), 'api.db')}
log_level: warn
tiers:
  edge:
    kind: local
    model: ${MODEL}/stories260K.bin
    tokenizer: ${MODEL}/tok512.bin
    privacy: on_device
    max_concurrency: 1
    max_context: 512
  cloud:
    kind: openai
    base_url: ${cloud.url}/v1
    model: big-model
    privacy: external
    cost: { usd_per_mtok_in: 2.5, usd_per_mtok_out: 10 }
    ${noBreak}
  slow:
    kind: openai
    base_url: ${slow.url}/v1
    model: slow-model
    privacy: external
    timeout_ms: 500
    ${noBreak}
  gone:
    kind: openai
    base_url: ${goneUrl}/v1
    model: gone-model
    privacy: external
    ${noBreak}
  fragile:
    kind: openai
    base_url: ${goneUrl}/v1
    model: fragile-model
    privacy: external
    retries: 0
    breaker: { failures: 1, open_ms: 600000 }
routing:
  pii:
    action: local_only
    types: { PERSON: mask }
    min_score: 0.5
    names_dir: ${path.join(L.ROOT, 'data', 'names')}
`);
const client = new Client({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
const V1 = `${gw.url}/v1`;
const lastBody = async (up) => { const r = await up.received(); return JSON.parse(r.requests[r.requests.length - 1].body); };

// ------------------------------------------------------------- embeddings ----

test('embeddings.create through the client: vectors, indexes, usage, switchyard, cost', async () => {
  await cloud.reset();
  const r = await client.embeddings.create({ model: 'auto', input: ['first text', 'second text'] });
  eq(r.object, 'list', 'object');
  eq(r.data.length, 2, 'one vector per input');
  eq(r.data[0].index, 0, 'index 0');
  eq(r.data[1].index, 1, 'index 1');
  eq(r.data[0].embedding.length, 8, 'the stand-in default dimension, decoded from base64');
  const norm = Math.sqrt(r.data[0].embedding.reduce((s, x) => s + x * x, 0));
  assert(Math.abs(norm - 1) < 1e-4, 'the stand-in vector came through intact: |v| = ' + norm);
  eq(r.switchyard.tier, 'cloud', 'served by the tier declaring embeddings');
  assert(r.switchyard.reasons.includes('cap:embeddings'), 'reasons: ' + r.switchyard.reasons);
  assert(r.usage.prompt_tokens > 0, 'usage');
  eq(r.switchyard.tokens_in, r.usage.prompt_tokens, 'tokens in accounted');
  eq(r.switchyard.tokens_out, 0, 'nothing generated');
  assert(Math.abs(r.switchyard.cost_usd - r.usage.prompt_tokens * 2.5e-6) < 1e-12, 'cost: ' + r.switchyard.cost_usd);
  const sent = await lastBody(cloud);
  eq(sent.model, 'big-model', 'the tier model');
  eq(JSON.stringify(sent.input), '["first text","second text"]', 'input as sent');
  eq(sent.encoding_format, 'base64', 'the client asks for base64');
  const rec = (await cloud.received()).requests;
  eq(rec[rec.length - 1].path, '/v1/embeddings', 'upstream path');
});

test('embeddings: float encoding and dimensions pass through; the same text, the same vector', async () => {
  const a = await client.embeddings.create({ model: 'cloud', input: 'same text', encoding_format: 'float', dimensions: 4 });
  const b = await client.embeddings.create({ model: 'cloud', input: 'same text' , dimensions: 4 });
  eq(a.data.length, 1, 'a single string is one input');
  eq(a.data[0].embedding.length, 4, 'dimensions');
  eq(JSON.stringify(a.data[0].embedding.map((x) => x.toFixed(5))), JSON.stringify(b.data[0].embedding.map((x) => x.toFixed(5))), 'float and base64 agree');
});

test('embeddings: personal data under local_only is refused naming the capability; nothing leaves', async () => {
  await cloud.reset();
  const r = await post(`${V1}/embeddings`, { input: ['fine', 'write to jane.doe@example.com'] });
  eq(r.status, 400, 'status: ' + r.text);
  eq(r.json.error.code, 'capability_unavailable', 'code');
  eq(r.json.error.param, 'input', 'param');
  assert(/embeddings/.test(r.json.error.message) && /stay on this machine/.test(r.json.error.message), 'message: ' + r.json.error.message);
  eq((await cloud.received()).count, 0, 'the cloud received nothing');
});

test('embeddings: a masked type leaves as a placeholder', async () => {
  await cloud.reset();
  const r = await post(`${V1}/embeddings`, { input: 'My friend Margaret Johnson likes tea' });
  eq(r.status, 200, 'status: ' + r.text);
  assert(r.json.switchyard.pii.includes('PERSON'), 'PERSON found: ' + r.text);
  const sent = await lastBody(cloud);
  assert(!JSON.stringify(sent).includes('Margaret'), 'the name did not leave: ' + JSON.stringify(sent));
  assert(/<PERSON_\d+>/.test(sent.input), 'a placeholder left instead: ' + sent.input);
});

test('embeddings: token ids cannot be scanned, so they are kept local (and refused here)', async () => {
  await cloud.reset();
  const r = await post(`${V1}/embeddings`, { input: [[1, 2, 3], [4, 5]] });
  eq(r.status, 400, 'status: ' + r.text);
  eq(r.json.error.code, 'capability_unavailable', 'code: ' + r.text);
  eq((await cloud.received()).count, 0, 'the cloud received nothing');
});

test('embeddings: bad bodies get a 400 naming the field', async () => {
  const cases = [
    [{ input: [] }, 'input'], [{ input: '' }, 'input'], [{}, 'input'], [{ input: ['a', 3] }, 'input[1]'],
    [{ input: [[1, -2]] }, 'input[0]'], [{ input: 'a', encoding_format: 'hex' }, 'encoding_format'],
    [{ input: 'a', dimensions: 0 }, 'dimensions'], [{ input: 'a', dimensions: 1.5 }, 'dimensions'],
    [{ input: 'a', user: 7 }, 'user'], [{ input: 'a', model: 3 }, 'model'],
    ['{"input": "a", "input": "b"}', 'input'],
  ];
  for (const [body, param] of cases) {
    const r = await post(`${V1}/embeddings`, body);
    eq(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
    eq(r.json.error.param, param, `param of ${JSON.stringify(body)}`);
  }
  const r = await post(`${V1}/embeddings`, { input: 'a', model: 'no-such-model' });
  eq(r.status, 404, 'unknown model');
  eq(r.json.error.code, 'model_not_found', 'model_not_found');
  const e = await post(`${V1}/embeddings`, { input: 'a', model: 'edge' });
  eq(e.status, 400, 'the local tier has no embeddings: ' + e.text);
  assert(/embeddings/.test(e.json.error.message), 'names the capability: ' + e.text);
});

test('embeddings: a ledger row per request, with tokens and cost', async () => {
  const before = await get(`${V1}/costs?group_by=tier`);
  await client.embeddings.create({ model: 'cloud', input: 'count me' });
  const after = await get(`${V1}/costs?group_by=tier`);
  const row = (x) => (x.json.groups || x.json.rows || []).find((g) => g.tier === 'cloud' || g.key === 'cloud' || g.group === 'cloud');
  let a = row(after);
  const b = row(before), n0 = b ? b.requests : 0;
  for (let i = 0; i < 50 && (!a || a.requests === n0); i++) {
    await L.sleep(100);
    a = row(await get(`${V1}/costs?group_by=tier`));
  }
  assert(a && a.requests === n0 + 1, 'one more cloud row: ' + JSON.stringify(a) + ' vs ' + JSON.stringify(b));
  assert(a.tokens_in > (b ? b.tokens_in : 0) && a.tokens_out === (b ? b.tokens_out : 0), 'input tokens only: ' + JSON.stringify(a));
});

// --------------------------------------------------------------------- n ----

test('n > 1 on the cloud: one upstream call with n, indexed choices, summed usage and cost', async () => {
  await cloud.reset();
  const r = await client.chat.completions.create({ model: 'cloud', n: 3, messages: [{ role: 'user', content: 'three please' }] });
  eq(r.choices.length, 3, 'three choices');
  eq(r.choices.map((c) => c.index).join(','), '0,1,2', 'indexes');
  for (const c of r.choices) assert(c.message.content.includes('three please'), 'content');
  const rec = await cloud.received();
  eq(rec.count, 1, 'one upstream call');
  eq(JSON.parse(rec.requests[0].body).n, 3, 'n forwarded');
  eq(r.switchyard.tokens_out, r.usage.completion_tokens, 'usage summed over the choices is accounted');
  const want = r.usage.prompt_tokens * 2.5e-6 + r.usage.completion_tokens * 10e-6;
  assert(Math.abs(r.switchyard.cost_usd - want) < 1e-12, `cost ${r.switchyard.cost_usd} vs ${want}`);
});

test('n > 1 streamed through the client: every choice indexed, one id, usage and switchyard last', async () => {
  const stream = await client.chat.completions.create({
    model: 'cloud', n: 2, stream: true, stream_options: { include_usage: true },
    messages: [{ role: 'user', content: 'two streams' }],
  });
  const text = ['', ''], ids = new Set();
  const chunks = [];
  for await (const ch of stream) {
    chunks.push(ch);
    ids.add(ch.id);
    for (const c of ch.choices) text[c.index] += c.delta.content || '';
  }
  eq(ids.size, 1, 'one id on every chunk: ' + [...ids]);
  assert(text[0].includes('two streams') && text[1].includes('two streams'), 'both choices: ' + JSON.stringify(text));
  const last = chunks[chunks.length - 1];
  assert(last.usage && last.usage.completion_tokens > 0, 'usage on the last chunk: ' + JSON.stringify(last));
  assert(last.switchyard && last.switchyard.tier === 'cloud', 'switchyard on the last chunk');
  eq(chunks.filter((c) => c.usage).length, 1, 'usage once');
  eq(last.switchyard.tokens_out, last.usage.completion_tokens, 'accounted');
});

test('n > 1 on the local engine: n choices with distinct seeds, the first as n=1 would give', async () => {
  const body = (n) => ({ model: 'edge', n, seed: 42, temperature: 1, max_tokens: 12, messages: [{ role: 'user', content: 'Once upon a time' }] });
  const one = await post(`${V1}/chat/completions`, body(1));
  const three = await post(`${V1}/chat/completions`, body(3));
  eq(three.status, 200, 'status: ' + three.text);
  eq(three.json.choices.length, 3, 'three choices');
  eq(three.json.choices.map((c) => c.index).join(','), '0,1,2', 'indexes');
  eq(three.json.choices[0].message.content, one.json.choices[0].message.content, 'choice 0 uses the seed');
  const texts = new Set(three.json.choices.map((c) => c.message.content));
  assert(texts.size > 1, 'the other seeds differ: ' + JSON.stringify([...texts]));
  eq(three.json.switchyard.tier, 'edge', 'one tier');
  assert(three.json.usage.completion_tokens > one.json.usage.completion_tokens, 'usage summed');
  eq(three.json.usage.prompt_tokens, one.json.usage.prompt_tokens, 'the prompt counted once');
});

test('n > 1 streamed from the local engine: indexed choices, each closed, one id', async () => {
  const stream = await client.chat.completions.create({
    model: 'edge', n: 2, max_tokens: 5, stream: true, stream_options: { include_usage: true },
    messages: [{ role: 'user', content: 'Once' }],
  });
  const ids = new Set(), fin = [], chunks = [];
  for await (const ch of stream) {
    chunks.push(ch);
    ids.add(ch.id);
    for (const c of ch.choices) if (c.finish_reason) fin.push(c.index);
  }
  eq(ids.size, 1, 'one id: ' + [...ids]);
  eq(fin.sort().join(','), '0,1', 'each choice finishes');
  const last = chunks[chunks.length - 1];
  assert(last.usage && last.switchyard, 'usage and switchyard last: ' + JSON.stringify(last));
  eq(last.model, chunks[0].model, 'the model of the other chunks');
});

// ---------------------------------------------------------------- errors ----

const forced = (tier, content = 'hello there') => ({ model: tier, messages: [{ role: 'user', content }] });

test('errors name the cause: connection refused', async () => {
  const r = await post(`${V1}/chat/completions`, forced('gone'));
  eq(r.status, 503, 'status');
  eq(r.json.error.message, 'gone: connection refused', 'message');
});

test('a tier skipped at decision time is named with its state', async () => {
  const first = await post(`${V1}/chat/completions`, forced('fragile'));
  eq(first.json.error.message, 'fragile: connection refused', 'the failure that opens the breaker');
  const r = await post(`${V1}/chat/completions`, forced('fragile'));
  eq(r.status, 503, 'status');
  eq(r.json.error.message, 'no eligible tier can serve this request (fragile: circuit open)', 'message');
});

test('errors name the cause: HTTP 500 with the upstream message', async () => {
  await cloud.control({ fail: '500', message: 'overloaded' });
  const r = await post(`${V1}/chat/completions`, forced('cloud'));
  eq(r.json.error.message, 'cloud: HTTP 500: overloaded', 'message');
  const e = await post(`${V1}/embeddings`, { model: 'cloud', input: 'x' });
  eq(e.json.error.message, 'cloud: HTTP 500: overloaded', 'embeddings too');
  await cloud.control({ fail: 'none', message: '' });
});

test('errors name the cause: timeout and malformed response', async () => {
  const t = await post(`${V1}/chat/completions`, forced('slow'));
  eq(t.json.error.message, 'slow: timeout after 500 ms', 'timeout');
  await cloud.control({ fail: 'garbage' });
  const g = await post(`${V1}/chat/completions`, forced('cloud'));
  eq(g.json.error.message, 'cloud: malformed response', 'garbage');
  await cloud.control({ fail: 'none' });
});

test('several tiers failed: the chain in the order tried', async () => {
  await cloud.control({ fail: '500', message: 'overloaded' });
  const r = await post(`${V1}/chat/completions`, { model: 'auto', messages: [{ role: 'user', content: 'x'.repeat(9000) }], max_tokens: 4000 });
  await cloud.control({ fail: 'none', message: '' });
  /* The edge's context (max_context) cannot hold it: only the cloud tiers are tried. */
  if (r.status === 200) { assert(false, 'expected a failure: ' + r.text.slice(0, 300)); }
  const m = r.json.error.message;
  assert(/^all tiers failed: /.test(m), 'prefix: ' + m);
  for (const part of ['cloud: HTTP 500: overloaded', 'gone: connection refused', 'slow: timeout after 500 ms'])
    assert(m.includes(part), `${part} in ${m}`);
});

test('an upstream message that may echo personal data is withheld', async () => {
  await cloud.control({ fail: '500', message: '@prompt' });
  const clean = await post(`${V1}/chat/completions`, forced('cloud', 'plain words'));
  eq(clean.json.error.message, 'cloud: HTTP 500: cannot process: plain words', 'a clean request sees the text');
  const masked = await post(`${V1}/chat/completions`, forced('cloud', 'My friend Margaret Johnson is here'));
  eq(masked.json.error.message, 'cloud: HTTP 500: (message withheld)', 'withheld: ' + masked.text);
  assert(!/Margaret|PERSON_/.test(masked.text), 'neither value nor placeholder: ' + masked.text);
  await cloud.control({ fail: 'none', message: '' });
});

await run();
eq(await gw.stop(), 0, 'switchyard exit code');
await cloud.stop();
await slow.stop();
L.cleanup();
})().catch((e) => { console.log(`not ok - harness: ${e.stack}`); process.exitCode = 1; if (L) L.cleanup(); });
