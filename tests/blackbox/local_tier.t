#!/usr/bin/env node
// The in-process engine as the edge tier (stories260K from ../shared), driven by the
// official OpenAI client, and confidence escalation (cascade) to a stand-in cloud.
'use strict';
let L;
(async () => {
L = await import('./lib.mjs');
const { test, run, assert, eq, post, chat } = L;
const fs = await import('node:fs');
const path = await import('node:path');
const { createRequire } = await import('node:module');

const model = path.join(L.SHARED, 'data/models/llama2c/stories260K.bin');
const tok = path.join(L.SHARED, 'data/models/llama2c/tok512.bin');
if (!fs.existsSync(model)) { L.skipAll(`${model} is absent (../shared not here)`); return; }
if (!fs.existsSync(L.SWITCHYARD) || !fs.existsSync(L.UPSTREAM)) { L.skipAll('build first'); return; }
const nodeDir = path.join(L.ROOT, 'tests', 'node');
const haveClient = fs.existsSync(path.join(nodeDir, 'node_modules', 'openai'));

const cloud = await L.startUpstream('cloud');
const config = (minConf) => `
listen: 127.0.0.1:0
store: sqlite:local.db
log_level: warn
tiers:
  edge:
    kind: local
    model: ${model}
    tokenizer: ${tok}
    version: "stories260K-f32"
    max_concurrency: 2
    cost: { usd_per_hour: 0.05, tokens_per_second: 2000 }
  cloud:
    kind: openai
    base_url: ${cloud.url}/v1
    model: big-model
    privacy: external
    cost: { usd_per_mtok_in: 2.5, usd_per_mtok_out: 10 }
routing:
  pii: { action: local_only }
  escalation: { enabled: true, min_confidence: ${minConf} }
`;
const gw = await L.startGateway(config(0.0), 'local');
const V1 = `${gw.url}/v1/chat/completions`;

test('chat completion from the local tier with logprobs (raw HTTP)', async () => {
  const r = await post(V1, chat('Once upon a time', { model: 'edge', max_tokens: 24, temperature: 0, logprobs: true, top_logprobs: 3 }));
  eq(r.status, 200, 'status: ' + r.text);
  eq(r.json.switchyard.tier, 'edge', 'tier');
  eq(r.json.switchyard.version, 'stories260K-f32', 'version');
  const content = r.json.choices[0].message.content;
  assert(content.length > 10, 'generated text: ' + content);
  const lp = r.json.choices[0].logprobs.content;
  assert(lp.length > 5 && lp.length <= 24, 'one logprob per token: ' + lp.length);
  for (const t of lp) {
    assert(t.logprob <= 0 && Number.isFinite(t.logprob), 'logprob value');
    eq(t.top_logprobs.length, 3, 'top_logprobs');
    assert(t.top_logprobs[0].logprob >= t.logprob - 1e-6, 'greedy picks the most likely token');
  }
  eq(r.json.usage.completion_tokens, lp.length, 'usage matches');
  // Only the API's own fields and the switchyard object: no engine internals.
  const top = new Set(['id', 'object', 'created', 'model', 'choices', 'usage', 'switchyard', 'system_fingerprint']);
  for (const k of Object.keys(r.json)) assert(top.has(k), 'unexpected top-level field in the answer: ' + k);
  const cr = await post(`${gw.url}/v1/completions`, { model: 'edge', prompt: 'Once', max_tokens: 8 });
  eq(cr.status, 200, 'completions');
  for (const k of Object.keys(cr.json)) assert(top.has(k), 'unexpected top-level field in a completion: ' + k);
  // Greedy decoding is deterministic.
  const r2 = await post(V1, chat('Once upon a time', { model: 'edge', max_tokens: 24, temperature: 0 }));
  eq(r2.json.choices[0].message.content, content, 'same greedy text');
});

test('concurrent requests are decoded together and each answer is its answer alone', async () => {
  // Both slots decode in the same forward passes (continuous batching); greedy and
  // seeded answers must equal those of the same requests sent one at a time.
  const prompts = ['Once upon a time', 'The cat sat', 'Tom and Lily went to the park', 'One day a bird', 'Sue had a red ball', 'The sun was'];
  const body = (p, i) => chat(p, { model: 'edge', max_tokens: 16 + 5 * i, temperature: i % 2 ? 0.8 : 0, seed: 11 + i, logprobs: true });
  const alone = [];
  for (let i = 0; i < prompts.length; i++) alone.push(await post(V1, body(prompts[i], i)));
  const together = await Promise.all(prompts.map((p, i) => post(V1, body(p, i))));
  for (let i = 0; i < prompts.length; i++) {
    eq(together[i].status, 200, 'status: ' + together[i].text.slice(0, 200));
    eq(together[i].json.choices[0].message.content, alone[i].json.choices[0].message.content, `answer ${i}`);
    eq(JSON.stringify(together[i].json.choices[0].logprobs), JSON.stringify(alone[i].json.choices[0].logprobs), `logprobs ${i}`);
  }
});

test('streamed chat from the local tier arrives token by token', async () => {
  const r = await post(V1, chat('Once upon a time', { model: 'edge', max_tokens: 20, temperature: 0, stream: true }));
  eq(r.status, 200, 'status');
  const ev = L.sseEvents(r.text);
  const deltas = ev.filter((e) => e !== '[DONE]' && e.choices && e.choices.length && e.choices[0].delta.content);
  assert(deltas.length >= 5, 'several token chunks: ' + deltas.length);
  eq(ev[ev.length - 1], '[DONE]', '[DONE]');
});

test('a client that leaves mid-stream cancels generation and frees its slot', async () => {
  const http = await import('node:http');
  for (let i = 0; i < 4; i++) {
    await new Promise((resolve) => {
      const req = http.request(`${V1}`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        res.once('data', () => { req.destroy(); resolve(); });
      });
      req.on('error', () => resolve());
      req.end(JSON.stringify(chat('Once upon a time', { model: 'edge', max_tokens: 400, stream: true })));
    });
  }
  // Both slots must be free again: two concurrent requests complete.
  const [a, b] = await Promise.all([1, 2].map(() => post(V1, chat('Lily', { model: 'edge', max_tokens: 8 }))));
  eq(a.status, 200, 'a');
  eq(b.status, 200, 'b');
  const m = await L.get(`${gw.url}/metrics`);
  assert(/switchyard_tier_inflight\{tier="edge"\} 0/.test(m.text), 'no slot leaked');
});

test('response_format json_schema / json_object: the edge answers parse and validate', async () => {
  const schema = {
    type: 'object',
    properties: {
      name: { type: 'string' }, age: { type: 'integer' },
      tags: { type: 'array', items: { enum: ['a', 'b', 3] }, minItems: 1, maxItems: 3 },
      ok: { anyOf: [{ type: 'boolean' }, { type: 'null' }] },
    },
    required: ['name', 'age', 'tags', 'ok'], additionalProperties: false,
  };
  const rf = { type: 'json_schema', json_schema: { name: 'person', schema, strict: true } };
  for (let i = 0; i < 6; i++) {
    const r = await post(V1, chat('Once upon a time', { model: 'edge', max_tokens: 48 + 8 * i, temperature: 1, seed: i, response_format: rf }));
    eq(r.status, 200, 'status: ' + r.text.slice(0, 300));
    const v = JSON.parse(r.json.choices[0].message.content);
    eq(Object.keys(v).sort().join(','), 'age,name,ok,tags', 'all properties: ' + r.json.choices[0].message.content);
    assert(Number.isInteger(v.age) && typeof v.name === 'string', 'types');
    assert(v.tags.length >= 1 && v.tags.length <= 3 && v.tags.every((t) => ['a', 'b', 3].includes(t)), 'tags');
    assert(v.ok === null || typeof v.ok === 'boolean', 'anyOf');
  }
  const o = await post(V1, chat('Once upon a time', { model: 'edge', max_tokens: 40, temperature: 1, response_format: { type: 'json_object' } }));
  eq(o.status, 200, 'status');
  const v = JSON.parse(o.json.choices[0].message.content);
  assert(v && typeof v === 'object' && !Array.isArray(v), 'an object');
  const short = await post(V1, chat('Once', { model: 'edge', max_tokens: 10, response_format: rf }));
  eq(short.status, 400, 'budget below the shortest value: ' + short.text.slice(0, 300));
  assert(/max_tokens/.test(short.json.error.message), 'says why: ' + short.json.error.message);
  const bad = await post(V1, chat('Once', { model: 'edge', response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'string', pattern: '^a' } } } }));
  eq(bad.status, 400, 'unsupported keyword: ' + bad.text.slice(0, 300));
  assert(/pattern/.test(bad.json.error.message), 'names the keyword: ' + bad.json.error.message);
});

