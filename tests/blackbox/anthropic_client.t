#!/usr/bin/env node
// The official Anthropic client (npm "@anthropic-ai/sdk") drives POST /v1/messages
// through switchyard with an API key, streamed and not, against the edge tier (the
// real engine with stories260K) and a cloud tier (a stand-in Anthropic upstream), as
// any application written for Anthropic would.
'use strict';
let L;
(async () => {
L = await import('./lib.mjs');
const { test, run, assert, eq } = L;
const fs = await import('node:fs');
const path = await import('node:path');
const { createRequire } = await import('node:module');
const { startAnthropicUpstream } = await import('./anthropic_upstream.mjs');

const nodeDir = path.join(L.ROOT, 'tests', 'node');
if (!fs.existsSync(path.join(nodeDir, 'node_modules', '@anthropic-ai', 'sdk'))) {
  L.skipAll('the @anthropic-ai/sdk npm package is not installed (scripts/install-deps.sh installs it)');
  return;
}
const model = path.join(L.ROOT, 'data/models/stories260K/stories260K.bin');
const tok = path.join(L.ROOT, 'data/models/stories260K/tok512.bin');
if (!fs.existsSync(L.SWITCHYARD) || !fs.existsSync(model)) {
  L.skipAll(`build ${L.SWITCHYARD} first (and keep data/models/stories260K)`);
  return;
}
const req = createRequire(path.join(nodeDir, 'package.json'));
const sdk = req('@anthropic-ai/sdk');
const Anthropic = sdk.default || sdk;

const up = await startAnthropicUpstream('cloud');
process.env.SY_T_CLIENT_KEY = 'sk-client-abcdef012345';
process.env.SY_T_CLOUD_UP = 'sk-ant-upstream';
const gw = await L.startGateway(`
listen: 127.0.0.1:0
store: sqlite:anthropic-client.db
log_level: warn
auth:
  keys:
    - { name: app, key_env: SY_T_CLIENT_KEY, team: apps }
tiers:
  edge:
    kind: local
    model: ${model}
    tokenizer: ${tok}
    privacy: on_device
    threads: 1
  cloud:
    kind: anthropic
    base_url: ${up.url}/v1
    api_key_env: SY_T_CLOUD_UP
    model: claude-standin
    privacy: external
    cost: { usd_per_mtok_in: 3, usd_per_mtok_out: 15 }
`);
const client = new Anthropic({ baseURL: gw.url, apiKey: process.env.SY_T_CLIENT_KEY, maxRetries: 0 });

for (const tier of ['edge', 'cloud']) {
  test(`messages.create on the ${tier} tier (non-stream)`, async () => {
    const r = await client.messages.create({
      model: tier, max_tokens: 16, system: 'Be brief.',
      messages: [{ role: 'user', content: 'Once upon a time' }],
    });
    eq(r.type, 'message', 'type');
    eq(r.role, 'assistant', 'role');
    eq(r.content[0].type, 'text', 'a text block');
    assert(r.content[0].text.length > 0, 'text: ' + JSON.stringify(r));
    if (tier === 'cloud') eq(r.content[0].text, '[cloud] Once upon a time', 'the stand-in answered');
    assert(['end_turn', 'max_tokens'].includes(r.stop_reason), 'stop_reason ' + r.stop_reason);
    assert(r.usage.input_tokens > 0 && r.usage.output_tokens > 0, 'usage ' + JSON.stringify(r.usage));
    eq(r.switchyard.tier, tier, 'switchyard object');
  });

  test(`messages.stream on the ${tier} tier: events and the final message`, async () => {
    const stream = client.messages.stream({
      model: tier, max_tokens: 12, messages: [{ role: 'user', content: [{ type: 'text', text: 'Once upon a time' }] }],
    });
    let deltas = '';
    const types = [];
    stream.on('text', (t) => { deltas += t; });
    stream.on('streamEvent', (e) => types.push(e.type));
    const final = await stream.finalMessage();
    assert(deltas.length > 0, 'text events');
    eq(final.content[0].text, deltas, 'the final message holds the streamed text');
    eq(types[0], 'message_start', 'first event');
    eq(types[types.length - 1], 'message_stop', 'last event');
    assert(types.includes('content_block_delta') && types.includes('message_delta'), 'types ' + types);
    assert(final.usage.output_tokens > 0, 'usage ' + JSON.stringify(final.usage));
    if (tier === 'cloud') eq(deltas, '[cloud] Once upon a time', 'streamed text');
  });
}

test('messages.create with stream: true iterates raw events', async () => {
  const s = await client.messages.create({ model: 'cloud', max_tokens: 16, stream: true, messages: [{ role: 'user', content: 'raw events' }] });
  let text = '';
  for await (const e of s) if (e.type === 'content_block_delta' && e.delta.type === 'text_delta') text += e.delta.text;
  eq(text, '[cloud] raw events', 'text');
});

test('tool use through the client: tool_use block, then the tool result', async () => {
  const tools = [{ name: 'search', description: 'web search', input_schema: { type: 'object', properties: { q: { type: 'string' } }, required: ['q'] } }];
  const r = await client.messages.create({ model: 'cloud', max_tokens: 32, tools, messages: [{ role: 'user', content: 'use a tool for cats' }] });
  eq(r.stop_reason, 'tool_use', 'stop_reason');
  const tu = r.content.find((b) => b.type === 'tool_use');
  eq(tu.input.q, 'use a tool for cats', 'input');
  const final = await client.messages.stream({ model: 'cloud', max_tokens: 32, tools, messages: [
    { role: 'user', content: 'use a tool for cats' },
    { role: 'assistant', content: r.content },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: tu.id, content: 'cats are great' }] },
  ] }).finalMessage();
  eq(final.role, 'assistant', 'answered');
  const sent = up.received[up.received.length - 1].body;
  eq(sent.messages[2].content[0].type, 'tool_result', 'tool_result went upstream');
  eq(sent.messages[2].content[0].content, 'cats are great', 'its content');
});

test('errors surface as the client error classes with status and message', async () => {
  let err = null;
  try {
    await client.messages.create({ model: 'no-such-model', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] });
  } catch (e) { err = e; }
  assert(err, 'threw');
  eq(err.status, 404, 'status');
  assert(err instanceof Anthropic.NotFoundError, 'NotFoundError: ' + err);
  const bad = new Anthropic({ baseURL: gw.url, apiKey: 'sk-wrong', maxRetries: 0 });
  err = null;
  try {
    await bad.messages.create({ model: 'cloud', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] });
  } catch (e) { err = e; }
  assert(err instanceof Anthropic.AuthenticationError, 'AuthenticationError: ' + err);
  eq(err.status, 401, 'status');
});

await run();
eq(await gw.stop(), 0, 'switchyard exit code');
await up.stop();
L.cleanup();
})().catch((e) => { console.log(`not ok - harness: ${e.stack}`); process.exitCode = 1; if (L) L.cleanup(); });
