#!/usr/bin/env node
// The privacy guarantee end to end: a request (or a session) holding personal data
// under local_only never reaches the external tier, on any path — routing, forced
// tier, failover, retries, spillover, escalation — and its values never reach logs
// or the ledger. The external stand-in upstream records everything it receives.
'use strict';
let L;
(async () => {
L = await import('./lib.mjs');
const { test, run, assert, eq, post, chat, sleep } = L;
const fs = await import('node:fs');
const path = await import('node:path');
const { execFileSync, spawnSync } = await import('node:child_process');
if (!fs.existsSync(L.SWITCHYARD) || !fs.existsSync(L.UPSTREAM)) { L.skipAll('build first'); return; }

const edge = await L.startUpstream('edge');
const cloud = await L.startUpstream('cloud');
const dbPath = path.join(L.tmp(), 'privacy.db');
const config = (x = {}) => `
listen: 127.0.0.1:0
store: sqlite:${x.db || dbPath}
log_level: info
tiers:
  edge:
    kind: openai
    base_url: ${edge.url}/v1
    model: edge-small
    privacy: on_prem
    logprobs: true
    max_concurrency: ${x.edgeConc || 8}
    max_queue: ${x.edgeQueue ?? 8}
    retries: 2
    retry_backoff_ms: 5
    breaker: { failures: 1000 }
  cloud:
    kind: openai
    base_url: ${cloud.url}/v1
    model: big-model
    privacy: external
    breaker: { failures: 1000 }
routing:
  pii: { action: local_only, types: { US_SSN: block } }
  escalation: { enabled: true, min_confidence: ${x.minConf ?? 0.55} }
`;
const SECRETS = ['jane.doe@example.com', '4111 1111 1111 1111', '+1 415 555 0132', 'GB82 WEST 1234 5698 7654 32', '203.0.113.77'];
async function reset() {
  for (const u of [edge, cloud]) { await u.reset(); await u.control({ fail: 'none', down: false, latency_ms: 0, ttft_ms: 0, logprob: -0.05 }); }
}
async function cloudGotNothing(what) { eq((await cloud.received()).count, 0, `cloud received nothing (${what})`); }

const gw = await L.startGateway(config());
const V1 = `${gw.url}/v1/chat/completions`;

test('personal data anywhere in the request keeps it on the on-prem tier', async () => {
  await reset();
  const bodies = [
    chat(`Write to ${SECRETS[0]} please`),
    { model: 'auto', messages: [{ role: 'system', content: `The user's card is ${SECRETS[1]}.` }, { role: 'user', content: 'Summarise our chat' }] },
    { model: 'auto', messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: `Noted your number ${SECRETS[2]}` }, { role: 'user', content: 'thanks' }] },
    { model: 'auto', messages: [{ role: 'user', content: [{ type: 'text', text: 'my IBAN is' }, { type: 'text', text: ` ${SECRETS[3]}` }] }] },
    { model: 'auto', messages: [{ role: 'user', content: 'look it up' }, { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'lookup', arguments: JSON.stringify({ ip: SECRETS[4] }) } }] }, { role: 'tool', tool_call_id: 'c1', content: 'done' }] },
    chat(`Write a long essay about ${SECRETS[0]}`, { max_tokens: 5000 }),
  ];
  for (const b of bodies) {
    const r = await post(V1, b);
    eq(r.status, 200, 'served: ' + r.text);
    eq(r.json.switchyard.tier, 'edge', 'edge: ' + JSON.stringify(r.json.switchyard.reasons));
    eq(r.json.switchyard.local_only, true, 'local_only');
  }
  await cloudGotNothing('routing');
});

test('forced external tier, and the local_only privacy flag without PII', async () => {
  await reset();
  const f = await post(V1, chat(`mail ${SECRETS[0]}`, { model: 'cloud' }));
  eq(f.status, 403, 'forced external refused: ' + f.text);
  const g = await post(V1, chat('nothing personal', { metadata: { privacy: 'local_only' } }));
  eq(g.status, 200, 'served');
  eq(g.json.switchyard.tier, 'edge', 'privacy flag honoured');
  await cloudGotNothing('forced');
});

test('no failover to the cloud when the local tier fails, and retries stay local', async () => {
  await reset();
  await edge.control({ fail: '500' });
  const r = await post(V1, chat(`mail ${SECRETS[0]}`));
  eq(r.status, 503, '503 instead of failover: ' + r.text);
  eq((await edge.received()).count, 3, 'two retries on the edge');
  await edge.control({ fail: '429', count: 1 });
  const r2 = await post(V1, chat(`mail ${SECRETS[0]}`));
  eq(r2.status, 200, 'a retry on the same local tier succeeded');
  await edge.control({ down: true });
  eq((await post(V1, chat(`mail ${SECRETS[0]}`))).status, 503, 'local tier down');
  await cloudGotNothing('failover and retries');
});