test('a prompt longer than the local context is a clear 400', async () => {
  const long = 'the cat sat on the mat. '.repeat(400);
  const r = await post(V1, chat(long, { model: 'edge', max_tokens: 5 }));
  eq(r.status, 400, 'status: ' + r.text.slice(0, 300));
  assert(/context/.test(r.json.error.message), 'names the context: ' + r.json.error.message);
});

test('the official OpenAI client drives the local tier, streaming and not, with logprobs', async () => {
  if (!haveClient) return;
  const req = createRequire(path.join(nodeDir, 'package.json'));
  const OpenAI = req('openai').default || req('openai');
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  const r = await client.chat.completions.create({ model: 'edge', messages: [{ role: 'user', content: 'Lily and Ben' }], max_tokens: 16, logprobs: true, top_logprobs: 2 });
  assert(r.choices[0].message.content.length > 0, 'content');
  assert(r.choices[0].logprobs.content.length > 0, 'logprobs');
  const s = await client.chat.completions.create({ model: 'edge', stream: true, messages: [{ role: 'user', content: 'Lily and Ben' }], max_tokens: 16, logprobs: true });
  let text = '', lps = 0;
  for await (const c of s) {
    if (c.choices && c.choices[0]) {
      text += c.choices[0].delta.content || '';
      if (c.choices[0].logprobs) lps += c.choices[0].logprobs.content.length;
    }
  }
  assert(text.length > 0 && lps > 0, `streamed text and logprobs: ${text} ${lps}`);
});

