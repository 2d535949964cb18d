#!/usr/bin/env node
// Many gateways, one PostgreSQL: the contextual bandit's statistics are shared. Two
// gateways on a throwaway PostgreSQL server (initdb + pg_ctl on a private Unix
// socket) take rewards; each one's store thread adds its delta to the store's
// totals atomically and reloads them, so both see every reward, none lost when
// they flush at the same time, and a restarted gateway starts from the totals.
'use strict';
let L;
let stopPg = () => {};
(async () => {
L = await import('./lib.mjs');
const { test, run, assert, eq, post, get, chat, sleep } = L;
const fs = await import('node:fs');
const os = await import('node:os');
const path = await import('node:path');
const { execFileSync, spawnSync } = await import('node:child_process');
if (!fs.existsSync(L.SWITCHYARD) || !fs.existsSync(L.UPSTREAM)) { L.skipAll('build first'); return; }

// The server binaries: $SY_PG_BINDIR, else the newest /usr/lib/postgresql/N/bin.
let bindir = process.env.SY_PG_BINDIR;
if (!bindir) {
  const vs = fs.existsSync('/usr/lib/postgresql') ? fs.readdirSync('/usr/lib/postgresql').sort((a, b) => b - a) : [];
  for (const v of vs) if (fs.existsSync(`/usr/lib/postgresql/${v}/bin/initdb`)) { bindir = `/usr/lib/postgresql/${v}/bin`; break; }
}
if (!bindir) { L.skipAll('PostgreSQL server binaries (initdb, pg_ctl) not found'); return; }
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-pgbb-'));
const asUser = [];
if (process.getuid() === 0) { // the server refuses to run as root
  const user = spawnSync('id', ['-u', 'postgres']).status === 0 ? 'postgres' : 'nobody';
  execFileSync('chown', [user, dir]);
  asUser.push('runuser', '-u', user, '--');
}
const pg = (args) => {
  const cmd = [...asUser, ...args];
  return spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8' });
};
const port = 20000 + (process.pid % 20000); // names the socket file only
let r = pg([`${bindir}/initdb`, '-D', `${dir}/data`, '-A', 'trust', '-U', 'sy', '-E', 'UTF8', '--locale=C', '--no-sync']);
if (r.status !== 0) { L.skipAll('initdb failed: ' + (r.stderr || '').slice(0, 200)); return; }
r = pg([`${bindir}/pg_ctl`, '-D', `${dir}/data`, '-l', `${dir}/server.log`, '-w', '-t', '60', '-o',
  `-k ${dir} -p ${port} -c listen_addresses='' -F`, 'start']);
if (r.status !== 0) { L.skipAll('pg_ctl start failed: ' + (r.stderr || '').slice(0, 200)); fs.rmSync(dir, { recursive: true, force: true }); return; }
stopPg = () => {
  pg([`${bindir}/pg_ctl`, '-D', `${dir}/data`, '-m', 'immediate', '-w', 'stop']);
  fs.rmSync(dir, { recursive: true, force: true });
};
const url = `postgresql://sy@/postgres?host=${dir}&port=${port}`;

const edge = await L.startUpstream('edge');
const cloud = await L.startUpstream('cloud');
const config = `
listen: 127.0.0.1:0
workers: 2
store: ${url}
log_level: info
tiers:
  edge: { kind: openai, base_url: "${edge.url}/v1", model: edge-small, privacy: on_prem, role: edge, retries: 0 }
  cloud: { kind: openai, base_url: "${cloud.url}/v1", model: big-model, privacy: external, retries: 0 }
routing:
  pii: { action: local_only }
  policy: bandit
  bandit: { algorithm: linucb, alpha: 0.5, explore: true }
`;
let a, b;
try {
  a = await L.startGateway(config, 'pg-a');
} catch (e) {
  if (/without PostgreSQL support/.test(String(e))) { stopPg(); L.skipAll('switchyard built without libpq'); return; }
  throw e;
}
b = await L.startGateway(config, 'pg-b');

const arms = async (g) => Object.fromEntries((await get(`${g.url}/v1/admin/bandit`)).json.arms.map((x) => [x.tier, x]));
// Answers n requests on gateway g forced to tier, and rates each with reward.
async function rate(g, tier, n, reward) {
  const rs = await Promise.all(Array.from({ length: n }, (_, i) =>
    post(`${g.url}/v1/chat/completions`, chat(`Question ${i} about trains`, { model: tier }))));
  const fb = await Promise.all(rs.map((x) => {
    eq(x.status, 200, 'answered: ' + x.text);
    return post(`${g.url}/v1/feedback`, { id: x.json.switchyard.id, reward });
  }));
  for (const f of fb) eq(f.status, 200, 'feedback accepted: ' + f.text);
}
// Waits (generous deadline) until both gateways show want = {tier: [n, reward_sum]}.
async function converge(want, what) {
  let seen = null;
  for (let i = 0; i < 300; i++) {
    const [x, y] = [await arms(a), await arms(b)];
    seen = { a: x, b: y };
    const ok = [x, y].every((m) => Object.entries(want).every(([t, [n, s]]) =>
      m[t].n === n && Math.abs(m[t].reward_sum - s) < 1e-6 && m[t].pending === 0));
    if (ok) return;
    await sleep(100);
  }
  assert(false, `${what}: want ${JSON.stringify(want)}, saw ${JSON.stringify(seen)}`);
}

test('rewards given to either gateway appear in the statistics both see', async () => {
  const fresh = await arms(a);
  eq(fresh.edge.n, 0, 'nothing learnt yet');
  await rate(a, 'edge', 6, 0.5);
  await rate(a, 'cloud', 4, 1);
  await rate(b, 'edge', 5, -0.25);
  const mine = await arms(b);
  assert(mine.edge.n >= 5, 'b counts its own rewards at once');
  await converge({ edge: [11, 6 * 0.5 - 5 * 0.25], cloud: [4, 4] }, 'merged');
});

test('rewards flushed by both gateways at the same time are all counted', async () => {
  const before = await arms(a);
  await Promise.all([rate(a, 'edge', 40, 0.25), rate(b, 'edge', 40, 0.5), rate(b, 'cloud', 10, -1)]);
  await converge({
    edge: [before.edge.n + 80, before.edge.reward_sum + 40 * 0.25 + 40 * 0.5],
    cloud: [before.cloud.n + 10, before.cloud.reward_sum - 10],
  }, 'concurrent');
});

test('a steady stream of rewards is shared while it lasts, not only after it', async () => {
  // Every reward is also a store write; the store thread must still run its
  // periodic rounds between writes.
  const base = (await arms(b)).cloud.n;
  let seen = 0, sent = 0;
  const t0 = Date.now();
  while (Date.now() - t0 < 30000 && seen < 5) {
    await rate(a, 'cloud', 1, 0.5);
    sent++;
    seen = (await arms(b)).cloud.n - base;
  }
  console.log(`# b saw ${seen} of ${sent} rewards given to a while they were streaming`);
  assert(seen >= 5, 'b saw the rewards given to a during the stream');
  await converge({ cloud: [base + sent, (await arms(a)).cloud.reward_sum] }, 'after the stream');
});

test('a restarted gateway starts from the shared totals', async () => {
  const before = await arms(b);
  eq(await a.stop(), 0, 'a exits cleanly');
  a = await L.startGateway(config, 'pg-a2');
  const after = await arms(a);
  eq(after.edge.n, before.edge.n, 'edge count restored');
  eq(after.cloud.n, before.cloud.n, 'cloud count restored');
  assert(/bandit state restored/.test(a.proc.stderrText), 'logged: ' + a.proc.stderrText.slice(-300));
});

await run();
eq(await a.stop(), 0, 'a exits cleanly');
eq(await b.stop(), 0, 'b exits cleanly');
await edge.stop();
await cloud.stop();
stopPg();
L.cleanup();
})().catch((e) => { console.log(`not ok - harness: ${e.stack}`); process.exitCode = 1; stopPg(); if (L) L.cleanup(); });
