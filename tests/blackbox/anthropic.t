#!/usr/bin/env node
// Anthropic on both sides: POST /v1/messages (Anthropic's request, answer, stream
// and error shapes) and a tier of kind anthropic (a stand-in Anthropic upstream that
// records every request), against the real binary with the real engine
// (stories260K) as the edge tier. Keys, routing, failover and the privacy scan are
// the ones /v1/chat/completions goes through.
'use strict';
let L;
(async () => {
L = await import('./lib.mjs');
const { test, run, assert, eq, post, sseEvents } = L;
const fs = await import('node:fs');
const path = await import('node:path');
const { startAnthropicUpstream } = await import('./anthropic_upstream.mjs');
const model = path.join(L.ROOT, 'data/models/stories260K/stories260K.bin');
const tok = path.join(L.ROOT, 'data/models/stories260K/tok512.bin');
const names = path.join(L.ROOT, 'data/names');
if (!fs.existsSync(L.SWITCHYARD)) { L.skipAll(`build ${L.SWITCHYARD} first`); return; }
if (!fs.existsSync(model) || !fs.existsSync(names)) { L.skipAll('data/models/stories260K or data/names missing'); return; }

const up = await startAnthropicUpstream('claude');
process.env.SY_T_ANTH_UP = 'sk-ant-upstream-secret';
process.env.SY_T_APP_KEY = 'sk-app-0123456789';
process.env.SY_T_ADMIN = 'sk-admin-0123456789';
const gw = await L.startGateway(`
listen: 127.0.0.1:0
store: sqlite:anthropic.db
log_level: warn
auth:
  admin_key_env: SY_T_ADMIN
  keys:
    - { name: app, key_env: SY_T_APP_KEY, team: apps }
tiers:
  edge:
    kind: local
    model: ${model}
    tokenizer: ${tok}
    privacy: on_device
    threads: 1
  claude:
    kind: anthropic
    base_url: ${up.url}/v1
    api_key_env: SY_T_ANTH_UP
    model: claude-standin
    privacy: external
    retries: 0
    breaker: { failures: 100000 }
    cost: { usd_per_mtok_in: 3, usd_per_mtok_out: 15 }
routing:
  pii:
    action: local_only
    types: { PHONE_NUMBER: mask }
    names_dir: ${names}
  token_budget: { cloud_above: 1 }
  escalation: { enabled: false }
`);
const KEY = { 'x-api-key': process.env.SY_T_APP_KEY, 'anthropic-version': '2023-06-01' };
const MSG = `${gw.url}/v1/messages`;
const CHAT = `${gw.url}/v1/chat/completions`;
const bearer = { authorization: `Bearer ${process.env.SY_T_APP_KEY}` };
const lastBody = () => up.received[up.received.length - 1].body;
const names2 = (evs) => evs.map((e) => e.type);

test('non-stream: a message object; the upstream got a Messages body with its key and version', async () => {
  up.reset();
  const r = await post(MSG, {
    model: 'claude', max_tokens: 40, system: [{ type: 'text', text: 'Be brief.', cache_control: { type: 'ephemeral' } }],
    messages: [{ role: 'user', content: 'Hello there' }], stop_sequences: ['END'], temperature: 0.5, top_p: 0.9, top_k: 7,
    metadata: { user_id: 'u-42', team: 'ignored-by-key' },
  }, KEY);
  eq(r.status, 200, r.text);
  eq(r.json.type, 'message', 'type');
  eq(r.json.role, 'assistant', 'role');
  eq(r.json.content[0].type, 'text', 'text block');
  eq(r.json.content[0].text, '[claude] Hello there', 'the stand-in answered');
  eq(r.json.stop_reason, 'end_turn', 'stop_reason');
  assert(r.json.usage.input_tokens > 0 && r.json.usage.output_tokens > 0, 'usage: ' + JSON.stringify(r.json.usage));
  eq(r.json.switchyard.tier, 'claude', 'switchyard object');
  eq(r.headers.get('x-switchyard-tier'), 'claude', 'header');
  eq(up.received.length, 1, 'one upstream call');
  const rec = up.received[0];
  eq(rec.path, '/v1/messages', 'path');
  eq(rec.headers['x-api-key'], 'sk-ant-upstream-secret', 'upstream key from api_key_env');
  eq(rec.headers['anthropic-version'], '2023-06-01', 'version header');
  eq(rec.headers.authorization, undefined, 'no bearer header to Anthropic');
  const b = rec.body;
  eq(b.model, 'claude-standin', 'the tier model');
  eq(b.max_tokens, 40, 'max_tokens');
  eq(b.stream, false, 'stream');
  eq(JSON.stringify(b.system), JSON.stringify([{ type: 'text', text: 'Be brief.' }]), 'system blocks');
  eq(JSON.stringify(b.messages), JSON.stringify([{ role: 'user', content: 'Hello there' }]), 'messages');
  eq(JSON.stringify(b.stop_sequences), '["END"]', 'stop_sequences');
  eq(b.temperature, 0.5, 'temperature');
  eq(b.top_p, 0.9, 'top_p');
  eq(b.top_k, 7, 'top_k');
  eq(JSON.stringify(b.metadata), '{"user_id":"u-42"}', 'only user_id leaves; switchyard labels do not');
});

test('stream: Anthropic event names in order, text deltas, stop reason and usage', async () => {
  const r = await post(MSG, { model: 'claude', max_tokens: 40, stream: true, messages: [{ role: 'user', content: [{ type: 'text', text: 'Stream me please' }] }] }, KEY);
  eq(r.status, 200, r.text);
  assert(/text\/event-stream/.test(r.headers.get('content-type')), 'SSE');
  const evs = sseEvents(r.text);
  const lines = r.text.split('\n').filter((l) => l.startsWith('event: ')).map((l) => l.slice(7));
  eq(JSON.stringify(lines), JSON.stringify(names2(evs)), 'each event line names its data type');
  eq(evs[0].type, 'message_start', 'first');
  eq(evs[1].type, 'ping', 'ping');
  eq(evs[2].type, 'content_block_start', 'block start');
  eq(evs[evs.length - 2].type, 'message_delta', 'message_delta');
  eq(evs[evs.length - 1].type, 'message_stop', 'last');
  const text = evs.filter((e) => e.type === 'content_block_delta').map((e) => e.delta.text).join('');
  eq(text, '[claude] Stream me please', 'text');
  const md = evs[evs.length - 2];
  eq(md.delta.stop_reason, 'end_turn', 'stop_reason');
  assert(md.usage.output_tokens > 0, 'usage');
  eq(md.switchyard.tier, 'claude', 'switchyard object on message_delta');
  eq(lastBody().stream, true, 'the upstream was asked for a stream');
});

test('tools: tool_use answered as a block (input_json_delta when streamed); tool_result sent back', async () => {
  const tools = [{ name: 'search', description: 'search', input_schema: { type: 'object', properties: { q: { type: 'string' } } } }];
  const r = await post(MSG, { model: 'claude', max_tokens: 40, tools, tool_choice: { type: 'auto', disable_parallel_tool_use: true }, messages: [{ role: 'user', content: 'use a tool now' }] }, KEY);
  eq(r.status, 200, r.text);
  eq(r.json.stop_reason, 'tool_use', 'stop_reason');
  const tu = r.json.content.find((b) => b.type === 'tool_use');
  eq(JSON.stringify(tu.input), '{"q":"use a tool now"}', 'input object');
  eq(tu.name, 'search', 'name');
  const b = lastBody();
  eq(JSON.stringify(b.tools), JSON.stringify(tools), 'tools as sent');
  eq(JSON.stringify(b.tool_choice), '{"type":"auto","disable_parallel_tool_use":true}', 'tool_choice');
  const s = await post(MSG, { model: 'claude', max_tokens: 40, stream: true, tools, messages: [{ role: 'user', content: 'use a tool again' }] }, KEY);
  const evs = sseEvents(s.text);
  const start = evs.find((e) => e.type === 'content_block_start');
  eq(start.content_block.type, 'tool_use', 'tool_use block');
  const json = evs.filter((e) => e.type === 'content_block_delta').map((e) => e.delta.partial_json).join('');
  eq(json, '{"q":"use a tool again"}', 'partial_json assembles');
  eq(evs.find((e) => e.type === 'message_delta').delta.stop_reason, 'tool_use', 'stream stop_reason');
  // The second turn: the tool_use and its result go back as Anthropic blocks.
  const r2 = await post(MSG, { model: 'claude', max_tokens: 40, tools, messages: [
    { role: 'user', content: 'use a tool now' },
    { role: 'assistant', content: [{ type: 'text', text: 'Calling.' }, tu] },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: tu.id, content: 'found it' }, { type: 'text', text: 'and?' }] },
  ] }, KEY);
  eq(r2.status, 200, r2.text);
  const m = lastBody().messages;
  eq(JSON.stringify(m[1]), JSON.stringify({ role: 'assistant', content: [{ type: 'text', text: 'Calling.' }, { type: 'tool_use', id: tu.id, name: 'search', input: { q: 'use a tool now' } }] }), 'assistant turn');
  eq(JSON.stringify(m[2]), JSON.stringify({ role: 'user', content: [{ type: 'tool_result', tool_use_id: tu.id, content: 'found it' }] }), 'tool result turn');
  eq(JSON.stringify(m[3]), JSON.stringify({ role: 'user', content: [{ type: 'text', text: 'and?' }] }), 'the user text after it');
});

