#!/usr/bin/env node
// bigbody.mjs — do large request bodies stall other clients?
//
//   node bench/bigbody.mjs [BUILD_DIR ...]     (default build/rel; DURATION=5 s, REPS=3)
//
// For each build: a gateway (2 workers) in front of fast stand-in upstreams; 8
// "victim" connections send small chat requests (tier cloud) back to back for
// DURATION seconds, first alone, then while 2 attackers each send 4 MiB bodies of tiny
// JSON nodes ([0,0,0,...] in an extra field, about 2 million nodes) back to back to
// tier bulk. The attackers' client and bulk's upstream run at nice 19: on a
// deployment neither shares the gateway's CPUs, and on this machine they would
// otherwise measure themselves. REPS rounds (default 3) interleave the builds.
// Prints the victims' requests, p50, p99 and max latency per phase with the 1-minute
// load average, the p99 ratio attacked/alone per round and its median, and what the
// attackers got. Several builds in one run compare a change on the same machine.
import { fork, spawn } from 'node:child_process';
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
  // An attacker: 4 MiB bodies back to back until told to stop, to a tier of its own.
  const { port, bytes, model } = workerData;
  const head = '{"model":"' + model + '","messages":[{"role":"user","content":"hi"}],"x_pad":[';
  const n = Math.floor((bytes - head.length - 2) / 2);
  const body = Buffer.from(head + '0,'.repeat(n - 1) + '0]}'); // encoded once
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
} else if (process.argv[2] === '--attackers') {
  // The attack side (a process at nice 19, so the load it makes as a client does not
  // count against the gateway): 2 worker threads until the parent says stop.
  const port = +process.argv[3], model = process.argv[4];
  const ws = [0, 1].map(() => new Worker(new URL(import.meta.url), { workerData: { port, bytes: (4 << 20) - 1024, model } }));
  process.on('message', async () => {
    const got = await Promise.all(ws.map((w) => new Promise((r) => { w.once('message', r); w.postMessage('stop'); })));
    await Promise.all(ws.map((w) => w.terminate()));
    const att = got.reduce((acc, g) => { acc.sent += g.sent; for (const [k, v] of Object.entries(g.codes)) acc.codes[k] = (acc.codes[k] || 0) + v; return acc; }, { sent: 0, codes: {} });
    process.send(att, () => process.exit(0));
  });
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
    const body = JSON.stringify({ model: 'switchyard/cloud', messages: [{ role: 'user', content: 'What is the capital of France?' }] });
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

  const REPS = Math.max(1, +(process.env.REPS || 3));
  const rows = [];
  const load = () => os.loadavg()[0];
  try {
    // Rounds interleave the builds, so a change in the machine's load hits all of them.
    for (let rep = 1; rep <= REPS; rep++) {
      for (const b of builds) {
        const B = path.resolve(ROOT, b);
        // The attackers' bodies go to a tier of their own, whose stand-in upstream runs
        // at nice 19: it parses what it gets on one loop, and that cost belongs to the
        // upstream (another machine in a deployment), not to the gateway.
        const up = await start(path.join(B, 'tools/upstream'), ['--port', '0', '--name', 'cloud', '--quiet', '--no-record'], 'upstream');
        const up2 = await start('nice', ['-n', '19', path.join(B, 'tools/upstream'), '--port', '0', '--name', 'bulk', '--quiet', '--no-record'], 'upstream');
        const cfg = path.join(tmp, `gw-${Date.now()}.yaml`);
        fs.writeFileSync(cfg, `listen: 127.0.0.1:0\nworkers: 2\nstore: sqlite:${path.join(tmp, `l-${Date.now()}.db`)}\nlog_level: warn\n` +
          `tiers:\n  cloud:\n    kind: openai\n    base_url: http://127.0.0.1:${up.port}/v1\n    model: m\n    privacy: external\n` +
          `  bulk:\n    kind: openai\n    base_url: http://127.0.0.1:${up2.port}/v1\n    model: m\n    privacy: external\n`);
        const gw = await start(path.join(B, 'switchyard'), ['serve', '-c', cfg, '--listen', '127.0.0.1:0'], 'switchyard');
        await victims(gw.port, 500); // warm-up
        const l0 = load();
        const alone = await victims(gw.port, DUR);
        const atk = fork(new URL(import.meta.url).pathname, ['--attackers', String(gw.port), 'switchyard/bulk'],
          { execPath: 'nice', execArgv: ['-n', '19', process.execPath] });
        await sleep(300);
        const l1 = load();
        const attacked = await victims(gw.port, DUR);
        const att = await new Promise((r) => { atk.once('message', r); atk.send('stop'); });
        alone.load = l0;
        attacked.load = l1;
        rows.push({ b, rep, alone, attacked, att });
        for (const x of [gw, up, up2]) x.p.kill('SIGTERM');
        await sleep(300);
      }
    }
  } finally {
    for (const p of procs) p.kill('SIGKILL');
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const f = (x) => (Number.isFinite(x) ? x.toFixed(2) : '-').padStart(8);
  console.log(`bigbody: 8 victim connections, ${DUR / 1000} s per phase, 2 attackers with 4 MiB bodies of tiny JSON nodes, ${REPS} rounds`);
  console.log(`${'build'.padEnd(24)} ${'run'.padStart(3)} ${'phase'.padEnd(9)} ${'load1'.padStart(5)} ${'reqs'.padStart(7)} ${'errors'.padStart(6)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'max ms'.padStart(8)}  attackers`);
  for (const r of rows) {
    for (const [ph, v] of [['alone', r.alone], ['attacked', r.attacked]])
      console.log(`${r.b.slice(-24).padEnd(24)} ${String(r.rep).padStart(3)} ${ph.padEnd(9)} ${v.load.toFixed(2).padStart(5)} ${String(v.n).padStart(7)} ${String(v.bad).padStart(6)} ${f(v.p50)} ${f(v.p99)} ${f(v.max)}  ${ph === 'attacked' ? `${r.att.sent} sent ${JSON.stringify(r.att.codes)}` : ''}`);
  }
  console.log('p99 attacked/alone per round, and the median:');
  for (const b of builds) {
    const q = rows.filter((r) => r.b === b).map((r) => r.attacked.p99 / r.alone.p99);
    const m = [...q].sort((x, y) => x - y)[Math.floor(q.length / 2)];
    console.log(`${b.slice(-24).padEnd(24)} ${q.map((x) => x.toFixed(2) + 'x').join(' ')}  median ${m.toFixed(2)}x`);
  }
}