test('no spillover to the cloud when the local tier is saturated', async () => {
  await reset();
  const g2 = await L.startGateway(config({ db: path.join(L.tmp(), 'spill.db'), edgeConc: 1, edgeQueue: 0 }), 'spill');
  await edge.control({ latency_ms: 400 });
  const body = chat(`card ${SECRETS[1]}`);
  const [a, b] = await Promise.all([post(`${g2.url}/v1/chat/completions`, body),
    sleep(60).then(() => post(`${g2.url}/v1/chat/completions`, body))]);
  eq(a.status, 200, 'first served');
  eq(b.status, 503, 'second refused, not spilled: ' + b.text);
  await cloudGotNothing('spillover');
  eq(await g2.stop(), 0, 'clean exit');
});

test('a low-confidence answer with personal data is not escalated, only marked', async () => {
  await reset();
  await edge.control({ logprob: -6 });
  const r = await post(V1, chat(`mail ${SECRETS[0]} and say hi`));
  eq(r.status, 200, 'served');
  eq(r.json.switchyard.tier, 'edge', 'edge');
  eq(r.json.switchyard.escalated, false, 'not escalated');
  eq(r.json.switchyard.low_confidence, true, 'marked');
  await cloudGotNothing('escalation');
  // The same low confidence without personal data does escalate (the path exists).
  const q = await post(V1, chat('What is the capital of France?'));
  if (q.json.switchyard.reasons.includes('tier:edge') || q.json.switchyard.escalated)
    eq(q.json.switchyard.escalated, true, 'non-PII escalates');
});

test('a session that held personal data stays private on later turns', async () => {
  await reset();
  const s = { 'x-switchyard-session': 'sess-42' };
  eq((await post(V1, chat(`I am ${SECRETS[0]}`), s)).status, 200, 'turn 1');
  const t2 = await post(V1, chat('Write a detailed report on the history of trains.', { max_tokens: 4000 }), s);
  eq(t2.status, 200, 'turn 2');
  eq(t2.json.switchyard.tier, 'edge', 'turn 2 stays local');
  assert(t2.json.switchyard.reasons.some((x) => /session/.test(x)), 'reason names the session: ' + t2.json.switchyard.reasons);
  await cloudGotNothing('session');
  const other = await post(V1, chat('Write a detailed report on the history of trains.', { max_tokens: 4000 }), { 'x-switchyard-session': 'sess-43' });
  eq(other.json.switchyard.tier, 'cloud', 'another session is not private');
});

test('a private session stays private across a restart and across gateways sharing the store', async () => {
  await reset();
  const db = path.join(L.tmp(), 'sessions.db');
  const a = await L.startGateway(config({ db }), 'sess-a');
  const s = { 'x-switchyard-session': 'persist-1' };
  eq((await post(`${a.url}/v1/chat/completions`, chat(`I am ${SECRETS[0]}`), s)).status, 200, 'turn 1');
  eq(await a.stop(), 0, 'clean exit');
  const b = await L.startGateway(config({ db }), 'sess-b');
  const t2 = await post(`${b.url}/v1/chat/completions`, chat('Write a detailed report on the history of trains.', { max_tokens: 4000 }), s);
  eq(t2.json.switchyard.tier, 'edge', 'turn 2 on another process stays local');
  await cloudGotNothing('shared session');
  eq(await b.stop(), 0, 'clean exit');
});

test('a blocked entity type is refused with 403 and goes nowhere', async () => {
  await reset();
  const r = await post(V1, chat('My SSN is 536-90-4399'));
  eq(r.status, 403, 'blocked: ' + r.text);
  assert(/US_SSN/.test(r.json.error.message), 'names the type');
  assert(!r.text.includes('536-90-4399'), 'does not echo the value');
  eq((await edge.received()).count + (await cloud.received()).count, 0, 'nothing sent');
});

