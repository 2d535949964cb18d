#!/usr/bin/env node
// delay-proxy.mjs — a TCP proxy on loopback that delays every chunk by half a round
// trip in each direction, so a request/response exchange takes RTT_MS longer: an
// emulated network link for bench/speculative-tiers.mjs.
//
//   node bench/delay-proxy.mjs RTT_MS TARGET_PORT PORT_FILE
//
// Listens on an ephemeral port of 127.0.0.1 (written to PORT_FILE) and forwards each
// connection to 127.0.0.1:TARGET_PORT. Order within a direction is kept (every chunk
// waits the same time after it arrived). Not a bandwidth model: delay only.
import fs from 'node:fs';
import net from 'node:net';

const [rtt, target, portFile] = [Number(process.argv[2]), Number(process.argv[3]), process.argv[4]];
if (!(rtt >= 0) || !(target > 0) || !portFile) {
  console.error('usage: delay-proxy.mjs RTT_MS TARGET_PORT PORT_FILE');
  process.exit(2);
}
const half = rtt / 2;

// Writes data to dst half a round trip after it arrived (or now, with no delay).
function forward(src, dst) {
  src.on('data', (d) => {
    if (half <= 0) dst.write(d);
    else setTimeout(() => { if (!dst.destroyed) dst.write(d); }, half);
  });
  src.on('end', () => setTimeout(() => dst.end(), half));
  src.on('error', () => dst.destroy());
}

const srv = net.createServer((client) => {
  client.setNoDelay(true);
  const up = net.connect(target, '127.0.0.1');
  up.setNoDelay(true);
  forward(client, up);
  forward(up, client);
  client.on('close', () => up.destroy());
  up.on('close', () => client.destroy());
});
srv.listen(0, '127.0.0.1', () => {
  fs.writeFileSync(portFile + '.tmp', String(srv.address().port));
  fs.renameSync(portFile + '.tmp', portFile);
});
process.on('SIGTERM', () => process.exit(0));
