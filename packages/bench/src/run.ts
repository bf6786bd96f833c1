import { spawnSync } from 'node:child_process';
import path from 'node:path';

/* eslint-disable no-console -- a benchmark reports to its operator */

/**
 * `make bench`: runs every benchmark, or those BENCH_ONLY names (comma-separated measurement
 * names, e.g. `BENCH_ONLY=issuance` or `BENCH_ONLY=RSA-2048,IssueCertificate`), one after another
 * so that they do not compete for the two cores. Each writes var/bench/<name>-latest.json.
 */
const BENCHMARKS: Array<{ script: string; measurements: string[] }> = [
  { script: 'signing-bench.js', measurements: ['RSA-2048', 'RSA-4096', 'P-256', 'IssueCertificate'] },
  { script: 'issuance-bench.js', measurements: ['issuance'] },
  { script: 'crl-bench.js', measurements: ['CRL'] },
  { script: 'audit-bench.js', measurements: ['audit'] },
  { script: 'ocsp-bench.js', measurements: ['OCSP'] },
  { script: 'logging-bench.js', measurements: ['logging'] },
  { script: 'migration-bench.js', measurements: ['migration'] },
  { script: 'identity-bench.js', measurements: ['identity-confirmation', 'certificate-validation'] },
];

const only = process.env.BENCH_ONLY?.split(',').map((s) => s.trim()).filter(Boolean);
const known = BENCHMARKS.flatMap((b) => b.measurements);
const unknown = only?.filter((m) => !known.includes(m)) ?? [];
if (unknown.length > 0) {
  console.error(`BENCH_ONLY names unknown measurements: ${unknown.join(', ')} (known: ${known.join(', ')})`);
  process.exit(64);
}
let failed = false;
for (const bench of BENCHMARKS) {
  const selected = only ? bench.measurements.filter((m) => only.includes(m)) : bench.measurements;
  if (selected.length === 0) continue;
  const result = spawnSync(process.execPath, [path.join(__dirname, bench.script)], { stdio: 'inherit', env: { ...process.env, BENCH_ONLY: selected.join(',') } });
  if (result.status !== 0) {
    failed = true;
    // A benchmark killed from outside (a signal, the OOM killer) prints nothing itself.
    console.error(`${bench.script} ${result.signal ? `was killed by ${result.signal}` : result.error ? `could not run: ${result.error.message}` : `exited with status ${result.status}`}`);
  }
}
process.exit(failed ? 1 : 0);
