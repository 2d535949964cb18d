#!/usr/bin/env node
// Continuation instead of regeneration (docs/routing.md "Continuation"): an edge answer
// (stories260K) whose running confidence falls is stopped and continued by the bigger
// tier in the same stream (a second switchyard gateway whose local tier continues, and
// a stand-in upstream that records the continuation request); a cloud stream cut mid-way
// is completed by the edge, marked degraded; personal data never continues to the cloud.
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
if (!fs.existsSync(path.join(nodeDir, 'node_modules', 'openai'))) {
  L.skipAll('the openai npm package is not installed (scripts/install-deps.sh installs it)');
  return;
}
const req = createRequire(path.join(nodeDir, 'package.json'));
const OpenAI = req('openai').default || req('openai');

const edgeTier = `
  edge:
    kind: local
    model: ${model}
    tokenizer: ${tok}
    max_concurrency: 2
    cost: { usd_per_hour: 0.05, tokens_per_second: 2000 }`;

// The bigger tier: a second gateway whose only tier is the same local engine (it
// continues the partial answer through continue_final_message).
const big = await L.startGateway(`
listen: 127.0.0.1:0
store: sqlite:big.db
log_level: warn
tiers:${edgeTier}
`, 'big');
// A stand-in upstream (tools/upstream): it records what it is sent.
const standin = await L.startUpstream('standin-cloud', ['--chunks', '4']);

const gwFor = (cloudUrl, minConf, name, caps = '[continue]') => L.startGateway(`
listen: 127.0.0.1:0
store: sqlite:${name}.db
log_level: warn
tiers:${edgeTier}
  cloud:
    kind: openai
    base_url: ${cloudUrl}/v1
    model: auto
    privacy: external
    capabilities: ${caps}
    retries: 0
    cost: { usd_per_mtok_in: 2.5, usd_per_mtok_out: 10 }
routing:
  pii: { action: local_only }
  escalation: { enabled: true, min_confidence: ${minConf} }
`, name);

// min_confidence 0.999: every window of the tiny model's answer falls below it, so the
// edge is stopped after the minimum number of tokens.
const gwBig = await gwFor(big.url, 0.999, 'to-big');
const gwStandin = await gwFor(standin.url, 0.999, 'to-standin');
const PROMPT = 'Once upon a time';

async function streamText(client, body) {
  const stream = await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
  let text = '', sy = null, usage = null, finishes = 0;
  const ids = new Set();
  for await (const chunk of stream) {
    ids.add(chunk.id);
    const ch = chunk.choices && chunk.choices[0];
    if (ch && ch.delta && ch.delta.content) text += ch.delta.content;
    if (ch && ch.finish_reason) finishes++;
    if (chunk.switchyard) sy = chunk.switchyard;
    if (chunk.usage) usage = chunk.usage;
  }
  return { text, sy, usage, finishes, ids };
}