// Tools answered by the edge: the call's arguments must validate against the schema
// of the function it names (checked here, independently of the grammar).
const WEATHER = {
  type: 'object',
  properties: {
    city: { type: 'string' },
    days: { type: 'integer' },
    unit: { enum: ['c', 'f'] },
    hourly: { anyOf: [{ type: 'boolean' }, { type: 'null' }] },
  },
  required: ['city', 'days'], additionalProperties: false,
};
const TOOLS = [
  { type: 'function', function: { name: 'get_weather', description: 'Weather for a city', parameters: WEATHER } },
  { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { zone: { type: 'string' } }, required: ['zone'] }, strict: true } },
];
function checkCall(call, names) {
  assert(/^call_[0-9a-f]{24}$/.test(call.id), 'call id: ' + call.id);
  eq(call.type, 'function', 'type');
  assert(names.includes(call.function.name), 'a declared function: ' + call.function.name);
  const a = JSON.parse(call.function.arguments);
  assert(a && typeof a === 'object' && !Array.isArray(a), 'arguments object: ' + call.function.arguments);
  if (call.function.name === 'get_weather') {
    for (const k of Object.keys(a)) assert(k in WEATHER.properties, 'declared property ' + k);
    assert(typeof a.city === 'string' && Number.isInteger(a.days), 'required and typed: ' + call.function.arguments);
    assert(!('unit' in a) || ['c', 'f'].includes(a.unit), 'enum');
    assert(!('hourly' in a) || a.hourly === null || typeof a.hourly === 'boolean', 'anyOf');
  } else {
    eq(Object.keys(a).join(','), 'zone', 'get_time arguments: ' + call.function.arguments);
    assert(typeof a.zone === 'string', 'zone');
  }
  return a;
}

