// Black-box test kit: starts the real switchyard binary and stand-in upstreams on
// ephemeral loopback ports, talks HTTP to them, and prints TAP for prove.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
export const BUILD = path.resolve(ROOT, process.env.SY_BUILD || 'build/asan');
export const SWITCHYARD = path.join(BUILD, 'switchyard');
export const UPSTREAM = path.join(BUILD, 'tools', 'upstream');
export const SHARED = process.env.SY_SHARED || path.resolve(ROOT, '../shared');

const children = new Set();
let tmpdir = null;

export function tmp() {
  if (!tmpdir) tmpdir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-bb-'));
  return tmpdir;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export { sleep };

async function waitPortFile(file, proc, what) {
  for (let i = 0; i < 600; i++) {
    if (proc.exitCode !== null) throw new Error(`${what} exited with ${proc.exitCode}: ${proc.stderrText}`);
    try {
      const p = parseInt(fs.readFileSync(file, 'utf8'), 10);
      if (p > 0) return p;
    } catch { /* not yet */ }
    await sleep(20);
  }
  throw new Error(`${what} did not start: ${proc.stderrText}`);
}

function track(proc) {
  proc.stderrText = '';
  proc.stderr.on('data', (d) => {
    proc.stderrText += d.toString();
    if (proc.stderrText.length > 4e6) proc.stderrText = proc.stderrText.slice(-2e6);
  });
  proc.stdout.on('data', () => {});
  children.add(proc);
  proc.on('exit', () => children.delete(proc));
  return proc;
}

// A stand-in upstream (tests/tools/upstream.c).
export async function startUpstream(name, args = []) {
  const pf = path.join(tmp(), `up-${name}-${Date.now()}-${Math.random()}.port`);
  const proc = track(spawn(UPSTREAM, ['--port', '0', '--port-file', pf, '--name', name, '--quiet', ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] }));
  const port = await waitPortFile(pf, proc, `upstream ${name}`);
  const url = `http://127.0.0.1:${port}`;
  return {
    name, port, url, proc,
    async control(body) { return post(`${url}/_control`, body); },
    async reset() { return post(`${url}/_reset`, {}); },
    async received() { return (await get(`${url}/_received`)).json; },
    async stop() { proc.kill('SIGTERM'); await new Promise((r) => proc.exitCode !== null ? r() : proc.on('exit', r)); },
  };
}

// The real gateway on a config written from text.
export async function startGateway(yaml, name = 'gw') {
  const dir = tmp();
  const cfg = path.join(dir, `${name}-${Date.now()}.yaml`);
  fs.writeFileSync(cfg, yaml);
  const pf = cfg + '.port';
  const proc = track(spawn(SWITCHYARD, ['serve', '-c', cfg, '--listen', '127.0.0.1:0', '--port-file', pf],
    { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir }));
  const port = await waitPortFile(pf, proc, 'switchyard');
  const url = `http://127.0.0.1:${port}`;
  return {
    port, url, proc, cfg,
    async stop() {
      proc.kill('SIGTERM');
      const code = await new Promise((r) => proc.exitCode !== null ? r(proc.exitCode) : proc.on('exit', (c) => r(c)));
      /* A failed exit shows why (a sanitizer report, an error) in the TAP output. */
      if (code !== 0) for (const l of proc.stderrText.slice(-3000).split('\n')) console.log('# ' + l);
      return code;
    },
  };
}

export async function request(method, url, body, headers = {}) {
  const opts = { method, headers: { ...headers } };
  if (body !== undefined) {
    opts.body = typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body);
    if (!opts.headers['content-type']) opts.headers['content-type'] = 'application/json';
  }
  const res = await fetch(url, opts);
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, text, json };
}
export const post = (url, body, headers) => request('POST', url, body, headers);
export const get = (url, headers) => request('GET', url, undefined, headers);

export function chat(content, extra = {}) {
  return { model: 'auto', messages: [{ role: 'user', content }], ...extra };
}

// Parses an SSE body into the JSON payloads of its data lines (and '[DONE]').
export function sseEvents(text) {
  const out = [];
  for (const block of text.split(/\r?\n\r?\n/)) {
    const data = block.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
    if (!data) continue;
    out.push(data === '[DONE]' ? '[DONE]' : JSON.parse(data));
  }
  return out;
}

// ---------------------------------------------------------------- TAP ----
const tests = [];
export function test(name, fn) { tests.push({ name, fn }); }

export async function run() {
  let n = 0, failed = 0;
  console.log(`1..${tests.length}`);
  for (const t of tests) {
    n++;
    try {
      await t.fn();
      console.log(`ok ${n} - ${t.name}`);
    } catch (e) {
      failed++;
      console.log(`not ok ${n} - ${t.name}`);
      for (const line of String(e && e.stack || e).split('\n')) console.log(`# ${line}`);
    }
  }
  process.exitCode = failed ? 1 : 0;
}

// Kills what is still running and removes the temporary folder.
export function cleanup() {
  for (const c of children) c.kill('SIGKILL');
  if (tmpdir) fs.rmSync(tmpdir, { recursive: true, force: true });
}

export function skipAll(reason) {
  console.log(`1..0 # SKIP ${reason}`);
}

export function assert(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}
export function eq(a, b, msg) {
  if (a !== b) throw new Error(`${msg}: expected ${JSON.stringify(b)}, got ${JSON.stringify(a)}`);
}

// The real gateway on an existing config file, started from cwd (default: the
// temporary folder), with extra arguments and environment.
// nofile: start it under that descriptor limit (ulimit -n, then exec).
export async function startGatewayFile(cfg, { cwd = tmp(), args = [], env = {}, nofile = 0, listen = '127.0.0.1:0' } = {}) {
  const pf = path.join(tmp(), `gwf-${Date.now()}-${Math.random()}.port`);
  const argv = ['serve', '-c', cfg, '--listen', listen, '--port-file', pf, ...args];
  const opts = { stdio: ['ignore', 'pipe', 'pipe'], cwd, env: { ...process.env, ...env } };
  const proc = track(nofile
    ? spawn('sh', ['-c', `ulimit -n ${nofile} && exec "$0" "$@"`, SWITCHYARD, ...argv], opts)
    : spawn(SWITCHYARD, argv, opts));
  const port = await waitPortFile(pf, proc, 'switchyard');
  const url = `http://127.0.0.1:${port}`;
  return {
    port, url, proc, cfg,
    async stop(sig = 'SIGTERM') {
      proc.kill(sig);
      return new Promise((r) => proc.exitCode !== null || proc.signalCode ? r(proc.exitCode) : proc.on('exit', (c) => r(c)));
    },
  };
}

// Runs the switchyard binary to completion: { code, stdout, stderr }; killed (code
// null) after timeoutMs.
export function runSwitchyard(args, { cwd = tmp(), env = {}, timeoutMs = 120000 } = {}) {
  return new Promise((resolve) => {
    const proc = spawn(SWITCHYARD, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd, env: { ...process.env, ...env } });
    let out = '', err = '';
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    proc.stdout.on('data', (d) => { out += d; });
    proc.stderr.on('data', (d) => { err += d; });
    proc.on('exit', (code) => { clearTimeout(timer); resolve({ code, stdout: out, stderr: err }); });
  });
}
