#!/usr/bin/env node
// SIGHUP re-reads the config: a valid file applies to new requests while requests
// in flight finish on the old tiers; an invalid one is logged and changes nothing;
// reloads under load drop no request.
'use strict';
let L;
(async () => {
L = await import('./lib.mjs');
const { test, run, assert, eq, post, get, chat, sleep } = L;
const fs = await import('node:fs');
const path = await import('node:path');

if (!fs.existsSync(L.SWITCHYARD) || !fs.existsSync(L.UPSTREAM)) {
  L.skipAll(`build ${L.SWITCHYARD} and ${L.UPSTREAM} first (make asan)`);
  return;
}
const edge = await L.startUpstream('edge');
const cloud = await L.startUpstream('cloud');
const config = (cloudModel, extraTier = '') => `
listen: 127.0.0.1:0
workers: 2
store: sqlite:reload.db
log_level: warn
tiers:
  edge:
    kind: openai
    base_url: ${edge.url}/v1
    model: edge-small
    privacy: on_prem
    retries: 0
  cloud:
    kind: openai
    base_url: ${cloud.url}/v1
    model: ${cloudModel}
    privacy: external
    retries: 0
${extraTier}
routing:
  pii: { action: local_only }
  policy: rules
`;
const cfg = path.join(L.tmp(), 'reload.yaml');
fs.writeFileSync(cfg, config('big-model'));
const gw = await L.startGatewayFile(cfg);
const V1 = `${gw.url}/v1/chat/completions`;
const tierNames = async () => (await get(`${gw.url}/v1/models`)).json.data.map((m) => m.id);
async function waitFor(cond, what) {
  for (let i = 0; i < 200; i++) { if (await cond()) return; await sleep(25); }
  throw new Error('timed out waiting for ' + what);
}

test('a valid file applies to new requests; a request in flight finishes on the old tier', async () => {
  await cloud.control({ latency_ms: 1500 });
  const slow = post(V1, chat('slow one', { model: 'cloud' }));
  await sleep(300);
  fs.writeFileSync(cfg, config('big-model-2', `  spare:
    kind: openai
    base_url: ${cloud.url}/v1
    model: spare-model
    privacy: external`));
  gw.proc.kill('SIGHUP');
  await waitFor(async () => (await tierNames()).includes('spare'), 'the new tier');
  await cloud.control({ latency_ms: 0 });
  const fresh = await post(V1, chat('fresh one', { model: 'cloud' }));
  eq(fresh.status, 200, 'new request: ' + fresh.text);
  eq(fresh.json.switchyard.model, 'big-model-2', 'new request sees the new tier');
  const old = await slow;
  eq(old.status, 200, 'in-flight request: ' + old.text);
  eq(old.json.switchyard.model, 'big-model', 'in-flight request finished on the old tier');
  const spare = await post(V1, chat('spare', { model: 'spare' }));
  eq(spare.json.switchyard.model, 'spare-model', 'the added tier serves');
});

test('an invalid file is logged and the running config keeps serving', async () => {
  fs.writeFileSync(cfg, config('big-model-3').replace('kind: openai', 'kind: telepathy'));
  const before = gw.proc.stderrText.length;
  gw.proc.kill('SIGHUP');
  await waitFor(async () => gw.proc.stderrText.slice(before).includes('reload'), 'the reload message');
  const msg = gw.proc.stderrText.slice(before);
  assert(msg.includes('invalid configuration') && msg.includes('telepathy') && msg.includes('line'),
    'names the problem: ' + msg);
  const r = await post(V1, chat('still here', { model: 'cloud' }));
  eq(r.status, 200, 'status');
  eq(r.json.switchyard.model, 'big-model-2', 'the previous config still serves');
  assert((await tierNames()).includes('spare'), 'tiers unchanged');
});

test('SIGHUP under load drops no request', async () => {
  await cloud.control({ latency_ms: 20 });
  await edge.control({ latency_ms: 20 });
  let stop = false, answered = 0;
  const failures = [];
  const client = async (i) => {
    while (!stop) {
      try {
        const r = await post(V1, chat(`load ${i}`, { model: i % 2 ? 'cloud' : 'edge' }));
        if (r.status === 200) answered++; else failures.push(`${r.status} ${r.text.slice(0, 120)}`);
      } catch (e) { failures.push(String(e)); }
    }
  };
  const clients = Array.from({ length: 8 }, (_, i) => client(i));
  for (let k = 0; k < 6; k++) {
    await sleep(250);
    fs.writeFileSync(cfg, config(k % 2 ? 'big-model' : 'big-model-2'));
    gw.proc.kill('SIGHUP');
  }
  await sleep(500);
  stop = true;
  await Promise.all(clients);
  console.log(`# ${answered} answered across 6 reloads, ${failures.length} failed`);
  eq(failures.length, 0, 'failed requests: ' + failures.slice(0, 3).join(' | '));
  assert(answered > 20, 'the load ran: ' + answered);
  await cloud.control({ latency_ms: 0 });
  await edge.control({ latency_ms: 0 });
});

await run();
eq(await gw.stop(), 0, 'switchyard exit code');
assert(!/ERROR: (AddressSanitizer|LeakSanitizer)/.test(gw.proc.stderrText), 'sanitizers clean');
await edge.stop();
await cloud.stop();
L.cleanup();
})().catch((e) => { console.log(`not ok - harness: ${e.stack}`); process.exitCode = 1; if (L) L.cleanup(); });
