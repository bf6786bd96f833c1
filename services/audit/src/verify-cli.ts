#!/usr/bin/env node
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { certificatesFromPem } from './domain/checkpoint';
import { ExportVerifier, verifyFileParallel, type CheckpointLine } from './verify/verifier';

/* eslint-disable no-console -- a command-line tool for auditors */

const USAGE = `usage: pki-audit-verify EXPORT.jsonl --ca root.pem [--ca issuing.pem] [--kept kept.json] [--keep-to kept.json] [--json] [--quiet]

Verifies an audit log export offline, with nothing but the CA certificates:
  every producer's sequence, each leaf's place and hash, the Merkle root at every checkpoint,
  every checkpoint's signature (by the CA's audit checkpoint key), the producer heads each
  checkpoint attests, and, with --kept, consistency with a checkpoint kept from an earlier audit.

  --ca FILE       PEM file of CA certificates (root, issuing); repeat for several files
  --kept FILE     the checkpoint kept from the previous audit (written by --keep-to)
  --keep-to FILE  after a successful verification, write the export's last checkpoint there
  --json          print the report as JSON
  --quiet         no progress on stderr

Exit status: 0 verified; 3 verified, but the log records breaks (read them); 1 verification
failed (tampering or a wrong file); 2 usage error.`;

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({ allowPositionals: true, options: { ca: { type: 'string', multiple: true }, kept: { type: 'string' }, 'keep-to': { type: 'string' }, json: { type: 'boolean' }, quiet: { type: 'boolean' }, help: { type: 'boolean' } } });
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (args.values.help) {
    console.log(USAGE);
    return 0;
  }
  const [file] = args.positionals;
  if (!file || args.positionals.length !== 1 || !args.values.ca?.length) {
    console.error(USAGE);
    return 2;
  }
  let trustAnchors;
  let kept: CheckpointLine | undefined;
  try {
    trustAnchors = args.values.ca.flatMap((f) => certificatesFromPem(readFileSync(f, 'utf8')));
    if (trustAnchors.length === 0) throw new Error('no certificate in the --ca files');
    if (args.values.kept) kept = JSON.parse(readFileSync(args.values.kept, 'utf8')) as CheckpointLine;
  } catch (err) {
    console.error(`pki-audit-verify: ${(err as Error).message}`);
    return 2;
  }
  const started = Date.now();
  const verifier = new ExportVerifier({
    trustAnchors,
    kept,
    onProgress: args.values.quiet ? undefined : (n, total) => process.stderr.write(`\rverified ${n.toLocaleString('en')} of ${total.toLocaleString('en')} leaves (${Math.floor((100 * n) / Math.max(total, 1))}%)   `),
  });
  let report;
  try {
    report = await verifyFileParallel(file, verifier);
  } catch (err) {
    console.error(`pki-audit-verify: cannot read ${file}: ${(err as Error).message}`);
    return 2;
  }
  const seconds = (Date.now() - started) / 1000;
  if (!args.values.quiet) process.stderr.write('\n');
  if (report.verified && args.values['keep-to'] && report.finalCheckpoint) writeFileSync(args.values['keep-to'], JSON.stringify(report.finalCheckpoint) + '\n');
  if (args.values.json) console.log(JSON.stringify({ ...report, seconds }, null, 2));
  else {
    console.log(`${report.verified ? 'VERIFIED' : 'FAILED'}: ${report.origin ?? '?'} leaves ${report.from ?? '?'}..${report.to ?? '?'} (${report.leaves.toLocaleString('en')} leaves, ${report.checkpointsVerified} checkpoints, ${seconds.toFixed(1)} s)`);
    for (const f of report.failures) console.log(`  failure: ${f}`);
    if (report.breaks.length > 0) console.log(`  the log records ${report.breaks.length} break(s):`);
    for (const b of report.breaks.slice(0, 50)) console.log(`    leaf ${b.index}: ${b.kind} ${b.producer} ${b.detail}`);
    if (kept && report.verified) console.log(`  consistent with the checkpoint you kept`);
  }
  if (!report.verified) return 1;
  return report.breaks.length > 0 ? 3 : 0;
}

void main().then((code) => process.exit(code));
