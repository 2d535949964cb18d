#!/usr/bin/env node
// A local tier with `draft:` (in-process speculative decoding, docs/speculative.md):
// the Q4_0 copy of stories260K drafts for stories260K; through the gateway, greedy
// answers equal those of the same model without a draft for 50 prompts, the switchyard
// object says what was drafted and accepted (or why a request decoded plainly), and
// serve --check refuses a draft of another vocabulary or a larger one, naming the key.
'use strict';
let L;
(async () => {
L = await import('./lib.mjs');
const { test, run, assert, eq, post } = L;
const fs = await import('node:fs');
const path = await import('node:path');

const M = path.join(L.SHARED, 'data/models/llama2c');
const model = path.join(M, 'stories260K.bin'), tok = path.join(M, 'tok512.bin');
const A = path.join(L.SHARED, 'data/models/aidreams260K');
const corpus = path.join(L.SHARED, 'data/corpora/tinystories_val_subset.txt');
if (!fs.existsSync(model)) { L.skipAll(`${model} is absent (../shared not here)`); return; }
if (!fs.existsSync(L.SWITCHYARD)) { L.skipAll('build first'); return; }

const dir = L.tmp();
const t = path.join(dir, 't.gguf'), q4 = path.join(dir, 'q4.gguf'), other = path.join(dir, 'a.gguf');
for (const args of [['convert', model, '--tokenizer', tok, t], ['quantize', t, q4, '--type', 'q4_0'],
  ['convert', path.join(A, 'aidreams260K.bin'), '--tokenizer', path.join(A, 'tok512_aidreams.bin'), other]]) {
  const r = await L.runSwitchyard(args);
  if (r.code !== 0) { console.log(`not ok - harness: switchyard ${args[0]}: ${r.stderr}`); process.exitCode = 1; return; }
}
const tier = (name, extra) => `
  ${name}:
    kind: local
    model: ${model}
    tokenizer: ${tok}
    max_concurrency: 2${extra}`;
const gw = await L.startGateway(`
listen: 127.0.0.1:0
store: sqlite:draft.db
log_level: warn
tiers:${tier('plain', '')}${tier('spec', `
    draft: ${q4}
    draft_max: 5`)}
`, 'draft');
const C = `${gw.url}/v1/completions`;

// 50 prompts: the first words of TinyStories paragraphs.
const prompts = fs.readFileSync(corpus, 'utf8').split('\n').filter((l) => l.split(' ').length > 8)
  .slice(0, 50).map((l) => l.split(' ').slice(0, 3 + (l.length % 5)).join(' '));

test('greedy: a draft tier answers exactly as the same model without a draft, 50 prompts', async () => {
  eq(prompts.length, 50, 'prompts');
  let drafted = 0, accepted = 0, rounds = 0, tokens = 0;
  for (let i = 0; i < prompts.length; i += 2) {
    const pair = prompts.slice(i, i + 2);
    const body = (p, m) => ({ model: m, prompt: p, max_tokens: 40, temperature: 0 });
    const [a0, b0, a1, b1] = await Promise.all(pair.flatMap((p) => [post(C, body(p, 'plain')), post(C, body(p, 'spec'))]));
    for (const [a, b, p] of [[a0, b0, pair[0]], [a1, b1, pair[1]]]) {
      eq(a.status, 200, 'plain: ' + a.text.slice(0, 200));
      eq(b.status, 200, 'spec: ' + b.text.slice(0, 200));
      eq(b.json.choices[0].text, a.json.choices[0].text, `prompt ${JSON.stringify(p)}`);
      eq(b.json.usage.completion_tokens, a.json.usage.completion_tokens, 'same token count');
      const s = b.json.switchyard.speculative;
      eq(s.applied, true, 'speculative applied');
      assert(s.accepted <= s.drafted && s.rounds >= 1, JSON.stringify(s));
      assert(s.rounds <= b.json.usage.completion_tokens, 'a round emits one token at least');
      eq(a.json.switchyard.speculative, undefined, 'no draft, no speculative object');
      drafted += s.drafted; accepted += s.accepted; rounds += s.rounds; tokens += b.json.usage.completion_tokens;
    }
  }
  console.log(`# 50 prompts: ${tokens} tokens in ${rounds} rounds, acceptance ${(accepted / drafted).toFixed(2)}`);
  assert(accepted / drafted > 0.5, 'a Q4_0 copy agrees mostly: ' + accepted / drafted);
});

test('sampled requests use the draft too; stop strings, logprobs, n > 1 decode plainly and say so', async () => {
  const s = await post(C, { model: 'spec', prompt: 'Once upon a time', max_tokens: 30, temperature: 0.8, seed: 5 });
  eq(s.status, 200, 'status: ' + s.text.slice(0, 200));
  eq(s.json.switchyard.speculative.applied, true, 'sampled: applied');
  const s2 = await post(C, { model: 'spec', prompt: 'Once upon a time', max_tokens: 30, temperature: 0.8, seed: 5 });
  eq(s2.json.choices[0].text, s.json.choices[0].text, 'seeded: reproducible');
  for (const [extra, why] of [[{ stop: ['.'] }, /stop strings/], [{ logprobs: 2 }, /logprobs/], [{ n: 2 }, /n > 1/], [{ echo: true }, /echo/]]) {
    const body = { prompt: 'Once upon a time', max_tokens: 12, temperature: 0, ...extra };
    const r = await post(C, { model: 'spec', ...body });
    const p = await post(C, { model: 'plain', ...body });
    eq(r.status, 200, 'status: ' + r.text.slice(0, 200));
    eq(r.json.switchyard.speculative.applied, false, JSON.stringify(extra) + ': plain');
    assert(why.test(r.json.switchyard.speculative.reason), 'reason: ' + r.json.switchyard.speculative.reason);
    eq(JSON.stringify(r.json.choices), JSON.stringify(p.json.choices), 'same answer as without a draft');
  }
  // Chat requests go through the same path.
  const c = await post(`${gw.url}/v1/chat/completions`, { model: 'spec', messages: [{ role: 'user', content: 'Tom and Sue' }], max_tokens: 20, temperature: 0 });
  const cp = await post(`${gw.url}/v1/chat/completions`, { model: 'plain', messages: [{ role: 'user', content: 'Tom and Sue' }], max_tokens: 20, temperature: 0 });
  eq(c.json.choices[0].message.content, cp.json.choices[0].message.content, 'chat: same greedy text');
  eq(c.json.switchyard.speculative.applied, true, 'chat: applied');
});

test('serve --check: a draft of another vocabulary, a larger draft, draft on a non-local tier', async () => {
  const check = async (yaml) => {
    const f = path.join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
    fs.writeFileSync(f, yaml);
    return L.runSwitchyard(['serve', '-c', f, '--check']);
  };
  const local = (m, d) => `tiers:\n  edge:\n    kind: local\n    model: ${m}\n    draft: ${d}\n`;
  let r = await check(local(t, other));
  eq(r.code, 1, 'another vocabulary: ' + r.stderr);
  assert(/tiers\.edge\.draft, line 5: .*does not share the target's vocabulary/.test(r.stderr), r.stderr);
  r = await check(local(q4, t));
  eq(r.code, 1, 'larger draft: ' + r.stderr);
  assert(/tiers\.edge\.draft, line 5: .*larger than the target/.test(r.stderr), r.stderr);
  r = await check(local(t, path.join(dir, 'none.gguf')));
  eq(r.code, 1, 'missing draft: ' + r.stderr);
  assert(/tiers\.edge\.draft, line 5: .*No such file/.test(r.stderr), r.stderr);
  r = await check(`tiers:\n  c:\n    kind: openai\n    base_url: http://127.0.0.1:9/v1\n    model: m\n    draft: ${q4}\n`);
  eq(r.code, 1, 'openai tier: ' + r.stderr);
  assert(/tiers\.c\.draft, line 6: 'draft' is a key of local tiers/.test(r.stderr), r.stderr);
  r = await check(`tiers:\n  edge:\n    kind: local\n    model: ${t}\n    draft_max: 4\n`);
  assert(/tiers\.edge\.draft_max, line 5: 'draft_max' needs 'draft'/.test(r.stderr), r.stderr);
  r = await check(local(t, q4) + '    draft_max: 99\n');
  eq(r.code, 1, 'draft_max out of range: ' + r.stderr);
  assert(/draft_max/.test(r.stderr), r.stderr);
  r = await check(local(t, q4));
  eq(r.code, 0, 'a good draft: ' + r.stderr);
});

test('a cascade over a draft tier: its confidence comes from the speculative answer', async () => {
  if (!fs.existsSync(L.UPSTREAM)) return;
  const cloud = await L.startUpstream('cloud');
  const g = await L.startGateway(`
listen: 127.0.0.1:0
store: sqlite:cascade.db
log_level: warn
tiers:${tier('edge', `
    draft: ${q4}`)}
  cloud:
    kind: openai
    base_url: ${cloud.url}/v1
    model: big-model
    privacy: external
routing:
  escalation: { enabled: true, min_confidence: 0.0 }
`, 'cascade');
  const body = { messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 16, temperature: 0 };
  const route = await post(`${g.url}/v1/route`, body);
  assert(route.json.decision.cascade, 'cascades: ' + JSON.stringify(route.json.decision));
  const r = await post(`${g.url}/v1/chat/completions`, body);
  eq(r.status, 200, 'status: ' + r.text.slice(0, 200));
  eq(r.json.switchyard.tier, 'edge', 'edge answer stands');
  assert(typeof r.json.switchyard.confidence === 'number', 'confidence from the token logprobs');
  eq(r.json.switchyard.speculative.applied, true, 'the cascade\'s logprobs do not stop the draft');
  const p = await post(`${gw.url}/v1/chat/completions`, { ...body, model: 'plain' });
  eq(r.json.choices[0].message.content, p.json.choices[0].message.content, 'same greedy text');
  eq(await g.stop(), 0, 'exit');
  await cloud.stop();
});

await run();
eq(await gw.stop(), 0, 'switchyard exit code');
L.cleanup();
})().catch((e) => { console.log(`not ok - harness: ${e.stack}`); process.exitCode = 1; if (L) L.cleanup(); });
