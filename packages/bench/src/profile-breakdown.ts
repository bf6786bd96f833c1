import { readFileSync } from 'node:fs';

/* eslint-disable no-console -- a benchmark tool reports to its operator */

/**
 * Where a ca-signer's event loop went per certificate, from the .cpuprofile that
 * `BENCH_ONLY=IssueCertificate BENCH_PROFILE=1 make bench` writes under var/bench/run-<pid>/:
 *
 *   node packages/bench/dist/profile-breakdown.js <file.cpuprofile> <certificates issued in the run>
 *
 * Each sample goes to the first stage below that any frame of its stack belongs to. The samples
 * are wall-clock: on a loaded machine they exceed the CPU the process used, so compare stages and
 * runs made under the same load, not these figures with /proc's.
 */
interface CallFrame {
  functionName: string;
  url: string;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const STAGES: Array<[string, (frame: CallFrame) => boolean]> = [
  ['prepare: checks, the TBS built, the pre-issuance lint', (f) => f.functionName === 'prepareCertificate'],
  ['the HSM call on the event loop (C_SignInit, completion)', (f) => /pkcs11|graphene|session-pool|resilient/.test(f.url)],
  ['assemble the certificate and verify its signature', (f) => ['signPreparedCertificate', 'signCertificate', 'assembleCertificate', 'verifyCertificateSignatureDer'].includes(f.functionName)],
  ['outbox relay', (f) => /outbox\/dist\/(relay|postgres-bus|transport)/.test(f.url)],
  [
    'database: transactions, statements, audit events',
    (f) => /\/(pg|pg-pool|pg-protocol)\/|packages\/db\/|audit-events|outbox\/dist\/append|group-commit/.test(f.url) || ['appendAuditEvent', 'withTransaction'].includes(f.functionName),
  ],
  ['gRPC, HTTP/2, TLS, protobuf', (f) => /grpc|http2|tls|bufbuild|packages\/proto/.test(f.url)],
  ['garbage collection', (f) => f.functionName === '(garbage collector)'],
];
const OTHER = 'other (native code, timers, logging, metrics, the rest of issue())';

function main(): void {
  const [file, certificatesArg] = process.argv.slice(2);
  const certificates = Number(certificatesArg);
  if (!file || !(certificates > 0)) {
    console.error('usage: profile-breakdown <file.cpuprofile> <certificates issued in the run>');
    process.exit(64);
  }
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const child of n.children ?? []) parent.set(child, n.id);
  const perStage = new Map<string, number>();
  let busy = 0;
  profile.samples.forEach((sample, i) => {
    if (nodes.get(sample)!.callFrame.functionName === '(idle)') return;
    const delta = profile.timeDeltas[i] ?? 0;
    busy += delta;
    const stack: CallFrame[] = [];
    for (let id: number | undefined = sample; id !== undefined; id = parent.get(id)) stack.push(nodes.get(id)!.callFrame);
    const stage = STAGES.find(([, belongs]) => stack.some(belongs))?.[0] ?? OTHER;
    perStage.set(stage, (perStage.get(stage) ?? 0) + delta);
  });
  console.log(`| stage | event-loop µs per certificate |\n|---|---|`);
  for (const [stage, us] of [...perStage].sort((a, b) => b[1] - a[1])) console.log(`| ${stage} | ${Math.round(us / certificates)} |`);
  console.log(`| total | ${Math.round(busy / certificates)} |`);
}

main();
