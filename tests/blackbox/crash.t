#!/usr/bin/env node
// kill -9 under load loses no answered request's ledger row: every answer the
// client counted has its row in the store after a restart (the per-worker journal
// is replayed), and no row is there twice.
'use strict';
let L;
(async () => {
L = await import('./lib.mjs');
const { test, run, assert, eq, post, chat, sleep } = L;
const fs = await import('node:fs');
const path = await import('node:path');
const { execFileSync } = await import('node:child_process');

if (!fs.existsSync(L.SWITCHYARD) || !fs.existsSync(L.UPSTREAM)) {
  L.skipAll(`build ${L.SWITCHYARD} and ${L.UPSTREAM} first (make asan)`);
  return;
}
try { execFileSync('sqlite3', ['-version']); } catch {
  L.skipAll('the sqlite3 command is not installed (scripts/install-deps.sh)');
  return;
}
const cloud = await L.startUpstream('cloud');
const dir = L.tmp();
const cfg = path.join(dir, 'crash.yaml');
fs.writeFileSync(cfg, `
listen: 127.0.0.1:0
workers: 2
store: sqlite:crash.db
log_level: warn
tiers:
  cloud: { kind: openai, base_url: "${cloud.url}/v1", model: big-model, retries: 0 }
`);
const ledgerIds = () => execFileSync('sqlite3', [path.join(dir, 'crash.db'), 'SELECT id FROM ledger'])
  .toString().split('\n').filter(Boolean);

test('kill -9 under load, restart: a row for every answer the client counted', async () => {
  const gw = await L.startGatewayFile(cfg);
  const V1 = `${gw.url}/v1/chat/completions`;
  const answered = [];
  let stop = false;
  const client = async (i) => {
    while (!stop) {
      try {
        const r = await post(V1, chat(`row ${i}`));
        if (r.status === 200 && r.json) answered.push(r.json.switchyard.id);
      } catch { /* the kill cuts requests in flight: not answered */ }
    }
  };
  const clients = Array.from({ length: 8 }, (_, i) => client(i));
  /* Kill while answers keep coming: after 60 of them (or 20 s on a slow machine). */
  for (let t = 0; t < 200 && answered.length < 60; t++) await sleep(100);
  gw.proc.kill('SIGKILL');
  await new Promise((r) => gw.proc.exitCode !== null || gw.proc.signalCode ? r() : gw.proc.on('exit', r));
  stop = true;
  await Promise.all(clients);
  assert(answered.length >= 20, 'the load ran: ' + answered.length);
  const before = new Set(ledgerIds());
  const lostBefore = answered.filter((id) => !before.has(id)).length;

  const gw2 = await L.startGatewayFile(cfg);
  eq(await gw2.stop(), 0, 'restart exits cleanly');
  const rows = ledgerIds();
  const have = new Set(rows);
  const missing = answered.filter((id) => !have.has(id));
  console.log(`# ${answered.length} answered; ${lostBefore} not in the store at the kill; ${missing.length} missing after restart`);
  eq(missing.length, 0, 'answered requests without a ledger row: ' + missing.slice(0, 3).join(','));
  eq(rows.length, have.size, 'no row twice');
  const left = fs.readdirSync(path.join(dir, 'crash.db.journal')).filter((f) => f.endsWith('.journal'));
  eq(left.length, 0, 'journals deleted after a clean stop: ' + left.join(','));
});

await run();
await cloud.stop();
L.cleanup();
})().catch((e) => { console.log(`not ok - harness: ${e.stack}`); process.exitCode = 1; if (L) L.cleanup(); });
