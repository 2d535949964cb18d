#!/usr/bin/env node
// Speculative decoding across tiers through two real gateways: gateway A's local tier
// holds the Q4_0 copy of stories260K and drafts; gateway B's local tier holds the F32
// model and verifies (POST /v1/completions with token ids and prompt logprobs). A's
// greedy answer must equal B's answer alone for 50 TinyStories prompts. Stand-in
// verifiers (tests/tools/verifier_standin, a real engine session answering the same
// protocol) that drop logprobs, echo other ids, or fail mid-answer give plain
// decoding with the error; a request with personal data never reaches B.
'use strict';
let L;
(async () => {
L = await import('./lib.mjs');
const { test, run, assert, eq, post, get } = L;
const fs = await import('node:fs');
const path = await import('node:path');
const { spawn } = await import('node:child_process');

const M = path.join(L.SHARED, 'data/models/llama2c');
const STANDIN = path.join(L.BUILD, 'tools', 'verifier_standin');
const stories = path.join(L.SHARED, 'data/corpora/tinystories_val_subset.txt');
if (!fs.existsSync(path.join(M, 'stories260K.bin')) || !fs.existsSync(stories)) {
  L.skipAll(`${M}/stories260K.bin is absent (../shared not here)`); return;
}
if (!fs.existsSync(L.SWITCHYARD) || !fs.existsSync(STANDIN)) { L.skipAll('build first'); return; }

const T = L.tmp();
const target = path.join(T, 't.gguf'), draft = path.join(T, 'q4.gguf');
let r = await L.runSwitchyard(['convert', path.join(M, 'stories260K.bin'), '--tokenizer', path.join(M, 'tok512.bin'), target]);
if (r.code !== 0) throw new Error('convert: ' + r.stderr);
r = await L.runSwitchyard(['quantize', target, draft, '--type', 'q4_0']);
if (r.code !== 0) throw new Error('quantize: ' + r.stderr);
// Weak drafts from the pipeline: a few-step distilled student (a 128-token context: the
// prompts and their 40 tokens fit) and a pruned copy.
const student = path.join(T, 'student.gguf'), pruned = path.join(T, 'pruned.gguf');
r = await L.runSwitchyard(['distill', '-m', target, '-o', student, '--dim', '16', '--layers', '1', '--heads', '2',
  '--steps', '3', '--batch', '1', '--seq', '128', '-q']);
if (r.code !== 0) throw new Error('distill: ' + r.stderr);
// A student with a 64-token context: longer answers end where it can no longer draft.
const short = path.join(T, 'student64.gguf');
r = await L.runSwitchyard(['distill', '-m', target, '-o', short, '--dim', '16', '--layers', '1', '--heads', '2',
  '--steps', '3', '--batch', '1', '--seq', '64', '-q']);
if (r.code !== 0) throw new Error('distill: ' + r.stderr);
r = await L.runSwitchyard(['prune', '-m', target, '-o', pruned, '--ffn', '0.5', '--heads', '0.5', '--calib-tokens', '64', '-q']);
if (r.code !== 0) throw new Error('prune: ' + r.stderr);

// The stand-in verifier (tests/tools/verifier_standin.c) on the F32 model.
async function standin(args = []) {
  const pf = path.join(T, `vs-${Date.now()}-${Math.random()}.port`);
  const proc = spawn(STANDIN, ['-m', target, '--port', '0', '--port-file', pf, '--quiet', ...args],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  proc.stderrText = '';
  proc.stderr.on('data', (d) => { proc.stderrText += d; });
  for (let i = 0; i < 600 && !fs.existsSync(pf); i++) await L.sleep(20);
  const port = parseInt(fs.readFileSync(pf, 'utf8'), 10);
  const url = `http://127.0.0.1:${port}`;
  return {
    url, proc,
    async count() { return (await get(`${url}/_received`)).json.count; },
    async stop() { proc.kill('SIGTERM'); await new Promise((res) => proc.exitCode !== null ? res() : proc.on('exit', res)); },
  };
}

// Gateway B: the target model alone on its local tier.
const B = await L.startGateway(`
store: sqlite:b.db
log_level: warn
tiers:
  target:
    kind: local
    model: ${target}
    max_concurrency: 1
`, 'b');

// Completion requests B has served (its /metrics).
async function verifierCount() {
  const m = (await get(`${B.url}/metrics`)).text;
  let n = 0;
  for (const l of m.split('\n')) if (l.startsWith('switchyard_requests_total{')) n += Number(l.split(' ').pop());
  return n;
}

const bad = { nolp: await standin(['--drop-logprobs']), vocab: await standin(['--shift-ids']), fail: await standin(['--fail-after', '3']) };
const edge = (name, verifier, draftMax, model = draft) => `
  ${name}:
    kind: local
    model: ${model}
    version: q4
    max_concurrency: 1
    speculative: { verifier: ${verifier}, draft_max: ${draftMax} }`;
const verifierTier = (name, url) => `
  ${name}:
    kind: openai
    base_url: ${url}/v1
    model: target
    version: f32
    privacy: external
    timeout_ms: 20000
    breaker: { failures: 1000 }`;
const A = await L.startGateway(`
store: sqlite:a.db
log_level: warn
tiers:${edge('edge', 'big', 'auto')}${edge('edge4', 'big', 4)}${edge('student', 'big', 3, student)}${edge('pruned', 'big', 3, pruned)}${edge('short', 'big', 3, short)}${edge('nolp', 'v_nolp', 4)}${edge('vocab', 'v_vocab', 4)}${edge('fail', 'v_fail', 2)}${verifierTier('big', B.url)}${verifierTier('v_nolp', bad.nolp.url)}${verifierTier('v_vocab', bad.vocab.url)}${verifierTier('v_fail', bad.fail.url)}
routing:
  pii: { action: local_only }
`, 'a');

// 50 prompts: the first 3 to 7 words of the first 50 TinyStories paragraphs.
const prompts = [];
for (const line of fs.readFileSync(stories, 'utf8').split('\n')) {
  if (prompts.length === 50) break;
  if (line.length < 40) continue;
  prompts.push(line.split(' ').slice(0, 3 + prompts.length % 5).join(' '));
}

const complete = (url, model, prompt, extra = {}) =>
  post(`${url}/v1/completions`, { model, prompt, max_tokens: 40, temperature: 0, ...extra });

test('greedy identity: 50 prompts, A (Q4_0 drafting, verified) equals B alone', async () => {
  let drafted = 0, accepted = 0, rounds = 0;
  for (let i = 0; i < prompts.length; i++) {
    const ref = await complete(B.url, 'target', prompts[i]);
    eq(ref.status, 200, 'B: ' + ref.text);
    const tier = i % 2 ? 'edge4' : 'edge';
    const a = await complete(A.url, tier, prompts[i]);
    eq(a.status, 200, 'A: ' + a.text);
    const sp = a.json.switchyard.speculative;
    assert(sp && sp.rounds > 0 && sp.error === null, 'speculative figures: ' + JSON.stringify(sp));
    eq(a.json.choices[0].text, ref.json.choices[0].text, `prompt ${i} '${prompts[i]}' (${tier})`);
    eq(sp.draft_max, tier === 'edge' ? 'auto' : 4, 'draft_max');
    drafted += sp.drafted; accepted += sp.accepted; rounds += sp.rounds;
  }
  const acc = accepted / drafted;
  console.log(`# acceptance ${acc.toFixed(3)} (${accepted}/${drafted} drafts, ${rounds} rounds, 50 prompts x 40 tokens)`);
  assert(acc > 0.3 && acc <= 1, 'acceptance of the Q4_0 copy: ' + acc);
});

test('greedy identity with the pipeline drafts: a distilled student and a pruned model, 50 prompts each', async () => {
  for (const tier of ['student', 'pruned']) {
    let drafted = 0, accepted = 0;
    for (let i = 0; i < prompts.length; i++) {
      const ref = await complete(B.url, 'target', prompts[i]);
      const a = await complete(A.url, tier, prompts[i]);
      eq(a.status, 200, `A (${tier}): ` + a.text);
      const sp = a.json.switchyard.speculative;
      assert(sp && sp.rounds > 0 && sp.error === null, 'speculative figures: ' + JSON.stringify(sp));
      if (a.json.choices[0].text !== ref.json.choices[0].text) console.log('# mismatch: ' + JSON.stringify({a: a.json.choices[0], sp, au: a.json.usage, ref: ref.json.choices[0], ru: ref.json.usage}));
      eq(a.json.choices[0].text, ref.json.choices[0].text, `prompt ${i} '${prompts[i]}' (${tier})`);
      drafted += sp.drafted; accepted += sp.accepted;
    }
    console.log(`# ${tier}: acceptance ${(accepted / drafted).toFixed(3)} (${accepted}/${drafted} drafts)`);
  }
});

test('at the drafting model\'s context end the answer stops: no token the verifier did not make', async () => {
  const long = prompts.reduce((a, b) => (b.length > a.length ? b : a));
  const ref = await complete(B.url, 'target', long, { max_tokens: 80 });
  const a = await complete(A.url, 'short', long, { max_tokens: 80 });
  eq(a.status, 200, 'A: ' + a.text);
  const sp = a.json.switchyard.speculative;
  eq(sp.local_tokens, 0, 'no token made by the edge alone');
  eq(a.json.choices[0].finish_reason, 'length', 'finish');
  assert(a.json.usage.prompt_tokens + a.json.usage.completion_tokens <= 64, 'within the 64-token context');
  assert(a.json.usage.completion_tokens < ref.json.usage.completion_tokens, 'shorter than the verifier alone');
  assert(ref.json.choices[0].text.startsWith(a.json.choices[0].text), 'a prefix of the verifier\'s answer');
});

test('streamed: the same text, the speculative figures on the last chunk', async () => {
  const ref = await complete(B.url, 'target', prompts[3]);
  const s = await complete(A.url, 'edge', prompts[3], { stream: true });
  eq(s.status, 200, 'status');
  const ev = L.sseEvents(s.text).filter((e) => e !== '[DONE]');
  eq(ev.map((e) => e.choices?.[0]?.text || '').join(''), ref.json.choices[0].text, 'streamed text');
  const sp = ev[ev.length - 1].switchyard.speculative;
  assert(sp && sp.rounds > 0 && sp.verifier === 'big', 'speculative: ' + JSON.stringify(sp));
});

test('chat completions are verified too', async () => {
  const body = (model) => ({ model, messages: [{ role: 'user', content: prompts[7] }], max_tokens: 30, temperature: 0 });
  const ref = await post(`${B.url}/v1/chat/completions`, body('target'));
  const a = await post(`${A.url}/v1/chat/completions`, body('edge'));
  eq(a.status, 200, a.text);
  eq(a.json.choices[0].message.content, ref.json.choices[0].message.content, 'chat text');
  assert(a.json.switchyard.speculative.rounds > 0, 'verified');
});

test('sampled requests decode plainly and say why', async () => {
  const before = await verifierCount();
  const a = await complete(A.url, 'edge', prompts[0], { temperature: 0.8, seed: 7 });
  eq(a.status, 200, a.text);
  assert(/sampled/.test(a.json.switchyard.speculative.skipped), 'skipped: ' + JSON.stringify(a.json.switchyard.speculative));
  eq(await verifierCount(), before, 'the verifier was not called');
});

test('personal data under local_only never reaches the verifier', async () => {
  const before = await verifierCount();
  const a = await complete(A.url, 'edge', 'Lily wrote to jane.doe@example.com and her friend', {});
  eq(a.status, 200, a.text);
  eq(a.json.switchyard.local_only, true, 'local_only');
  assert(/personal data/.test(a.json.switchyard.speculative.skipped), 'skipped: ' + JSON.stringify(a.json.switchyard.speculative));
  assert(a.json.choices[0].text.length > 0, 'the edge answered alone');
  eq(await verifierCount(), before, 'the verifier saw nothing');
});

test('a verifier without prompt logprobs: plain decoding, the error said once', async () => {
  const a1 = await complete(A.url, 'nolp', prompts[1]);
  const a2 = await complete(A.url, 'nolp', prompts[2]);
  for (const a of [a1, a2]) {
    eq(a.status, 200, a.text);
    const sp = a.json.switchyard.speculative;
    assert(/no prompt logprobs/.test(sp.error) && sp.rounds === 0 && sp.local_tokens > 0, JSON.stringify(sp));
    assert(a.json.choices[0].text.length > 0, 'answered');
  }
  await L.sleep(100);
  const said = A.proc.stderrText.split('\n').filter((l) => /v_nolp cannot verify/.test(l));
  eq(said.length, 1, 'logged once: ' + A.proc.stderrText.slice(-2000));
});

test('a verifier with another vocabulary (echoed ids differ): plain decoding, the error', async () => {
  const a = await complete(A.url, 'vocab', prompts[4]);
  eq(a.status, 200, a.text);
  const sp = a.json.switchyard.speculative;
  assert(/vocabulary/.test(sp.error) && sp.rounds === 0, JSON.stringify(sp));
});

test('a verifier failing mid-answer: the edge finishes, marked degraded', async () => {
  const ref = await complete(B.url, 'target', prompts[5]);
  const a = await complete(A.url, 'fail', prompts[5]);
  eq(a.status, 200, a.text);
  const sp = a.json.switchyard.speculative;
  assert(sp.rounds === 3 && sp.degraded === true && /HTTP 500/.test(sp.error) && sp.local_tokens > 0, JSON.stringify(sp));
  // What the three verified rounds kept is the target's text.
  const text = a.json.choices[0].text, refText = ref.json.choices[0].text;
  let same = 0;
  while (same < text.length && text[same] === refText[same]) same++;
  assert(same > 0, `verified prefix kept: '${text}' vs '${refText}'`);
});

test('/metrics and /v1/versions report acceptance per tier pair', async () => {
  const m = (await get(`${A.url}/metrics`)).text;
  const line = m.split('\n').find((l) => l.startsWith('switchyard_speculative_acceptance{drafter="edge",verifier="big"}'));
  assert(line, 'acceptance gauge: ' + m.slice(0, 500));
  const v = Number(line.split(' ').pop());
  assert(v > 0.3 && v <= 1, 'acceptance ' + v);
  assert(/switchyard_speculative_total\{drafter="nolp",verifier="v_nolp",what="unusable"\} 2/.test(m), 'unusable counted');
  assert(/switchyard_speculative_total\{drafter="fail",verifier="v_fail",what="fallbacks"\} 1/.test(m), 'fallback counted');
  const vr = await get(`${A.url}/v1/versions`);
  eq(vr.status, 200, vr.text);
  const e = vr.json.versions.find((x) => x.tier === 'edge' && x.version === 'q4');
  assert(e && e.speculative_acceptance > 0.3, 'entry: ' + JSON.stringify(e));
  const p = vr.json.pairs.find((x) => x.edge_tier === 'edge' && x.cloud_tier === 'big');
  assert(p && p.acceptance_rate > 0.3 && p.cloud_version === 'f32', 'pair: ' + JSON.stringify(vr.json.pairs));
});

test('gateways stop cleanly', async () => {
  eq(await A.stop(), 0, 'A exit');
  eq(await B.stop(), 0, 'B exit');
  for (const s of [bad.nolp, bad.vocab, bad.fail]) await s.stop();
});

await run();
})().catch((e) => { console.log('not ok - setup: ' + (e && e.stack || e)); process.exitCode = 1; }).finally(() => L && L.cleanup());