test('tools: the official OpenAI client gets tool_calls from the edge, sends the result, gets an answer (streamed and not)', async () => {
  if (!haveClient) return;
  const req = createRequire(path.join(nodeDir, 'package.json'));
  const OpenAI = req('openai').default || req('openai');
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  for (let i = 0; i < 4; i++) {
    const messages = [{ role: 'user', content: 'What is the weather in Paris?' }];
    const choice = i % 2 ? { type: 'function', function: { name: 'get_weather' } } : 'required';
    const r = await client.chat.completions.create({ model: 'edge', messages, tools: TOOLS, tool_choice: choice, max_tokens: 80, temperature: 1, seed: i });
    eq(r.choices[0].finish_reason, 'tool_calls', 'finish_reason');
    eq(r.choices[0].message.content, null, 'no content beside the call');
    const call = r.choices[0].message.tool_calls[0];
    eq(r.choices[0].message.tool_calls.length, 1, 'one call');
    checkCall(call, i % 2 ? ['get_weather'] : ['get_weather', 'get_time']);
    // The tool's result goes back; the edge answers it in text.
    messages.push(r.choices[0].message, { role: 'tool', tool_call_id: call.id, content: '{"temp": 21, "sky": "sunny"}' });
    const f = await client.chat.completions.create({ model: 'edge', messages, tools: TOOLS, tool_choice: i < 2 ? 'none' : 'auto', max_tokens: 16, temperature: 0 });
    assert(typeof f.choices[0].message.content === 'string' && f.choices[0].message.content.length > 0, 'final answer: ' + JSON.stringify(f.choices[0].message));
    assert(!f.choices[0].message.tool_calls, 'no call in the final answer');
    assert(['stop', 'length'].includes(f.choices[0].finish_reason), 'finish: ' + f.choices[0].finish_reason);
  }
  // Streamed: the call arrives as tool_call deltas.
  for (let i = 0; i < 3; i++) {
    const messages = [{ role: 'user', content: 'What time is it in Tokyo?' }];
    const s = await client.chat.completions.create({ model: 'edge', stream: true, messages, tools: TOOLS, tool_choice: i ? { type: 'function', function: { name: 'get_time' } } : 'required', max_tokens: 60, temperature: 1, seed: 40 + i });
    let id = '', name = '', args = '', finish = null, n = 0, content = '';
    for await (const c of s) {
      const ch = c.choices && c.choices[0];
      if (!ch) continue;
      if (ch.delta.content) content += ch.delta.content;
      for (const t of ch.delta.tool_calls || []) {
        eq(t.index, 0, 'index');
        if (t.id) id = t.id;
        if (t.function && t.function.name) name += t.function.name;
        if (t.function && t.function.arguments) args += t.function.arguments, n++;
      }
      if (ch.finish_reason) finish = ch.finish_reason;
    }
    eq(finish, 'tool_calls', 'streamed finish_reason');
    eq(content, '', 'no content');
    assert(n >= 2, 'arguments in several deltas: ' + n);
    checkCall({ id, type: 'function', function: { name, arguments: args } }, i ? ['get_time'] : ['get_weather', 'get_time']);
    messages.push({ role: 'assistant', content: null, tool_calls: [{ id, type: 'function', function: { name, arguments: args } }] });
    messages.push({ role: 'tool', tool_call_id: id, content: '10:42' });
    const f = await client.chat.completions.create({ model: 'edge', stream: true, messages, tools: TOOLS, tool_choice: 'none', max_tokens: 12, temperature: 0 });
    let text = '';
    for await (const c of f) if (c.choices && c.choices[0]) text += c.choices[0].delta.content || '';
    assert(text.length > 0, 'streamed final answer');
  }
});

test('tools: personal data under local_only is served by the edge; bad tool requests are clear 400s', async () => {
  const r = await post(V1, chat('my email is jane.doe@example.com, what is the weather?', { tools: TOOLS, tool_choice: 'required', max_tokens: 80, temperature: 0 }));
  eq(r.status, 200, 'status: ' + r.text.slice(0, 300));
  eq(r.json.switchyard.tier, 'edge', 'served by the edge');
  checkCall(r.json.choices[0].message.tool_calls[0], ['get_weather', 'get_time']);
  // auto: stories260K's first token is text, so the answer is text (the rule: a first token of '{' makes a call)
  const a = await post(V1, chat('Once upon a time', { model: 'edge', tools: TOOLS, max_tokens: 40, temperature: 0 }));
  eq(a.status, 200, 'auto: ' + a.text.slice(0, 300));
  const m = a.json.choices[0].message;
  if (m.tool_calls) { eq(a.json.choices[0].finish_reason, 'tool_calls', 'a call'); checkCall(m.tool_calls[0], ['get_weather', 'get_time']); }
  else assert(typeof m.content === 'string' && m.content.length > 0 && a.json.choices[0].finish_reason !== 'tool_calls', 'text');
  const bad = [
    [{ tools: TOOLS, tool_choice: { type: 'function', function: { name: 'nope' } } }, /nope/],
    [{ tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { q: { type: 'string', format: 'date' } } } } }], tool_choice: 'required' }, /format/],
    [{ tools: TOOLS, tool_choice: 'required', max_tokens: 5 }, /max_tokens/],
    [{ tools: TOOLS, tool_choice: 'required', response_format: { type: 'json_object' } }, /response_format/],
  ];
  for (const [extra, why] of bad) {
    const b = await post(V1, chat('Once', { model: 'edge', ...extra }));
    eq(b.status, 400, 'status: ' + b.text.slice(0, 300));
    assert(why.test(b.json.error.message), 'says why: ' + b.json.error.message);
  }
});

