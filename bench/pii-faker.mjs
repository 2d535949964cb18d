#!/usr/bin/env node
// bench/pii-faker.mjs [BUILD] [--records N] [--seed S] [--out FILE]: PERSON and STREET_ADDRESS found by
// the labeller and by the rules on records that switchyard's generator did not write: the
// presidio templates ($SY_SHARED/data/pii/templates.txt) filled by @faker-js/faker, whose
// names, streets, towns and firms come from its own lists in sixteen locales, none of them
// the census lists or the word lists switchyard trains with. A stand-in for a held-out set
// of the presidio generator (the labelled types are that generator's: ADDRESS, LOCATION,
// ORGANIZATION, TITLE, ...), scored by `switchyard pii --eval`. @faker-js/faker is
// installed into bench/pii-faker on first use. The same seed writes the same records;
// --out keeps them (the --eval format) for `switchyard pii --eval FILE --errors`.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  if (i < 0) return dflt;
  const v = Number(args[i + 1]);
  if (!Number.isInteger(v) || v <= 0) {
    console.error(`bench/pii-faker: ${name} wants a positive whole number, not "${args[i + 1]}"`);
    process.exit(2);
  }
  args.splice(i, 2);
  return v;
};
const records = opt('--records', 2109), seed = opt('--seed', 1);
let keep = null;
if (args.includes('--out')) {
  const i = args.indexOf('--out');
  keep = args[i + 1];
  if (!keep) {
    console.error('bench/pii-faker: --out wants a file');
    process.exit(2);
  }
  args.splice(i, 2);
}
const build = path.resolve(root, args[0] || 'build/rel');
const sy = path.join(build, 'switchyard');
const shared = process.env.SY_SHARED || path.resolve(root, '../shared');
const templates = path.join(shared, 'data', 'pii', 'templates.txt');
if (!fs.existsSync(templates)) {
  console.log(`bench/pii-faker: ${templates} absent (set SY_SHARED): skipped`);
  process.exit(0);
}
if (!fs.existsSync(sy)) {
  console.error(`bench/pii-faker: ${sy} missing: run make first`);
  process.exit(1);
}
const pkg = path.join(here, 'pii-faker');
if (!fs.existsSync(path.join(pkg, 'node_modules', '@faker-js', 'faker'))) {
  console.error('bench/pii-faker: installing @faker-js/faker into bench/pii-faker');
  const r = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--prefix', pkg], { stdio: 'inherit' });
  if (r.status !== 0) {
    console.error('bench/pii-faker: npm install failed');
    process.exit(1);
  }
}
const { allFakers } = await import(path.join(pkg, 'node_modules', '@faker-js', 'faker', 'dist', 'index.js'));

// Most records in US English, as the presidio generator writes them; the others in the
// languages of the names and streets of its labelled sets.
const locales = ['de', 'fr', 'es', 'it', 'pl', 'sv', 'nb_NO', 'da', 'fi', 'nl', 'pt_BR', 'cs_CZ',
  'hu', 'tr', 'en_GB'];
const nationalities = ['American', 'German', 'French', 'Spanish', 'Italian', 'Polish', 'Swedish',
  'Norwegian', 'Danish', 'Finnish', 'Dutch', 'Brazilian', 'Czech', 'Hungarian', 'Turkish'];
const base = allFakers.en_US;
base.seed(seed);
// each locale draws on its own; dates count back from a fixed day, not from today
locales.forEach((l, i) => allFakers[l].seed(seed * 100 + i + 1));
for (const f of [base, ...locales.map((l) => allFakers[l])]) f.setDefaultRefDate('2025-01-01T00:00:00Z');

const pick = (v) => v[base.number.int(v.length - 1)];
const digits = (n) => Array.from({ length: n }, () => base.number.int(9)).join('');

