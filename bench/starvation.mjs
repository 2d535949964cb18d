#!/usr/bin/env node
// starvation.mjs — do requests that must stay local starve when the edge is saturated?
//
//   node bench/starvation.mjs [BUILD_DIR ...]        (default build/rel)
//
// For each build: a gateway whose edge tier is the real in-process engine on
// stories260K (../shared/data/models/llama2c) and whose cloud tier is the stand-in
// upstream (tests/tools/upstream) answering after a fixed CLOUD_MS. CLIENTS
// closed-loop clients send requests without personal data that the rules route to
// the edge (they may spill to the cloud); meanwhile PII requests (an e-mail
// address: local_only, only the edge may serve them) arrive every PII_EVERY_MS,
// each with a client timeout of PII_TIMEOUT_MS. Prints, per build, what the PII
// requests got (served / 503 / other / timed out, latency of those served) and
// where the other work went (edge, spilled to the cloud, escalated, errors), plus
// the spill reasons the gateway gave. Several builds in one run compare a change
// on the same loaded machine.
//
// Environment: CLIENTS (48), PII (300), PII_EVERY_MS (50), PII_TIMEOUT_MS (30000),
// MAX_TOKENS (128), EDGE_CONC (2), EDGE_QUEUE (16), CLOUD_MS (300), SY_SHARED.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const SHARED = process.env.SY_SHARED || path.resolve(ROOT, '../shared');
const MODEL = path.join(SHARED, 'data/models/llama2c/stories260K.bin');
const TOK = path.join(SHARED, 'data/models/llama2c/tok512.bin');
const env = (k, d) => +(process.env[k] || d);
const CLIENTS = env('CLIENTS', 48), PII = env('PII', 300), PII_EVERY_MS = env('PII_EVERY_MS', 50);
const PII_TIMEOUT_MS = env('PII_TIMEOUT_MS', 30000), MAX_TOKENS = env('MAX_TOKENS', 128);
const EDGE_CONC = env('EDGE_CONC', 2), EDGE_QUEUE = env('EDGE_QUEUE', 16), CLOUD_MS = env('CLOUD_MS', 300);

if (!fs.existsSync(MODEL)) {
  console.log(`starvation: ${MODEL} is absent (../shared not here); nothing measured`);
  process.exit(0);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-starve-'));
const procs = [];

async function start(bin, args, what) {
  const pf = path.join(tmp, `${what}-${Date.now()}.port`);
  const p = spawn(bin, [...args, '--port-file', pf], { stdio: ['ignore', 'ignore', 'pipe'], cwd: tmp });
  let err = '';
  p.stderr.on('data', (d) => { err = (err + d).slice(-4000); });
  procs.push(p);
  for (let i = 0; i < 1500; i++) {
    if (p.exitCode !== null) throw new Error(`${what} exited: ${err}`);
    try { const port = parseInt(fs.readFileSync(pf, 'utf8'), 10); if (port > 0) return { p, port }; } catch { /* not yet */ }
    await sleep(20);
  }
  throw new Error(`${what} did not start: ${err}`);
}

// One request; resolves {status, json, ms}; status 0 = timed out or failed.
function post(agent, port, p, obj, timeoutMs) {
  const body = JSON.stringify(obj);
  const t0 = Date.now();
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, method: 'POST', agent, timeout: timeoutMs,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        let json = null;
        try { json = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, json, ms: Date.now() - t0 });
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ status: 0, json: null, ms: Date.now() - t0 }));
    req.end(body);
  });
}

const OTHER = (i) => ({ model: 'auto', max_tokens: MAX_TOKENS, temperature: 0,
  messages: [{ role: 'user', content: `Once upon a time there was a little dog number ${i}.` }] });
const PRIVATE = (i) => ({ model: 'auto', max_tokens: MAX_TOKENS, temperature: 0,
  messages: [{ role: 'user', content: `Once upon a time Lily wrote to lily${i}@example.com about her dog.` }] });

const pct = (a, q) => (a.length ? a[Math.min(a.length - 1, Math.floor(q * a.length))] : NaN);

