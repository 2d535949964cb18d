#!/usr/bin/env node
// Privacy probes, as an attacker would try them: each probe plants one unique
// personal value in one place of a request (every field a tier receives, duplicate
// keys at every level, values split across parts and messages, values past the
// detectors' caps, labels and headers, streaming, forced and auto routing) against
// the real binary, with a stand-in external upstream that records every byte. Each
// probe must be refused, kept local, or sent masked; the planted values must appear
// nowhere in what the external upstream received, in the ledger file or in the log.
// Each forwarded placement is also sent once with a harmless value, which must reach
// the external upstream: the probe tests a path that really leaves.
'use strict';
let L;
(async () => {
L = await import('./lib.mjs');
const { test, run, assert, eq, post } = L;
const fs = await import('node:fs');
const path = await import('node:path');
if (!fs.existsSync(L.SWITCHYARD) || !fs.existsSync(L.UPSTREAM)) { L.skipAll('build first'); return; }
if (!fs.existsSync(path.join(L.SHARED, 'data/names'))) { L.skipAll('needs ../shared/data/names for PERSON detection'); return; }

const edge = await L.startUpstream('edge');
const cloud = await L.startUpstream('cloud');
const dbPath = path.join(L.tmp(), 'probes.db');
const config = (x = {}) => `
listen: 127.0.0.1:0
store: sqlite:${x.db || dbPath}
log_level: info
forward_unknown: ${x.forward || 'scan'}
tiers:
  edge:
    kind: openai
    base_url: ${edge.url}/v1
    model: edge-small
    privacy: on_prem
    breaker: { failures: 100000 }
  cloud:
    kind: openai
    base_url: ${cloud.url}/v1
    model: big-model
    privacy: external
    breaker: { failures: 100000 }
routing:
  pii:
    action: local_only
    types: { PERSON: mask, PHONE_NUMBER: mask, US_SSN: block }
    names_dir: ${path.join(L.ROOT, 'data', 'names')}
  token_budget: { cloud_above: 1 }
  escalation: { enabled: false }
`;
const gw = await L.startGateway(config());
const CHAT = `${gw.url}/v1/chat/completions`;
const COMP = `${gw.url}/v1/completions`;

// ---- unique planted values the current engine detects ----
let seq = 0;
const email = () => `probe${++seq}.k${(seq * 7919) % 1000}x@example.com`;
function luhnDigit(d) {
  let s = 0;
  for (let i = 0; i < d.length; i++) {
    let v = +d[d.length - 1 - i];
    if (i % 2 === 0) { v *= 2; if (v > 9) v -= 9; }
    s += v;
  }
  return String((10 - (s % 10)) % 10);
}
const cardDigits = () => { const b = '4539' + String(100000000000 + (++seq) * 7717).slice(-11); return b + luhnDigit(b); };
const card = () => cardDigits().replace(/(\d{4})(?=\d)/g, '$1 ');
const phone = () => `+1 415 555 ${String(1000 + ((++seq * 37) % 9000))}`;
const FULLWIDTH = (s) => s.replace(/\d/g, (d) => String.fromCharCode(0xff10 + +d));

const planted = []; // every value planted anywhere
const outcomes = []; // [name, status, tier]
const msg = (content, extra = {}) => ({ model: 'auto', messages: [{ role: 'user', content }], ...extra });
const toolMsg = (fn) => ({ role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: fn }] });
const tool = (fn) => ({ type: 'function', function: { name: 'lookup', description: 'look up a record', parameters: { type: 'object', properties: { q: { type: 'string' } } }, ...fn } });
const people = (n) => { const f = ['James', 'Mary', 'John', 'Patricia', 'Robert', 'Jennifer', 'Michael', 'Linda', 'William', 'Elizabeth'];
  const l = ['Smith', 'Johnson', 'Williams', 'Brown', 'Jones', 'Miller', 'Davis', 'Garcia', 'Wilson', 'Moore'];
  const out = []; for (let i = 0; i < n; i++) out.push(`${f[i % 10]} ${l[Math.floor(i / 10) % 10]}`); return out.join(', '); };

// A probe: (v) => { url?, body (object or raw string), headers?, expect? } with v the
// value to plant. expect: 'refused400', 'refused403', or undefined (any safe outcome).
// forwarded: the placement reaches the tier (a harmless value must arrive there).
const P = [];
const probe = (name, gen, make, o = {}) => P.push({ name, gen, make, ...o });
const fwd = (name, gen, make, o = {}) => probe(name, gen, make, { forwarded: true, ...o });

