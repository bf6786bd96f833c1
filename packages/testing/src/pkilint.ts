import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { PkiError } from '@pki/kit';

/**
 * pkilint (DigiCert, PyPI) as the independent checker of what the CA signs: it shares no code with
 * the CA's builders or its pre-issuance linter. scripts/install-pkilint.sh installs the pinned
 * version into var/tools/pkilint; the dispositions of its findings are in docs/pkilint.md.
 */

export type PkilintDocumentKind = 'certificate' | 'crl' | 'ocsp-response';

/** pkilint's severities, most severe first (pkilint.validation.ValidationFindingSeverity). */
export const PKILINT_SEVERITIES = ['FATAL', 'ERROR', 'WARNING', 'NOTICE', 'INFO', 'DEBUG'] as const;
export type PkilintSeverity = (typeof PKILINT_SEVERITIES)[number];

export interface PkilintFinding {
  severity: PkilintSeverity;
  /** e.g. `pkix.certificate_skid_ca_missing`. */
  code: string;
  message?: string;
  /** Where in the document, e.g. `certificate.tbsCertificate.extensions.2`. */
  nodePath: string;
  validator: string;
}

export interface PkilintOptions {
  /** Lowest severity reported. Default INFO (pkilint's own default): everything but DEBUG. */
  severity?: PkilintSeverity;
  /** lint_crl --type: a CRL of end-entity certificates, or an ARL (CA certificates). Default CRL. */
  crlType?: 'CRL' | 'ARL';
  /** lint_crl --profile: RFC 5280 only, or the CA/Browser Forum Baseline Requirements too. Default PKIX. */
  crlProfile?: 'PKIX' | 'BR';
  /** Folder holding the pkilint CLIs. Default $PKILINT_BIN, else <repo>/var/tools/pkilint/bin. */
  binDir?: string;
}

/** The folder with lint_pkix_cert and friends; FAILED_PRECONDITION naming the installer if absent. */
export function findPkilint(binDir?: string): string {
  const dir = binDir ?? process.env['PKILINT_BIN'] ?? join(repositoryRoot(), 'var', 'tools', 'pkilint', 'bin');
  if (!existsSync(join(dir, 'lint_pkix_cert'))) {
    throw new PkiError('FAILED_PRECONDITION', `find pkilint: ${join(dir, 'lint_pkix_cert')} not found; run scripts/install-pkilint.sh`);
  }
  return dir;
}