test('/v1/chat/completions through the anthropic tier: OpenAI answers, tool calls and streams', async () => {
  const tools = [{ type: 'function', function: { name: 'search', parameters: { type: 'object' } } }];
  const r = await post(CHAT, { model: 'claude', max_tokens: 30, tools, tool_choice: 'required', messages: [{ role: 'system', content: 'sys' }, { role: 'user', content: 'use a tool please' }] }, bearer);
  eq(r.status, 200, r.text);
  eq(r.json.object, 'chat.completion', 'OpenAI shape');
  eq(r.json.choices[0].finish_reason, 'tool_calls', 'finish_reason');
  const tc = r.json.choices[0].message.tool_calls[0];
  eq(tc.function.name, 'search', 'tool name');
  eq(JSON.parse(tc.function.arguments).q, 'use a tool please', 'arguments');
  eq(r.json.usage.total_tokens, r.json.usage.prompt_tokens + r.json.usage.completion_tokens, 'usage');
  const b = lastBody();
  eq(JSON.stringify(b.tool_choice), '{"type":"any"}', 'required -> any');
  eq(JSON.stringify(b.tools[0]), '{"name":"search","input_schema":{"type":"object"}}', 'function -> input_schema');
  eq(JSON.stringify(b.system), '[{"type":"text","text":"sys"}]', 'system message -> system');
  const s = await post(CHAT, { model: 'claude', stream: true, messages: [{ role: 'user', content: 'openai stream' }] }, bearer);
  const chunks = sseEvents(s.text).filter((e) => e !== '[DONE]');
  const text = chunks.map((c) => (c.choices[0] && c.choices[0].delta.content) || '').join('');
  eq(text, '[claude] openai stream', 'streamed text');
  assert(chunks.some((c) => c.choices[0] && c.choices[0].finish_reason === 'stop'), 'finish chunk');
  assert(s.text.trimEnd().endsWith('data: [DONE]'), 'ends with [DONE]');
  eq(lastBody().max_tokens, 4096, 'max_tokens the client left out: the documented default');
});

