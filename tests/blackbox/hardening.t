#!/usr/bin/env node
// Operating limits of the real binary: the fd limit reached by idle connections
// (accepting pauses: low CPU, a small log, service resumes), a slow request body
// cut at limits.body_timeout_ms, and a second instance refused on a served port.
'use strict';
let L;
(async () => {
L = await import('./lib.mjs');
const { test, run, assert, eq, get, sleep } = L;
const fs = await import('node:fs');
const net = await import('node:net');
const path = await import('node:path');
const { execSync } = await import('node:child_process');

if (!fs.existsSync(L.SWITCHYARD)) { L.skipAll(`build ${L.SWITCHYARD} first (make asan)`); return; }

const cfg = path.join(L.tmp(), 'hard.yaml');
fs.writeFileSync(cfg, `
listen: 127.0.0.1:0
workers: 2
store: sqlite:hard.db
log_level: warn
limits: { body_timeout_ms: 1000, idle_timeout_ms: 60000 }
tiers:
  cloud: { kind: openai, base_url: "http://127.0.0.1:9/v1", model: m, retries: 0 }
`);
const TCK = parseInt(execSync('getconf CLK_TCK').toString(), 10) || 100;
function cpuTicks(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return parseInt(rest[11], 10) + parseInt(rest[12], 10); /* utime + stime */
}
function connect(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => resolve(s));
    s.on('error', () => resolve(null));
  });
}

test('fd limit 256 with 400 idle connections: CPU under 30%, a small log, service resumes', async () => {
  const gw = await L.startGatewayFile(cfg, { nofile: 256 });
  const socks = [];
  for (let i = 0; i < 400; i++) socks.push(await connect(gw.port));
  assert(socks.filter(Boolean).length === 400, 'the kernel queued all 400 connections');
  await sleep(500);
  const log0 = gw.proc.stderrText.length;
  const t0 = cpuTicks(gw.proc.pid), w0 = Date.now();
  await sleep(3000);
  const cpu = (cpuTicks(gw.proc.pid) - t0) / TCK / ((Date.now() - w0) / 1000);
  const logged = gw.proc.stderrText.slice(log0);
  const lines = logged.split('\n').filter((l) => l.includes('accept')).length;
  console.log(`# CPU ${(cpu * 100).toFixed(1)}% over 3 s, ${lines} accept log lines, ${logged.length} log bytes`);
  assert(cpu < 0.30, `CPU ${(cpu * 100).toFixed(1)}% under 30%`);
  assert(lines <= 5, `accept errors logged at most once a second: ${lines} lines in 3 s`);
  assert(gw.proc.stderrText.includes('Too many open files'), 'the cause is logged');
  for (const s of socks) if (s) s.destroy();
  let ok = false;
  for (let i = 0; i < 50 && !ok; i++) {
    await sleep(100);
    try { ok = (await get(`${gw.url}/healthz`)).status === 200; } catch { /* retry */ }
  }
  assert(ok, 'answers again once descriptors are free');
  eq(await gw.stop(), 0, 'clean exit');
});

test('a slow body is cut with 408 at body_timeout_ms', async () => {
  const gw = await L.startGatewayFile(cfg);
  const s = await connect(gw.port);
  let answer = '';
  s.on('data', (d) => { answer += d; });
  const closed = new Promise((r) => s.on('close', r));
  const t0 = Date.now();
  s.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n');
  const trickle = setInterval(() => { if (!s.destroyed) s.write('{'); }, 100);
  await Promise.race([closed, sleep(6000)]);
  clearInterval(trickle);
  const dt = Date.now() - t0;
  assert(answer.startsWith('HTTP/1.1 408'), 'answered 408: ' + answer.slice(0, 80));
  assert(dt >= 900 && dt < 4000, `cut near 1000 ms, after ${dt} ms`);
  s.destroy();
  eq(await gw.stop(), 0, 'clean exit');
});

test('a second switchyard on a served port refuses to start', async () => {
  const gw = await L.startGatewayFile(cfg);
  const r = await L.runSwitchyard(['serve', '-c', cfg, '--listen', `127.0.0.1:${gw.port}`], { timeoutMs: 10000 });
  eq(r.code, 1, 'second instance exit code');
  assert(r.stderr.includes('already in use'), 'clear error: ' + r.stderr);
  eq((await get(`${gw.url}/healthz`)).status, 200, 'the first still serves');
  eq(await gw.stop(), 0, 'clean exit');
});

await run();
L.cleanup();
})().catch((e) => { console.log(`not ok - harness: ${e.stack}`); process.exitCode = 1; if (L) L.cleanup(); });