test('logs and the ledger hold entity types, never values; audit is clean', async () => {
  eq(await gw.stop(), 0, 'clean exit');
  const logs = gw.proc.stderrText;
  assert(/"pii":"EMAIL_ADDRESS/.test(logs), 'logs name the type');
  for (const v of [...SECRETS, '536-90-4399', 'jane.doe']) assert(!logs.includes(v), 'value in logs: ' + v);
  const db = fs.readFileSync(dbPath);
  for (const v of [...SECRETS, 'jane.doe']) assert(!db.includes(Buffer.from(v)), 'value in the ledger file: ' + v);
  const wal = dbPath + '-wal';
  if (fs.existsSync(wal)) for (const v of SECRETS) assert(!fs.readFileSync(wal).includes(Buffer.from(v)), 'value in WAL');
  const audit = spawnSync(L.SWITCHYARD, ['audit', '--store', `sqlite:${dbPath}`], { encoding: 'utf8' });
  eq(audit.status, 0, 'audit clean: ' + audit.stdout + audit.stderr);
  void execFileSync;
});

test('audit catches a PII request that reached an external tier (forced by a permissive policy)', async () => {
  await reset();
  const db2 = path.join(L.tmp(), 'allow.db');
  const g3 = await L.startGateway(config({ db: db2 }).replace('action: local_only', 'action: allow'), 'allow');
  const r = await post(`${g3.url}/v1/chat/completions`, chat(`mail ${SECRETS[0]}`, { model: 'cloud' }));
  eq(r.status, 200, 'allowed');
  eq(await g3.stop(), 0, 'clean exit');
  const audit = spawnSync(L.SWITCHYARD, ['audit', '--store', `sqlite:${db2}`], { encoding: 'utf8' });
  eq(audit.status, 1, 'audit flags it');
  assert(/EMAIL_ADDRESS/.test(audit.stdout), 'lists the type: ' + audit.stdout);
  assert(!audit.stdout.includes(SECRETS[0]), 'never the value');
});

test('mask: values leave as placeholders and come back in the answer, streamed or not', async () => {
  await reset();
  const g4 = await L.startGateway(config({ db: path.join(L.tmp(), 'mask.db') })
    .replace('types: { US_SSN: block }', 'types: { US_SSN: block, EMAIL_ADDRESS: mask }'), 'mask');
  const r = await post(`${g4.url}/v1/chat/completions`, chat(`Say hello to ${SECRETS[0]} and ${SECRETS[0]}`, { model: 'cloud' }));
  eq(r.status, 200, 'served: ' + r.text);
  eq(r.json.switchyard.tier, 'cloud', 'may leave once masked');
  const rec = await cloud.received();
  eq(rec.count, 1, 'cloud called');
  assert(!rec.requests[0].body.includes(SECRETS[0]), 'the value did not leave: ' + rec.requests[0].body);
  assert(/<EMAIL_ADDRESS_1>.*<EMAIL_ADDRESS_1>/.test(rec.requests[0].body), 'same value, same placeholder');
  assert(r.json.choices[0].message.content.includes(`Say hello to ${SECRETS[0]} and ${SECRETS[0]}`),
    'restored in the answer: ' + r.json.choices[0].message.content);
  const s = await post(`${g4.url}/v1/chat/completions`, chat(`Say hello to ${SECRETS[0]}`, { model: 'cloud', stream: true }));
  const text = L.sseEvents(s.text).filter((e) => e !== '[DONE]' && e.choices && e.choices.length)
    .map((e) => e.choices[0].delta.content || '').join('');
  assert(text.includes(SECRETS[0]), 'restored in the stream: ' + text);
  eq((await cloud.received()).count, 2, 'two calls');
  assert(!(await cloud.received()).requests[1].body.includes(SECRETS[0]), 'stream request masked');
  eq(await g4.stop(), 0, 'clean exit');
});

test('switchyard pii: spans from stdin; --eval scores a file and names a malformed record', async () => {
  const spans = spawnSync(L.SWITCHYARD, ['pii', '--json', '-'],
    { input: 'write to jane.doe@example.com or 536-90-4399', encoding: 'utf8' });
  eq(spans.status, 0, 'scanned: ' + spans.stderr);
  const types = JSON.parse(spans.stdout).spans.map((x) => x.type).sort();
  eq(types.join(','), 'EMAIL_ADDRESS,US_SSN', 'both found');
  const good = path.join(L.tmp(), 'eval-good.json');
  fs.writeFileSync(good, JSON.stringify([
    { full_text: 'mail jane.doe@example.com now', spans: [{ entity_type: 'EMAIL_ADDRESS', entity_value: 'jane.doe@example.com', start_position: 5, end_position: 25 }] },
    { full_text: 'nothing here', spans: [] },
  ]));
  const ev = spawnSync(L.SWITCHYARD, ['pii', '--json', '--eval', good], { encoding: 'utf8' });
  eq(ev.status, 0, 'evaluated: ' + ev.stderr);
  const rep = JSON.parse(ev.stdout);
  eq(rep.records, 2, 'two records');
  eq(rep.entities.EMAIL_ADDRESS.overlap_r, 1, 'the email found at its place');
  const bad = [
    [[{ full_text: 'a' }, { spans: [] }], /record 2: needs a "full_text" string/],
    [[{ full_text: 'call 555', spans: [{ entity_type: 'PHONE_NUMBER', start_position: -1, end_position: 3 }] }], /record 1: a span needs/],
    [[{ full_text: 'abc', spans: [{ entity_type: 'PERSON', start_position: 1, end_position: 99 }] }], /record 1: a span needs/],
    [{ not: 'a list' }, /not a JSON list of records/],
  ];
  for (const [doc, why] of bad) {
    const f = path.join(L.tmp(), 'eval-bad.json');
    fs.writeFileSync(f, JSON.stringify(doc));
    const r = spawnSync(L.SWITCHYARD, ['pii', '--eval', f], { encoding: 'utf8' });
    assert(r.status !== 0, 'refused: ' + JSON.stringify(doc));
    assert(why.test(r.stderr), 'says why: ' + r.stderr);
  }
});

await run();
if (gw.proc.exitCode === null) await gw.stop();
await edge.stop(); await cloud.stop();
L.cleanup();
})().catch((e) => { console.log(`not ok - harness: ${e.stack}`); process.exitCode = 1; if (L) L.cleanup(); });