async function measure(build) {
  const B = path.resolve(ROOT, build);
  const up = await start(path.join(B, 'tools/upstream'), ['--port', '0', '--name', 'cloud', '--quiet',
    '--no-record', '--latency-ms', String(CLOUD_MS), '--ttft-ms', String(CLOUD_MS)], 'upstream');
  const cfg = path.join(tmp, `gw-${Date.now()}.yaml`);
  fs.writeFileSync(cfg, `listen: 127.0.0.1:0
workers: 2
store: sqlite:${path.join(tmp, `l-${Date.now()}.db`)}
log_level: error
tiers:
  edge:
    kind: local
    model: ${MODEL}
    tokenizer: ${TOK}
    max_concurrency: ${EDGE_CONC}
    max_queue: ${EDGE_QUEUE}
    ttft_timeout_ms: ${PII_TIMEOUT_MS}
    timeout_ms: ${PII_TIMEOUT_MS}
    cost: { usd_per_hour: 0.05, tokens_per_second: 2000 }
  cloud:
    kind: openai
    base_url: http://127.0.0.1:${up.port}/v1
    model: big-model
    privacy: external
    max_concurrency: 256
    cost: { usd_per_mtok_in: 2.5, usd_per_mtok_out: 10 }
routing:
  pii: { action: local_only }
  policy: rules
  escalation: { enabled: true, min_confidence: 0.55 }
`);
  const gw = await start(path.join(B, 'switchyard'), ['serve', '-c', cfg, '--listen', '127.0.0.1:0'], 'switchyard');
  const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS + 64 });
  const route = await post(agent, gw.port, '/v1/route', OTHER(0), 10000);
  const first = route.json && route.json.decision ? route.json.decision.tier : '?';

  // Warm-up: both tiers measured once (the estimates start from real samples).
  await post(agent, gw.port, '/v1/chat/completions', OTHER(0), 30000);
  await post(agent, gw.port, '/v1/chat/completions', { ...OTHER(0), model: 'cloud' }, 30000);

  let stop = false;
  const other = { n: 0, edge: 0, cloud: 0, escalated: 0, errors: 0 };
  const reasons = {};
  const count = (r) => {
    for (const x of (r.json && r.json.switchyard && r.json.switchyard.reasons) || []) {
      const k = x.replace(/\d+(\.\d+)?/g, 'N');
      if (k.startsWith('spill:') || k.startsWith('skip:') || k.startsWith('escalate:')) reasons[k] = (reasons[k] || 0) + 1;
    }
  };
  const loops = Array.from({ length: CLIENTS }, async (_, c) => {
    let i = 0;
    while (!stop) {
      const r = await post(agent, gw.port, '/v1/chat/completions', OTHER(c * 100000 + i++), PII_TIMEOUT_MS);
      other.n++;
      if (r.status !== 200) { other.errors++; await sleep(50); continue; }
      count(r);
      const sy = r.json.switchyard;
      if (sy.escalated) other.escalated++;
      if (sy.tier === 'edge') other.edge++; else other.cloud++;
    }
  });
  await sleep(1000); // the edge fills up
  const pii = { ok: 0, s503: 0, other: 0, timeout: 0, lat: [] };
  const piiReqs = [];
  for (let i = 0; i < PII; i++) {
    piiReqs.push(post(agent, gw.port, '/v1/chat/completions', PRIVATE(i), PII_TIMEOUT_MS).then((r) => {
      if (r.status === 200) { pii.ok++; pii.lat.push(r.ms); if (r.json.switchyard.tier !== 'edge') pii.other++; }
      else if (r.status === 503) pii.s503++;
      else if (r.status === 0) pii.timeout++;
      else pii.other++;
    }));
    await sleep(PII_EVERY_MS);
  }
  await Promise.all(piiReqs);
  stop = true;
  await Promise.all(loops);
  agent.destroy();
  gw.p.kill('SIGTERM');
  up.p.kill('SIGTERM');
  await sleep(300);
  pii.lat.sort((a, b) => a - b);
  return { build, first, pii, other, reasons };
}

const builds = process.argv.slice(2).length ? process.argv.slice(2) : ['build/rel'];
const rows = [];
try {
  for (const b of builds) rows.push(await measure(b));
} finally {
  for (const p of procs) p.kill('SIGKILL');
  fs.rmSync(tmp, { recursive: true, force: true });
}
console.log(`starvation: edge = stories260K (max_concurrency ${EDGE_CONC}, max_queue ${EDGE_QUEUE}), cloud = stand-in at ${CLOUD_MS} ms;`);
console.log(`${CLIENTS} closed-loop clients without personal data, ${PII} PII requests every ${PII_EVERY_MS} ms (timeout ${PII_TIMEOUT_MS} ms), max_tokens ${MAX_TOKENS}`);
const w = (s, n) => String(s).padStart(n);
console.log(`${'build'.padEnd(24)} ${w('PII ok', 7)} ${w('503', 5)} ${w('t/o', 5)} ${w('other', 6)} ${w('p50 ms', 7)} ${w('p95 ms', 7)} | ${w('other reqs', 10)} ${w('edge', 6)} ${w('cloud', 6)} ${w('escal', 6)} ${w('errors', 6)}`);
for (const r of rows) {
  const p = r.pii, o = r.other;
  console.log(`${r.build.slice(-24).padEnd(24)} ${w(p.ok, 7)} ${w(p.s503, 5)} ${w(p.timeout, 5)} ${w(p.other, 6)} ${w(pct(p.lat, 0.5), 7)} ${w(pct(p.lat, 0.95), 7)} | ${w(o.n, 10)} ${w(o.edge, 6)} ${w(o.cloud, 6)} ${w(o.escalated, 6)} ${w(o.errors, 6)}`);
}
for (const r of rows) {
  console.log(`${r.build}: unloaded, the other requests route to ${r.first}; reasons: ${JSON.stringify(r.reasons)}`);
}
