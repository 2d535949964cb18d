#!/usr/bin/env node
// A malformed event from an upstream in the middle of a stream ends the client's
// stream with an error event (never a success that skipped text), and counts as a
// failure of the tier for its circuit breaker.
'use strict';
let L;
(async () => {
L = await import('./lib.mjs');
const { test, run, assert, eq, post, get } = L;
const fs = await import('node:fs');
const path = await import('node:path');
if (!fs.existsSync(L.SWITCHYARD) || !fs.existsSync(L.UPSTREAM)) { L.skipAll('build first'); return; }

const cloud = await L.startUpstream('cloud');
const gw = await L.startGateway(`
listen: 127.0.0.1:0
store: sqlite:${path.join(L.tmp(), 'streams.db')}
tiers:
  cloud:
    kind: openai
    base_url: ${cloud.url}/v1
    model: big-model
    privacy: external
    breaker: { failures: 1, open_ms: 60000 }
`);
const CHAT = `${gw.url}/v1/chat/completions`;

test('a well-formed stream ends with the switchyard chunk', async () => {
  const r = await post(CHAT, { model: 'auto', stream: true, messages: [{ role: 'user', content: 'hi' }] });
  eq(r.status, 200, 'streamed');
  const ev = L.sseEvents(r.text);
  eq(ev[ev.length - 1], '[DONE]', 'ends with [DONE]');
  assert(ev.some((e) => e.switchyard), 'carries the switchyard object');
});

test('a malformed event mid-stream ends the stream with an error and opens the breaker', async () => {
  await cloud.control({ fail: 'garbage' });
  const r = await post(CHAT, { model: 'auto', stream: true, messages: [{ role: 'user', content: 'hi' }] });
  eq(r.status, 200, 'the stream had begun');
  const ev = L.sseEvents(r.text.replace(/data: \{"choices": \[ not json[^\n]*\n\n/g, ''));
  assert(!r.text.includes('not json at all'), 'the malformed event is not forwarded');
  const errs = ev.filter((e) => e !== '[DONE]' && e.error);
  eq(errs.length, 1, 'one error event: ' + r.text);
  assert(/bad_stream_event|upstream/.test(JSON.stringify(errs[0])), 'names the cause: ' + JSON.stringify(errs[0]));
  assert(!ev.some((e) => e.switchyard), 'no success chunk');
  eq(ev[ev.length - 1], '[DONE]', 'the stream is closed');
  await cloud.control({ fail: 'none' });
  const ready = await get(`${gw.url}/readyz`);
  eq(ready.json.tiers.cloud, 'circuit open', 'the failure reached the breaker: ' + ready.text);
});

await run();
await gw.stop();
L.cleanup();
})().catch((e) => { console.log(`not ok - harness: ${e.stack}`); process.exitCode = 1; if (L) L.cleanup(); });
