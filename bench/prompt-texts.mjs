// bench/prompt-texts.mjs — writes the prompt sets of $SY_SHARED (default ../shared) as
// text files of messages separated by blank lines, the input of
// `switchyard pii --flag-rate`:
//
//   node bench/prompt-texts.mjs OUTDIR
//
// routing.txt: the prompts of data/routing/routing_train.csv (MMLU, GSM8K, MT-Bench,
// ARC, Winogrande, MBPP); specbench.txt: every turn of the Spec-Bench questions;
// banking77.txt and clinc150.txt: the short queries of both intent sets. A prompt's
// own blank lines split it into several messages.
import fs from 'node:fs';
import path from 'node:path';

const shared = process.env.SY_SHARED || '../shared';
const out = process.argv[2];
if (!out) {
  console.error('usage: node bench/prompt-texts.mjs OUTDIR');
  process.exit(2);
}
fs.mkdirSync(out, { recursive: true });

// RFC 4180 rows: quoted fields may hold commas, line breaks and doubled quotes.
function csvRows(text) {
  const rows = [];
  let row = [], field = '', quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') field += '"', i++;
      else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') row.push(field), field = '';
    else if (ch === '\n') row.push(field), rows.push(row), row = [], field = '';
    else if (ch !== '\r') field += ch;
  }
  if (field !== '' || row.length) row.push(field), rows.push(row);
  return rows;
}

function column(file, name) {
  const rows = csvRows(fs.readFileSync(path.join(shared, file), 'utf8'));
  const k = rows[0].indexOf(name);
  if (k < 0) throw new Error(`${file}: no column "${name}"`);
  return rows.slice(1).filter((r) => r.length > k).map((r) => r[k]);
}

function write(name, texts) {
  const msgs = texts.map((t) => t.trim()).filter((t) => t.length > 0);
  fs.writeFileSync(path.join(out, name), msgs.join('\n\n') + '\n');
  console.log(`${name}: ${msgs.length} prompts`);
}

write('routing.txt', column('data/routing/routing_train.csv', 'prompt'));
const spec = fs.readFileSync(path.join(shared, 'data/taskclass/specbench/spec_bench_question.jsonl'), 'utf8');
write('specbench.txt', spec.split('\n').filter((l) => l.trim()).flatMap((l) => JSON.parse(l).turns || []));
write('banking77.txt', ['train.csv', 'test.csv'].flatMap((f) => column(`data/taskclass/banking77/${f}`, 'text')));
const clinc = JSON.parse(fs.readFileSync(path.join(shared, 'data/taskclass/clinc150/data_full.json'), 'utf8'));
write('clinc150.txt', Object.values(clinc).flatMap((v) => v.map((q) => q[0])));