test('edge tier (real engine) answers /v1/messages, streamed and not', async () => {
  const r = await post(MSG, { model: 'edge', max_tokens: 12, messages: [{ role: 'user', content: 'Once upon a time' }] }, KEY);
  eq(r.status, 200, r.text);
  eq(r.json.switchyard.tier, 'edge', 'edge');
  assert(r.json.content[0].text.length > 0, 'text: ' + r.text);
  eq(r.json.stop_reason, 'max_tokens', 'stopped at max_tokens');
  eq(r.json.usage.output_tokens, 12, 'output tokens');
  const s = await post(MSG, { model: 'edge', max_tokens: 8, stream: true, messages: [{ role: 'user', content: 'Once upon a time' }] }, KEY);
  const evs = sseEvents(s.text);
  eq(evs[0].type, 'message_start', 'start');
  eq(evs[evs.length - 1].type, 'message_stop', 'stop');
  assert(evs.filter((e) => e.type === 'content_block_delta').length >= 2, 'several deltas');
  eq(evs[evs.length - 2].usage.output_tokens, 8, 'usage');
});

test('an overloaded anthropic tier fails over to the edge', async () => {
  up.failNext(1);
  const r = await post(MSG, { model: 'auto', max_tokens: 8, messages: [{ role: 'user', content: 'tell me a story about a cat and a dog please' }] }, KEY);
  eq(r.status, 200, r.text);
  eq(r.json.switchyard.tier, 'edge', 'served by the edge');
  assert(r.json.switchyard.reasons.some((x) => /failover:claude/.test(x)), 'reason: ' + r.json.switchyard.reasons);
});

