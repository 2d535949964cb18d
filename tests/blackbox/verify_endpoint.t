#!/usr/bin/env node
// switchyard's own server as the verifier of cross-tier speculative decoding: the
// /v1/completions round of docs/speculative.md ("Serving as a verifier") on a local
// tier holding stories260K: a prompt of token ids, echo with the top alternative per
// position, ids in the answer ("token_id:N"), prompt_cache_key reuse between rounds,
// bad ids, and ids kept off every non-local tier.
'use strict';
let L;
(async () => {
L = await import('./lib.mjs');
const { test, run, assert, eq, post } = L;
const fs = await import('node:fs');
const path = await import('node:path');

const model = path.join(L.SHARED, 'data/models/llama2c/stories260K.bin');
const tok = path.join(L.SHARED, 'data/models/llama2c/tok512.bin');
if (!fs.existsSync(model)) { L.skipAll(`${model} is absent (../shared not here)`); return; }
if (!fs.existsSync(L.SWITCHYARD) || !fs.existsSync(L.UPSTREAM)) { L.skipAll('build first'); return; }

const cloud = await L.startUpstream('cloud');
// The token budget prefers the cloud for long answers: ids must stay local anyway.
const gw = await L.startGateway(`
listen: 127.0.0.1:0
store: sqlite:verify.db
log_level: warn
tiers:
  edge:
    kind: local
    model: ${model}
    tokenizer: ${tok}
    max_concurrency: 2
  cloud:
    kind: openai
    base_url: ${cloud.url}/v1
    model: big-model
    privacy: external
    cost: { usd_per_mtok_in: 2.5, usd_per_mtok_out: 10 }
routing:
  token_budget: { cloud_above: 8 }
`, 'verify');
const C = `${gw.url}/v1/completions`;
const id = (s) => { assert(/^token_id:\d+$/.test(s), 'token_id form: ' + s); return Number(s.slice(9)); };
const top1 = (o) => { const k = Object.keys(o); eq(k.length, 1, 'one top alternative'); return [id(k[0]), o[k[0]]]; };

// The ids of a text: score it as text with ids in the answer (BOS + the text's tokens).
async function idsOf(text) {
  const r = await post(C, { model: 'edge', prompt: text, max_tokens: 0, echo: true, logprobs: 1, return_tokens_as_token_ids: true });
  eq(r.status, 200, 'score text: ' + r.text.slice(0, 300));
  return { ids: [1, ...r.json.choices[0].logprobs.tokens.map(id)], lp: r.json.choices[0].logprobs };
}
// One verification round as the protocol sends it.
const round = (prompt, key, extra = {}) => post(C, {
  model: 'edge', prompt, max_tokens: 1, temperature: 0, echo: true, logprobs: 1,
  return_tokens_as_token_ids: true, ...(key ? { prompt_cache_key: key } : {}), ...extra,
});

test('token-id prompt: echo, top alternative per position, equal to scoring the same text', async () => {
  const text = 'Once upon a time there was a little girl named Lily';
  const { ids, lp: tlp } = await idsOf(text);
  assert(ids.length > 8, 'tokenized: ' + ids.length);
  const r = await round(ids);
  eq(r.status, 200, 'status: ' + r.text.slice(0, 300));
  eq(r.json.object, 'text_completion', 'object');
  eq(r.json.switchyard.tier, 'edge', 'served by the local tier');
  const c = r.json.choices[0], lp = c.logprobs;
  eq(lp.tokens.length, ids.length + 1, 'every prompt position plus one generated entry');
  eq(JSON.stringify(lp.tokens.slice(0, ids.length).map(id)), JSON.stringify(ids), 'echoed ids are the ids sent');
  eq(lp.token_logprobs[0], null, 'position 0: null logprob');
  eq(lp.top_logprobs[0], null, 'position 0: null top');
  assert(c.text.startsWith(text), 'echo text: ' + JSON.stringify(c.text));
  eq(r.json.usage.prompt_tokens, ids.length, 'usage.prompt_tokens');
  eq(r.json.usage.completion_tokens, 1, 'usage.completion_tokens');
  for (let i = 1; i < ids.length; i++) {
    // The text scoring's entry i-1 is the same position (its BOS is left out).
    assert(Math.abs(lp.token_logprobs[i] - tlp.token_logprobs[i - 1]) < 1e-5, `logprob ${i}: ${lp.token_logprobs[i]} vs ${tlp.token_logprobs[i - 1]}`);
    eq(JSON.stringify(lp.top_logprobs[i]), JSON.stringify(tlp.top_logprobs[i - 1]), `top ${i}`);
    const [t, v] = top1(lp.top_logprobs[i]);
    assert(v >= lp.token_logprobs[i] - 1e-6, `the top alternative is the most likely at ${i}`);
    if (t === ids[i]) assert(Math.abs(v - lp.token_logprobs[i]) < 1e-6, `same token, same logprob at ${i}`);
  }
  // The generated token is greedy: what plain generation from the same ids gives.
  const gen = await post(C, { model: 'edge', prompt: ids, max_tokens: 1, temperature: 0, logprobs: 1, return_tokens_as_token_ids: true });
  eq(gen.status, 200, 'generate: ' + gen.text.slice(0, 200));
  eq(lp.tokens[ids.length], gen.json.choices[0].logprobs.tokens[0], 'generated entry');
  // ... with its top alternative: under greedy decoding, itself.
  eq(top1(lp.top_logprobs[ids.length])[0], id(lp.tokens[ids.length]), 'generated entry: top alternative');
});

test('greedy verification of a draft reproduces the target: rounds with a cache key cost their new tokens', async () => {
  const { ids: ctx } = await idsOf('Tom had a big red ball');
  // The target's own greedy continuation, plainly.
  const plain = await post(C, { model: 'edge', prompt: ctx, max_tokens: 24, temperature: 0, logprobs: 1, return_tokens_as_token_ids: true });
  eq(plain.status, 200, 'plain: ' + plain.text.slice(0, 200));
  const want = plain.json.choices[0].logprobs.tokens.map(id);
  // A draft that is right for 3 tokens, then wrong: round by round as a drafter would.
  let seq = ctx.slice(), out = [], rounds = 0;
  const key = 'gen-' + Date.now();
  while (out.length < want.length) {
    const k = Math.min(4, want.length - out.length);
    const draft = want.slice(out.length, out.length + k).map((t, j) => (j === 3 ? (t + 1) % 512 : t));
    const r = await round([...seq, ...draft], key);
    eq(r.status, 200, 'round: ' + r.text.slice(0, 200));
    const lp = r.json.choices[0].logprobs;
    const n = seq.length + draft.length;
    let kept = 0;
    while (kept < draft.length && top1(lp.top_logprobs[seq.length + kept])[0] === draft[kept]) kept++;
    const next = kept < draft.length ? top1(lp.top_logprobs[seq.length + kept])[0] : id(lp.tokens[n]);
    // Round 2 on: everything up to the previous round's agreement was cached.
    const cached = r.json.usage.prompt_tokens_details.cached_tokens;
    if (rounds > 0) eq(cached, seq.length - 1, `round ${rounds}: cached ${cached} of ${n}`);
    else eq(cached, 0, 'first round computes everything');
    const acc = [...draft.slice(0, kept), next];
    out.push(...acc);
    seq.push(...acc);
    rounds++;
  }
  eq(JSON.stringify(out.slice(0, want.length)), JSON.stringify(want), 'verified output equals the target alone');
  assert(rounds < want.length, `fewer rounds than tokens: ${rounds}`);
  // Scores served from the cache equal recomputed ones.
  const again = await round(seq, key);
  const fresh = await round(seq);
  eq(JSON.stringify(again.json.choices[0].logprobs), JSON.stringify(fresh.json.choices[0].logprobs), 'cached = fresh scores');
  eq(again.json.usage.prompt_tokens_details.cached_tokens, seq.length - 1, 'an identical round reuses all but the last');
  eq(fresh.json.usage.prompt_tokens_details.cached_tokens, 0, 'no key: no reuse');
  // A round whose prefix differs falls back to recomputing from the difference.
  const other = seq.slice();
  other[5] = (other[5] + 7) % 512;
  const diff = await round(other, key);
  eq(diff.status, 200, 'status');
  // position 5 changed: tokens 0..3 keep their cache, token 4 is fed again for its row
  eq(diff.json.usage.prompt_tokens_details.cached_tokens, 4, 'reused up to the changed position');
  const dfresh = await round(other);
  eq(JSON.stringify(diff.json.choices[0].logprobs), JSON.stringify(dfresh.json.choices[0].logprobs), 'changed prefix: scores as fresh');
});

test('more keys than cache entries: evicted keys recompute, answers unchanged', async () => {
  const { ids } = await idsOf('The sun was warm and the birds sang');
  const keys = ['k1', 'k2', 'k3', 'k4', 'k5', 'k6'];
  const first = await Promise.all(keys.map((k) => round(ids, k)));
  for (const r of first) eq(r.status, 200, 'status: ' + r.text.slice(0, 200));
  const want = JSON.stringify(first[0].json.choices[0].logprobs);
  for (const k of keys) {
    const r = await round(ids, k);
    eq(JSON.stringify(r.json.choices[0].logprobs), want, 'key ' + k);
    const c = r.json.usage.prompt_tokens_details.cached_tokens;
    assert(c === 0 || c === ids.length - 1, 'cached all or nothing: ' + c);
  }
});

test('bad token ids: 400 naming the problem', async () => {
  const big = await round([1, 300, 512], 'bad');
  eq(big.status, 400, 'out of the vocabulary: ' + big.text.slice(0, 200));
  assert(/prompt\[2\] is 512, not a token id/.test(big.json.error.message), big.json.error.message);
  for (const prompt of [[], [1, -3], [1, 2.5], [1, 'x'], [[1, 2]]]) {
    const r = await round(prompt);
    eq(r.status, 400, `${JSON.stringify(prompt)}: ${r.text.slice(0, 200)}`);
    eq(r.json.error.param, 'prompt', 'param');
  }
});

test('token ids never reach a non-local tier', async () => {
  await cloud.reset();
  // Text with a long max_tokens goes to the cloud (token budget) ...
  const t = await post(C, { prompt: 'Once upon a time', max_tokens: 200 });
  eq(t.status, 200, 'text: ' + t.text.slice(0, 200));
  eq(t.json.switchyard.tier, 'cloud', 'the router prefers the cloud for text');
  // ... the same with ids stays on the local tier.
  const { ids } = await idsOf('Once upon a time');
  await cloud.reset();
  const r = await post(C, { prompt: ids, max_tokens: 200, temperature: 0 });
  eq(r.status, 200, 'ids: ' + r.text.slice(0, 200));
  eq(r.json.switchyard.tier, 'edge', 'served locally');
  assert(r.json.switchyard.local_only, 'marked local only');
  // Forcing the cloud tier is refused, and nothing was sent to it.
  const f = await post(C, { model: 'cloud', prompt: ids, max_tokens: 4 });
  eq(f.status, 403, 'forced external: ' + f.text.slice(0, 300));
  assert(/token ids is served only by local tiers/.test(f.json.error.message), f.json.error.message);
  eq((await cloud.received()).count, 0, 'cloud received nothing');
});

test('under keys, prompt_cache_key is each key\'s own: another key cannot see what it cached', async () => {
  Object.assign(process.env, { SY_T_VA: 'sk-va-5e1f', SY_T_VB: 'sk-vb-77c2' });
  const g2 = await L.startGateway(`
listen: 127.0.0.1:0
store: sqlite:verify-keys.db
log_level: warn
tiers:
  edge:
    kind: local
    model: ${model}
    tokenizer: ${tok}
    max_concurrency: 1
auth:
  keys:
    - { name: va, key_env: SY_T_VA }
    - { name: vb, key_env: SY_T_VB }
`, 'verify-keys');
  const C2 = `${g2.url}/v1/completions`;
  const { ids } = await idsOf('Once upon a time there was a little dog');
  const r2 = (auth) => post(C2, { model: 'edge', prompt: ids, max_tokens: 1, temperature: 0, echo: true,
    logprobs: 1, return_tokens_as_token_ids: true, prompt_cache_key: 'shared' },
    { authorization: `Bearer ${auth}` });
  let r = await r2('sk-va-5e1f');
  eq(r.status, 200, 'key a: ' + r.text.slice(0, 200));
  eq(r.json.usage.prompt_tokens_details.cached_tokens, 0, 'first use');
  r = await r2('sk-vb-77c2');
  eq(r.status, 200, 'key b');
  eq(r.json.usage.prompt_tokens_details.cached_tokens, 0, 'key b does not reuse key a\'s entry');
  r = await r2('sk-va-5e1f');
  eq(r.json.usage.prompt_tokens_details.cached_tokens, ids.length - 1, 'key a reuses its own');
  eq(await g2.stop(), 0, 'switchyard exit code');
});

await run();
eq(await gw.stop(), 0, 'switchyard exit code');

// A gateway without a local tier cannot serve ids at all.
const gw2 = await L.startGateway(`
listen: 127.0.0.1:0
store: sqlite:verify2.db
log_level: warn
tiers:
  cloud:
    kind: openai
    base_url: ${cloud.url}/v1
    model: big-model
    privacy: on_prem
`, 'nolocal');
await cloud.reset();
const r = await post(`${gw2.url}/v1/completions`, { prompt: [1, 2, 3], max_tokens: 1 });
eq(r.status, 503, 'no local tier: ' + r.text.slice(0, 300));
assert(/no local tier can serve/.test(r.json.error.message), r.json.error.message);
eq((await cloud.received()).count, 0, 'the on-prem tier received nothing');
eq(await gw2.stop(), 0, 'switchyard exit code');
await cloud.stop();
L.cleanup();
})().catch((e) => { console.log(`not ok - harness: ${e.stack}`); process.exitCode = 1; if (L) L.cleanup(); });
