#!/usr/bin/env node
// A first run without ../shared: the default config, with the repository's own
// data/ (stories260K and the census name lists) copied into a temporary folder
// where no ../shared exists, serves from the in-process edge and detects names;
// serve --check loads every file the config names and fails naming key and line.
'use strict';
let L;
(async () => {
L = await import('./lib.mjs');
const { test, run, assert, eq, post, chat } = L;
const fs = await import('node:fs');
const path = await import('node:path');

if (!fs.existsSync(L.SWITCHYARD)) { L.skipAll(`build ${L.SWITCHYARD} first (make asan)`); return; }

// <tmp>/fresh/{configs,data,models}: <tmp>/shared does not exist.
const root = path.join(L.tmp(), 'fresh');
for (const d of ['configs', 'data', 'models'])
  fs.cpSync(path.join(L.ROOT, d), path.join(root, d), { recursive: true });
assert(!fs.existsSync(path.join(root, '..', 'shared')), 'no ../shared next to the copy');
const cfg = path.join(root, 'configs', 'default.yaml');
const elsewhere = fs.mkdtempSync(path.join(L.tmp(), 'cwd-'));
const noCloud = { SWITCHYARD_CLOUD_URL: '', CLOUD_API_KEY: '' };

test('serve --check loads the default config from another directory', async () => {
  const r = await L.runSwitchyard(['serve', '-c', cfg, '--check'], { cwd: elsewhere });
  eq(r.code, 0, 'exit code: ' + r.stderr);
  assert(r.stdout.includes('valid'), 'says valid: ' + r.stdout);
});

test('serve --check names the key and line of a missing or broken file', async () => {
  const text = fs.readFileSync(cfg, 'utf8');
  const bad = path.join(root, 'configs', 'bad.yaml');
  const cases = [
    [text.replace('../data/names', '../data/no-names'), 'routing.pii.names_dir'],
    [text.replace('stories260K/tok512.bin', 'stories260K/missing.bin'), 'tiers.edge.tokenizer'],
    [text.replace('stories260K/stories260K.bin', 'stories260K/tok512.bin'), 'tiers.edge.model'],
    [text.replace('../models/router.bin', '../data/names/census1990_last.txt'), 'routing.model'],
    [text.replace('../models/taskclass.bin', '../models/none.bin'), 'routing.classifier'],
  ];
  for (const [yaml, key] of cases) {
    assert(yaml !== text, 'the case changes the config: ' + key);
    fs.writeFileSync(bad, yaml);
    const r = await L.runSwitchyard(['serve', '-c', bad, '--check'], { cwd: elsewhere });
    eq(r.code, 1, `exit code for ${key}`);
    const orig = text.split('\n');
    const want = yaml.split('\n').findIndex((l, i) => l !== orig[i]) + 1; /* the changed line */
    assert(r.stderr.includes(`${key}, line ${want}:`), `names ${key} and line ${want}: ${r.stderr}`);
  }
});

test('the default config serves from the edge and detects a name, with no ../shared', async () => {
  const gw = await L.startGatewayFile(cfg, { cwd: elsewhere, env: noCloud });
  const r = await post(`${gw.url}/v1/chat/completions`,
    chat('My friend Margaret Johnson told me a story', { max_tokens: 12, temperature: 0 }));
  eq(r.status, 200, 'status: ' + r.text);
  eq(r.json.switchyard.tier, 'edge', 'answered by the in-process edge');
  assert(r.json.choices[0].message.content.length > 0, 'generated text');
  assert(r.json.switchyard.pii.includes('PERSON'), 'PERSON detected: ' + JSON.stringify(r.json.switchyard.pii));
  eq(await gw.stop(), 0, 'clean exit');
  assert(fs.existsSync(path.join(root, 'switchyard.db')), 'the store path resolved from the config folder');
  assert(!fs.existsSync(path.join(elsewhere, 'switchyard.db')), 'nothing written in the cwd');
});

await run();
L.cleanup();
})().catch((e) => { console.log(`not ok - harness: ${e.stack}`); process.exitCode = 1; if (L) L.cleanup(); });
