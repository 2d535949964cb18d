#!/usr/bin/env node
// `switchyard plan` on the ledger of a real run: the gateway between a stand-in edge
// (on_prem, with logprobs, some answers escalated) and a stand-in cloud serves varied
// traffic; then the plan's matrix, crossover and SVG are checked against the ledger
// and the prices in the config.
'use strict';
let L;
(async () => {
L = await import('./lib.mjs');
const { test, run, assert, eq, post, chat } = L;
const fs = await import('node:fs');
const path = await import('node:path');
const { execFileSync, spawnSync } = await import('node:child_process');

if (!fs.existsSync(L.SWITCHYARD) || !fs.existsSync(L.UPSTREAM)) {
  L.skipAll(`build ${L.SWITCHYARD} and ${L.UPSTREAM} first (make asan)`);
  return;
}

const edge = await L.startUpstream('edge');
const cloud = await L.startUpstream('cloud');
const yaml = `
listen: 127.0.0.1:0
store: sqlite:plan.db
log_level: warn
tiers:
  edge:
    kind: openai
    base_url: ${edge.url}/v1
    model: edge-small
    privacy: on_prem
    role: edge
    logprobs: true
    cost: { usd_per_hour: 2.0, tokens_per_second: 400 }
  cloud:
    kind: openai
    base_url: ${cloud.url}/v1
    model: big-model
    privacy: external
    cost: { usd_per_mtok_in: 2.5, usd_per_mtok_out: 10 }
routing:
  pii: { action: local_only, min_score: 0.5 }
  token_budget: { cloud_above: 1024 }
  policy: rules
  escalation: { enabled: true, min_confidence: 0.55 }
`;
const gw = await L.startGateway(yaml, 'plan');
const dir = path.dirname(gw.cfg);
const plan = (...args) => spawnSync(L.SWITCHYARD, ['plan', '-c', gw.cfg, ...args], { cwd: dir, encoding: 'utf8' });

test('traffic through the gateway, then plan --json and --svg', async () => {
  let sent = 0;
  // Short chat to the edge, some of it escalated (low edge logprobs).
  for (let i = 0; i < 12; i++) {
    await edge.control({ logprob: i % 4 === 0 ? -6 : -0.05 });
    eq((await post(`${gw.url}/v1/chat/completions`, chat(`Hi there, how are you today? ${i}`, { max_tokens: 40 }))).status, 200, 'chat');
    sent++;
  }
  // Code questions, forced to the cloud.
  for (let i = 0; i < 6; i++) {
    eq((await post(`${gw.url}/v1/chat/completions`, chat(`Write a Python function that parses ISO dates and returns a datetime ${i}`, { model: 'cloud' }))).status, 200, 'code');
    sent++;
  }
  // Long prompts (another prompt band).
  const long = 'The quick brown fox jumps over the lazy dog. '.repeat(120);
  for (let i = 0; i < 4; i++) {
    eq((await post(`${gw.url}/v1/chat/completions`, chat(long + i, { max_tokens: 30 }))).status, 200, 'long');
    sent++;
  }
  eq(await gw.stop(), 0, 'gateway stopped cleanly (ledger flushed)');

  const r = plan('--json', '--svg', 'plan.svg');
  eq(r.status, 0, 'plan exit: ' + r.stderr);
  const j = JSON.parse(r.stdout);
  eq(j.edge_tier, 'edge', 'edge tier');
  eq(j.cloud_tier, 'cloud', 'cloud tier');
  assert(j.cells.length >= 2, 'several cells: ' + r.stdout);
  const bands = new Set(j.cells.map((c) => c.prompt_band));
  assert(bands.size >= 2, 'the long prompts fall in another band: ' + [...bands]);
  // Volumes: the run is shorter than an hour, so it counts as one hour: x730 a month.
  const total = j.cells.reduce((a, c) => a + c.requests_per_month, 0);
  assert(Math.abs(total - sent * 730) < 1e-6 * sent * 730, `monthly volume ${total} = ${sent} x 730`);
  // Cloud price per request follows the config's prices exactly.
  for (const c of j.cells) {
    const want = (2.5 * c.tokens_in_per_request + 10 * c.tokens_out_per_request) / 1e6;
    assert(Math.abs(c.cloud_usd_per_request - want) < 1e-12, `cloud price of ${c.task}/${c.prompt_band}`);
    const edgeWant = 2.0 / 3600 * (c.tokens_in_per_request + c.tokens_out_per_request) / 400;
    assert(Math.abs(c.edge_usd_per_request - edgeWant) < 1e-12, `edge price of ${c.task}/${c.prompt_band}`);
    assert(['edge', 'cloud', 'edge?'].includes(c.recommended), 'a recommendation');
  }
  const esc = j.cells.filter((c) => c.escalation_rate !== null);
  assert(esc.some((c) => c.escalation_rate > 0), 'escalations seen: ' + JSON.stringify(esc));
  // The crossover is where box cost equals cloud cost: F = c (1 - e) V*.
  const b = j.box;
  eq(b.usd_per_month, 2.0 * 730, 'box price per month');
  eq(b.tokens_per_month, 400 * 3600 * 730 * 0.5, 'box capacity at 50%');
  if (b.crossover_tokens_per_month !== null) {
    const c = b.cloud_usd_per_month_now / b.edge_suited_tokens_per_month;
    const atV = c * (1 - b.escalation_rate) * b.crossover_tokens_per_month;
    assert(Math.abs(atV - b.usd_per_month) < 1e-6 * b.usd_per_month, `crossover balances: ${atV} vs ${b.usd_per_month}`);
  }
  const svg = fs.readFileSync(path.join(dir, 'plan.svg'), 'utf8');
  assert(svg.startsWith('<svg') && svg.trim().endsWith('</svg>'), 'an SVG document');
  assert(/class="cloud"/.test(svg) && /class="box"/.test(svg), 'both curves');
  assert(/class="now"/.test(svg), 'current volume marked');
  if (b.crossover_tokens_per_month !== null) assert(/class="crossover"/.test(svg), 'crossover marked');
  // The table form says the same.
  const t = plan();
  eq(t.status, 0, t.stderr);
  assert(/decision matrix: edge 'edge' vs cloud 'cloud'/.test(t.stdout), t.stdout);
  assert(/crossover:/.test(t.stdout), t.stdout);
});

test('a cheap box crosses over: traffic file with a known answer', async () => {
  // 1M requests of 500 tokens, cloud 2.5/10 per Mtok: c = (2.5*400 + 10*100)/500/1e6
  // = 4e-6 per token, e = 0.1; box 1 USD/hour: F = 730, V* = 730 / (4e-6 * 0.9).
  const f = path.join(dir, 'traffic.jsonl');
  fs.writeFileSync(f, '{"task":"extraction","requests":1000000,"tokens_in":400,"tokens_out":100,"escalation":0.1}\n');
  const r = plan('--traffic', f, '--usd-per-hour', '1', '--tokens-per-second', '5000', '--json');
  eq(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  const want = 730 / (4e-6 * 0.9);
  assert(Math.abs(j.box.crossover_tokens_per_month - want) < 1e-6 * want, `V* ${j.box.crossover_tokens_per_month} vs ${want}`);
  eq(j.cells[0].recommended, 'edge', 'cheap edge with few escalations');
  // Too many escalations: the cloud is recommended.
  fs.writeFileSync(f, '{"task":"reasoning","requests":1000,"tokens_in":400,"tokens_out":100,"escalation":0.6}\n');
  const r2 = plan('--traffic', f, '--json');
  eq(JSON.parse(r2.stdout).cells[0].recommended, 'cloud', 'escalation above the limit');
});

test('bad input: clear errors', async () => {
  const f = path.join(dir, 'bad.jsonl');
  fs.writeFileSync(f, '{"task":"x","requests":-1,"tokens_in":1,"tokens_out":1}\n');
  let r = plan('--traffic', f);
  eq(r.status, 2, 'bad traffic line');
  assert(/bad.jsonl, line 1: expected/.test(r.stderr), r.stderr);
  // A task the router never reports (a spelling of its own) would be a row of its own.
  fs.writeFileSync(f, '{"task":"summarisation","requests":1,"tokens_in":1,"tokens_out":1}\n');
  r = plan('--traffic', f);
  eq(r.status, 2, 'unknown task name');
  assert(/line 1: unknown task "summarisation" \(one of: extraction classification intent summarization/.test(r.stderr), r.stderr);
  r = plan('--edge', 'nope');
  eq(r.status, 2, 'unknown tier');
  assert(/--edge nope: no such tier/.test(r.stderr), r.stderr);
  r = plan('--utilization', '7');
  eq(r.status, 2, 'utilization out of range');
  r = spawnSync(L.SWITCHYARD, ['plan'], { encoding: 'utf8' });
  eq(r.status, 2, 'no config');
  r = plan('--store', `sqlite:${path.join(dir, 'missing.db')}`);
  eq(r.status, 1, 'missing ledger');
});

await run();
await edge.stop(); await cloud.stop();
L.cleanup();
})().catch((e) => { console.log(`not ok - harness: ${e.stack}`); process.exitCode = 1; if (L) L.cleanup(); });
