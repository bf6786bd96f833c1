import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';

/* eslint-disable no-console -- prints its one result for the parent benchmark */

/**
 * The load generator the OCSP benchmark puts `openssl ocsp -index` and the responder under: GET
 * requests cycling over a file of paths, from `connections` lanes for `seconds`, either on
 * keep-alive connections (HTTP/1.1, as CDNs and agency clients do) or with a new connection per
 * request (HTTP/1.0: what `openssl ocsp` serves; wrk hangs on it). Raw sockets, so that the
 * generator costs less than the servers it measures. Prints answers/s and p50/p99 latency.
 * Argument: JSON { port, pathsFile, connections, seconds, keepAlive, clients? }. With `clients`
 * (key and certificate PEM files), keep-alive lanes speak TLS, each presenting one of the client
 * certificates in turn (agencies identifying with mTLS, issue 13).
 */
interface Settings {
  port: number;
  pathsFile: string;
  connections: number;
  seconds: number;
  keepAlive: boolean;
  clients?: Array<{ keyFile: string; certFile: string }>;
}

const settings = JSON.parse(process.argv[2] ?? '{}') as Settings;
const paths = readFileSync(settings.pathsFile, 'utf8').split('\n').filter(Boolean);
const latencies: number[] = [];
let answered = 0;
let errors = 0;
let non200 = 0;
let next = Math.floor(Math.random() * paths.length);
const until = Date.now() + settings.seconds * 1000;
const nextPath = () => paths[(next = (next + 1) % paths.length)]!;
const clients = (settings.clients ?? []).map((c) => ({ key: readFileSync(c.keyFile), cert: readFileSync(c.certFile) }));
let lanes = 0;

/** Reads one HTTP response from `buffer`: its status and total length, or undefined when incomplete. */
function parse(buffer: Buffer): { status: number; length: number } | undefined {
  const end = buffer.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const head = buffer.subarray(0, end).toString('latin1');
  const length = Number(/content-length:\s*(\d+)/i.exec(head)?.[1] ?? -1);
  if (length < 0 || buffer.length < end + 4 + length) return undefined;
  return { status: Number(head.slice(9, 12)), length: end + 4 + length };
}

function keepAliveLane(): Promise<void> {
  return new Promise((resolve) => {
    const client = clients.length > 0 ? clients[lanes++ % clients.length]! : undefined;
    const socket = client ? tls.connect({ port: settings.port, host: '127.0.0.1', key: client.key, cert: client.cert, rejectUnauthorized: false }) : net.connect(settings.port, '127.0.0.1');
    socket.setNoDelay(true);
    let buffer: Buffer = Buffer.alloc(0);
    let started = 0;
    const send = () => {
      if (Date.now() >= until) return void socket.end();
      started = performance.now();
      socket.write(`GET ${nextPath()} HTTP/1.1\r\nHost: ocsp\r\n\r\n`);
    };
    socket.on(client ? 'secureConnect' : 'connect', send);
    socket.on('data', (chunk: Buffer) => {
      buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
      const response = parse(buffer);
      if (!response) return;
      buffer = buffer.subarray(response.length);
      latencies.push(performance.now() - started);
      answered++;
      if (response.status !== 200) non200++;
      send();
    });
    socket.on('error', () => errors++);
    socket.on('close', () => resolve());
  });
}

async function closingLane(): Promise<void> {
  while (Date.now() < until) {
    await new Promise<void>((resolve) => {
      const started = performance.now();
      const socket = net.connect(settings.port, '127.0.0.1');
      const chunks: Buffer[] = [];
      socket.on('connect', () => socket.write(`GET ${nextPath()} HTTP/1.0\r\nHost: ocsp\r\n\r\n`));
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.on('error', () => {
        errors++;
        resolve();
      });
      socket.on('close', () => {
        const response = parse(Buffer.concat(chunks));
        if (response) {
          latencies.push(performance.now() - started);
          answered++;
          if (response.status !== 200) non200++;
        }
        resolve();
      });
    });
  }
}

async function main(): Promise<void> {
  const started = performance.now();
  await Promise.all(Array.from({ length: settings.connections }, () => (settings.keepAlive ? keepAliveLane() : closingLane())));
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (p: number) => latencies[Math.min(latencies.length - 1, Math.max(0, Math.ceil((p / 100) * latencies.length) - 1))] ?? NaN;
  console.log(JSON.stringify({ perSecond: answered / elapsed, requests: answered, p50Ms: at(50), p99Ms: at(99), non2xx: non200, socketErrors: errors ? String(errors) : 'none' }));
}

void main();
