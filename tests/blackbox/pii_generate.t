#!/usr/bin/env node
// switchyard pii --generate: labelled records in the --eval format, every span inside
// its text and holding a value of its type, the same records for the same seed,
// --eval reading them back, no text of the evaluation files among them, and train
// pii's cross-validation errors.
'use strict';
let L;
(async () => {
L = await import('./lib.mjs');
const { test, run, eq, assert } = L;
const fs = await import('node:fs');
const path = await import('node:path');
const { spawnSync } = await import('node:child_process');
if (!fs.existsSync(L.SWITCHYARD)) { L.skipAll('build first'); return; }
const names = path.join(L.SHARED, 'data', 'names');
const templates = path.join(L.SHARED, 'data', 'pii', 'templates.txt');
if (!fs.existsSync(names) || !fs.existsSync(templates)) { L.skipAll('no shared data (SY_SHARED)'); return; }

const gen = (n, seed) => spawnSync(L.SWITCHYARD,
  ['pii', '--generate', String(n), '--seed', String(seed), '--names', names, '--templates', templates],
  { encoding: 'utf8', maxBuffer: 1 << 26 });

test('records are well formed, spans hold their values, the seed fixes them', async () => {
  const a = gen(300, 5);
  eq(a.status, 0, 'generated: ' + a.stderr);
  const recs = JSON.parse(a.stdout);
  eq(recs.length, 300, '300 records');
  const seen = new Set();
  for (const r of recs) {
    const cps = [...r.full_text];
    assert(Number.isInteger(r.template_id) && r.template_id >= 1, 'template id');
    for (const s of r.spans) {
      assert(s.start_position >= 0 && s.end_position > s.start_position &&
             s.end_position <= cps.length, 'span inside its text: ' + JSON.stringify(s));
      const v = cps.slice(s.start_position, s.end_position).join('');
      seen.add(s.entity_type);
      if (s.entity_type === 'PERSON') assert(/^[\p{L}][\p{L}\p{M} .,'-]*$/u.test(v), 'a name ("Last, First" too): ' + v);
      if (s.entity_type === 'CREDIT_CARD') assert(/^\d{4} \d{4} \d{4} \d{4}$/.test(v), 'a card: ' + v);
      if (s.entity_type === 'STREET_ADDRESS') assert(/\S/.test(v) && v === v.trim(), 'an address: ' + v);
    }
  }
  for (const t of ['PERSON', 'STREET_ADDRESS', 'CREDIT_CARD']) assert(seen.has(t), 'some ' + t);
  eq(gen(300, 5).stdout, a.stdout, 'same seed, same records');
  assert(gen(300, 6).stdout !== a.stdout, 'another seed, other records');
});

test('--eval reads them; a card generated is a card found', async () => {
  const f = path.join(L.tmp(), 'gen.json');
  fs.writeFileSync(f, gen(200, 9).stdout);
  const ev = spawnSync(L.SWITCHYARD, ['pii', '--json', '--eval', f, '--names', names], { encoding: 'utf8' });
  eq(ev.status, 0, 'evaluated: ' + ev.stderr);
  const rep = JSON.parse(ev.stdout);
  eq(rep.records, 200, '200 records');
  eq(rep.entities.CREDIT_CARD.overlap_r, 1, 'every generated card found');
  const bad = spawnSync(L.SWITCHYARD, ['pii', '--generate', '5', '--names', names, '--templates', '/nonexistent/t.txt'], { encoding: 'utf8' });
  assert(bad.status !== 0 && /nonexistent/.test(bad.stderr), 'a missing template file is named: ' + bad.stderr);
  // a misspelt placeholder is an error naming its line, not text of another kind
  const t = path.join(L.tmp(), 'typo.txt');
  fs.writeFileSync(t, 'Call {{first_name}} now.\nShip to {{frist_name}} at {{address}}.\n');
  const typo = spawnSync(L.SWITCHYARD, ['pii', '--generate', '5', '--names', names, '--templates', t], { encoding: 'utf8' });
  assert(typo.status !== 0 && /templates line 2: unknown placeholder \{\{frist_name\}\}/.test(typo.stderr),
         'an unknown placeholder is named with its line: ' + typo.status + ' ' + typo.stderr);
  eq(typo.stdout, '', 'no records written');
  fs.writeFileSync(t, 'Call {{first_name}} now.\nShip to {{name}} at {{address}}.\n');
  const good = spawnSync(L.SWITCHYARD, ['pii', '--generate', '5', '--names', names, '--templates', t], { encoding: 'utf8' });
  eq(good.status, 0, 'known placeholders: ' + good.stderr);
});

test('no generated text is a text of the labelled evaluation files', async () => {
  const evalTexts = new Set();
  for (const f of ['synth_dataset_v2.json', 'generated_small.json']) {
    const p = path.join(L.SHARED, 'data', 'pii', f);
    if (fs.existsSync(p)) for (const r of JSON.parse(fs.readFileSync(p, 'utf8'))) evalTexts.add(r.full_text);
  }
  if (!evalTexts.size) return;
  const recs = JSON.parse(gen(3000, 11).stdout);
  // a short template with one country, or one given name drawn from the most frequent
  // ("Jennifer is ..."), can meet an evaluation text by chance; a long text with an
  // address, a full name or two names in it cannot
  const val = (r, s) => [...r.full_text].slice(s.start_position, s.end_position).join('');
  const copied = recs.filter((r) => {
    if (!evalTexts.has(r.full_text) || r.full_text.length <= 60) return false;
    const per = r.spans.filter((s) => s.entity_type === 'PERSON');
    return r.spans.some((s) => s.entity_type === 'STREET_ADDRESS') || per.length > 1 ||
      per.some((s) => /\s/.test(val(r, s)));
  });
  eq(copied.length, 0, 'records with names equal to an evaluation text: ' +
     copied.slice(0, 3).map((r) => JSON.stringify(r.full_text)).join(', '));
  // the military postal forms are addresses, whole
  const mil = recs.flatMap((r) => r.spans.filter((s) => s.entity_type === 'STREET_ADDRESS')
    .map((s) => [...r.full_text].slice(s.start_position, s.end_position).join('')))
    .filter((v) => /^(USNS|USNV|USS|USCGC|PSC|Unit) /.test(v));
  assert(mil.length > 0 && mil.every((v) => /[AFD]PO A[AEP] \d{5}$/.test(v)), 'military addresses: ' + mil.slice(0, 3));
});

test('train pii --cv --errors names each held-out error with its template', async () => {
  const o = path.join(L.tmp(), 'm.bin');
  const t = spawnSync(L.SWITCHYARD, ['train', 'pii', '--records', '600', '--epochs', '1', '--cv', '2',
    '--errors', '--names', names, '--templates', templates, '-o', o], { encoding: 'utf8', maxBuffer: 1 << 26 });
  eq(t.status, 0, 'trained: ' + t.stderr);
  const errs = t.stdout.split('\n').filter((l) => /^(miss|false) /.test(l));
  assert(errs.length > 0, 'errors printed');
  for (const l of errs) assert(/^(miss|false) +(PERSON|STREET_ADDRESS) .* t\d+ +\| /.test(l), 'error line: ' + l);
  assert(/^all +600 \| /m.test(t.stdout), 'the folds\' total: ' + t.stdout.slice(-300));
  // the total split into the templates file's lines and the generator's own sentences
  const f = t.stdout.match(/^file +(\d+) \| /m), w = t.stdout.match(/^own +(\d+) \| /m);
  assert(f && w && +f[1] > 0 && +w[1] > 0 && +f[1] + +w[1] === 600, 'file and own rows: ' + t.stdout.slice(-400));
  assert(fs.statSync(o).size > 1000, 'model written');
});

test('--flag-rate --prompts takes every prompt of a set as one message; an unknown set is named', async () => {
  // the oracle: CLINC150's queries counted from its JSON, every split
  const clinc = JSON.parse(fs.readFileSync(path.join(L.SHARED, 'data', 'taskclass', 'clinc150', 'data_full.json'), 'utf8'));
  const queries = Object.values(clinc).reduce((n, v) => n + v.length, 0);
  const env = { ...process.env, SY_SHARED: L.SHARED };
  const r = spawnSync(L.SWITCHYARD, ['pii', '--names', names, '--flag-rate', '--prompts', 'clinc150'], { encoding: 'utf8', env });
  eq(r.status, 0, 'scanned: ' + r.stderr);
  eq(r.stdout.match(/^messages: (\d+)$/m)?.[1], String(queries), 'one message per query');
  assert(/^most frequent STREET_ADDRESS strings/m.test(r.stdout), 'addresses listed too');
  const bad = spawnSync(L.SWITCHYARD, ['pii', '--names', names, '--flag-rate', '--prompts', 'nope'], { encoding: 'utf8', env });
  assert(bad.status !== 0 && /prompt set 'nope'/.test(bad.stderr) && !/^messages:/m.test(bad.stdout),
    'an unknown set fails and is named: ' + bad.stderr);
});

test('--flag-rate --seconds times the scanner over the messages it counted', async () => {
  // the oracle: the messages written, cut at blank lines as --flag-rate cuts them
  const msgs = [];
  for (let i = 0; i < 40; i++)
    msgs.push(i % 3 ? `Note ${i}: the meeting moved to room ${i}.` : `Call Zoë Hernández at 212-555-01${10 + i} about ticket ${i}.\nThanks.`);
  const f = path.join(L.tmp(), 'msgs.txt');
  fs.writeFileSync(f, msgs.join('\n\n\n') + '\n\n');
  const bytes = msgs.reduce((n, m) => n + Buffer.byteLength(m), 0);
  const r = spawnSync(L.SWITCHYARD, ['pii', '--names', names, '--flag-rate', '--seconds', '0.2', f], { encoding: 'utf8' });
  eq(r.status, 0, 'scanned: ' + r.stderr);
  eq(r.stdout.match(/^messages: (\d+)$/m)?.[1], String(msgs.length), 'messages counted');
  eq(r.stdout.match(/^  PHONE_NUMBER +(\d+) /m)?.[1], String(msgs.filter((m) => /555/.test(m)).length), 'phones found');
  const t = r.stdout.match(/^throughput: ([\d.]+) MB\/s, ([\d.]+) us per message \((\d+) bytes, (\d+) passes, one thread\)$/m);
  assert(t, 'throughput printed: ' + r.stdout.slice(-300));
  eq(t[3], String(bytes), 'the bytes of the messages, not of the file');
  assert(+t[1] > 0 && +t[2] > 0 && +t[4] >= 1, 'a rate, a time and passes: ' + t[0]);
  // MB/s and us per message are two readings of one measurement
  const us = bytes / msgs.length / +t[1];
  assert(Math.abs(us - +t[2]) / us < 0.05, `us per message ${t[2]} against ${us.toFixed(2)} from MB/s`);
  const none = spawnSync(L.SWITCHYARD, ['pii', '--names', names, '--flag-rate', f], { encoding: 'utf8' });
  assert(none.status === 0 && !/^throughput:/m.test(none.stdout), 'no timing without --seconds');
  const bad = spawnSync(L.SWITCHYARD, ['pii', '--names', names, '--flag-rate', '--seconds', 'x', f], { encoding: 'utf8' });
  assert(bad.status === 2 && /bad value 'x' for --seconds/.test(bad.stderr), 'a bad --seconds is named: ' + bad.stderr);
});

test('--flag-rate counts a message past the scanner\'s candidate cap as flagged UNKNOWN, not clean', async () => {
  // 1.2 million IP addresses in one message: past the 2^20 candidates of a scan
  const f = path.join(L.tmp(), 'over.txt');
  fs.writeFileSync(f, 'Call Ann at 212-555-0100.\n\n' + '10.0.0.1 '.repeat(1200000) + '\n\nnothing here\n');
  const r = spawnSync(L.SWITCHYARD, ['pii', '--names', names, '--flag-rate', f], { encoding: 'utf8' });
  eq(r.status, 0, 'scanned: ' + r.stderr);
  eq(r.stdout.match(/^messages: (\d+)$/m)?.[1], '3', 'three messages');
  eq(r.stdout.match(/^  UNKNOWN +(\d+) /m)?.[1], '1', 'the refused one flagged UNKNOWN: ' + r.stdout.slice(0, 400));
  eq(r.stdout.match(/^  IP_ADDRESS +(\d+) /m), null, 'no partial findings of it');
  eq(r.stdout.match(/^flagged \(any type\): +(\d+) /m)?.[1], '2', 'the phone and the refused one');
});

await run();
})();