test('a low-confidence edge answer is continued by a second gateway in the same stream', async () => {
  const client = new OpenAI({ baseURL: `${gwBig.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  const body = { model: 'auto', messages: [{ role: 'user', content: PROMPT }], max_tokens: 40, temperature: 0 };
  const r = await streamText(client, body);
  assert(r.sy, 'switchyard object');
  eq(r.sy.tier, 'cloud', 'the bigger tier finished the answer: ' + JSON.stringify(r.sy));
  eq(r.sy.escalated, true, 'escalated');
  assert(r.sy.reasons.some((x) => /^continue:conf=0\.\d\d<1\.00->cloud$/.test(x)), 'reason: ' + r.sy.reasons);
  const c = r.sy.continuation;
  assert(c && c.reason === 'low_confidence', 'continuation object: ' + JSON.stringify(c));
  eq(c.parts[0].tier, 'edge', 'first part by the edge');
  eq(c.parts[1].tier, 'cloud', 'second part by the cloud');
  assert(c.parts[0].tokens >= 8, 'the edge streamed at least the minimum: ' + c.parts[0].tokens);
  assert(c.parts[1].tokens > 0, 'the cloud continued');
  eq(r.ids.size, 1, 'one id across both parts: ' + [...r.ids]);
  eq(r.finishes, 1, 'one finish');
  eq(r.usage.completion_tokens, c.parts[0].tokens + c.parts[1].tokens, 'usage of both parts');
  // The first part is the edge's own greedy answer, cut: the same answer alone starts so.
  const alone = await post(`${big.url}/v1/chat/completions`, body);
  const edgeText = alone.json.choices[0].message.content;
  const prefix = Buffer.from(r.text).subarray(0, c.parts[0].bytes).toString();
  eq(Buffer.byteLength(prefix), c.parts[0].bytes, 'prefix bytes');
  assert(edgeText.startsWith(prefix), `the stream opens with the edge's text: ${JSON.stringify(prefix)} vs ${JSON.stringify(edgeText)}`);
  // The rest is the bigger tier's continuation of exactly that prefix (greedy: asked
  // again directly with continue_final_message, it gives the same text).
  const cont = await post(`${big.url}/v1/chat/completions`, {
    model: 'auto', temperature: 0, max_tokens: 40 - c.parts[0].tokens,
    messages: [{ role: 'user', content: PROMPT }, { role: 'assistant', content: prefix }],
    continue_final_message: true, add_generation_prompt: false,
  });
  eq(cont.status, 200, 'continuation request: ' + cont.text);
  const rest = cont.json.choices[0].message.content;
  assert(rest.length > 0, 'the continuation has text');
  eq(r.text, prefix + rest, 'the client holds the edge prefix plus the continuation');
});

test('the continuation request: the partial answer as a final assistant message, vLLM fields', async () => {
  await standin.reset();
  const client = new OpenAI({ baseURL: `${gwStandin.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  const r = await streamText(client, { model: 'auto', messages: [{ role: 'user', content: PROMPT }], max_tokens: 30, temperature: 0 });
  const rec = await standin.received();
  eq(rec.count, 1, 'one continuation request');
  const sent = JSON.parse(rec.requests[0].body);
  eq(sent.continue_final_message, true, 'continue_final_message');
  eq(sent.add_generation_prompt, false, 'add_generation_prompt');
  eq(sent.stream, true, 'streamed');
  const last = sent.messages[sent.messages.length - 1];
  eq(last.role, 'assistant', 'final assistant message');
  eq(sent.messages.length, 2, 'the conversation plus the partial answer');
  const parts = r.sy.continuation.parts;
  eq(Buffer.byteLength(last.content), parts[0].bytes, 'all the edge text streamed so far');
  eq(sent.max_tokens, 30 - parts[0].tokens, 'max_tokens is what is left');
  // The stand-in answers "[standin-cloud] <last user message>".
  eq(r.text, last.content + '[standin-cloud] ' + PROMPT, 'prefix plus continuation');
});

test('a continuation the cloud cannot take goes back to the edge, marked low confidence', async () => {
  await standin.reset();
  await standin.control({ down: true });
  const client = new OpenAI({ baseURL: `${gwStandin.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  const r = await streamText(client, { model: 'auto', messages: [{ role: 'user', content: PROMPT }], max_tokens: 30, temperature: 0 });
  await standin.control({ down: false });
  eq((await standin.received()).count, 1, 'the cloud was asked once');
  assert(r.sy, 'the stream ended with the switchyard object');
  eq(r.sy.tier, 'edge', 'the edge finished its own answer');
  eq(r.sy.low_confidence, true, 'marked');
  eq(r.sy.escalated, false, 'not escalated');
  assert(r.sy.reasons.includes('continue:failed->edge'), 'reason: ' + r.sy.reasons);
  const c = r.sy.continuation;
  eq(c.parts[0].tier, 'edge', 'first part');
  eq(c.parts[1].tier, 'edge', 'second part');
  assert(Buffer.byteLength(r.text) > c.parts[0].bytes, 'the edge went on past the cut');
  eq(r.finishes, 1, 'one finish');
  eq(r.ids.size, 1, 'one id');
  eq(r.usage.completion_tokens, c.parts[0].tokens + c.parts[1].tokens, 'usage of both parts');
});

test('a non-streamed answer is the edge prefix plus the continuation', async () => {
  await standin.reset();
  const r = await post(`${gwStandin.url}/v1/chat/completions`, chat(PROMPT, { max_tokens: 30, temperature: 0 }));
  eq(r.status, 200, 'status: ' + r.text.slice(0, 300));
  const sy = r.json.switchyard;
  eq(sy.tier, 'cloud', 'the cloud finished it');
  eq(sy.continuation.reason, 'low_confidence', 'continued: ' + JSON.stringify(sy));
  const sent = JSON.parse((await standin.received()).requests[0].body);
  eq(sent.stream, false, 'not streamed');
  const prefix = sent.messages[sent.messages.length - 1].content;
  eq(Buffer.byteLength(prefix), sy.continuation.parts[0].bytes, 'the part sent is the part counted');
  eq(r.json.choices[0].message.content, prefix + '[standin-cloud] ' + PROMPT, 'prefix plus continuation');
  eq(r.json.usage.completion_tokens, sy.continuation.parts[0].tokens + sy.continuation.parts[1].tokens, 'usage of both');
  // The prefix is where the edge's own answer was cut.
  const alone = await post(`${big.url}/v1/chat/completions`, chat(PROMPT, { max_tokens: 30, temperature: 0 }));
  assert(alone.json.choices[0].message.content.startsWith(prefix), 'the edge wrote the prefix');
});

test('bad continuation requests are refused with a clear error', async () => {
  const a = await post(`${big.url}/v1/chat/completions`, chat(PROMPT, { continue_final_message: true }));
  eq(a.status, 400, 'no final assistant message: ' + a.text);
  assert(/final message of role 'assistant'/.test(a.json.error.message), a.json.error.message);
  const b = await post(`${big.url}/v1/chat/completions`, {
    messages: [{ role: 'user', content: PROMPT }, { role: 'assistant', content: 'Lily' }],
    continue_final_message: true, add_generation_prompt: true,
  });
  eq(b.status, 400, 'both true: ' + b.text);
  eq(b.json.error.param, 'add_generation_prompt', 'param');
  const c = await post(`${big.url}/v1/chat/completions`, { ...chat(PROMPT), continue_final_message: 'yes' });
  eq(c.status, 400, 'not a boolean');
});

test('personal data never continues to the cloud', async () => {
  await standin.reset();
  const r = await post(`${gwStandin.url}/v1/chat/completions`,
    chat(PROMPT + ' jane.doe@example.com', { max_tokens: 24, temperature: 0, stream: true }));
  eq(r.status, 200, 'status');
  const sy = L.sseEvents(r.text).find((e) => e !== '[DONE]' && e.switchyard).switchyard;
  eq(sy.tier, 'edge', 'the edge answers it all');
  eq(sy.continuation, null, 'no continuation');
  eq((await standin.received()).count, 0, 'the cloud received nothing');
});

test('personal data in the edge\'s own answer never continues to the cloud', async () => {
  // A stand-in edge (named so) whose answer opens with an e-mail address it was not
  // sent ("[<its name>] <the prompt>"), at logprob -3 per token: after 8 tokens the
  // window falls, and the gate's scan of the continuation finds the address.
  const edge = await L.startUpstream('jane.doe@example.com', ['--chunks', '10', '--logprob', '-3']);
  await standin.reset();
  const gw = await L.startGateway(`
listen: 127.0.0.1:0
store: sqlite:gate.db
log_level: warn
tiers:
  edge:
    kind: openai
    base_url: ${edge.url}/v1
    model: standin-edge
    privacy: on_prem
    role: edge
    logprobs: true
    cost: { usd_per_mtok_in: 0.05, usd_per_mtok_out: 0.2 }
  cloud:
    kind: openai
    base_url: ${standin.url}/v1
    model: auto
    privacy: external
    capabilities: [continue]
    cost: { usd_per_mtok_in: 2.5, usd_per_mtok_out: 10 }
routing:
  pii: { action: local_only }
  escalation: { enabled: true, min_confidence: 0.5 }
`, 'gate');
  const r = await post(`${gw.url}/v1/chat/completions`, chat(PROMPT, { stream: true, max_tokens: 30 }));
  eq(r.status, 200, 'status');
  const ev = L.sseEvents(r.text).filter((e) => e !== '[DONE]');
  const sy = ev.find((e) => e.switchyard).switchyard;
  assert(sy.reasons.includes('continue:blocked(pii)'), 'reason: ' + sy.reasons);
  eq(sy.tier, 'edge', 'the edge finished its answer');
  eq(sy.low_confidence, true, 'marked');
  eq(sy.continuation, null, 'not continued');
  const text = ev.filter((e) => e.choices && e.choices[0]).map((e) => e.choices[0].delta.content || '').join('');
  eq(text, '[jane.doe@example.com] ' + PROMPT, 'the whole edge answer, streamed to its end');
  eq((await standin.received()).count, 0, 'the cloud received nothing');
  eq(await gw.stop(), 0, 'clean exit');
  await edge.stop();
});

test('a cloud tier that does not declare continue regenerates, as without continuation', async () => {
  const plain = await L.startUpstream('plain-cloud', ['--chunks', '4']);
  const gw = await gwFor(plain.url, 0.999, 'no-continue', '[tools, json]');
  const r = await post(`${gw.url}/v1/chat/completions`, chat(PROMPT, { max_tokens: 16, temperature: 0, stream: true }));
  eq(r.status, 200, 'status');
  const sy = L.sseEvents(r.text).find((e) => e !== '[DONE]' && e.switchyard).switchyard;
  eq(sy.tier, 'cloud', 'the cloud answered');
  eq(sy.escalated, true, 'escalated');
  eq(sy.continuation, null, 'not a continuation');
  const rec = await plain.received();
  eq(rec.count, 1, 'one request');
  const sent = JSON.parse(rec.requests[0].body);
  eq(sent.continue_final_message, undefined, 'no continuation fields');
  eq(sent.messages.length, 1, 'the conversation only');
  const text = L.sseEvents(r.text).filter((e) => e !== '[DONE]' && e.choices && e.choices[0]).map((e) => e.choices[0].delta.content || '').join('');
  eq(text, '[plain-cloud] ' + PROMPT, 'the whole answer is the cloud\'s');
  eq(await gw.stop(), 0, 'clean exit');
  await plain.stop();
});

test('a cloud stream cut mid-way completes on the edge, degraded', async () => {
  const cloud = await L.startUpstream('cutcloud', ['--chunks', '6']);
  const gw = await L.startGateway(`
listen: 127.0.0.1:0
store: sqlite:cut.db
log_level: warn
tiers:${edgeTier}
  cloud:
    kind: openai
    base_url: ${cloud.url}/v1
    model: big-model
    privacy: external
    retries: 0
    cost: { usd_per_mtok_in: 2.5, usd_per_mtok_out: 10 }
`, 'cut');
  await cloud.control({ fail: 'cut' });
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  // A code task: the rules prefer the cloud, with the edge after it in the order.
  const ask = 'Write a python function that sorts a list';
  const r = await streamText(client, { model: 'auto', messages: [{ role: 'user', content: ask }], max_tokens: 20, temperature: 0 });
  assert(r.sy, 'the stream ended with the switchyard object, not an error');
  eq(r.sy.degraded, true, 'degraded');
  eq(r.sy.tier, 'edge', 'the edge finished it');
  const c = r.sy.continuation;
  eq(c.reason, 'cut', 'reason');
  eq(c.parts[0].tier, 'cloud', 'the cloud wrote the first part');
  eq(c.parts[1].tier, 'edge', 'the edge the rest');
  assert(r.sy.reasons.includes('continue:cut(cloud)->edge'), 'reason: ' + r.sy.reasons);
  const prefix = Buffer.from(r.text).subarray(0, c.parts[0].bytes).toString();
  assert(('[cutcloud] ' + ask).startsWith(prefix) && prefix.length > 0, 'the cloud part: ' + JSON.stringify(prefix));
  assert(r.text.length > prefix.length, 'the edge continued: ' + JSON.stringify(r.text));
  eq(r.finishes, 1, 'one finish');
  eq(r.ids.size, 1, 'one id');
  eq(await gw.stop(), 0, 'clean exit');
  await cloud.stop();
});

await run();
eq(await gwBig.stop(), 0, 'gateway exit');
eq(await gwStandin.stop(), 0, 'gateway exit');
eq(await big.stop(), 0, 'bigger gateway exit');
await standin.stop();
L.cleanup();
})().catch((e) => { console.log(`not ok - harness: ${e.stack}`); process.exitCode = 1; if (L) L.cleanup(); });
