#!/usr/bin/env node
// bigbody.mjs — do large request bodies stall other clients?
//
//   node bench/bigbody.mjs [BUILD_DIR ...]     (default build/rel; DURATION=5 s)
//
// For each build: a gateway (2 workers) in front of a fast stand-in upstream; 8
// "victim" connections send small chat requests back to back for DURATION seconds,
// first alone, then while 2 attackers (worker threads) each send 4 MiB bodies of tiny
// JSON nodes ([0,0,0,...] in an extra field, about 2 million nodes) back to back.
// Prints the victims' requests, p50, p99 and max latency per phase, the p99 ratio
// attack/alone, and what the attackers got. Several builds in one run compare a
// change on the same loaded machine.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

const post = (agent, port, body) => new Promise((resolve) => {
  const req = http.request({ host: '127.0.0.1', port, path: '/v1/chat/completions', method: 'POST', agent,
    headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
    res.on('data', () => {});
    res.on('end', () => resolve(res.statusCode));
  });
  req.on('error', () => resolve(0));
  req.end(body);
});

if (!isMainThread) {
  // An attacker: 4 MiB bodies back to back until told to stop.
  const { port, bytes } = workerData;
  const head = '{"model":"auto","messages":[{"role":"user","content":"hi"}],"x_pad":[';
  const n = Math.floor((bytes - head.length - 2) / 2);
  const body = head + '0,'.repeat(n - 1) + '0]}';
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  let stop = false, sent = 0;
  const codes = {};
  parentPort.on('message', () => { stop = true; });
  (async () => {
    while (!stop) {
      const c = await post(agent, port, body);
      codes[c] = (codes[c] || 0) + 1;
      sent++;
    }
    parentPort.postMessage({ sent, codes });
  })();
} else {
  const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
  const builds = process.argv.slice(2).length ? process.argv.slice(2) : ['build/rel'];
  const DUR = +(process.env.DURATION || 5) * 1000;
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-bigbody-'));
  const procs = [];
  const start = async (bin, args, what) => {
    const pf = path.join(tmp, `${what}-${Date.now()}.port`);
    const p = spawn(bin, [...args, '--port-file', pf], { stdio: ['ignore', 'ignore', 'pipe'], cwd: tmp });
    let err = '';
    p.stderr.on('data', (d) => { err = (err + d).slice(-4000); });
    procs.push(p);
    for (let i = 0; i < 500; i++) {
      if (p.exitCode !== null) throw new Error(`${what} exited: ${err}`);
      try { const port = parseInt(fs.readFileSync(pf, 'utf8'), 10); if (port > 0) return { p, port }; } catch { /* not yet */ }
      await sleep(20);
    }
    throw new Error(`${what} did not start: ${err}`);
  };
  const pct = (a, q) => a.length ? a[Math.min(a.length - 1, Math.floor(q * a.length))] : NaN;

  async function victims(port, ms) {
    const lat = [];
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    const body = JSON.stringify({ model: 'auto', messages: [{ role: 'user', content: 'What is the capital of France?' }] });
    const end = Date.now() + ms;
    let bad = 0;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (Date.now() < end) {
        const t0 = process.hrtime.bigint();
        const c = await post(agent, port, body);
        lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
        if (c !== 200) bad++;
      }
    }));
    agent.destroy();
    lat.sort((a, b) => a - b);
    return { n: lat.length, bad, p50: pct(lat, 0.5), p99: pct(lat, 0.99), max: lat[lat.length - 1] };
  }

  const rows = [];
  try {
    for (const b of builds) {
      const B = path.resolve(ROOT, b);
      const up = await start(path.join(B, 'tools/upstream'), ['--port', '0', '--name', 'cloud', '--quiet'], 'upstream');
      const cfg = path.join(tmp, `gw-${Date.now()}.yaml`);
      fs.writeFileSync(cfg, `listen: 127.0.0.1:0\nworkers: 2\nstore: sqlite:${path.join(tmp, `l-${Date.now()}.db`)}\nlog_level: warn\n` +
        `tiers:\n  cloud:\n    kind: openai\n    base_url: http://127.0.0.1:${up.port}/v1\n    model: m\n    privacy: external\n`);
      const gw = await start(path.join(B, 'switchyard'), ['serve', '-c', cfg, '--listen', '127.0.0.1:0'], 'switchyard');
      await victims(gw.port, 500); // warm-up
      const alone = await victims(gw.port, DUR);
      const ws = [0, 1].map(() => new Worker(new URL(import.meta.url), { workerData: { port: gw.port, bytes: (4 << 20) - 1024 } }));
      await sleep(300);
      const attacked = await victims(gw.port, DUR);
      const got = await Promise.all(ws.map((w) => new Promise((r) => { w.once('message', r); w.postMessage('stop'); })));
      await Promise.all(ws.map((w) => w.terminate()));
      const att = got.reduce((a, g) => { a.sent += g.sent; for (const [k, v] of Object.entries(g.codes)) a.codes[k] = (a.codes[k] || 0) + v; return a; }, { sent: 0, codes: {} });
      rows.push({ b, alone, attacked, att });
      gw.p.kill('SIGTERM');
      up.p.kill('SIGTERM');
      await sleep(300);
    }
  } finally {
    for (const p of procs) p.kill('SIGKILL');
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const f = (x) => (Number.isFinite(x) ? x.toFixed(2) : '-').padStart(8);
  console.log(`bigbody: 8 victim connections, ${DUR / 1000} s per phase, 2 attackers with 4 MiB bodies of tiny JSON nodes`);
  console.log(`${'build'.padEnd(24)} ${'phase'.padEnd(9)} ${'reqs'.padStart(7)} ${'errors'.padStart(6)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'max ms'.padStart(8)}  attackers`);
  for (const r of rows) {
    for (const [ph, v] of [['alone', r.alone], ['attacked', r.attacked]])
      console.log(`${r.b.slice(-24).padEnd(24)} ${ph.padEnd(9)} ${String(v.n).padStart(7)} ${String(v.bad).padStart(6)} ${f(v.p50)} ${f(v.p99)} ${f(v.max)}  ${ph === 'attacked' ? `${r.att.sent} sent ${JSON.stringify(r.att.codes)}` : ''}`);
    console.log(`${r.b.slice(-24).padEnd(24)} p99 attacked/alone: ${(r.attacked.p99 / r.alone.p99).toFixed(2)}x`);
  }
}
