// A stand-in Anthropic upstream: POST /v1/messages answered in the Messages API's
// shapes (streamed and not), every request recorded with its headers. The answer is
// "[<name>] " followed by the last user text; a request that offers tools and whose
// last user text contains "use a tool" gets a tool_use block instead (input
// {"q": <that text>}). It never echoes the system prompt or tool results, so a test
// can tell what reached it only from the recorded requests.
import http from 'node:http';

export async function startAnthropicUpstream(name = 'claude') {
  const received = [];
  let failNext = 0; // answer the next N requests with a 529 overloaded error
  let errorMid = 0; // end the next N streams with an error event after the first delta
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body = null;
      try { body = JSON.parse(text); } catch { /* recorded as text */ }
      received.push({ path: req.url, headers: req.headers, body, text });
      if (req.method !== 'POST' || req.url !== '/v1/messages') {
        res.writeHead(404, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ type: 'error', error: { type: 'not_found_error', message: 'no route' } }));
      }
      if (failNext > 0) {
        failNext--;
        res.writeHead(529, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }));
      }
      if (!body || typeof body.max_tokens !== 'number' || !Array.isArray(body.messages)) {
        res.writeHead(400, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ type: 'error', error: { type: 'invalid_request_error', message: 'max_tokens: Field required' } }));
      }
      const last = [...body.messages].reverse().find((m) => m.role === 'user');
      let said = '';
      if (last && typeof last.content === 'string') said = last.content;
      else if (last) said = last.content.filter((b) => b.type === 'text').map((b) => b.text).join('');
      const useTool = Array.isArray(body.tools) && body.tools.length && /use a tool/.test(said);
      const id = `msg_standin_${received.length}`;
      const model = body.model;
      let answer = `[${name}] ${said}`;
      // A stop sequence found in the answer ends it there, as Anthropic reports it.
      const seq = (body.stop_sequences || []).find((x) => answer.includes(x)) || null;
      if (seq) answer = answer.slice(0, answer.indexOf(seq));
      const stopReason = seq ? 'stop_sequence' : 'end_turn';
      const inTok = Math.max(1, Math.round(text.length / 4));
      const outTok = answer.split(/\s+/).length;
      if (!body.stream) {
        const content = useTool
          ? [{ type: 'text', text: 'Calling.' }, { type: 'tool_use', id: 'toolu_1', name: body.tools[0].name, input: { q: said } }]
          : [{ type: 'text', text: answer }];
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({
          id, type: 'message', role: 'assistant', model, content,
          stop_reason: useTool ? 'tool_use' : stopReason, stop_sequence: useTool ? null : seq,
          usage: { input_tokens: inTok, output_tokens: outTok },
        }));
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const ev = (type, data) => res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
      ev('message_start', { message: { id, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: inTok, output_tokens: 1 } } });
      ev('ping', {});
      if (useTool) {
        ev('content_block_start', { index: 0, content_block: { type: 'tool_use', id: 'toolu_1', name: body.tools[0].name, input: {} } });
        const args = JSON.stringify({ q: said });
        const half = Math.floor(args.length / 2);
        ev('content_block_delta', { index: 0, delta: { type: 'input_json_delta', partial_json: args.slice(0, half) } });
        ev('content_block_delta', { index: 0, delta: { type: 'input_json_delta', partial_json: args.slice(half) } });
        ev('content_block_stop', { index: 0 });
      } else {
        ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } });
        if (errorMid > 0) {
          errorMid--;
          ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: answer.slice(0, 6) } });
          ev('error', { error: { type: 'overloaded_error', message: 'Overloaded mid-stream' } });
          return res.end();
        }
        for (const piece of answer.match(/.{1,6}/gs) || []) ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: piece } });
        ev('content_block_stop', { index: 0 });
      }
      ev('message_delta', { delta: { stop_reason: useTool ? 'tool_use' : stopReason, stop_sequence: useTool ? null : seq }, usage: { output_tokens: outTok } });
      ev('message_stop', {});
      res.end();
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${server.address().port}`;
  return {
    name, url, received,
    failNext(n) { failNext = n; },
    errorMidStream(n) { errorMid = n; },
    reset() { received.length = 0; },
    stop() { return new Promise((r) => { server.closeAllConnections?.(); server.close(r); }); },
  };
}
