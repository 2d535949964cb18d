#!/usr/bin/env node
// The README's curl examples work as written: every `curl` command of its sh blocks
// that talks to localhost:8080 runs (with curl itself, through sh) against the
// default config (its own copy, the repository's data/ and models/) served on an
// ephemeral port, with a stand-in cloud behind SWITCHYARD_CLOUD_URL; each must exit 0
// and print a JSON answer that is not an error.
'use strict';
let L;
(async () => {
L = await import('./lib.mjs');
const { test, run, assert, eq } = L;
const fs = await import('node:fs');
const path = await import('node:path');
const { execFile } = await import('node:child_process');

if (!fs.existsSync(L.SWITCHYARD) || !fs.existsSync(L.UPSTREAM)) { L.skipAll('build first'); return; }
const haveCurl = await new Promise((r) => execFile('curl', ['--version'], (e) => r(!e)));
if (!haveCurl) { L.skipAll('the curl command is not installed'); return; }

// Commands: lines of ```sh blocks starting with curl, continuation lines joined.
const md = fs.readFileSync(path.join(L.ROOT, 'README.md'), 'utf8');
const cmds = [];
for (const block of md.split('```sh').slice(1).map((b) => b.split('```')[0])) {
  const joined = block.replace(/\\\n\s*/g, ' ');
  for (const line of joined.split('\n')) {
    const cmd = line.replace(/\s+#.*$/, '').trim();
    if (/^curl\s/.test(cmd) && cmd.includes('localhost:8080')) cmds.push(cmd);
  }
}

const root = path.join(L.tmp(), 'readme');
for (const d of ['configs', 'data', 'models'])
  fs.cpSync(path.join(L.ROOT, d), path.join(root, d), { recursive: true });
const cloud = await L.startUpstream('cloud');
const gw = await L.startGatewayFile(path.join(root, 'configs', 'default.yaml'),
  { env: { SWITCHYARD_CLOUD_URL: `${cloud.url}/v1`, CLOUD_API_KEY: 'test-key' } });

const sh = (cmd) => new Promise((resolve) => execFile('sh', ['-c', cmd], { timeout: 60000 },
  (err, stdout, stderr) => resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr })));

test('the README has curl examples', async () => {
  assert(cmds.length >= 3, 'found: ' + JSON.stringify(cmds));
});

for (const cmd of cmds) {
  test(`README: ${cmd.slice(0, 90)}`, async () => {
    const r = await sh(cmd.replace(/localhost:8080/g, `127.0.0.1:${gw.port}`));
    eq(r.code, 0, 'curl exit code: ' + r.stderr);
    let j = null;
    try { j = JSON.parse(r.stdout); } catch { /* checked below */ }
    assert(j && typeof j === 'object', 'a JSON answer: ' + r.stdout.slice(0, 300));
    assert(!j.error, 'not an error: ' + r.stdout.slice(0, 300));
  });
}

await run();
eq(await gw.stop(), 0, 'switchyard exit code');
await cloud.stop();
L.cleanup();
})().catch((e) => { console.log(`not ok - harness: ${e.stack}`); process.exitCode = 1; if (L) L.cleanup(); });