test('an error event mid-stream ends the client stream with an error, in either shape', async () => {
  up.errorMidStream(1);
  const s = await post(MSG, { model: 'claude', max_tokens: 20, stream: true, messages: [{ role: 'user', content: 'break please' }] }, KEY);
  eq(s.status, 200, 'the stream had begun');
  const evs = sseEvents(s.text);
  eq(evs[evs.length - 1].type, 'error', 'last event: ' + s.text.slice(-300));
  assert(/Overloaded mid-stream/.test(evs[evs.length - 1].error.message), 'the cause: ' + JSON.stringify(evs[evs.length - 1]));
  assert(!evs.some((e) => e.type === 'message_stop'), 'no message_stop');
  up.errorMidStream(1);
  const c = await post(CHAT, { model: 'claude', stream: true, messages: [{ role: 'user', content: 'break please' }] }, bearer);
  const chunks = sseEvents(c.text).filter((e) => e !== '[DONE]');
  const last = chunks[chunks.length - 1];
  assert(last.error && /mid-stream/.test(last.error.message), 'OpenAI error chunk: ' + c.text.slice(-300));
});

test("errors in Anthropic's shape: 400, 401, 404; keys as x-api-key or Bearer", async () => {
  const shape = (r, status, type) => {
    eq(r.status, status, r.text);
    eq(r.json.type, 'error', 'type error');
    eq(r.json.error.type, type, 'error type');
    assert(typeof r.json.error.message === 'string' && r.json.error.message.length > 0, 'message');
  };
  const m = { model: 'claude', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] };
  shape(await post(MSG, { model: 'claude', messages: [{ role: 'user', content: 'hi' }] }, KEY), 400, 'invalid_request_error');
  shape(await post(MSG, { ...m, messages: [{ role: 'user', content: [{ type: 'thinking', thinking: 'x' }] }] }, KEY), 400, 'invalid_request_error');
  shape(await post(MSG, { ...m, messages: [{ role: 'system', content: 'x' }] }, KEY), 400, 'invalid_request_error');
  shape(await post(MSG, { ...m, temperature: 1.5 }, KEY), 400, 'invalid_request_error');
  shape(await post(MSG, '{"model":"claude","max_tokens":8,"max_tokens":9,"messages":[]}', KEY), 400, 'invalid_request_error');
  shape(await post(MSG, '{not json', KEY), 400, 'invalid_request_error');
  shape(await post(MSG, { ...m, model: 'claude-nonexistent' }, KEY), 404, 'not_found_error');
  shape(await post(MSG, m), 401, 'authentication_error');
  shape(await post(MSG, m, { 'x-api-key': 'sk-wrong' }), 401, 'authentication_error');
  eq((await post(MSG, m, bearer)).status, 200, 'Bearer accepted too');
  eq((await post(MSG, m, { 'x-api-key': process.env.SY_T_APP_KEY })).status, 200, 'without anthropic-version');
  // The OpenAI endpoints keep their own shape.
  const o = await post(CHAT, { model: 'claude', messages: [] }, bearer);
  eq(o.status, 400, 'chat 400');
  assert(o.json.error && o.json.error.type === 'invalid_request_error' && o.json.type === undefined, 'OpenAI shape: ' + o.text);
});

