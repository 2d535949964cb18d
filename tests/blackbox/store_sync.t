#!/usr/bin/env node
// Store traffic off the worker loops: two gateways running at once on one store.
// A session one marks private (written by its store thread) reaches the other's
// in-memory view through the background sync, so the other keeps it local without
// a store call on its loop; feedback is stored by the store thread too.
'use strict';
let L;
(async () => {
L = await import('./lib.mjs');
const { test, run, assert, eq, post, chat, sleep } = L;
const fs = await import('node:fs');
const path = await import('node:path');
const { execFileSync } = await import('node:child_process');

if (!fs.existsSync(L.SWITCHYARD) || !fs.existsSync(L.UPSTREAM)) {
  L.skipAll(`build ${L.SWITCHYARD} and ${L.UPSTREAM} first (make asan)`);
  return;
}
try { execFileSync('sqlite3', ['-version']); } catch {
  L.skipAll('the sqlite3 command is not installed (scripts/install-deps.sh)');
  return;
}
const edge = await L.startUpstream('edge');
const cloud = await L.startUpstream('cloud');
const db = path.join(L.tmp(), 'shared.db');
const config = `
listen: 127.0.0.1:0
workers: 2
store: sqlite:${db}
log_level: warn
tiers:
  edge: { kind: openai, base_url: "${edge.url}/v1", model: edge-small, privacy: on_prem, retries: 0 }
  cloud: { kind: openai, base_url: "${cloud.url}/v1", model: big-model, privacy: external, retries: 0 }
routing:
  pii: { action: local_only }
  token_budget: { cloud_above: 1024 }
  policy: rules
`;
const a = await L.startGateway(config, 'sync-a');
const b = await L.startGateway(config, 'sync-b');
const long = () => chat('Write a detailed report on the history of trains.', { max_tokens: 4000 });

test('a session marked private on one gateway stays local on the other, both running', async () => {
  const s = { 'x-switchyard-session': 'shared-1' };
  const before = await post(`${b.url}/v1/chat/completions`, long(), { 'x-switchyard-session': 'shared-0' });
  eq(before.json.switchyard.tier, 'cloud', 'a session without personal data goes to the cloud');
  const t1 = await post(`${a.url}/v1/chat/completions`, chat('My email is jane.doe@example.com'), s);
  eq(t1.status, 200, 'turn 1 on a');
  let tier = null;
  const t0 = Date.now();
  for (let i = 0; i < 40; i++) { /* the sync runs every second */
    await sleep(100);
    await cloud.reset();
    const r = await post(`${b.url}/v1/chat/completions`, chat('hello', { max_tokens: 8 }), s);
    if (r.json.switchyard.reasons.some((x) => /session/.test(x))) { tier = r.json.switchyard.tier; break; }
  }
  console.log(`# b saw the private mark after ${Date.now() - t0} ms`);
  eq(tier, 'edge', 'turn 2 on b is kept local for the session');
  const t3 = await post(`${b.url}/v1/chat/completions`, long(), s);
  eq(t3.json.switchyard.tier, 'edge', 'a long answer stays local too');
});

test('feedback is stored by the store thread', async () => {
  const r = await post(`${a.url}/v1/chat/completions`, chat('rate me', { model: 'edge' }));
  eq(r.status, 200, 'status');
  const f = await post(`${a.url}/v1/feedback`, { id: r.json.switchyard.id, reward: 0.5 });
  eq(f.status, 200, 'feedback: ' + f.text);
  let n = 0;
  for (let i = 0; i < 30 && n === 0; i++) {
    await sleep(100);
    n = parseInt(execFileSync('sqlite3', [db, `SELECT COUNT(*) FROM feedback WHERE request_id = '${r.json.switchyard.id}'`]).toString(), 10);
  }
  eq(n, 1, 'the reward is in the store');
});

await run();
eq(await a.stop(), 0, 'a exits cleanly');
eq(await b.stop(), 0, 'b exits cleanly');
await edge.stop();
await cloud.stop();
L.cleanup();
})().catch((e) => { console.log(`not ok - harness: ${e.stack}`); process.exitCode = 1; if (L) L.cleanup(); });
