#!/usr/bin/env node
// The dashboard: GET /v1/admin/dashboard against known traffic, then the page at
// GET /ui rendered by headless Chromium, its charts checked against the live JSON.
'use strict';
let L;
(async () => {
L = await import('./lib.mjs');
const { test, run, assert, eq, post, get, chat } = L;
const fs = await import('node:fs');
const path = await import('node:path');
const { execFileSync } = await import('node:child_process');

if (!fs.existsSync(L.SWITCHYARD) || !fs.existsSync(L.UPSTREAM)) {
  L.skipAll(`build ${L.SWITCHYARD} and ${L.UPSTREAM} first (make asan)`);
  return;
}
const CHROMIUM = ['chromium', 'chromium-browser', 'google-chrome'].map((c) => {
  try { return execFileSync('sh', ['-c', `command -v ${c}`]).toString().trim(); } catch { return ''; }
}).find((p) => p);

const edge = await L.startUpstream('edge');
const cloud = await L.startUpstream('cloud');
const tiersYaml = `
tiers:
  edge:
    kind: openai
    base_url: ${edge.url}/v1
    model: edge-small
    version: "v3"
    privacy: on_prem
    role: edge
    max_concurrency: 4
    retries: 0
    cost: { usd_per_hour: 0.36, tokens_per_second: 100 }
  cloud:
    kind: openai
    base_url: ${cloud.url}/v1
    model: big-model
    privacy: external
    retries: 0
    cost: { usd_per_mtok_in: 2.5, usd_per_mtok_out: 10 }
routing:
  pii: { action: local_only, min_score: 0.5 }
  token_budget: { cloud_above: 200 }
  policy: rules
`;
const gw = await L.startGateway(`
listen: 127.0.0.1:0
workers: 2
store: sqlite:ui.db
log_level: warn
${tiersYaml}`);

const EMAIL = 'jane.doe@example.com';
const sent = []; // { id, tier, status, pii }
async function send(content) {
  const r = await post(`${gw.url}/v1/chat/completions`, chat(content));
  sent.push({ id: r.headers.get('x-request-id'), tier: r.headers.get('x-switchyard-tier'), status: r.status, pii: content.includes(EMAIL) });
  return r;
}

test('traffic: short prompts, long prompts and prompts holding an email address', async () => {
  for (let i = 0; i < 5; i++) eq((await send(`What is ${i} plus ${i}?`)).status, 200, 'short prompt');
  const long = 'Explain the history of railway switching yards in detail. '.repeat(30);
  for (let i = 0; i < 3; i++) eq((await send(long + i)).status, 200, 'long prompt');
  for (let i = 0; i < 2; i++) eq((await send(`My email is ${EMAIL}, what is ${i}+1?`)).status, 200, 'pii prompt');
  const tiers = new Set(sent.map((s) => s.tier));
  assert(tiers.has('edge') && tiers.has('cloud'), `traffic reached both tiers: ${[...tiers]}`);
});

let dash;
test('GET /v1/admin/dashboard: counts, mix, cost and recent decisions match the traffic', async () => {
  const r = await get(`${gw.url}/v1/admin/dashboard`);
  eq(r.status, 200, 'status');
  dash = r.json;
  const byTier = {};
  for (const s of sent) byTier[s.tier] = (byTier[s.tier] || 0) + 1;
  eq(dash.tiers.map((t) => t.name).join(','), 'edge,cloud', 'tiers in config order');
  for (const [i, t] of dash.tiers.entries()) {
    eq(t.requests, byTier[t.name] || 0, `${t.name} requests`);
    eq(t.by_status['2xx'], byTier[t.name], `${t.name} 2xx`);
    eq(t.circuit, 'closed', `${t.name} circuit`);
    eq(t.healthy, true, `${t.name} healthy`);
    eq(t.latency_s.n, byTier[t.name], `${t.name} latency observations`);
    assert(t.latency_s.p50 > 0 && t.latency_s.p50 <= t.latency_s.p95 && t.latency_s.p95 <= t.latency_s.p99,
      `${t.name} percentiles ordered: ${JSON.stringify(t.latency_s)}`);
    const mixed = dash.mix.counts.reduce((a, row) => a + row[i], 0);
    eq(mixed, t.requests, `${t.name} routing mix total`);
  }
  eq(dash.mix.columns.join(','), 'edge,cloud,none', 'mix columns');
  eq(dash.mix.counts.length, 60, 'mix buckets');
  eq(dash.unserved.requests, 0, 'unserved');
  assert(dash.cost.cost_usd > 0, 'cost counted');
  assert(dash.cost.all_cloud_usd > dash.cost.cost_usd, 'the all-cloud counterfactual costs more with edge traffic');
  eq(dash.recent.length, sent.length, 'recent decisions');
  eq(dash.recent.map((d) => d.id).join(','), sent.map((s) => s.id).reverse().join(','), 'recent ids, newest first');
  for (const d of dash.recent) {
    const s = sent.find((x) => x.id === d.id);
    eq(d.tier, s.tier, `tier of ${d.id}`);
    eq(d.status, 200, `status of ${d.id}`);
    assert(d.reasons.length > 0, `reasons of ${d.id}`);
    eq(d.pii.join(','), s.pii ? 'EMAIL_ADDRESS' : '', `pii types of ${d.id}`);
  }
  assert(!r.text.includes(EMAIL) && !r.text.includes('jane'), 'no PII value in the dashboard');
  assert(!r.text.includes('railway'), 'no prompt text in the dashboard');
});

test('GET /ui serves the page; other methods are refused', async () => {
  const r = await get(`${gw.url}/ui`);
  eq(r.status, 200, 'status');
  assert(r.headers.get('content-type').startsWith('text/html'), 'html');
  assert(r.text.includes('/v1/admin/dashboard') && !/src=["']?https?:/.test(r.text), 'self-contained page');
  eq((await post(`${gw.url}/ui`, {})).status, 405, 'POST /ui');
  eq((await post(`${gw.url}/v1/admin/dashboard`, {})).status, 405, 'POST dashboard');
});

// Headless Chromium: the page rendered from live data.
function chromium(args) {
  const prof = fs.mkdtempSync(path.join(L.tmp(), 'chr-'));
  return execFileSync(CHROMIUM, ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
    `--user-data-dir=${prof}`, '--virtual-time-budget=5000', ...args],
  { maxBuffer: 64 << 20, timeout: 120000, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}
const attrs = (tag) => Object.fromEntries([...tag.matchAll(/([\w-]+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));

test('headless Chromium renders the charts from the live data', async () => {
  if (!CHROMIUM) { console.log('# SKIP chromium is not installed (scripts/install-deps.sh)'); return; }
  const dom = chromium(['--dump-dom', `${gw.url}/ui`]);
  const now = (await get(`${gw.url}/v1/admin/dashboard`)).json;
  assert(/<body[^>]*data-rounds="\d+"/.test(dom), 'the page fetched and drew at least once');
  const bars = [...dom.matchAll(/<g [^>]*class="bar"[^>]*>/g)].map((m) => attrs(m[0]));
  const mix = [...dom.matchAll(/<path [^>]*class="mix"[^>]*>/g)].map((m) => attrs(m[0]));
  const lat = [...dom.matchAll(/<g [^>]*class="lat"[^>]*>/g)].map((m) => attrs(m[0]));
  for (const t of now.tiers) {
    const b = bars.find((x) => x['data-tier'] === t.name);
    assert(b, `a request bar for ${t.name}`);
    eq(Number(b['data-count']), t.requests, `${t.name} bar count`);
    const m = mix.find((x) => x['data-tier'] === t.name);
    assert(m && /^M[\d.,L]+Z$/.test(m.d), `a mix area for ${t.name}`);
    eq(Number(m['data-total']), t.requests, `${t.name} mix total`);
    const l = lat.find((x) => x['data-tier'] === t.name);
    eq(Number(l && l['data-n']), t.latency_s.n, `${t.name} latency group`);
    assert(new RegExp(`<div class="tier" data-tier="${t.name}" data-circuit="closed">`).test(dom), `${t.name} card`);
  }
  eq(bars.find((x) => x['data-tier'] === 'none')['data-count'], '0', 'no unserved requests');
  const reasons = [...dom.matchAll(/<g [^>]*class="reason"[^>]*>/g)].map((m) => attrs(m[0]));
  eq(reasons.length, Object.keys(now.reasons).length, 'a bar per reason kind');
  for (const [kind, n] of Object.entries(now.reasons)) {
    const r = reasons.find((x) => x['data-kind'] === kind);
    eq(Number(r && r['data-count']), n, `reason ${kind}`);
  }
  assert(now.reasons.pii >= 2 && now.reasons.budget >= 3, `reason kinds counted: ${JSON.stringify(now.reasons)}`);
  const latRects = [...dom.matchAll(/<rect [^>]*data-metric="latency_s"[^>]*>/g)].length;
  eq(latRects, 3 * now.tiers.length, 'p50/p95/p99 bars per tier');
  const rows = [...dom.matchAll(/<tr data-id="([^"]+)">/g)].map((m) => m[1]);
  eq(rows.join(','), now.recent.map((d) => d.id).join(','), 'recent decisions table');
  assert(dom.includes('EMAIL_ADDRESS') && !dom.includes(EMAIL), 'PII types shown, values never');
  const cost = [...dom.matchAll(/<g [^>]*class="cost"[^>]*>/g)].map((m) => attrs(m[0]));
  eq(Number(cost.find((c) => c['data-kind'] === 'cost')['data-usd']), now.cost.cost_usd, 'cost bar');
  if (process.env.SY_UI_SCREENSHOT) { // docs/dashboard.png
    chromium([`--screenshot=${path.resolve(process.env.SY_UI_SCREENSHOT)}`, '--window-size=1280,900', `${gw.url}/ui`]);
  }
});

test('with auth on, /ui and the dashboard need the admin key', async () => {
  process.env.SY_T_UI_ADMIN = 'admin-ui-5e1';
  process.env.SY_T_UI_USER = 'sk-ui-user-77';
  const g2 = await L.startGateway(`
listen: 127.0.0.1:0
store: sqlite:ui-auth.db
log_level: warn
auth:
  admin_key_env: SY_T_UI_ADMIN
  keys:
    - { name: user, key_env: SY_T_UI_USER, team: t }
${tiersYaml}`, 'gw-auth');
  try {
    for (const p of ['/ui', '/v1/admin/dashboard']) {
      eq((await get(`${g2.url}${p}`)).status, 401, `${p} without a key`);
      eq((await get(`${g2.url}${p}`, { authorization: 'Bearer sk-ui-user-77' })).status, 403, `${p} with a non-admin key`);
      eq((await get(`${g2.url}${p}`, { authorization: 'Bearer admin-ui-5e1' })).status, 200, `${p} with the admin key`);
    }
  } finally { await g2.stop(); }
});

try { await run(); } finally {
  const code = await gw.stop();
  if (code !== 0) { console.log(`# gateway exited ${code}: ${gw.proc.stderrText.slice(-2000)}`); process.exitCode = 1; }
  L.cleanup();
}
})().catch((e) => { console.log(`not ok - ${e.stack}`); if (L) L.cleanup(); process.exitCode = 1; });