test('personal data through /v1/messages and to the anthropic tier: kept local or masked, never sent', async () => {
  const planted = [];
  const cases = [
    ['system', (v) => ({ system: `mail ${v}`, messages: [{ role: 'user', content: 'hi' }] })],
    ['text block', (v) => ({ messages: [{ role: 'user', content: [{ type: 'text', text: `mail ${v}` }] }] })],
    ['tool_result', (v) => ({ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: [{ type: 'tool_use', id: 't1', name: 'f', input: {} }] }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't1', content: `mail ${v}` }] }] })],
    ['tool_use input', (v) => ({ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: [{ type: 'tool_use', id: 't1', name: 'f', input: { to: v } }] }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't1', content: 'ok' }] }] })],
    ['metadata.user_id', (v) => ({ metadata: { user_id: v }, messages: [{ role: 'user', content: 'hi' }] })],
    ['tool schema', (v) => ({ tools: [{ name: 'f', input_schema: { type: 'object', description: v } }], messages: [{ role: 'user', content: 'hi' }] })],
  ];
  let n = 0;
  for (const [where, make] of cases) {
    for (const stream of [false, true]) {
      const v = `probe${++n}.anth@example.com`;
      planted.push(v);
      up.reset();
      const r = await post(MSG, { model: 'auto', max_tokens: 6, stream, ...make(v) }, KEY);
      // Tools included: the edge serves tool calls under its grammar.
      eq(r.status, 200, `${where}: ${r.text.slice(0, 200)}`);
      eq(r.headers.get('x-switchyard-tier'), 'edge', `${where}: kept on the edge`);
      eq(up.received.length, 0, `${where}: nothing reached the anthropic tier`);
    }
  }
  // The OpenAI endpoint to the anthropic tier: the same.
  const v = 'probe.chat.anth@example.com';
  planted.push(v);
  up.reset();
  const c = await post(CHAT, { model: 'auto', max_tokens: 6, messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: JSON.stringify({ to: v }) } }] }, { role: 'tool', tool_call_id: 'c1', content: 'ok' }] }, bearer);
  eq(c.status, 200, c.text);
  eq(up.received.length, 0, 'tool arguments: nothing reached the anthropic tier');
  // A masked type leaves as a placeholder and comes back in the answer.
  const phone = '+1 415 555 0199';
  up.reset();
  const m = await post(MSG, { model: 'auto', max_tokens: 20, messages: [{ role: 'user', content: `call ${phone}` }] }, KEY);
  eq(m.status, 200, m.text);
  eq(m.json.switchyard.tier, 'claude', 'sent masked');
  eq(up.received.length, 1, 'one call');
  assert(!up.received[0].text.includes('555 0199'), 'the phone number did not leave: ' + up.received[0].text);
  assert(m.json.content[0].text.includes(phone), 'restored in the answer: ' + m.text);
  const ms = await post(MSG, { model: 'auto', max_tokens: 20, stream: true, messages: [{ role: 'user', content: `call ${phone}` }] }, KEY);
  const text = sseEvents(ms.text).filter((e) => e.type === 'content_block_delta').map((e) => e.delta.text).join('');
  assert(text.includes(phone), 'restored in the replayed stream: ' + text);
  for (const x of up.received) for (const p of planted) assert(!x.text.includes(p), 'leaked ' + p);
});

test('a matched stop sequence comes back as stop_reason stop_sequence, streamed and not', async () => {
  const m = { model: 'claude', max_tokens: 40, stop_sequences: ['HALT'], messages: [{ role: 'user', content: 'go on HALT and stop' }] };
  const r = await post(MSG, m, KEY);
  eq(r.json.stop_reason, 'stop_sequence', r.text);
  eq(r.json.stop_sequence, 'HALT', 'which one');
  eq(r.json.content[0].text, '[claude] go on ', 'text before it');
  const s = await post(MSG, { ...m, stream: true }, KEY);
  const md = sseEvents(s.text).find((e) => e.type === 'message_delta');
  eq(md.delta.stop_reason, 'stop_sequence', 'stream stop_reason');
  eq(md.delta.stop_sequence, 'HALT', 'stream stop_sequence');
  const c = await post(CHAT, { model: 'claude', stop: ['HALT'], messages: [{ role: 'user', content: 'go on HALT and stop' }] }, bearer);
  eq(c.json.choices[0].finish_reason, 'stop', 'OpenAI clients: stop');
});

