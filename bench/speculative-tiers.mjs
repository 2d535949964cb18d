#!/usr/bin/env node
// speculative-tiers.mjs — speculative decoding across tiers at emulated round trips.
//
//   node bench/speculative-tiers.mjs [BUILD_DIR]          (default build/rel)
//
// Gateway A's local tier holds the Q4_0 copy of stories260K and drafts; gateway B's
// local tier holds the F32 model and verifies, behind a delaying TCP proxy
// (bench/delay-proxy.mjs) at round trips of 0, 10, 30 and 80 ms. The baseline is B
// decoding alone, asked over the same kind of link. For each round trip and draft setting (fixed
// K = 4, auto) it prints acceptance, tokens per round, the mean draft length, tokens/s
// through A + verifier and through B alone (non-streamed: completion tokens over the
// client's wall time), and their ratio. Both measured in the same run, alternated per
// prompt. Every answer of A is checked against B's (greedy: identical text).
//
// Environment: PROMPTS (16), MAX_TOKENS (64), DELAYS ("0,10,30,80"), SY_SHARED.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const SHARED = process.env.SY_SHARED || path.resolve(ROOT, '../shared');
const BUILD = path.resolve(ROOT, process.argv[2] || 'build/rel');
const SY = path.join(BUILD, 'switchyard');
const M = path.join(SHARED, 'data/models/llama2c');
const PROMPTS = +(process.env.PROMPTS || 16), MAX_TOKENS = +(process.env.MAX_TOKENS || 64);
const DELAYS = (process.env.DELAYS || '0,10,30,80').split(',').map(Number);
if (!fs.existsSync(path.join(M, 'stories260K.bin'))) {
  console.log(`speculative-tiers: ${M}/stories260K.bin is absent (../shared not here); nothing measured`);
  process.exit(0);
}
if (!fs.existsSync(SY)) {
  console.log(`speculative-tiers: build ${BUILD} first`);
  process.exit(1);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-spectiers-'));
const children = [];
process.on('exit', () => { for (const c of children) c.kill('SIGKILL'); fs.rmSync(tmp, { recursive: true, force: true }); });

async function portOf(file, proc, what) {
  for (let i = 0; i < 1000; i++) {
    if (proc.exitCode !== null) throw new Error(`${what} exited`);
    if (fs.existsSync(file)) return +fs.readFileSync(file, 'utf8');
    await sleep(20);
  }
  throw new Error(`${what} did not start`);
}
async function start(cmd, args, what, pf) {
  const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'], cwd: tmp });
  children.push(p);
  return portOf(pf, p, what);
}
async function gateway(name, yaml) {
  const cfg = path.join(tmp, name + '.yaml'), pf = cfg + '.port';
  fs.writeFileSync(cfg, yaml);
  return `http://127.0.0.1:${await start(SY, ['serve', '-c', cfg, '--listen', '127.0.0.1:0', '--port-file', pf], name, pf)}`;
}
async function proxy(rtt, port) {
  const pf = path.join(tmp, `p${rtt}-${port}.port`);
  return start(process.execPath, [path.join(ROOT, 'bench/delay-proxy.mjs'), String(rtt), String(port), pf], 'proxy', pf);
}
async function post(url, body) {
  const t0 = performance.now();
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const j = await r.json();
  if (r.status !== 200) throw new Error(`${url}: ${r.status} ${JSON.stringify(j)}`);
  return { j, ms: performance.now() - t0 };
}

const target = path.join(tmp, 't.gguf'), draft = path.join(tmp, 'q4.gguf');
for (const a of [['convert', path.join(M, 'stories260K.bin'), '--tokenizer', path.join(M, 'tok512.bin'), target],
                 ['quantize', target, draft, '--type', 'q4_0']])
  if (spawnSync(SY, a, { stdio: 'ignore' }).status !== 0) throw new Error('switchyard ' + a[0] + ' failed');

const B = await gateway('b', `store: sqlite:b.db\nlog_level: warn\ntiers:\n  target:\n    kind: local\n    model: ${target}\n    max_concurrency: 1\n`);
const vPort = +new URL(B).port, verifierName = 'gateway B';
const bPort = +new URL(B).port;
let tiers = '';
const links = {};
for (const d of DELAYS) {
  links[d] = { v: await proxy(d, vPort), b: await proxy(d, bPort) };
  tiers += `
  fixed${d}:
    kind: local
    model: ${draft}
    max_concurrency: 1
    speculative: { verifier: v${d}, draft_max: 4 }
  auto${d}:
    kind: local
    model: ${draft}
    max_concurrency: 1
    speculative: { verifier: v${d}, draft_max: auto }
  v${d}:
    kind: openai
    base_url: http://127.0.0.1:${links[d].v}/v1
    model: target
    privacy: on_prem
    timeout_ms: 60000`;
}
const A = await gateway('a', `store: sqlite:a.db\nlog_level: warn\ntiers:${tiers}\n`);

const prompts = [];
for (const line of fs.readFileSync(path.join(SHARED, 'data/corpora/tinystories_val_subset.txt'), 'utf8').split('\n')) {
  if (prompts.length === PROMPTS) break;
  if (line.length >= 40) prompts.push(line.split(' ').slice(0, 3 + prompts.length % 5).join(' '));
}
const req = (model, prompt) => ({ model, prompt, max_tokens: MAX_TOKENS, temperature: 0 });

console.log(`speculative-tiers: stories260K Q4_0 drafting on gateway A, F32 verifying (${verifierName}),`);
console.log(`${PROMPTS} prompts x ${MAX_TOKENS} tokens, greedy; baseline: gateway B alone over the same emulated link`);
console.log('');
console.log('| round trip | draft length | acceptance | tokens/round | mean K | tok/s A+verifier | tok/s B alone | ratio | identical |');
console.log('|---|---|---|---|---|---|---|---|---|');
for (const d of DELAYS) {
  for (const mode of ['fixed', 'auto']) {
    let toks = 0, msSpec = 0, toksB = 0, msB = 0, drafted = 0, accepted = 0, rounds = 0, same = 0, kept = 0;
    for (const p of prompts) {
      const b = await post(`http://127.0.0.1:${links[d].b}/v1/completions`, req('target', p));
      const a = await post(`${A}/v1/completions`, req(mode + d, p));
      toksB += b.j.usage.completion_tokens; msB += b.ms;
      toks += a.j.usage.completion_tokens; msSpec += a.ms;
      const sp = a.j.switchyard.speculative;
      drafted += sp.drafted; accepted += sp.accepted; rounds += sp.rounds;
      kept += a.j.usage.completion_tokens - sp.local_tokens;
      if (a.j.choices[0].text === b.j.choices[0].text) same++;
    }
    const tsA = toks / msSpec * 1000, tsB = toksB / msB * 1000;
    console.log(`| ${d} ms | ${mode === 'fixed' ? 'K = 4' : 'auto'} | ${(accepted / drafted).toFixed(3)} | ${(kept / rounds).toFixed(2)} | ${(drafted / rounds).toFixed(2)} | ${tsA.toFixed(0)} | ${tsB.toFixed(0)} | ${(tsA / tsB).toFixed(2)}x | ${same}/${prompts.length} |`);
  }
}
console.log('');
console.log(`load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} on ${os.cpus().length} cores (a shared machine: compare within a row)`);
process.exit(0);