// One placeholder: its text and the presidio type it is labelled with (null: none). A
// value the locale's faker has no list for (a state in Danish) comes from US English.
function fill(f, key) {
  try {
    return fillWith(f, key);
  } catch (e) {
    if (f === base) throw e;
    return fillWith(base, key);
  }
}
function fillWith(f, key) {
  const sex = /female/.test(key) ? 'female' : /male/.test(key) ? 'male' : undefined;
  const loc = f.location;
  switch (key) {
    case 'person': case 'name': case 'name_female': case 'name_male':
      return [f.person.fullName({ sex }), 'PERSON'];
    case 'first_name': case 'first_name_female': case 'first_name_male': case 'first_name_nonbinary':
      return [f.person.firstName(sex), 'PERSON'];
    case 'last_name': case 'last_name_female': case 'last_name_male':
      return [f.person.lastName(sex), 'PERSON'];
    case 'prefix': case 'prefix_female': case 'prefix_male':
      return [f.person.prefix(sex), 'TITLE'];
    case 'job': return [f.person.jobTitle(), 'TITLE'];
    case 'address': {
      const v = base.number.int(5);
      const tail = () => `${loc.city()}, ${loc.state({ abbreviated: true })} ${loc.zipCode()}`;
      const a = v === 0 ? loc.streetAddress(false)
        : v === 1 ? `${loc.streetAddress(true)}, ${tail()}`
          : v === 2 ? `${loc.streetAddress(true)}\n${tail()}`
            : v === 3 ? `${loc.streetAddress(true)} ${loc.city()} ${loc.country()}`
              : v === 4 ? `the corner of ${loc.streetAddress(false)} and ${loc.street()}`
                : loc.streetAddress(false);
      return [a, 'ADDRESS'];
    }
    case 'street_name': return [loc.streetAddress(false), 'ADDRESS'];
    case 'building_number': return [loc.buildingNumber(), 'ADDRESS'];
    case 'secondary_address': return [loc.secondaryAddress(), 'ADDRESS'];
    case 'city': return [loc.city(), 'LOCATION'];
    case 'country': return [loc.country(), 'LOCATION'];
    case 'state_abbr': return [loc.state({ abbreviated: true }), 'LOCATION'];
    case 'postcode': case 'zipcode': return [loc.zipCode(), 'ZIP_CODE'];
    case 'nationality': case 'nation_woman': case 'nation_plural':
      return [pick(nationalities) + (key === 'nation_plural' ? 's' : ''), 'NRP'];
    case 'organization': {
      // as the presidio generator writes them: half a firm of Python faker's shapes from
      // surnames ("Hubbard-Thomas", "Hubbard, Fox and Gillespie", "Weeks LLC"), half a
      // name of words ("Tableau Software", "Credit Karma")
      const v = base.number.int(5), l = () => f.person.lastName();
      if (v === 0) return [`${l()}-${l()}`, 'ORGANIZATION'];
      if (v === 1) return [`${l()}, ${l()} and ${l()}`, 'ORGANIZATION'];
      if (v === 2) return [`${l()} ${pick(['Inc', 'and Sons', 'LLC', 'Group', 'PLC', 'Ltd'])}`, 'ORGANIZATION'];
      const w = base.company.buzzNoun();
      return [`${w[0].toUpperCase()}${w.slice(1)} ${pick(['Software', 'Analytics', 'Health', 'Capital', 'Partners', 'Insights', 'Solutions', 'Labs'])}`, 'ORGANIZATION'];
    }
    case 'credit_card_number': return [base.finance.creditCardNumber(pick(['visa', 'mastercard', 'amex'])), 'CREDIT_CARD'];
    case 'phone_number': return [f.phone.number(), 'PHONE_NUMBER'];
    case 'email': return [f.internet.email(), 'EMAIL_ADDRESS'];
    case 'url': return [f.internet.url(), 'DOMAIN_NAME'];
    case 'iban': return [base.finance.iban(true), 'IBAN_CODE'];
    case 'ssn': return [`${100 + base.number.int(564)}-${10 + base.number.int(89)}-${1000 + base.number.int(8999)}`, 'US_SSN'];
    case 'ip_address': return [base.number.int(3) ? base.internet.ipv4() : base.internet.ipv6(), 'IP_ADDRESS'];
    case 'us_driver_license': return [`${String.fromCharCode(65 + base.number.int(25))}${digits(7)}`, 'US_DRIVER_LICENSE'];
    case 'date_time': return [base.date.past({ years: 30 }).toISOString().replace('T', ' ').slice(0, 19), 'DATE_TIME'];
    case 'date_of_birth': {
      const d = base.date.birthdate();
      return [`${d.getMonth() + 1}/${d.getDate()}/${d.getFullYear()}`, 'DATE_TIME'];
    }
    case 'day_of_week': return [base.date.weekday(), 'DATE_TIME'];
    case 'year': return [String(1950 + base.number.int(75)), 'DATE_TIME'];
    case 'age': return [String(18 + base.number.int(70)), 'AGE'];
    default: return null;
  }
}

