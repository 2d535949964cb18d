#!/usr/bin/env node
// local-path.mjs — what the gateway spends around each token of a local tier's answer.
//
//   node bench/local-path.mjs BUILD [BASELINE_BUILD]      (default build/rel)
//
// A gateway whose local tier holds stories260K (260K parameters: decoding costs
// little, so the path from the engine to the client is most of the work) answers chat
// requests of MAX_TOKENS greedy tokens, streamed and whole, with and without logprobs
// (5 alternatives per token). For each build it prints tokens/s over the client's wall
// time and the gateway's CPU time per 1,000 tokens (user + system from /proc, all
// threads); with a baseline build, both gateways run side by side and are asked in
// alternation, and the ratio column is build over baseline (CPU: below 1 is less).
//
// Environment: ROUNDS (5), REQUESTS per round and shape (8), MAX_TOKENS (200), SY_SHARED.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const SHARED = process.env.SY_SHARED || path.resolve(ROOT, '../shared');
const builds = (process.argv.length > 2 ? process.argv.slice(2) : ['build/rel']).map((b) => path.resolve(ROOT, b));
const M = path.join(SHARED, 'data/models/llama2c');
const ROUNDS = +(process.env.ROUNDS || 5), REQUESTS = +(process.env.REQUESTS || 8);
const MAX_TOKENS = +(process.env.MAX_TOKENS || 200);
if (!fs.existsSync(path.join(M, 'stories260K.bin'))) {
  console.log(`local-path: ${M}/stories260K.bin is absent (../shared not here); nothing measured`);
  process.exit(0);
}
for (const b of builds)
  if (!fs.existsSync(path.join(b, 'switchyard'))) {
    console.log(`local-path: build ${b} first`);
    process.exit(1);
  }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-localpath-'));
const children = [];
process.on('exit', () => { for (const c of children) c.kill('SIGKILL'); fs.rmSync(tmp, { recursive: true, force: true }); });

const model = path.join(tmp, 'm.gguf');
if (spawnSync(path.join(builds[0], 'switchyard'), ['convert', path.join(M, 'stories260K.bin'), '--tokenizer',
  path.join(M, 'tok512.bin'), model], { stdio: 'ignore' }).status !== 0) throw new Error('convert failed');

async function gateway(i, build) {
  const cfg = path.join(tmp, `g${i}.yaml`), pf = cfg + '.port';
  fs.writeFileSync(cfg, `store: sqlite:g${i}.db\nlog_level: warn\ntiers:\n  edge:\n    kind: local\n    model: ${model}\n    max_concurrency: 1\n`);
  const p = spawn(path.join(build, 'switchyard'), ['serve', '-c', cfg, '--listen', '127.0.0.1:0', '--port-file', pf],
    { stdio: ['ignore', 'ignore', 'inherit'], cwd: tmp });
  children.push(p);
  for (let k = 0; k < 1000 && !fs.existsSync(pf); k++) await sleep(20);
  return { url: `http://127.0.0.1:${+fs.readFileSync(pf, 'utf8')}`, pid: p.pid };
}
// The process's CPU seconds so far (utime + stime).
function cpu(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const v = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (+v[11] + +v[12]) / 100;
}
async function ask(url, body) {
  const r = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (r.status !== 200) throw new Error(`${r.status} ${await r.text()}`);
  if (!body.stream) return (await r.json()).usage.completion_tokens;
  let toks = 0, rest = '';
  for await (const b of r.body) {
    rest += Buffer.from(b).toString();
    let k;
    while ((k = rest.indexOf('\n\n')) >= 0) {
      const ev = rest.slice(0, k); rest = rest.slice(k + 2);
      if (ev.startsWith('data: ') && ev !== 'data: [DONE]') {
        const j = JSON.parse(ev.slice(6));
        if (j.usage) toks = j.usage.completion_tokens;
      }
    }
  }
  return toks;
}

const gws = [];
for (let i = 0; i < builds.length; i++) gws.push(await gateway(i, builds[i]));
const shapes = [
  ['whole', { stream: false }],
  ['whole, logprobs', { stream: false, logprobs: true, top_logprobs: 5 }],
  ['streamed', { stream: true, stream_options: { include_usage: true } }],
  ['streamed, logprobs', { stream: true, stream_options: { include_usage: true }, logprobs: true, top_logprobs: 5 }],
];
const prompts = ['Once upon a time', 'The little dog', 'Lily and Tom went', 'One day a bird'];
const acc = shapes.map(() => builds.map(() => ({ toks: 0, ms: 0, cpu: 0 })));
for (let r = 0; r < ROUNDS; r++)
  for (let s = 0; s < shapes.length; s++)
    for (let g = 0; g < gws.length; g++) {
      const gi = (g + r) % gws.length; // alternate who goes first
      const a = acc[s][gi], c0 = cpu(gws[gi].pid), t0 = performance.now();
      for (let q = 0; q < REQUESTS; q++)
        a.toks += await ask(gws[gi].url, { model: 'edge', messages: [{ role: 'user', content: prompts[q % prompts.length] }],
          max_tokens: MAX_TOKENS, temperature: 0, ...shapes[s][1] });
      a.ms += performance.now() - t0;
      a.cpu += cpu(gws[gi].pid) - c0;
    }
console.log(`local-path: stories260K on a local tier, chat, ${MAX_TOKENS} greedy tokens, ${ROUNDS} rounds x ${REQUESTS} requests per shape`);
console.log(`builds: ${builds.map((b) => path.relative(ROOT, b) || b).join(' | ')}${builds.length > 1 ? ' (ratio: first over second)' : ''}`);
console.log('');
const head = builds.map((_, i) => `tok/s #${i + 1} | CPU ms/1k tok #${i + 1}`).join(' | ');
console.log(`| shape | ${head}${builds.length > 1 ? ' | tok/s ratio | CPU ratio' : ''} |`);
console.log(`|---|${builds.map(() => '---|---|').join('')}${builds.length > 1 ? '---|---|' : ''}`);
for (let s = 0; s < shapes.length; s++) {
  const v = acc[s].map((a) => [a.toks / a.ms * 1000, a.cpu * 1000 / a.toks * 1000]);
  const cells = v.map(([t, c]) => `${t.toFixed(0)} | ${c.toFixed(1)}`).join(' | ');
  const ratio = v.length > 1 ? ` | ${(v[0][0] / v[1][0]).toFixed(2)}x | ${(v[0][1] / v[1][1]).toFixed(2)}x` : '';
  console.log(`| ${shapes[s][0]} | ${cells}${ratio} |`);
}
console.log('');
console.log(`load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} on ${os.cpus().length} cores (shared machine: compare within a row)`);
process.exit(0);