// Every field a chat request sends.
fwd('user content', email, (v) => ({ body: msg(`write to ${v} please`) }));
fwd('system content', card, (v) => ({ body: { model: 'auto', messages: [{ role: 'system', content: `card ${v}` }, { role: 'user', content: 'hi' }] } }));
fwd('assistant content', email, (v) => ({ body: { model: 'auto', messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: `noted ${v}` }, { role: 'user', content: 'ok' }] } }));
fwd('developer content', email, (v) => ({ body: { model: 'auto', messages: [{ role: 'developer', content: `contact ${v}` }, { role: 'user', content: 'hi' }] } }));
fwd('text part', email, (v) => ({ body: msg([{ type: 'text', text: 'hello' }, { type: 'text', text: `mail ${v}` }]) }));
fwd('refusal part', email, (v) => ({ body: { model: 'auto', messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: [{ type: 'refusal', refusal: `no ${v}` }] }, { role: 'user', content: 'ok' }] } }));
fwd('message refusal', card, (v) => ({ body: { model: 'auto', messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'x', refusal: `card ${v}` }, { role: 'user', content: 'ok' }] } }));
fwd('message name', email, (v) => ({ body: { model: 'auto', messages: [{ role: 'user', content: 'hi', name: v }] } }));
fwd('tool call arguments', email, (v) => ({ body: { model: 'auto', messages: [{ role: 'user', content: 'hi' }, toolMsg({ name: 'lookup', arguments: JSON.stringify({ q: v }) }), { role: 'tool', tool_call_id: 'call_1', content: 'done' }] } }));
fwd('tool call arguments with a \\u escape', email, (v) => ({ body: { model: 'auto', messages: [{ role: 'user', content: 'hi' }, toolMsg({ name: 'lookup', arguments: `{"q":"${v.replace('example', '\\u0065xample')}"}` }), { role: 'tool', tool_call_id: 'call_1', content: 'done' }] } }));
fwd('legacy function_call arguments with a \\u escape', email, (v) => ({ body: { model: 'auto', messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: null, function_call: { name: 'f', arguments: `{"c":"${v.replace('example', '\\u0065xample')}"}` } }, { role: 'user', content: 'ok' }] } }));
fwd('tool call function name', email, (v) => ({ body: { model: 'auto', messages: [{ role: 'user', content: 'hi' }, toolMsg({ name: v, arguments: '{}' }), { role: 'tool', tool_call_id: 'call_1', content: 'done' }] } }));
fwd('tool call id', email, (v) => ({ body: { model: 'auto', messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: null, tool_calls: [{ id: v, type: 'function', function: { name: 'f', arguments: '{}' } }] }, { role: 'tool', tool_call_id: 'c', content: 'done' }] } }));
fwd('tool_call_id', email, (v) => ({ body: { model: 'auto', messages: [{ role: 'user', content: 'hi' }, { role: 'tool', tool_call_id: v, content: 'done' }] } }));
fwd('legacy message function_call', card, (v) => ({ body: { model: 'auto', messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: null, function_call: { name: 'f', arguments: `{"c":"${v}"}` } }, { role: 'user', content: 'ok' }] } }));
fwd('function role name', email, (v) => ({ body: { model: 'auto', messages: [{ role: 'user', content: 'hi' }, { role: 'function', name: v, content: 'r' }] } }));
fwd('image url', email, (v) => ({ body: msg([{ type: 'text', text: 'see' }, { type: 'image_url', image_url: { url: `https://img.test/a?owner=${v}`, detail: 'low' } }]) }));
fwd('input audio data', email, (v) => ({ body: msg([{ type: 'input_audio', input_audio: { data: `UklGR ${v}`, format: 'wav' } }]) }));
fwd('file name', email, (v) => ({ body: msg([{ type: 'file', file: { filename: `${v}.pdf`, file_data: 'JVBERi0=' } }]) }));
fwd('file data', card, (v) => ({ body: msg([{ type: 'file', file: { filename: 'a.pdf', file_data: `data ${v}` } }]) }));
fwd('file id', email, (v) => ({ body: msg([{ type: 'file', file: { file_id: v } }]) }));
fwd('unknown key in a message', email, (v) => ({ body: { model: 'auto', messages: [{ role: 'user', content: 'hi', x_note: v }] } }));
fwd('unknown key in a part', email, (v) => ({ body: msg([{ type: 'text', text: 'hi', x_note: v }]) }));
fwd('unknown key in a tool call', email, (v) => ({ body: { model: 'auto', messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', x_meta: v, function: { name: 'f', arguments: '{}' } }] }, { role: 'tool', tool_call_id: 'c', content: 'd' }] } }));
fwd('unknown key in a tool call function', email, (v) => ({ body: { model: 'auto', messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{}', x_meta: v } }] }, { role: 'tool', tool_call_id: 'c', content: 'd' }] } }));
fwd('user', email, (v) => ({ body: msg('hi', { user: v }) }));
fwd('stop string', email, (v) => ({ body: msg('hi', { stop: v }) }));
fwd('stop array', card, (v) => ({ body: msg('hi', { stop: ['END', v] }) }));
fwd('prediction', email, (v) => ({ body: msg('hi', { prediction: { type: 'content', content: `draft for ${v}` } }) }));
fwd('web_search_options', email, (v) => ({ body: msg('hi', { web_search_options: { user_location: { type: 'approximate', approximate: { city: v } } } }) }));
fwd('tool description', email, (v) => ({ body: msg('hi', { tools: [tool({ description: `mail ${v}` })] }) }));
fwd('tool parameter description', card, (v) => ({ body: msg('hi', { tools: [tool({ parameters: { type: 'object', properties: { q: { type: 'string', description: `card ${v}` } } } })] }) }));
fwd('tool parameter default', email, (v) => ({ body: msg('hi', { tools: [tool({ parameters: { type: 'object', properties: { q: { type: 'string', default: v } } } })] }) }));
fwd('tool parameter enum', email, (v) => ({ body: msg('hi', { tools: [tool({ parameters: { type: 'object', properties: { q: { type: 'string', enum: ['a', v] } } } })] }) }));
fwd('tool parameter property key', email, (v) => ({ body: msg('hi', { tools: [tool({ parameters: { type: 'object', properties: { [v]: { type: 'string' } } } })] }) }));
fwd('tool function name', email, (v) => ({ body: msg('hi', { tools: [tool({ name: v })] }) }));
fwd('legacy functions description', email, (v) => ({ body: msg('hi', { functions: [{ name: 'f', description: `mail ${v}`, parameters: { type: 'object' } }] }) }));
fwd('response_format schema', email, (v) => ({ body: msg('hi', { response_format: { type: 'json_schema', json_schema: { name: 's', schema: { type: 'object', description: `for ${v}` } } } }) }));
fwd('response_format name', email, (v) => ({ body: msg('hi', { response_format: { type: 'json_schema', json_schema: { name: v, schema: { type: 'object' } } } }) }));
fwd('tool_choice function name', email, (v) => ({ body: msg('hi', { tools: [tool({})], tool_choice: { type: 'function', function: { name: v } } }) }));
fwd('legacy function_call', email, (v) => ({ body: msg('hi', { functions: [{ name: 'f' }], function_call: { name: v } }) }));
fwd('safety_identifier', email, (v) => ({ body: msg('hi', { safety_identifier: v }) }));
fwd('prompt_cache_key', email, (v) => ({ body: msg('hi', { prompt_cache_key: v }) }));
fwd('verbosity', email, (v) => ({ body: msg('hi', { verbosity: v }) }));
fwd('service_tier', email, (v) => ({ body: msg('hi', { service_tier: v }) }));
fwd('reasoning_effort', email, (v) => ({ body: msg('hi', { reasoning_effort: v }) }));
fwd('audio voice', email, (v) => ({ body: msg('hi', { audio: { voice: v, format: 'wav' } }) }));
fwd('modalities', email, (v) => ({ body: msg('hi', { modalities: ['text', v] }) }));
fwd('logit_bias key', email, (v) => ({ body: msg('hi', { logit_bias: { [v]: 1 } }) }));
fwd('seed as a number', cardDigits, (v) => ({ body: `{"model":"auto","messages":[{"role":"user","content":"hi"}],"seed":${v}}` }));
fwd('unknown top-level string', email, (v) => ({ body: msg('hi', { x_extra: v }) }));
fwd('unknown top-level nested', card, (v) => ({ body: msg('hi', { x_extra: { a: [{ b: { c: `card ${v}` } }] } }) }));
fwd('unknown top-level key', email, (v) => ({ body: msg('hi', { [v]: 1 }) }));
fwd('unknown number', cardDigits, (v) => ({ body: `{"model":"auto","messages":[{"role":"user","content":"hi"}],"x_num":${v}}` }));
fwd('unknown deep array', email, (v) => ({ body: msg('hi', { x_deep: [[[[[v]]]]] }) }));
fwd('IBAN in content', () => 'GB82 WEST 1234 5698 7654 32', (v) => ({ body: msg(`iban ${v}`) }), { fixed: true });
fwd('IP in tool arguments', () => '203.0.113.77', (v) => ({ body: { model: 'auto', messages: [{ role: 'user', content: 'hi' }, toolMsg({ name: 'f', arguments: `{"ip":"${v}"}` }), { role: 'tool', tool_call_id: 'call_1', content: 'd' }] } }), { fixed: true });
fwd('fullwidth card', () => FULLWIDTH(card()), (v) => ({ body: msg(`card ${v}`) }));
probe('metadata value (never forwarded)', email, (v) => ({ body: msg('hi', { metadata: { note: v } }) }));

// Labels: identifiers, refused when they hold personal data, never written.
for (const k of ['tenant', 'team', 'feature', 'session', 'tier'])
  probe(`metadata.${k}`, email, (v) => ({ body: msg('hi', { metadata: { [k]: v } }), expect: 'refused400' }));
for (const k of ['tenant', 'team', 'feature', 'session', 'tier'])
  probe(`X-Switchyard-${k} header`, email, (v) => ({ body: msg('hi'), headers: { [`x-switchyard-${k}`]: v }, expect: 'refused400' }));
probe('phone as a team label', phone, (v) => ({ body: msg('hi', { metadata: { team: v } }), expect: 'refused400' }));

// Duplicate keys at every level: the second copy holds the value.
const dupMsg = (inner) => `{"model":"auto","messages":[{"role":"user",${inner}}]}`;
probe('duplicate messages', email, (v) => ({ body: `{"model":"auto","messages":[{"role":"user","content":"hi"}],"messages":[{"role":"user","content":"${v}"}]}`, expect: 'refused400' }));
probe('duplicate content', email, (v) => ({ body: dupMsg(`"content":"hi","content":"${v}"`), expect: 'refused400' }));
probe('duplicate role', email, (v) => ({ body: dupMsg(`"role":"user","content":"${v}"`), expect: 'refused400' }));
probe('duplicate part text', email, (v) => ({ body: dupMsg(`"content":[{"type":"text","text":"hi","text":"${v}"}]`), expect: 'refused400' }));
probe('duplicate tool arguments', email, (v) => ({ body: `{"model":"auto","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}","arguments":"${v}"}}]},{"role":"tool","tool_call_id":"c","content":"d"}]}`, expect: 'refused400' }));
probe('duplicate user', email, (v) => ({ body: `{"model":"auto","messages":[{"role":"user","content":"hi"}],"user":"a","user":"${v}"}`, expect: 'refused400' }));
probe('duplicate metadata', email, (v) => ({ body: `{"model":"auto","messages":[{"role":"user","content":"hi"}],"metadata":{"team":"a"},"metadata":{"team":"${v}"}}`, expect: 'refused400' }));
probe('duplicate metadata.privacy', email, (v) => ({ body: `{"model":"auto","messages":[{"role":"user","content":"${v}"}],"metadata":{"privacy":"local_only","privacy":"default"}}`, expect: 'refused400' }));
probe('duplicate deep in tools', email, (v) => ({ body: `{"model":"auto","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","description":"a","description":"${v}"}}}]}`, expect: 'refused400' }));
probe('duplicate in an unknown field', email, (v) => ({ body: `{"model":"auto","messages":[{"role":"user","content":"hi"}],"x":{"y":[{"z":"a","z":"${v}"}]}}`, expect: 'refused400' }));
probe('duplicate image url', email, (v) => ({ body: dupMsg(`"content":[{"type":"image_url","image_url":{"url":"https://a.test/","url":"https://a.test/${v}"}}]`), expect: 'refused400' }));
probe('duplicate prompt (completions)', email, (v) => ({ url: COMP, body: `{"model":"auto","prompt":"hi","prompt":"${v}"}`, expect: 'refused400' }));
probe('duplicate stop', card, (v) => ({ body: `{"model":"auto","messages":[{"role":"user","content":"hi"}],"stop":"a","stop":"${v}"}`, expect: 'refused400' }));

// Bytes that are not UTF-8: an upstream decoding leniently would drop them and read a
// value the scan never saw.
probe('card with invalid UTF-8 separators', card, (v) => ({ body: Buffer.concat([Buffer.from('{"model":"auto","messages":[{"role":"user","content":"card '),
  ...v.split(' ').flatMap((g, i) => (i ? [Buffer.from([0xff]), Buffer.from(g)] : [Buffer.from(g)])), Buffer.from('"}]}')]), expect: 'refused400' }));
probe('email with an overlong @ in a key', email, (v) => ({ body: Buffer.concat([Buffer.from('{"model":"auto","messages":[{"role":"user","content":"hi"}],"x":{"'),
  Buffer.from(v.split('@')[0]), Buffer.from([0xc0, 0x80]), Buffer.from(v.split('@')[1]), Buffer.from('":1}}')]), expect: 'refused400' }));

// Values split across content parts and adjacent messages (the model reads one text).
const split2 = (v, at) => [v.slice(0, at), v.slice(at)];
probe('card split across parts', card, (v) => { const [a, b] = split2(v, 10); return { body: msg([{ type: 'text', text: `card ${a}` }, { type: 'text', text: b }]) }; });
probe('email split across parts at @', email, (v) => { const at = v.indexOf('@'); return { body: msg([{ type: 'text', text: `mail ${v.slice(0, at)}` }, { type: 'text', text: v.slice(at) }]) }; });
probe('email split across three parts', email, (v) => ({ body: msg([{ type: 'text', text: `mail ${v.slice(0, 4)}` }, { type: 'text', text: v.slice(4, 12) }, { type: 'text', text: v.slice(12) }]) }));
probe('email split across messages', email, (v) => { const at = v.indexOf('@'); return { body: { model: 'auto', messages: [{ role: 'user', content: `mail ${v.slice(0, at)}` }, { role: 'user', content: v.slice(at) }] } }; });
probe('card split across messages', card, (v) => { const [a, b] = split2(v, 15); return { body: { model: 'auto', messages: [{ role: 'user', content: `card ${a}` }, { role: 'user', content: b }] } }; });
probe('card split across assistant and user', card, (v) => { const [a, b] = split2(v, 5); return { body: { model: 'auto', messages: [{ role: 'assistant', content: `card ${a}` }, { role: 'user', content: b }] } }; });
probe('phone (mask) split across parts', phone, (v) => { const [a, b] = split2(v, 7); return { body: msg([{ type: 'text', text: `call ${a}` }, { type: 'text', text: b }]) }; });
probe('phone (mask) split across messages', phone, (v) => { const [a, b] = split2(v, 6); return { body: { model: 'auto', messages: [{ role: 'user', content: `call ${a}` }, { role: 'user', content: b }] } }; });
probe('email split across a completions prompt and suffix', email, (v) => { const at = v.indexOf('@'); return { url: COMP, body: { model: 'auto', prompt: `mail ${v.slice(0, at)}`, suffix: v.slice(at) } }; });

// Past the detectors' internal caps.
probe('email after 70 names', email, (v) => ({ body: msg(`${people(70)} and ${v}`) }));
probe('email after 300 names', email, (v) => ({ body: msg(`${people(300)} and ${v}`) }));
probe('card after 80 phones', card, (v) => ({ body: msg(`${Array.from({ length: 80 }, (_, i) => `+1 415 555 ${2000 + i}`).join(', ')} card ${v}`) }));
fwd('phone (mask) after 300 names', phone, (v) => ({ body: msg(`${people(300)} and call ${v}`) }));
fwd('phone (mask) after 300 names in tool arguments', phone, (v) => ({ body: { model: 'auto', messages: [{ role: 'user', content: 'hi' }, toolMsg({ name: 'f', arguments: JSON.stringify({ who: people(300), tel: v }) }), { role: 'tool', tool_call_id: 'call_1', content: 'd' }] } }));
probe('email in the 500th message', email, (v) => ({ body: { model: 'auto', messages: [...Array.from({ length: 499 }, (_, i) => ({ role: 'user', content: `line ${i}` })), { role: 'user', content: v }] } }));

// Large bodies (parsed and scanned off the worker loop, rendered there once).
const pad = (n) => Array.from({ length: n }, (_, i) => i % 10);
fwd('large body: value in an unknown field after 300k nodes', email, (v) => ({ body: msg('hi', { x_pad: pad(300000), x_note: v }) }));
fwd('large body: value in the last message', card, (v) => ({ body: { model: 'auto', x_pad: pad(300000), messages: [{ role: 'user', content: 'hi' }, { role: 'user', content: `card ${v}` }] } }));
fwd('large body: phone (mask) in tool arguments', phone, (v) => ({ body: { model: 'auto', x_pad: pad(300000), messages: [{ role: 'user', content: 'hi' }, toolMsg({ name: 'f', arguments: JSON.stringify({ tel: v }) }), { role: 'tool', tool_call_id: 'call_1', content: 'd' }] } }));
fwd('large body: email at the end of one 600 KiB string', email, (v) => ({ body: msg(`${'lorem ipsum '.repeat(51200)} mail ${v}`) }));
fwd('large body: card across the 256 KiB window edge', card, (v) => ({ body: msg(`${'x'.repeat(256 * 1024 - 8)} card ${v} end`) }));
probe('large body: duplicate key deep inside', email, (v) => ({ body: `{"model":"auto","x_pad":[${pad(300000).join(',')}],"messages":[{"role":"user","content":"hi","content":"${v}"}]}`, expect: 'refused400' }));

// Under mask: every place a value is masked, no count limit, restored in the answer.
fwd('phone (mask) in content', phone, (v) => ({ body: msg(`call ${v}`) }));
fwd('phone (mask) in message name', phone, (v) => ({ body: { model: 'auto', messages: [{ role: 'user', content: 'hi', name: v }] } }));
fwd('phone (mask) in tool function name', phone, (v) => ({ body: { model: 'auto', messages: [{ role: 'user', content: 'hi' }, toolMsg({ name: v, arguments: '{}' }), { role: 'tool', tool_call_id: 'call_1', content: 'd' }] } }));
fwd('phone (mask) in tool arguments', phone, (v) => ({ body: { model: 'auto', messages: [{ role: 'user', content: 'hi' }, toolMsg({ name: 'f', arguments: JSON.stringify({ tel: v }) }), { role: 'tool', tool_call_id: 'call_1', content: 'd' }] } }));
fwd('phone (mask) in a tool description', phone, (v) => ({ body: msg('hi', { tools: [tool({ description: `call ${v}` })] }) }));
fwd('phone (mask) in stop', phone, (v) => ({ body: msg('hi', { stop: v }) }));
fwd('phone (mask) in user', phone, (v) => ({ body: msg('hi', { user: v }) }));
fwd('phone (mask) in an unknown key', phone, (v) => ({ body: msg('hi', { [v]: 'x' }) }));
fwd('phone (mask) in an unknown value', phone, (v) => ({ body: msg('hi', { x_extra: { tel: v } }) }));
fwd('phone (mask) in an image url', phone, (v) => ({ body: msg([{ type: 'text', text: 'see' }, { type: 'image_url', image_url: { url: `https://img.test/?tel=${v}` } }]) }));
fwd('150 phones (mask) in one text', phone, (v) => ({ body: msg(`${Array.from({ length: 150 }, (_, i) => `+1 415 555 ${3000 + i}`).join(', ')} and ${v}`) }));
fwd('name (mask) in content', () => 'Margaret Thompson', (v) => ({ body: msg(`write to ${v} today`) }), { fixed: true });
fwd('name (mask) in message name', () => 'Margaret Thompson', (v) => ({ body: { model: 'auto', messages: [{ role: 'user', content: 'hi', name: v }] } }), { fixed: true });

// Completions.
fwd('completions prompt', email, (v) => ({ url: COMP, body: { model: 'auto', prompt: `mail ${v}` } }));
fwd('completions suffix', email, (v) => ({ url: COMP, body: { model: 'auto', prompt: 'hi', suffix: v } }));
fwd('completions user', email, (v) => ({ url: COMP, body: { model: 'auto', prompt: 'hi', user: v } }));
fwd('completions stop', card, (v) => ({ url: COMP, body: { model: 'auto', prompt: 'hi', stop: [v] } }));
fwd('completions unknown field', email, (v) => ({ url: COMP, body: { model: 'auto', prompt: 'hi', x_extra: v } }));

// Streaming.
fwd('stream: content', email, (v) => ({ body: msg(`mail ${v}`, { stream: true }) }));
fwd('stream: tool arguments', card, (v) => ({ body: { model: 'auto', stream: true, messages: [{ role: 'user', content: 'hi' }, toolMsg({ name: 'f', arguments: `{"c":"${v}"}` }), { role: 'tool', tool_call_id: 'call_1', content: 'd' }] } }));
fwd('stream: stop', email, (v) => ({ body: msg('hi', { stream: true, stop: v }) }));
fwd('stream: phone (mask) in content', phone, (v) => ({ body: msg(`call ${v}`, { stream: true }) }));
fwd('stream: unknown field', email, (v) => ({ body: msg('hi', { stream: true, x_extra: v }) }));

// Routing: explicit auto, forced external tiers, headers.
fwd('model auto explicit, tool schema', email, (v) => ({ body: msg('hi', { model: 'auto', tools: [tool({ description: v })] }) }));
probe('forced cloud by model, content', email, (v) => ({ body: msg(`mail ${v}`, { model: 'cloud' }), expect: 'refused403' }));
probe('forced switchyard/cloud, tool schema', email, (v) => ({ body: msg('hi', { model: 'switchyard/cloud', tools: [tool({ description: v })] }), expect: 'refused403' }));
probe('forced cloud by header, user', email, (v) => ({ body: msg('hi', { user: v }), headers: { 'x-switchyard-tier': 'cloud' }, expect: 'refused403' }));
probe('forced cloud by metadata, unknown field', email, (v) => ({ body: msg('hi', { metadata: { tier: 'cloud' }, x_extra: v }), expect: 'refused403' }));
probe('SSN (block) in an unknown field', () => '536-90-4399', (v) => ({ body: msg('hi', { x_extra: v }), expect: 'refused403' }), { fixed: true });
probe('SSN (block) in a tool description', () => '536-90-4399', (v) => ({ body: msg('hi', { tools: [tool({ description: `ssn ${v}` })] }), expect: 'refused403' }), { fixed: true });
probe('SSN (block) in stop', () => '536-90-4399', (v) => ({ body: msg('hi', { stop: v }), expect: 'refused403' }), { fixed: true });

// Anthropic Messages (POST /v1/messages): the same guarantees through the other
// API shape, for every place its body holds a string.
const MSG = `${gw.url}/v1/messages`;
const am = (content, extra = {}) => ({ url: MSG, body: { model: 'auto', max_tokens: 32, messages: [{ role: 'user', content }], ...extra } });
const aTool = (extra = {}) => ({ name: 'lookup', description: 'look up a record', input_schema: { type: 'object', properties: { q: { type: 'string' } } }, ...extra });
const aTurns = (input, result, id = 'toolu_1') => [{ role: 'user', content: 'hi' },
  { role: 'assistant', content: [{ type: 'text', text: 'looking' }, { type: 'tool_use', id, name: 'lookup', input }] },
  { role: 'user', content: [{ type: 'tool_result', tool_use_id: id, content: result }, { type: 'text', text: 'thanks' }] }];
const amT = (input, result, extra = {}, id) => ({ url: MSG, body: { model: 'auto', max_tokens: 32, messages: aTurns(input, result, id), ...extra } });
fwd('messages: user content', email, (v) => am(`write to ${v} please`));
fwd('messages: system string', card, (v) => am('hi', { system: `card ${v}` }));
fwd('messages: system blocks', email, (v) => am('hi', { system: [{ type: 'text', text: 'be brief' }, { type: 'text', text: `contact ${v}` }] }));
fwd('messages: text block', email, (v) => am([{ type: 'text', text: 'hello' }, { type: 'text', text: `mail ${v}` }]));
fwd('messages: assistant text block', email, (v) => ({ url: MSG, body: { model: 'auto', max_tokens: 32, messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: [{ type: 'text', text: `noted ${v}` }] }, { role: 'user', content: 'ok' }] } }));
fwd('messages: image url source', email, (v) => am([{ type: 'text', text: 'see' }, { type: 'image', source: { type: 'url', url: `https://img.test/a?owner=${v}` } }]));
fwd('messages: image base64 data', card, (v) => am([{ type: 'image', source: { type: 'base64', media_type: 'image/png', data: `iVBOR ${v}` } }]));
fwd('messages: tool_use input value', email, (v) => amT({ q: v }, 'done'));
fwd('messages: tool_use input key', email, (v) => amT({ [v]: 1 }, 'done'));
fwd('messages: tool_use input number', cardDigits, (v) => ({ url: MSG, body: `{"model":"auto","max_tokens":32,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{"n":${v}}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"ok"}]}]}` }));
fwd('messages: tool_use id and tool_use_id', email, (v) => amT({ q: 'x' }, 'done', {}, v));
fwd('messages: tool_result string', card, (v) => amT({ q: 'x' }, `card ${v}`));
fwd('messages: tool_result blocks', email, (v) => amT({ q: 'x' }, [{ type: 'text', text: `mail ${v}` }]));
fwd('messages: tool description', email, (v) => am('hi', { tools: [aTool({ description: `mail ${v}` })] }));
fwd('messages: tool input_schema', card, (v) => am('hi', { tools: [aTool({ input_schema: { type: 'object', description: `card ${v}` } })] }));
fwd('messages: tool name and tool_choice', email, (v) => am('hi', { tools: [aTool({ name: v })], tool_choice: { type: 'tool', name: v } }));
fwd('messages: metadata.user_id', email, (v) => am('hi', { metadata: { user_id: v } }));
fwd('messages: stop_sequences', card, (v) => am('hi', { stop_sequences: ['END', v] }));
fwd('messages: unknown top-level field', email, (v) => am('hi', { x_extra: { note: v } }));
fwd('messages: stream, content', email, (v) => am(`mail ${v}`, { stream: true }));
fwd('messages: stream, tool_result', card, (v) => amT({ q: 'x' }, `card ${v}`, { stream: true }));
fwd('messages: phone (mask) in content', phone, (v) => am(`call ${v}`));
fwd('messages: phone (mask) in system', phone, (v) => am('hi', { system: `call ${v}` }));
fwd('messages: phone (mask) in tool_use input', phone, (v) => amT({ tel: v }, 'done'));
fwd('messages: phone (mask) in tool_result', phone, (v) => amT({ q: 'x' }, `call ${v}`));
fwd('messages: phone (mask) in metadata.user_id', phone, (v) => am('hi', { metadata: { user_id: v } }));
fwd('messages: stream, phone (mask) in content', phone, (v) => am(`call ${v}`, { stream: true }));
probe('messages: card split across text blocks', card, (v) => am([{ type: 'text', text: `card ${v.slice(0, 9)}` }, { type: 'text', text: v.slice(9) }]));
probe('messages: email split across system and user', email, (v) => { const at = v.indexOf('@'); return am(v.slice(at), { system: `mail ${v.slice(0, at)}` }); });
probe('messages: metadata.team label', email, (v) => ({ ...am('hi', { metadata: { team: v } }), expect: 'refused400' }));
probe('messages: unknown metadata key', email, (v) => ({ ...am('hi', { metadata: { note: v } }), expect: 'refused400' }));
probe('messages: duplicate system', email, (v) => ({ url: MSG, body: `{"model":"auto","max_tokens":8,"system":"hi","system":"${v}","messages":[{"role":"user","content":"hi"}]}`, expect: 'refused400' }));
probe('messages: duplicate tool_use input key', email, (v) => ({ url: MSG, body: `{"model":"auto","max_tokens":8,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":{"q":"a","q":"${v}"}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"ok"}]}]}`, expect: 'refused400' }));
probe('messages: unsupported block type', email, (v) => ({ ...am([{ type: 'document', source: { type: 'text', media_type: 'text/plain', data: v } }]), expect: 'refused400' }));
probe('messages: forced cloud, tool_result', email, (v) => ({ ...amT({ q: 'x' }, `mail ${v}`, { model: 'cloud' }), expect: 'refused403' }));
probe('messages: forced cloud by header, system', card, (v) => ({ ...am('hi', { system: `card ${v}` }), headers: { 'x-switchyard-tier': 'cloud' }, expect: 'refused403' }));
probe('messages: SSN (block) in tool_use input', () => '536-90-4399', (v) => ({ ...amT({ ssn: v }, 'done'), expect: 'refused403' }), { fixed: true });

// Every string of a body, decoded, and the strings inside strings that are JSON
// text themselves (tool-call arguments), as a tier that parses them reads them.
function decodedStrings(v, out, depth = 0) {
  if (depth > 64) return;
  if (typeof v === 'string') {
    out.push(v);
    if (/^\s*[[{]/.test(v)) { try { decodedStrings(JSON.parse(v), out, depth + 1); } catch { /* text */ } }
  } else if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) { out.push(k); decodedStrings(x, out, depth + 1); }
  }
}
function haystack(bodies) {
  let h = '';
  for (const b of bodies) {
    h += b + '\n';
    try {
      const o = JSON.parse(b);
      h += JSON.stringify(o) + '\n';
      const all = [];
      decodedStrings(o, all);
      h += all.join('\n') + '\n';
    } catch { /* raw only */ }
  }
  return h;
}
const leaked = (h, v) => h.includes(v) || (/^[\d ]+$/.test(v) && h.includes(v.replace(/ /g, '')));

async function send(p, v) {
  const m = p.make(v);
  const r = await post(m.url || CHAT, m.body, m.headers || {});
  return { m, r };
}

test(`${P.length} probes: refused, kept local or masked; nothing planted reaches the external tier`, async () => {
  assert(P.length >= 100, 'at least 100 probes: ' + P.length);
  const failures = [];
  for (const p of P) {
    await cloud.reset();
    const v = p.gen();
    planted.push(v);
    const { m, r } = await send(p, v);
    const sy = r.json && r.json.switchyard;
    const tier = sy ? sy.tier : (r.headers.get('x-switchyard-tier') || null);
    outcomes.push([p.name, r.status, tier]);
    const got = (await cloud.received()).requests.map((x) => x.body);
    const h = haystack(got);
    if (leaked(h, v)) failures.push(`${p.name}: the value reached the external tier`);
    if (r.text.includes(v) && r.status >= 400) failures.push(`${p.name}: the error echoes the value`);
    if (m.expect === 'refused400' && r.status !== 400) failures.push(`${p.name}: expected 400, got ${r.status} ${r.text.slice(0, 200)}`);
    if (m.expect === 'refused403' && r.status !== 403) failures.push(`${p.name}: expected 403, got ${r.status} ${r.text.slice(0, 200)}`);
    if (!m.expect) {
      const ok = r.status === 403 || (r.status === 200 && (tier === 'edge' || tier === 'cloud'));
      if (!ok) failures.push(`${p.name}: neither refused nor served: ${r.status} ${r.text.slice(0, 200)}`);
    }
  }
  assert(failures.length === 0, `${failures.length} probes failed:\n  ` + failures.join('\n  '));
  const count = (f) => outcomes.filter(f).length;
  console.log(`# outcomes: ${count((o) => o[1] >= 400)} refused, ${count((o) => o[1] === 200 && o[2] === 'edge')} kept local, ` +
    `${count((o) => o[1] === 200 && o[2] === 'cloud')} sent to the external tier without the value`);
  if (process.env.SY_PROBES_VERBOSE) for (const o of outcomes) console.log(`# ${o.join(' | ')}`);
  // Masking is a way out, not a side door to local: these placements are masked and sent.
  for (const o of outcomes.filter((x) => /^(messages: )?(stream(: |, ))?phone \(mask\) in (content|message name|tool function name|tool arguments|a tool description|user|an unknown value|system|tool_use input|tool_result|metadata.user_id)$/.test(x[0])))
    eq(o[2], 'cloud', `${o[0]}: sent masked`);
});

test('each forwarded placement is live: a harmless value there reaches the external tier', async () => {
  const dead = [];
  let n = 0;
  for (const p of P.filter((x) => x.forwarded)) {
    await cloud.reset();
    const token = `zq${++n}harmless`;
    let body = p.make('@@V@@');
    // Put the harmless token where the value went (strings and raw bodies alike).
    const raw = typeof body.body === 'string' ? body.body : JSON.stringify(body.body);
    const isNum = p.gen === cardDigits;
    const swapped = raw.split(isNum ? '@@V@@' : '@@V@@').join(isNum ? String(7000 + n) : token);
    const r = await post(body.url || CHAT, swapped, body.headers || {});
    const h = haystack((await cloud.received()).requests.map((x) => x.body));
    if (r.status !== 200 || !h.includes(isNum ? String(7000 + n) : token)) dead.push(`${p.name}: ${r.status} ${r.text.slice(0, 160)}`);
  }
  assert(dead.length === 0, `placements that never reach the tier (the probe would prove nothing):\n  ` + dead.join('\n  '));
});

test('a masked answer gets its values back, streamed or not', async () => {
  const v = phone();
  planted.push(v);
  const r = await post(CHAT, msg(`call ${v}`));
  eq(r.status, 200, 'served');
  eq(r.json.switchyard.tier, 'cloud', 'sent masked to the cloud');
  assert(JSON.stringify(r.json.choices).includes(v), 'restored in the answer: ' + JSON.stringify(r.json.choices));
  const s = await post(CHAT, msg(`call ${v}`, { stream: true }));
  eq(s.status, 200, 'streamed');
  const text = L.sseEvents(s.text).filter((e) => e !== '[DONE]').map((e) => (e.choices[0] && e.choices[0].delta && e.choices[0].delta.content) || '').join('');
  assert(text.includes(v), 'restored in the stream: ' + text);
});

test('the more restrictive privacy setting wins between header and body', async () => {
  const a = await post(CHAT, msg('nothing personal', { metadata: { privacy: 'local_only' } }), { 'x-switchyard-privacy': 'default' });
  eq(a.status, 200, 'served');
  eq(a.json.switchyard.tier, 'edge', 'a header cannot weaken the body');
  const b = await post(CHAT, msg('nothing personal', { metadata: { privacy: 'default' } }), { 'x-switchyard-privacy': 'local_only' });
  eq(b.json.switchyard.tier, 'edge', 'the header can strengthen the body');
  const c = await post(CHAT, msg('nothing personal'));
  eq(c.json.switchyard.tier, 'cloud', 'without either, the cloud serves');
});

test('forward_unknown: drop removes fields outside the schema', async () => {
  const g2 = await L.startGateway(config({ db: path.join(L.tmp(), 'drop.db'), forward: 'drop' }), 'drop');
  await cloud.reset();
  const r = await post(`${g2.url}/v1/chat/completions`, msg('hi', { x_extra: 'zzkeepout', verbosity: 'low' }));
  eq(r.status, 200, 'served');
  const bodies = (await cloud.received()).requests.map((x) => JSON.parse(x.body));
  eq(bodies.length, 1, 'one upstream call');
  eq(bodies[0].x_extra, undefined, 'unknown field dropped');
  eq(bodies[0].verbosity, 'low', 'a known field is kept');
  eq(await g2.stop(), 0, 'clean exit');
});

test('no planted value in the ledger file or the log', async () => {
  eq(await gw.stop(), 0, 'clean exit');
  const logs = gw.proc.stderrText;
  const files = [dbPath, dbPath + '-wal'].filter((f) => fs.existsSync(f)).map((f) => fs.readFileSync(f));
  assert(files.length > 0, 'ledger file exists');
  const bad = [];
  for (const v of planted) {
    if (logs.includes(v)) bad.push('log: ' + v);
    for (const f of files) if (f.includes(Buffer.from(v))) bad.push('ledger: ' + v);
  }
  assert(bad.length === 0, bad.join('\n'));
  const rows = outcomes.length;
  assert(rows >= 100, 'probes ran: ' + rows);
});

await run();
L.cleanup();
})().catch((e) => { console.log(`not ok - harness: ${e.stack}`); process.exitCode = 1; if (L) L.cleanup(); });
