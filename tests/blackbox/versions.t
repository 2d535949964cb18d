#!/usr/bin/env node
// Model versions and drift: traffic on edge version v1, a SIGHUP reload to v2 whose
// stand-in upstream answers with low-confidence logprobs (so the cascade escalates),
// then GET /v1/versions, /metrics, the dashboard and `switchyard versions` show both
// versions with their figures and flag v2's drift, logged once.
'use strict';
let L;
(async () => {
L = await import('./lib.mjs');
const { test, run, assert, eq, post, get, chat, sleep } = L;
const fs = await import('node:fs');
const path = await import('node:path');
const { execFileSync } = await import('node:child_process');

if (!fs.existsSync(L.SWITCHYARD) || !fs.existsSync(L.UPSTREAM)) {
  L.skipAll(`build ${L.SWITCHYARD} and ${L.UPSTREAM} first (make asan)`);
  return;
}
const edge = await L.startUpstream('edge');
const cloud = await L.startUpstream('cloud');
const N = 24;
const config = (edgeVersion) => `
listen: 127.0.0.1:0
workers: 2
store: sqlite:versions.db
log_level: warn
tiers:
  edge:
    kind: openai
    base_url: ${edge.url}/v1
    model: edge-small
    version: "${edgeVersion}"
    privacy: on_prem
    role: edge
    logprobs: true
    retries: 0
    cost: { usd_per_hour: 0.36, tokens_per_second: 100 }
  cloud:
    kind: openai
    base_url: ${cloud.url}/v1
    model: big-model
    version: "c1"
    privacy: external
    retries: 0
    cost: { usd_per_mtok_in: 2.5, usd_per_mtok_out: 10 }
routing:
  pii: { action: local_only, min_score: 0.5 }
  policy: rules
  escalation: { enabled: true, min_confidence: 0.55 }
drift: { min_requests: ${N}, escalation_rate: 0.1, confidence: 0.1, error_rate: 0.05, cost_per_request: 0.25, interval_s: 0 }
`;
const cfg = path.join(L.tmp(), 'versions.yaml');
fs.writeFileSync(cfg, config('v1'));
const gw = await L.startGatewayFile(cfg);
const V1 = `${gw.url}/v1/chat/completions`;
const edgeVersion = async () => (await get(`${gw.url}/v1/models/edge`)).json;
const near = (a, b, eps = 1e-9) => Math.abs(a - b) <= eps;
let report;

test('traffic on v1, a reload to v2 that escalates more, and /v1/versions flags the drift', async () => {
  await edge.control({ logprob: -0.05 }); // confident: the edge answer stands
  for (let i = 0; i < N; i++) {
    const r = await post(V1, chat(`Hello there, how are you? ${i}`, { max_tokens: 20 }));
    eq(r.status, 200, 'v1 request: ' + r.text);
    eq(r.json.switchyard.tier, 'edge', 'v1 answered on the edge');
  }
  fs.writeFileSync(cfg, config('v2'));
  gw.proc.kill('SIGHUP');
  for (const t0 = Date.now(); Date.now() - t0 < 20000 && !JSON.stringify(await edgeVersion()).includes('"v2"');) {
    await sleep(25);
  }
  assert(JSON.stringify(await edgeVersion()).includes('"v2"'), 'the reload applied');
  await edge.control({ logprob: -3 }); // v2 is unsure of itself: escalations
  let escalated = 0;
  for (let i = 0; i < N; i++) {
    const r = await post(V1, chat(`Hello there, how are you? again ${i}`, { max_tokens: 20 }));
    eq(r.status, 200, 'v2 request: ' + r.text);
    if (r.json.switchyard.escalated) escalated++;
  }
  eq(escalated, N, 'every v2 answer escalated');

  const r = await get(`${gw.url}/v1/versions`);
  eq(r.status, 200, 'GET /v1/versions: ' + r.text);
  report = r.json;
  const v = (tier, ver) => report.versions.find((e) => e.tier === tier && e.version === ver);
  const e1 = v('edge', 'v1'), e2 = v('edge', 'v2'), c1 = v('cloud', 'c1');
  assert(e1 && e2 && c1, 'edge v1, edge v2 and cloud c1 listed: ' + r.text);
  eq(e1.requests, N, 'v1 requests');
  eq(e1.served, N, 'v1 served');
  eq(e1.escalation_rate, 0, 'v1 escalation rate');
  eq(e1.error_rate, 0, 'v1 error rate');
  assert(e1.mean_confidence > 0.55, 'v1 confident: ' + e1.mean_confidence);
  eq(e1.speculative_acceptance, null, 'no speculative pair: acceptance null');
  eq(e1.drift, false, 'v1 is the baseline');
  eq(e1.previous, null, 'v1 has no previous version');
  eq(e2.requests, N, 'v2 requests');
  eq(e2.served, 0, 'v2 answered none itself');
  eq(e2.escalation_rate, 1, 'v2 escalation rate');
  assert(e2.mean_confidence < 0.55, 'v2 unsure: ' + e2.mean_confidence);
  assert(e2.cost_per_request > e1.cost_per_request, 'escalations cost more');
  assert(e1.first_seen_ms <= e1.last_seen_ms && e1.last_seen_ms <= e2.first_seen_ms, 'v1 came first');
  eq(e2.previous, 'v1', 'v2 compared against v1');
  eq(e2.drift, true, 'v2 drifted');
  const reasons = e2.drift_reasons.join(' ');
  for (const k of ['escalation_rate', 'mean_confidence', 'cost_per_request'])
    assert(reasons.includes(k), `reason ${k}: ${reasons}`);
  assert(!reasons.includes('error_rate'), 'errors did not move: ' + reasons);
  eq(c1.requests, 0, 'no request was sent to the cloud first');
  eq(c1.served, N, 'the cloud answered the escalations');
  const p = (ev) => report.pairs.find((x) => x.edge_version === ev && x.cloud_version === 'c1');
  eq(p('v1').requests, N, 'pair (v1, c1) requests');
  eq(p('v1').escalation_rate, 0, 'pair (v1, c1) escalation rate');
  eq(p('v2').escalation_rate, 1, 'pair (v2, c1) escalation rate');
  eq(p('v2').acceptance_rate, null, 'pair acceptance null');
  assert(near(report.thresholds.escalation_rate, 0.1), 'thresholds shown');
});

test('the drift metric, one log line, the dashboard section and a bad since', async () => {
  await get(`${gw.url}/v1/versions`); // a second look logs nothing new
  const m = (await get(`${gw.url}/metrics`)).text;
  assert(m.includes('switchyard_version_drift{tier="edge",version="v2"} 1'), 'drift metric v2: ' + m.split('\n').filter((l) => l.includes('drift')).join('\n'));
  assert(m.includes('switchyard_version_drift{tier="edge",version="v1"} 0'), 'drift metric v1');
  assert(m.includes('switchyard_tier_info{tier="edge",model="edge-small",version="v2"} 1'), 'tier info');
  const lines = gw.proc.stderrText.split('\n').filter((l) => l.includes('version_drift'));
  eq(lines.length, 1, 'one drift log line: ' + lines.join('\n'));
  const logged = JSON.parse(lines[0]);
  eq(logged.tier, 'edge', 'log tier');
  eq(logged.version, 'v2', 'log version');
  eq(logged.previous, 'v1', 'log previous');
  const d = (await get(`${gw.url}/v1/admin/dashboard`)).json;
  eq(JSON.stringify(d.versions.versions), JSON.stringify(report.versions), 'the dashboard shows the same report');
  const bad = await get(`${gw.url}/v1/versions?since=yesterdayish`);
  eq(bad.status, 400, 'bad since: ' + bad.text);
});

test('the dashboard page draws the versions table from the live report', async () => {
  const chromium = ['chromium', 'chromium-browser', 'google-chrome'].map((c) => {
    try { return execFileSync('sh', ['-c', `command -v ${c}`]).toString().trim(); } catch { return ''; }
  }).find((p) => p);
  if (!chromium) { console.log('# SKIP chromium is not installed (scripts/install-deps.sh)'); return; }
  const prof = fs.mkdtempSync(path.join(L.tmp(), 'chr-'));
  const dom = execFileSync(chromium, ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
    `--user-data-dir=${prof}`, '--virtual-time-budget=5000', '--dump-dom', `${gw.url}/ui`],
  { maxBuffer: 64 << 20, timeout: 120000, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
  const rows = [...dom.matchAll(/<tr [^>]*data-version="([^"]*)"[^>]*>/g)].map((m) => m[0]);
  const row = (v) => rows.find((r) => r.includes(`data-version="${v}"`) && r.includes('data-tier="edge"'));
  assert(row('v1') && row('v2'), 'a row per edge version: ' + rows.join(' | '));
  assert(row('v2').includes('data-drift="true"') && row('v1').includes('data-drift="false"'), 'drift shown');
  assert(row('v2').includes(`data-requests="${N}"`), 'v2 requests');
  assert(dom.includes('DRIFT vs v1'), 'drift reasons drawn');
});

test('with auth on, /v1/versions needs the admin key', async () => {
  const acfg = path.join(L.tmp(), 'versions-auth.yaml');
  fs.writeFileSync(acfg, config('v1').replace('sqlite:versions.db', 'sqlite:versions-auth.db') +
    'auth:\n  admin_key_env: SY_V_ADMIN\n  keys:\n    - { name: user, key_env: SY_V_USER, team: t }\n');
  const agw = await L.startGatewayFile(acfg, { env: { SY_V_ADMIN: 'adm-1f2e', SY_V_USER: 'sk-u-9c8b' } });
  const url = `${agw.url}/v1/versions`;
  eq((await get(url)).status, 401, 'no key');
  eq((await get(url, { authorization: 'Bearer sk-u-9c8b' })).status, 403, 'a user key');
  const r = await get(url, { authorization: 'Bearer adm-1f2e' });
  eq(r.status, 200, 'the admin key: ' + r.text);
  eq(r.json.versions.length, 0, 'an empty ledger lists no version');
  eq(await agw.stop(), 0, 'exit code');
});

test('switchyard versions prints the same from the store', async () => {
  eq(await gw.stop(), 0, 'switchyard exit code');
  assert(!/ERROR: (AddressSanitizer|LeakSanitizer)/.test(gw.proc.stderrText), 'sanitizers clean');
  const j = L.runSwitchyard(['versions', '-c', cfg, '--json'], { cwd: path.dirname(cfg) });
  const t = L.runSwitchyard(['versions', '-c', cfg], { cwd: path.dirname(cfg) });
  const [rj, rt] = await Promise.all([j, t]);
  eq(rj.code, 3, 'exit 3 when a version drifted: ' + rj.stderr);
  eq(JSON.stringify(JSON.parse(rj.stdout).versions), JSON.stringify(report.versions), 'CLI JSON = /v1/versions');
  eq(rt.code, 3, 'table exit: ' + rt.stderr);
  console.log(rt.stdout.trimEnd().split('\n').map((l) => '# ' + l).join('\n'));
  const row = rt.stdout.split('\n').find((l) => /^edge\s+v2\s/.test(l));
  assert(row && row.includes('DRIFT vs v1') && row.includes('escalation_rate 0->1'), 'table row: ' + rt.stdout);
  assert(/^edge\s+v2\s+cloud\s+c1\s+24\s+1\.000/m.test(rt.stdout), 'pair row: ' + rt.stdout);
});

test('a restart on the same store flags the drift again, from the periodic check', async () => {
  fs.writeFileSync(cfg, config('v2').replace('interval_s: 0', 'interval_s: 1'));
  const g2 = await L.startGatewayFile(cfg);
  // the drift gauge itself: switchyard_tier_info{...,version="v2"} 1 is there from the start
  const flagged = 'switchyard_version_drift{tier="edge",version="v2"} 1';
  let m = '';
  for (const t0 = Date.now(); Date.now() - t0 < 20000 && !m.includes(flagged);) {
    m = (await get(`${g2.url}/metrics`)).text;
    if (!m.includes(flagged)) await sleep(25);
  }
  assert(m.includes(flagged), 'flagged without a GET /v1/versions: ' +
    m.split('\n').filter((l) => l.includes('version_drift{')).join(' | '));
  const d = (await get(`${g2.url}/v1/admin/dashboard`)).json;
  assert(d.versions && d.versions.versions.some((v) => v.version === 'v2' && v.drift), 'dashboard section filled');
  await sleep(1500); // at least one more periodic check
  eq(await g2.stop(), 0, 'exit code');
  eq(g2.proc.stderrText.split('\n').filter((l) => l.includes('version_drift')).length, 1, 'logged once');
});

await run();
await edge.stop();
await cloud.stop();
L.cleanup();
})().catch((e) => { console.log(`not ok - harness: ${e.stack}`); process.exitCode = 1; if (L) L.cleanup(); });
