import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { createLogger, REDACTED_FIELDS } from '@pki/kit';
import { findRepoRoot } from '@pki/testing';

/* eslint-disable no-console -- a benchmark reports to its operator */

/**
 * The cost of a log line with the personal-data redaction of @pki/kit (any depth, message text
 * included), next to, in the same run:
 * - "pino paths": what the kit did before (pino's own fast-redact with fixed paths, three levels
 *   deep, no message text): the reference the redaction must not be measurably slower than;
 * - "no redaction": pino alone, the floor.
 * Lines go to a destination that drops them, so the figures are the CPU time of producing a line
 * (what redaction adds to); writing it out costs the same in all three. Rounds alternate between
 * the loggers so that machine noise hits them alike; the median round counts.
 *
 * Settings: BENCH_LOG_LINES (lines per round, default 50000), BENCH_LOG_ROUNDS (default 7).
 */
const LINES = Number(process.env.BENCH_LOG_LINES ?? 50_000);
const ROUNDS = Number(process.env.BENCH_LOG_ROUNDS ?? 7);

const drop = { write: () => undefined };

// The kit's logger before issue 7, verbatim: fast-redact on fixed paths.
function pinoPathsLogger(): pino.Logger {
  const fields = ['nationalId', 'national_id', 'name', 'fullName', 'birthDate', 'birth_date', 'pin', 'newPin', 'puk', 'subscriberCode', 'subscriber_code', 'password', 'secret', 'privateKey', 'private_key', 'authorization', 'email', 'phone', 'address'];
  const paths: string[] = [];
  for (const f of fields) paths.push(f, `*.${f}`, `*.*.${f}`, `*[*].${f}`);
  paths.push('req.headers.authorization', 'req.headers.cookie');
  return pino({ level: 'info', base: { service: 'ra' }, redact: { paths, censor: '[redacted]' }, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } }, drop);
}

function plainLogger(): pino.Logger {
  return pino({ level: 'info', base: { service: 'ra' }, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } }, drop);
}

const request = { method: 'POST', url: '/v1/enrolments', headers: { 'content-type': 'application/json', 'idempotency-key': 'k-1' }, ip: '127.0.0.1', host: '127.0.0.1:8443', socket: { remotePort: 52_000 } };
const requestSerializer = (req: typeof request) => ({ method: req.method, url: req.url, host: req.host, remoteAddress: req.ip, remotePort: req.socket.remotePort });

/** The lines measured: what ocsp and ra log on their hot paths, and the rarer cases. */
const SHAPES: Array<{ name: string; what: string; line: (log: pino.Logger) => () => void }> = [
  {
    name: 'ocsp-response',
    what: "ocsp: one short field and a message (log.info({ serial }, 'ocsp response'))",
    line: (log) => () => log.info({ serial: '7f0e2c5d9a4b1e3f6a8c0d2e4f6a8b1c' }, 'ocsp response'),
  },
  {
    name: 'ra-request',
    what: 'ra: a per-request line from a request child logger, six fields',
    line: (log) => {
      const child = log.child({ reqId: 'req-1a2b' });
      return () => child.info({ serial: '7f0e2c5d9a4b1e3f6a8c0d2e4f6a8b1c', profile: 'citizen-signature', issuerKeyId: 'a1b2c3d4e5f6a7b8c9d0', caller: 'officer:registrar-1', statusCode: 201, durationMs: 12.25 }, 'certificate enrolled');
    },
  },
  {
    name: 'fastify-request',
    what: "ra: fastify's incoming-request line (req serializer on a child)",
    line: (log) => {
      const child = log.child({ reqId: 'req-1a2b' }, { serializers: { req: requestSerializer } });
      return () => child.info({ req: request }, 'incoming request');
    },
  },
  {
    name: 'error',
    what: 'an error with a cause (rare: failures)',
    line: (log) => {
      const err = new Error('enrol: ca-signer unavailable', { cause: new Error('14 UNAVAILABLE: connect ECONNREFUSED 127.0.0.1:18090') });
      return () => log.error({ err, serial: '7f0e' }, 'enrolment failed');
    },
  },
  {
    name: 'personal-data',
    what: 'a line that carries personal data to redact (should not happen; the worst case)',
    line: (log) => () => log.info({ serial: '7f0e', applicant: { nationalId: 'A123456789', name: '王小明', birthDate: '1990-01-01' } }, 'enrolment'),
  },
];

const LOGGERS: Array<{ name: string; make: () => pino.Logger }> = [
  { name: 'kit (any depth + text)', make: () => createLogger({ service: 'ra', destination: drop }) },
  { name: 'pino paths (before)', make: pinoPathsLogger },
  { name: 'no redaction', make: plainLogger },
];

/** CPU time (user + system) per line: unlike wall time, not inflated when other work takes the core. */
function nsPerLine(run: () => void): number {
  const start = process.cpuUsage();
  for (let i = 0; i < LINES; i++) run();
  const used = process.cpuUsage(start);
  return ((used.user + used.system) * 1000) / LINES;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

function main(): void {
  const root = findRepoRoot(__dirname);
  const loadavgBefore = os.loadavg();
  console.log(`logging bench: ${LINES} lines x ${ROUNDS} rounds per logger and shape; load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  const results: Array<Record<string, unknown>> = [];
  for (const shape of SHAPES) {
    const runs = LOGGERS.map((l) => ({ name: l.name, run: shape.line(l.make()), samples: [] as number[] }));
    for (const r of runs) nsPerLine(r.run); // warm-up: JIT, caches
    for (let round = 0; round < ROUNDS; round++) for (const r of runs) r.samples.push(nsPerLine(r.run));
    const [kit, before, none] = runs.map((r) => median(r.samples)) as [number, number, number];
    const result = { shape: shape.name, what: shape.what, nsPerLine: { kit, pinoPaths: before, noRedaction: none }, kitOverPinoPaths: kit / before, kitOverNoRedaction: kit / none };
    results.push(result);
    console.log(`${shape.name.padEnd(16)} kit ${kit.toFixed(0).padStart(5)} ns   pino paths ${before.toFixed(0).padStart(5)} ns   none ${none.toFixed(0).padStart(5)} ns   kit/pino paths ${(kit / before).toFixed(2)}   kit/none ${(kit / none).toFixed(2)}`);
  }
  const outDir = path.join(root, 'var', 'bench');
  mkdirSync(outDir, { recursive: true });
  const report = { date: new Date().toISOString(), node: process.version, cores: os.cpus().length, cpu: os.cpus()[0]?.model, loadavgBefore, loadavgAfter: os.loadavg(), unit: 'CPU ns per line (median round)', settings: { lines: LINES, rounds: ROUNDS }, redactedFields: REDACTED_FIELDS.length, results };
  writeFileSync(path.join(outDir, 'logging-latest.json'), JSON.stringify(report, null, 2) + '\n');
  console.log(`load after: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log(`results written to ${path.relative(root, path.join(outDir, 'logging-latest.json'))}`);
}

main();
