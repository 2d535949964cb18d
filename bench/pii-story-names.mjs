#!/usr/bin/env node
// bench/pii-story-names.mjs [BUILD]: recall on fiction. Every occurrence (as a whole
// word) of 24 given names frequent in $SY_SHARED/data/corpora/tinystories_val_subset.txt
// counts as a name; the table gives the share of occurrences a PERSON span of
// `switchyard pii --json` covers, with the labeller and with the rules, per name and in
// all. The names' contexts are the stories' own ("a little boy named Timmy", "Max
// barked"), none written for the detector; docs/pii.md reads the figures.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const B = process.argv[2] || 'build/rel';
process.chdir(path.join(path.dirname(new URL(import.meta.url).pathname), '..'));
const shared = process.env.SY_SHARED || '../shared';
const file = path.join(shared, 'data/corpora/tinystories_val_subset.txt');
if (!fs.existsSync(file)) {
  console.log(`bench/pii-story-names: ${file} absent (set SY_SHARED): skipped`);
  process.exit(0);
}
const NAMES = ('Lily Timmy Tom Ben Max Sue Anna Sam Jack Lucy Mia Tim Sara Amy Bob Billy Jane ' +
  'Molly Jill Mark Emma Joe Sally Kate').split(' ');
const bin = path.join(B, 'switchyard');
if (!fs.existsSync(bin)) {
  console.log(`bench/pii-story-names: ${bin} absent (make MODE=rel all first)`);
  process.exit(1);
}
const text = fs.readFileSync(file);

// Byte offsets of the whole-word occurrences of name in text.
function occurrences(name) {
  const out = [];
  const isWord = (b) => (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) ||
    (b >= 0x61 && b <= 0x7a) || b === 0x5f || b >= 0x80;
  for (let i = text.indexOf(name); i >= 0; i = text.indexOf(name, i + 1)) {
    const e = i + Buffer.byteLength(name);
    if ((i === 0 || !isWord(text[i - 1])) && (e >= text.length || !isWord(text[e]))) out.push(i);
  }
  return out;
}

// For each name, [covered, occurrences] under the detector chosen by extra args.
function recall(extra) {
  const out = execFileSync(bin,
    ['pii', '--names', 'data/names', ...extra, '--json', file], { maxBuffer: 256 << 20 });
  const spans = JSON.parse(out).spans.filter((s) => s.type === 'PERSON');
  const covered = new Uint8Array(text.length);
  for (const s of spans) covered.fill(1, s.start, s.end);
  return Object.fromEntries(NAMES.map((n) => {
    const occ = occurrences(n);
    return [n, [occ.filter((o) => covered[o]).length, occ.length]];
  }));
}

const lab = recall([]), rules = recall(['--rules']);
const sum = (r) => Object.values(r).reduce((a, [h, n]) => [a[0] + h, a[1] + n], [0, 0]);
const fmt = ([h, n]) => `${h}/${n} (${n ? (h / n).toFixed(3) : '-'})`;
console.log(`PERSON recall on story names, ${path.basename(file)}`);
console.log(`${'name'.padEnd(8)} ${'labeller'.padStart(20)} ${'rules'.padStart(20)}`);
for (const n of NAMES) console.log(`${n.padEnd(8)} ${fmt(lab[n]).padStart(20)} ${fmt(rules[n]).padStart(20)}`);
console.log(`${'all'.padEnd(8)} ${fmt(sum(lab)).padStart(20)} ${fmt(sum(rules)).padStart(20)}`);
