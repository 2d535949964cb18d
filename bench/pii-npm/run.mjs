// run.mjs — the npm side of bench/pii: the same texts through @redactpii/node,
// redact-pii and @openredaction/openredaction. Prints one JSON object per library:
// {lib, clean_mbps, mixed_mbps, long_mbps, p, r, f1} (overlap, any type, on the
// presidio-format files). Usage: node run.mjs DIR DATASET.json [DATASET.json ...]
// where DIR holds clean.json, mixed.json (lists of strings) and long.txt.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const [dir, ...datasets] = process.argv.slice(2);
const clean = JSON.parse(readFileSync(`${dir}/clean.json`, 'utf8'));
const mixed = JSON.parse(readFileSync(`${dir}/mixed.json`, 'utf8'));
const long = readFileSync(`${dir}/long.txt`, 'utf8');
const TARGETED = new Set(['EMAIL_ADDRESS', 'PHONE_NUMBER', 'CREDIT_CARD', 'US_SSN', 'IBAN_CODE',
  'IP_ADDRESS', 'PERSON', 'STREET_ADDRESS', 'ADDRESS', 'US_DRIVER_LICENSE']);
const MARK = '\u0001';

// Spans (UTF-16 offsets) of a redactor that replaces each finding with MARK.
function spansFromMarked(orig, red) {
  const parts = red.split(MARK);
  const spans = [];
  let pos = 0;
  for (let i = 0; i < parts.length; i++) {
    const at = orig.indexOf(parts[i], pos);
    if (at < 0) return spans;
    if (i > 0 && at > pos) spans.push([pos, at]);
    pos = at + parts[i].length;
  }
  if (pos < orig.length && parts.length > 1 && parts[parts.length - 1] === '') spans.push([pos, orig.length]);
  return spans;
}

const libs = [];
{
  const { Redactor } = require('@redactpii/node');
  const r = new Redactor({ globalReplaceWith: MARK });
  libs.push({ lib: '@redactpii/node', run: (t) => r.redact(t), spans: (t) => spansFromMarked(t, r.redact(t)) });
}
{
  const { SyncRedactor } = require('redact-pii');
  const r = new SyncRedactor({ globalReplaceWith: MARK });
  libs.push({ lib: 'redact-pii', run: (t) => r.redact(t), spans: (t) => spansFromMarked(t, r.redact(t)) });
}
{
  const { OpenRedaction } = require('@openredaction/openredaction');
  const r = new OpenRedaction();
  libs.push({ lib: '@openredaction/openredaction', run: (t) => r.detect(t),
    spans: (t) => r.detect(t).detections.map((d) => d.position) });
}

function mbps(fn, texts, minMs) {
  const bytes = texts.reduce((a, t) => a + Buffer.byteLength(t), 0);
  let n = 0;
  const t0 = process.hrtime.bigint();
  let el = 0;
  do {
    for (const t of texts) fn(t);
    n++;
    el = Number(process.hrtime.bigint() - t0) / 1e6;
  } while (el < minMs);
  return (bytes * n) / 1e6 / (el / 1e3);
}

// Code point offsets (presidio) to UTF-16 offsets (JS strings).
function cpToUnit(text) {
  const map = [0];
  let u = 0;
  for (const ch of text) { u += ch.length; map.push(u); }
  return map;
}

function f1(lib) {
  let gold = 0, goldHit = 0, pred = 0, predHit = 0;
  for (const file of datasets) {
    for (const rec of JSON.parse(readFileSync(file, 'utf8'))) {
      const t = rec.full_text;
      const m = cpToUnit(t);
      const g = rec.spans.filter((s) => TARGETED.has(s.entity_type))
        .map((s) => [m[s.start_position], m[s.end_position]]);
      const p = lib.spans(t);
      const ov = (a, b) => a[0] < b[1] && b[0] < a[1];
      gold += g.length; goldHit += g.filter((x) => p.some((y) => ov(x, y))).length;
      pred += p.length; predHit += p.filter((y) => g.some((x) => ov(x, y))).length;
    }
  }
  const P = pred ? predHit / pred : 0, R = gold ? goldHit / gold : 0;
  return { p: P, r: R, f1: P + R ? (2 * P * R) / (P + R) : 0 };
}

for (const lib of libs) {
  const row = { lib: lib.lib };
  try {
    row.clean_mbps = mbps(lib.run, clean, 1500);
    row.mixed_mbps = mbps(lib.run, mixed, 1500);
    row.long_mbps = mbps(lib.run, [long], 1500);
    Object.assign(row, f1(lib));
  } catch (e) {
    row.error = String(e.message || e).slice(0, 200);
  }
  console.log(JSON.stringify(row));
}