const lines = fs.readFileSync(templates, 'utf8').split('\n').filter((l) => l.trim());
const out = [];
for (let n = 0; n < records; n++) {
  const id = base.number.int(lines.length - 1);
  const f = base.number.int(99) < 60 ? base : allFakers[pick(locales)];
  const lower = base.number.int(19) === 0;
  let text = '', cps = 0;
  const spans = [];
  const add = (s, type) => {
    if (lower) s = s.toLowerCase();
    const len = [...s].length;
    if (type) spans.push({ entity_type: type, entity_value: s, start_position: cps, end_position: cps + len });
    text += s;
    cps += len;
  };
  const t = lines[id].replace(/\\n/g, '\n');
  for (let i = 0; i < t.length;) {
    const o = t.indexOf('{{', i), c = o < 0 ? -1 : t.indexOf('}}', o + 2);
    if (c < 0) {
      add(t.slice(i), null);
      break;
    }
    add(t.slice(i, o), null);
    const key = t.slice(o + 2, c), v = fill(f, key);
    if (!v) {
      console.error(`bench/pii-faker: templates line ${id + 1}: unknown placeholder {{${key}}}`);
      process.exit(1);
    }
    add(v[0], v[1]);
    i = c + 2;
  }
  out.push({ full_text: text, spans, template_id: id + 1 });
}
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-pii-faker-'));
const file = keep ? path.resolve(keep) : path.join(dir, 'faker.json');
fs.writeFileSync(file, JSON.stringify(out));
const names = fs.existsSync(path.join(root, 'data', 'names', 'pii-labeller.bin'))
  ? path.join(root, 'data', 'names') : path.join(shared, 'data', 'names');
const score = (extra) => {
  const r = spawnSync(sy, ['pii', '--names', names, ...extra, '--json', '--eval', file], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) {
    console.error(`bench/pii-faker: switchyard pii --eval failed: ${r.stderr}`);
    process.exit(1);
  }
  return JSON.parse(r.stdout).entities;
};
const lab = score([]), rules = score(['--rules']);
fs.rmSync(dir, { recursive: true, force: true });
const f3 = (x) => (x === undefined ? '  -  ' : x.toFixed(3));
console.log(`PII on ${records} records of the presidio templates filled by @faker-js/faker (seed ${seed})`);
console.log('entity          gold | labeller overlap P / R   exact P / R  | rules overlap P / R');
for (const e of ['PERSON', 'STREET_ADDRESS']) {
  const a = lab[e] || {}, b = rules[e] || {};
  console.log(`${e.padEnd(15)} ${String(a.gold ?? 0).padStart(4)} | ${f3(a.overlap_p)} / ${f3(a.overlap_r)}` +
    `        ${f3(a.exact_p)} / ${f3(a.exact_r)} | ${f3(b.overlap_p)} / ${f3(b.overlap_r)}`);
}