test('/v1/completions with echo and logprobs scores a given continuation (the verify step)', async () => {
  const C = `${gw.url}/v1/completions`;
  const gen = await post(C, { model: 'edge', prompt: 'Once upon a time', max_tokens: 12, temperature: 0, logprobs: 2 });
  eq(gen.status, 200, 'generate: ' + gen.text);
  const lp = gen.json.choices[0].logprobs;
  eq(lp.tokens.length, lp.token_logprobs.length, 'parallel arrays');
  eq(lp.tokens.join(''), gen.json.choices[0].text, 'tokens spell the text');
  // Score prompt + the greedy continuation: each continuation token gets the same
  // logprob the generator saw.
  const full = 'Once upon a time' + gen.json.choices[0].text;
  const sc = await post(C, { model: 'edge', prompt: full, max_tokens: 0, echo: true, logprobs: 1 });
  eq(sc.status, 200, 'score: ' + sc.text);
  const e = sc.json.choices[0].logprobs;
  eq(sc.json.choices[0].text, full, 'echo returns the prompt');
  // BOS is the implicit context, so even the first prompt token gets a logprob.
  assert(e.token_logprobs.every((x) => typeof x === 'number' && x <= 0), 'every token scored');
  eq(e.tokens.join(''), full, 'tokens spell the prompt');
  const tail = e.token_logprobs.slice(-lp.token_logprobs.length);
  for (let i = 0; i < tail.length; i++)
    assert(Math.abs(tail[i] - lp.token_logprobs[i]) < 1e-3, `token ${i}: ${tail[i]} vs ${lp.token_logprobs[i]}`);
});

test('cascade: a confident edge answer stands, below the threshold the cloud re-answers', async () => {
  await cloud.reset();
  const easy = chat('Once upon a time', { max_tokens: 12, temperature: 0 });
  const route = await post(`${gw.url}/v1/route`, easy);
  assert(route.json.decision.cascade, 'this prompt cascades: ' + JSON.stringify(route.json.decision));
  const low = await post(V1, easy); // min_confidence 0: never escalates
  eq(low.status, 200, 'status');
  eq(low.json.switchyard.tier, 'edge', 'edge answer stands');
  eq(low.json.switchyard.escalated, false, 'not escalated');
  assert(typeof low.json.switchyard.confidence === 'number', 'confidence reported');
  eq((await cloud.received()).count, 0, 'cloud not called');
  const gw2 = await L.startGateway(config(0.999), 'strict');
  const hi = await post(`${gw2.url}/v1/chat/completions`, easy);
  eq(hi.status, 200, 'status');
  eq(hi.json.switchyard.tier, 'cloud', 'cloud re-answered');
  eq(hi.json.switchyard.escalated, true, 'escalated');
  assert(hi.json.switchyard.reasons.some((x) => x.startsWith('escalate:')), 'escalation reason');
  const rec = await cloud.received();
  eq(rec.count, 1, 'cloud called once');
  const sent = JSON.parse(rec.requests[0].body);
  eq(sent.messages[sent.messages.length - 1].content, 'Once upon a time', 'full conversation re-sent');
  // Streaming client, same cascade.
  const hs = await post(`${gw2.url}/v1/chat/completions`, { ...easy, stream: true });
  const ev = L.sseEvents(hs.text);
  const sy = ev.find((e) => e !== '[DONE]' && e.switchyard);
  eq(sy.switchyard.escalated, true, 'streamed escalation');
  // The cloud cannot answer: the edge answer still stands, marked low-confidence.
  await cloud.control({ down: true });
  const down = await post(`${gw2.url}/v1/chat/completions`, easy);
  eq(down.status, 200, 'edge answer served: ' + down.text);
  eq(down.json.switchyard.tier, 'edge', 'edge');
  eq(down.json.switchyard.low_confidence, true, 'marked');
  assert(down.json.switchyard.reasons.some((x) => x.startsWith('escalate:failed')), 'reason: ' + down.json.switchyard.reasons);
  await cloud.control({ down: false });
  // Personal data never escalates to an external tier: the local answer stands, marked.
  await cloud.reset();
  const pii = await post(`${gw2.url}/v1/chat/completions`, chat('Once upon a time jane.doe@example.com', { max_tokens: 8, temperature: 0 }));
  eq(pii.status, 200, 'status: ' + pii.text);
  eq(pii.json.switchyard.tier, 'edge', 'stays on the edge');
  eq(pii.json.switchyard.escalated, false, 'not escalated');
  eq(pii.json.switchyard.low_confidence, true, 'marked low confidence');
  eq((await cloud.received()).count, 0, 'cloud received nothing');
  eq(await gw2.stop(), 0, 'clean exit');
});

await run();
eq(await gw.stop(), 0, 'switchyard exit code');
await cloud.stop();
L.cleanup();
})().catch((e) => { console.log(`not ok - harness: ${e.stack}`); process.exitCode = 1; if (L) L.cleanup(); });
