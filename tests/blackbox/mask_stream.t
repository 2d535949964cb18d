#!/usr/bin/env node
// Masked answers with tool calls: a request whose personal data is masked is answered
// by a tier that calls a tool with the placeholders (in the function name and in the
// arguments); the client gets its own values back in the tool calls and the content,
// streamed or not, and the tier never sees them. The stand-in tier here streams when
// asked to, splitting every placeholder across chunks (the name, the arguments, the
// content), and answers whole otherwise.
'use strict';
let L;
(async () => {
L = await import('./lib.mjs');
const { test, run, assert, eq, post } = L;
const fs = await import('node:fs');
const path = await import('node:path');
const http = await import('node:http');
if (!fs.existsSync(L.SWITCHYARD)) { L.skipAll('build first'); return; }

// ---- a stand-in tier that calls a tool with what it was given ----
const received = [];
const tier = http.createServer((req, res) => {
  let raw = '';
  req.on('data', (d) => { raw += d; });
  req.on('end', () => {
    received.push(raw);
    const body = JSON.parse(raw);
    const name = body.tools[0].function.name;
    const text = body.messages.map((m) => (typeof m.content === 'string' ? m.content : '')).join(' ');
    const ph = (text.match(/<PHONE_NUMBER_\d+>/g) || ['<none>']).pop();
    const args = JSON.stringify({ to: ph, note: `dial ${ph} now` });
    const content = `calling ${ph}`;
    const base = { id: 'chatcmpl-t', created: 1764300000, model: body.model };
    if (!body.stream) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ...base, object: 'chat.completion',
        choices: [{ index: 0, finish_reason: 'tool_calls', message: { role: 'assistant', content,
          tool_calls: [{ id: 'call_a', type: 'function', function: { name, arguments: args } }] } }],
        usage: { prompt_tokens: 9, completion_tokens: 7, total_tokens: 16 } }));
      return;
    }
    // Streamed: every placeholder cut in the middle, as a tokenizer would cut it.
    const cut = (s) => { const i = s.indexOf('<'); return i < 0 ? [s] : [s.slice(0, i + 4), s.slice(i + 4)]; };
    const ev = (delta, fin = null) => `data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: fin }] })}\n\n`;
    const [n1, n2] = cut(name);
    const out = [ev({ role: 'assistant', content: '' })];
    for (const c of cut(content)) out.push(ev({ content: c }));
    out.push(ev({ tool_calls: [{ index: 0, id: 'call_a', type: 'function', function: { name: n1, arguments: '' } }] }));
    if (n2 !== undefined) out.push(ev({ tool_calls: [{ index: 0, function: { name: n2 } }] }));
    const a = args.indexOf('<');
    for (const piece of [args.slice(0, a + 2), args.slice(a + 2, a + 9), args.slice(a + 9)])
      out.push(ev({ tool_calls: [{ index: 0, function: { arguments: piece } }] }));
    out.push(ev({}, 'tool_calls'));
    out.push('data: [DONE]\n\n');
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    for (const o of out) res.write(o);
    res.end();
  });
});
await new Promise((r) => tier.listen(0, '127.0.0.1', r));
const tierUrl = `http://127.0.0.1:${tier.address().port}`;

const gw = await L.startGateway(`
listen: 127.0.0.1:0
store: sqlite:${path.join(L.tmp(), 'mask-stream.db')}
tiers:
  cloud:
    kind: openai
    base_url: ${tierUrl}/v1
    model: big-model
    privacy: external
routing:
  pii:
    action: local_only
    types: { PHONE_NUMBER: mask }
  escalation: { enabled: false }
`);
const CHAT = `${gw.url}/v1/chat/completions`;

let seq = 0;
const phone = () => `+1 415 555 ${String(2000 + ((++seq * 53) % 7000))}`;
const request = (fnName, tel, stream) => ({
  model: 'auto', stream,
  messages: [{ role: 'user', content: `please call ${tel}` }],
  tools: [{ type: 'function', function: { name: fnName, description: 'place a call', parameters: { type: 'object', properties: { to: { type: 'string' } } } } }],
});

// The tool call as the client reads it: whole, or put together from stream deltas.
function streamed(text) {
  const ev = L.sseEvents(text).filter((e) => e !== '[DONE]' && e.choices && e.choices.length);
  let content = '', fin = null;
  const calls = [];
  for (const e of ev) {
    const ch = e.choices[0];
    if (ch.finish_reason) fin = ch.finish_reason;
    const d = ch.delta || {};
    if (typeof d.content === 'string') content += d.content;
    for (const tc of d.tool_calls || []) {
      const c = calls[tc.index] || (calls[tc.index] = { id: '', name: '', arguments: '' });
      if (tc.id) c.id = tc.id;
      if (tc.function && tc.function.name) c.name += tc.function.name;
      if (tc.function && tc.function.arguments) c.arguments += tc.function.arguments;
    }
  }
  return { content, fin, calls };
}

for (const stream of [false, true]) {
  test(`masked values come back in tool calls (${stream ? 'streamed' : 'whole'})`, async () => {
    const fnName = phone(), tel = phone();
    received.length = 0;
    const r = await post(CHAT, request(fnName, tel, stream));
    eq(r.status, 200, 'served: ' + r.text.slice(0, 300));
    eq(received.length, 1, 'one call to the tier');
    for (const v of [fnName, tel]) assert(!received[0].includes(v), 'the tier never sees ' + v);
    assert(/<PHONE_NUMBER_\d+>/.test(received[0]), 'the tier got placeholders: ' + received[0].slice(0, 300));
    let got;
    if (stream) {
      assert(/text\/event-stream/.test(r.headers.get('content-type')), 'a stream');
      got = streamed(r.text);
    } else {
      const m = r.json.choices[0].message;
      got = { content: m.content, fin: r.json.choices[0].finish_reason,
        calls: m.tool_calls.map((t) => ({ id: t.id, name: t.function.name, arguments: t.function.arguments })) };
    }
    eq(got.fin, 'tool_calls', 'finish reason');
    eq(got.calls.length, 1, 'one tool call: ' + r.text.slice(0, 600));
    eq(got.calls[0].id, 'call_a', 'tool call id');
    eq(got.calls[0].name, fnName, 'function name restored');
    eq(JSON.parse(got.calls[0].arguments).to, tel, 'arguments restored: ' + got.calls[0].arguments);
    eq(JSON.parse(got.calls[0].arguments).note, `dial ${tel} now`, 'every placeholder in the arguments');
    eq(got.content, `calling ${tel}`, 'content restored');
    assert(!r.text.includes('<PHONE_NUMBER_'), 'no placeholder reaches the client: ' + r.text.slice(0, 600));
  });
}

test('without personal data the tier\'s own stream, cut mid-token, passes through', async () => {
  received.length = 0;
  const r = await post(CHAT, request('dial', 'the front desk', true));
  eq(r.status, 200, 'served');
  assert(JSON.parse(received[0]).stream === true, 'the tier was asked for a stream');
  const got = streamed(r.text);
  eq(got.calls.length, 1, 'one tool call');
  eq(got.calls[0].name, 'dial', 'name');
  eq(got.calls[0].arguments, JSON.stringify({ to: '<none>', note: 'dial <none> now' }), 'arguments put together');
  eq(got.fin, 'tool_calls', 'finish reason');
});

await run();
await gw.stop();
tier.close();
L.cleanup();
})().catch((e) => { console.log(`not ok - harness: ${e.stack}`); process.exitCode = 1; if (L) L.cleanup(); });
