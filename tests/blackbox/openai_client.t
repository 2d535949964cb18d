#!/usr/bin/env node
// The official OpenAI client (npm "openai") drives chat completions through
// switchyard, streamed and not, as any application in front of it would.
'use strict';
let L;
(async () => {
L = await import('./lib.mjs');
const { test, run, assert, eq } = L;
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
const req = createRequire(path.join(nodeDir, 'package.json'));
const OpenAI = req('openai').default || req('openai');

const cloud = await L.startUpstream('cloud');
const gw = await L.startGateway(`
listen: 127.0.0.1:0
store: sqlite:client.db
log_level: warn
tiers:
  cloud:
    kind: openai
    base_url: ${cloud.url}/v1
    model: big-model
    privacy: external
    cost: { usd_per_mtok_in: 2.5, usd_per_mtok_out: 10 }
`);
const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused-by-switchyard', maxRetries: 0 });

test('chat.completions.create (non-stream)', async () => {
  const r = await client.chat.completions.create({
    model: 'auto',
    messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello from the client' }],
    max_tokens: 50,
  });
  assert(r.choices[0].message.content.includes('Hello from the client'), 'content: ' + JSON.stringify(r));
  eq(r.switchyard.tier, 'cloud', 'switchyard object');
  assert(r.usage.total_tokens > 0, 'usage');
});

test('chat.completions.create (stream)', async () => {
  const stream = await client.chat.completions.create({
    model: 'auto', stream: true,
    messages: [{ role: 'user', content: 'Stream this please' }],
  });
  let text = '', chunks = 0, sy = null;
  for await (const chunk of stream) {
    chunks++;
    if (chunk.choices && chunk.choices[0] && chunk.choices[0].delta.content) text += chunk.choices[0].delta.content;
    if (chunk.switchyard) sy = chunk.switchyard;
  }
  assert(text.includes('Stream this please'), 'text: ' + text);
  assert(chunks >= 3, 'several chunks: ' + chunks);
  eq(sy && sy.tier, 'cloud', 'switchyard chunk');
});

test('stream with include_usage: one id on every chunk, usage and switchyard on the last', async () => {
  const stream = await client.chat.completions.create({
    model: 'auto', stream: true, stream_options: { include_usage: true },
    messages: [{ role: 'user', content: 'Count my tokens' }],
  });
  const all = [];
  for await (const chunk of stream) all.push(chunk);
  eq(new Set(all.map((c) => c.id)).size, 1, 'one id: ' + all.map((c) => c.id));
  const last = all[all.length - 1];
  assert(last.usage && last.usage.total_tokens > 0, 'usage on the last chunk: ' + JSON.stringify(last));
  eq(last.usage.total_tokens, last.usage.prompt_tokens + last.usage.completion_tokens, 'usage adds up');
  eq(last.switchyard && last.switchyard.tokens_out, last.usage.completion_tokens, 'switchyard on the last chunk');
  eq(all.filter((c) => c.usage).length, 1, 'usage once');
  eq(all.filter((c) => c.switchyard).length, 1, 'switchyard once');
  /* Without include_usage no chunk carries usage, as OpenAI does. */
  const plain = await client.chat.completions.create({ model: 'auto', stream: true, messages: [{ role: 'user', content: 'x' }] });
  const ps = [];
  for await (const chunk of plain) ps.push(chunk);
  assert(!ps.some((c) => c.usage), 'no usage unasked');
  eq(new Set(ps.map((c) => c.id)).size, 1, 'one id unasked too');
});

test('errors surface as OpenAI APIError with status and message', async () => {
  let err = null;
  try {
    await client.chat.completions.create({ model: 'auto', messages: [], max_tokens: 5 });
  } catch (e) { err = e; }
  assert(err, 'threw');
  eq(err.status, 400, 'status');
  assert(/messages/.test(err.message), 'message names the field: ' + err.message);
});

test('models.list', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert(ids.includes('cloud'), 'ids: ' + ids);
});

await run();
eq(await gw.stop(), 0, 'switchyard exit code');
await cloud.stop();
L.cleanup();
})().catch((e) => { console.log(`not ok - harness: ${e.stack}`); process.exitCode = 1; if (L) L.cleanup(); });