test('the cascade: the edge answers first, a low-confidence answer is re-asked of the anthropic tier', async () => {
  const g3 = await L.startGateway(`
listen: 127.0.0.1:0
store: sqlite:anthropic-cascade.db
log_level: warn
tiers:
  edge:
    kind: local
    model: ${model}
    tokenizer: ${tok}
    privacy: on_device
    threads: 1
  claude:
    kind: anthropic
    base_url: ${up.url}/v1
    api_key_env: SY_T_ANTH_UP
    model: claude-standin
    privacy: external
routing:
  escalation: { enabled: true, min_confidence: 0.999 }
`, 'cascade');
  for (const stream of [false, true]) {
    up.reset();
    const r = await post(`${g3.url}/v1/messages`, { model: 'auto', max_tokens: 8, stream, messages: [{ role: 'user', content: 'Once upon a time there was' }] });
    eq(r.status, 200, r.text);
    const sy = stream ? sseEvents(r.text).find((e) => e.type === 'message_delta').switchyard : r.json.switchyard;
    eq(sy.tier, 'claude', 'escalated to the anthropic tier');
    eq(sy.escalated, true, 'escalated');
    assert(sy.reasons.some((x) => /^escalate:conf=/.test(x)), 'reasons ' + sy.reasons);
    eq(up.received.length, 1, 'one upstream call');
  }
  eq(await g3.stop(), 0, 'clean exit');
});

test("a key's rate limit and budget answer 429 in Anthropic's shape", async () => {
  process.env.SY_T_SLOW_KEY = 'sk-slow-0123456789';
  process.env.SY_T_POOR_KEY = 'sk-poor-0123456789';
  const g2 = await L.startGateway(`
listen: 127.0.0.1:0
store: sqlite:anthropic-limits.db
log_level: warn
auth:
  keys:
    - { name: slow, key_env: SY_T_SLOW_KEY, rpm: 1 }
    - { name: poor, key_env: SY_T_POOR_KEY, budget_usd: 0.000001, budget_period: day }
tiers:
  claude:
    kind: anthropic
    base_url: ${up.url}/v1
    api_key_env: SY_T_ANTH_UP
    model: claude-standin
    privacy: external
    cost: { usd_per_mtok_in: 3, usd_per_mtok_out: 15 }
`, 'limits');
  const m = { model: 'auto', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] };
  const url = `${g2.url}/v1/messages`;
  eq((await post(url, m, { 'x-api-key': process.env.SY_T_SLOW_KEY })).status, 200, 'first');
  const r = await post(url, m, { 'x-api-key': process.env.SY_T_SLOW_KEY });
  eq(r.status, 429, r.text);
  eq(r.json.type, 'error', 'Anthropic shape');
  eq(r.json.error.type, 'rate_limit_error', 'type');
  assert(r.headers.get('retry-after'), 'Retry-After');
  const b = await post(url, m, { 'x-api-key': process.env.SY_T_POOR_KEY });
  eq(b.status, 429, b.text);
  eq(b.json.error.type, 'rate_limit_error', 'budget: type');
  assert(/budget/.test(b.json.error.message), 'budget: message ' + b.text);
  eq(await g2.stop(), 0, 'clean exit');
});

test('the ledger has a row per /v1/messages request, charged to the key', async () => {
  const r = await L.get(`${gw.url}/v1/costs?group_by=team`, { authorization: `Bearer ${process.env.SY_T_ADMIN}` });
  eq(r.status, 200, r.text);
  assert(/apps/.test(r.text), 'team of the key: ' + r.text);
});

await run();
eq(await gw.stop(), 0, 'switchyard exit code');
await up.stop();
L.cleanup();
})().catch((e) => { console.log(`not ok - harness: ${e.stack}`); process.exitCode = 1; if (L) L.cleanup(); });