function repositoryRoot(): string {
  let dir = resolve(__dirname);
  while (!existsSync(join(dir, 'pnpm-workspace.yaml'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new PkiError('FAILED_PRECONDITION', 'find pkilint: not inside the repository (no pnpm-workspace.yaml above this file)');
    dir = parent;
  }
  return dir;
}

/** The CLI and arguments for one document kind (checked against `<cli> lint --help` of pkilint 0.13.3). */
function commandFor(kind: PkilintDocumentKind, options: PkilintOptions): { cli: string; args: string[] } {
  const common = ['-f', 'JSON', '-s', options.severity ?? 'INFO', '--document-format', 'DER'];
  switch (kind) {
    case 'certificate':
      return { cli: 'lint_pkix_cert', args: ['lint', ...common, '-'] };
    case 'crl':
      return { cli: 'lint_crl', args: ['lint', '--type', options.crlType ?? 'CRL', '--profile', options.crlProfile ?? 'PKIX', ...common, '-'] };
    case 'ocsp-response':
      return { cli: 'lint_ocsp_response', args: ['lint', ...common, '-'] };
  }
}

/**
 * Lints a DER certificate, CRL or OCSP response with pkilint and returns its findings at or above
 * `options.severity`. The document goes in on stdin. pkilint's exit status is the number of
 * findings (or 1 when it cannot load the document), so the JSON report, not the status, decides;
 * a document pkilint cannot load is an INVALID_ARGUMENT with pkilint's own message.
 */
export async function lintWithPkilint(kind: PkilintDocumentKind, der: Uint8Array, options: PkilintOptions = {}): Promise<PkilintFinding[]> {
  const operation = `pkilint ${kind}`;
  if (!(der instanceof Uint8Array) || der.length === 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: document must be non-empty DER bytes`);
  const { cli, args } = commandFor(kind, options);
  const { stdout, stderr, status } = await run(join(findPkilint(options.binDir), cli), args, der);
  return parseReport(operation, stdout, stderr, status);
}

interface PkilintJsonReport {
  results?: Array<{ node_path: string; validator: string; finding_descriptions: Array<{ severity: string; code: string; message: string | null }> }>;
}

function parseReport(operation: string, stdout: string, stderr: string, status: number): PkilintFinding[] {
  let report: PkilintJsonReport;
  try {
    report = JSON.parse(stdout) as PkilintJsonReport;
  } catch {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: pkilint rejected the document (exit ${status}): ${stderr.trim() || stdout.trim()}`);
  }
  const findings: PkilintFinding[] = [];
  for (const result of report.results ?? []) {
    for (const description of result.finding_descriptions) {
      const severity = description.severity as PkilintSeverity;
      if (!PKILINT_SEVERITIES.includes(severity)) throw new PkiError('INTERNAL', `${operation}: unknown severity '${description.severity}' in pkilint's report`);
      const finding: PkilintFinding = { severity, code: description.code, nodePath: result.node_path, validator: result.validator };
      if (description.message !== null) finding.message = description.message;
      findings.push(finding);
    }
  }
  return findings;
}

/**
 * Lints an issuer/subject pair with lint_pkix_signer_signee_cert_chain: the checks that need both
 * certificates (issuer name and key identifier chaining, validity nesting).
 */
export async function lintChainWithPkilint(issuerDer: Uint8Array, subjectDer: Uint8Array, options: Pick<PkilintOptions, 'severity' | 'binDir'> = {}): Promise<PkilintFinding[]> {
  const dir = await mkdtemp(join(tmpdir(), 'pkilint-chain-'));
  try {
    const issuer = join(dir, 'issuer.der');
    const subject = join(dir, 'subject.der');
    await writeFile(issuer, issuerDer);
    await writeFile(subject, subjectDer);
    const cli = join(findPkilint(options.binDir), 'lint_pkix_signer_signee_cert_chain');
    const args = ['lint', '-f', 'JSON', '-s', options.severity ?? 'INFO', '--document-format', 'DER', issuer, subject];
    const { stdout, stderr, status } = await run(cli, args, new Uint8Array());
    return parseReport('pkilint certificate chain', stdout, stderr, status);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The findings of severity ERROR or FATAL. */
export function pkilintErrors(findings: readonly PkilintFinding[]): PkilintFinding[] {
  return findings.filter((f) => f.severity === 'FATAL' || f.severity === 'ERROR');
}

/** One line per finding: `WARNING pkix.code @ node.path (message)`. */
export function formatPkilintFindings(findings: readonly PkilintFinding[]): string {
  return findings.map((f) => `${f.severity} ${f.code} @ ${f.nodePath}${f.message ? ` (${f.message})` : ''}`).join('\n');
}

/**
 * For tests: lints the document and throws, listing them, if pkilint reports any ERROR or FATAL
 * finding. Returns every finding (warnings and notices included) for the test to check against
 * its documented list.
 */
export async function expectNoPkilintErrors(kind: PkilintDocumentKind, der: Uint8Array, options: PkilintOptions = {}): Promise<PkilintFinding[]> {
  const findings = await lintWithPkilint(kind, der, options);
  const errors = pkilintErrors(findings);
  if (errors.length > 0) throw new Error(`pkilint reports ${errors.length} error(s) for the ${kind}:\n${formatPkilintFindings(errors)}`);
  return findings;
}

function run(command: string, args: string[], stdin: Uint8Array): Promise<{ stdout: string; stderr: string; status: number }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', (error) => reject(new PkiError('FAILED_PRECONDITION', `run ${command}: ${error.message}`, { cause: error })));
    child.on('close', (code) => resolvePromise({ stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), status: code ?? -1 }));
    child.stdin.on('error', () => undefined); // pkilint may exit before reading everything; the report says why
    child.stdin.end(Buffer.from(stdin));
  });
}
