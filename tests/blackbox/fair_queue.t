#!/usr/bin/env node
// Fair queues: requests that may only run on the edge (personal data under
// local_only) are not starved by requests that may also run on the cloud. Closed-loop
// clients keep the edge's slots and queue full of such spillable requests; waves of
// PII requests arrive; every one must be served by the edge, the spillable ones give
// their places up (and are answered by the cloud), and nothing personal reaches the
// cloud. Outcomes are counted; nothing is timed.
'use strict';
let L;
(async () => {
L = await import('./lib.mjs');
const { test, run, assert, eq, post, get, chat, sleep } = L;
const fs = await import('node:fs');
if (!fs.existsSync(L.SWITCHYARD) || !fs.existsSync(L.UPSTREAM)) { L.skipAll('build first'); return; }

const QUEUE = 4;
const edge = await L.startUpstream('edge', ['--latency-ms', '400']);
// The cloud answers slower than the edge's queue would: spillable requests wait
// in the edge's queue while there is room (the TTFT prediction keeps them there).
const cloud = await L.startUpstream('cloud', ['--latency-ms', '3000']);
const config = `
listen: 127.0.0.1:0
workers: 2
store: sqlite:fair.db
log_level: warn
tiers:
  edge:
    kind: openai
    base_url: ${edge.url}/v1
    model: edge-small
    privacy: on_prem
    role: edge
    max_concurrency: 2
    max_queue: ${QUEUE}
    retries: 0
    ttft_timeout_ms: 60000
    timeout_ms: 60000
  cloud:
    kind: openai
    base_url: ${cloud.url}/v1
    model: big-model
    privacy: external
    retries: 0
    ttft_timeout_ms: 60000
    timeout_ms: 60000
routing:
  pii: { action: local_only }
  policy: rules
  escalation: { enabled: false }
`;
const gw = await L.startGateway(config, 'fair');
const V1 = `${gw.url}/v1/chat/completions`;
const OTHER = () => chat('Translate to French: the cat sleeps', { max_tokens: 16 });

async function edgeQueued() {
  const m = (await get(`${gw.url}/metrics`)).text;
  const g = /switchyard_queue_depth\{tier="edge"\} (\d+)/.exec(m);
  return g ? +g[1] : -1;
}

test('PII requests are served by a saturated edge; spillable work gives way', async () => {
  const r = await post(`${gw.url}/v1/route`, OTHER());
  eq(r.json.decision.tier, 'edge', 'the other requests prefer the edge: ' + r.text);
  let stop = false;
  const other = { n: 0, ok: 0, edge: 0, cloud: 0, priority: 0, bad: [] };
  const loops = Array.from({ length: 12 }, async () => {
    while (!stop) {
      const a = await post(V1, OTHER());
      other.n++;
      if (a.status !== 200) { other.bad.push(a.status + ' ' + a.text.slice(0, 200)); continue; }
      other.ok++;
      if (a.json.switchyard.tier === 'edge') other.edge++; else other.cloud++;
      if (a.json.switchyard.reasons.some((x) => x.startsWith('spill:edge(priority'))) other.priority++;
    }
  });
  const pii = { n: 0, ok: 0, bad: [] };
  for (let wave = 0; wave < 3; wave++) {
    // Wait until spillable requests fill the edge's queue (generous deadline).
    let q = 0;
    for (let i = 0; i < 600 && q < QUEUE; i++) { q = await edgeQueued(); if (q < QUEUE) await sleep(50); }
    eq(q, QUEUE, `wave ${wave}: the edge queue is full of spillable requests`);
    const rs = await Promise.all(Array.from({ length: QUEUE }, (_, i) =>
      post(V1, chat(`Please email lily${wave}x${i}@example.com about the meeting`, { max_tokens: 16 }))));
    for (const a of rs) {
      pii.n++;
      if (a.status === 200 && a.json.switchyard.tier === 'edge' && a.json.switchyard.local_only) pii.ok++;
      else pii.bad.push(a.status + ' ' + a.text.slice(0, 200));
    }
  }
  stop = true;
  await Promise.all(loops);
  console.log(`# PII ${pii.ok}/${pii.n} served by the edge; other work: ${other.ok}/${other.n} ok, ` +
    `${other.edge} edge, ${other.cloud} cloud, ${other.priority} gave their place up`);
  eq(pii.ok, pii.n, 'every PII request served by the edge: ' + pii.bad.join(' | '));
  eq(other.ok, other.n, 'every other request answered: ' + other.bad.slice(0, 3).join(' | '));
  assert(other.priority >= 1, 'spillable requests gave their places to PII requests');
  assert(other.cloud >= other.priority, 'those went on to the cloud');
  const m = (await get(`${gw.url}/metrics`)).text;
  const pr = /switchyard_spilled_total\{tier="edge",why="priority"\} (\d+)/.exec(m);
  assert(pr && +pr[1] >= other.priority, 'the metric counts the places given up: ' + (pr && pr[0]));
  assert(/switchyard_tier_estimate_seconds\{tier="cloud",what="ttft"\} [1-9]/.test(m), 'the cloud TTFT is measured');
  const rec = await cloud.received();
  assert(!rec.requests.some((x) => /@example\.com/.test(x.body)), 'no personal data reached the cloud');
});

await run();
eq(await gw.stop(), 0, 'clean exit');
await edge.stop();
await cloud.stop();
L.cleanup();
})().catch((e) => { console.log(`not ok - harness: ${e.stack}`); process.exitCode = 1; if (L) L.cleanup(); });
