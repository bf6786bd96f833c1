import { readFile, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { loadConfigFile, PkiError, systemClock } from '@pki/kit';
import { fromPem, parsePemBlocks, toPem } from '@pki/x509';
import { caSignerConfigSchema, type CaSignerConfig } from './config';
import { ensureDevHierarchy } from './ceremony/dev-hierarchy';
import { streamProgress } from './ceremony/progress';
import { parseSubject } from './ceremony/subject';
import { custodyRequired, openCeremony, type PinSource, readPinFile, readShareFiles, resolveCeremonyPin, type ResolvedPin } from './ceremony/session';
import { splitTokenPin } from './ceremony/split-pin';
import { activateIssuer, createDelegatedSigner, createIssuing, createRoot, createTransportKey, importIssuing, importLegacyIssuer, listHierarchy, parseArlReason, revokeIssuing, signArl } from './ceremony/steps';
import type { CeremonyContext } from './ceremony/steps';
import { parseKeySpec } from './domain/ca-hierarchy';

/* eslint-disable no-console -- a command-line tool talks to its operator: results on stdout, progress and prompts on stderr */

const USAGE = `usage: pki ceremony <step> --config <ca-signer.json> [options]

Custody (every step that uses the HSM): the token PIN is rebuilt from m custodians' shares,
  --share-file <file>        one per custodian present (repeat); on a terminal without
                             --share-file, each custodian is asked in turn
  --pin-file <file>          development only: the PIN itself; refused when custody is required
                             (config ceremony.requireCustody, or PKI_CEREMONY_REQUIRE_CUSTODY=true)

Steps:
  split-pin --custodian <name> (repeat, n) --threshold <m> --out <dir> (--generate-pin | --split-current)
            --generate-pin: a new random PIN replaces the token's user PIN (C_SetPIN) and exists
            only as the n shares; the current PIN comes from --pin-file or the previous
            custodians' --share-file. --split-current: the current PIN (>= 16 characters, from
            --pin-file or a prompt) is split as it is.
  create-root --generation <name> --key rsa-4096|rsa-3072|rsa-2048|p-384|p-256 --subject "C=TW, O=..."
            [--validity-years 30] [--cert-out <file.pem>]
  create-issuing --generation <name> --key <spec> [--subject "C=TW, O=..., OU=..."]
            (--csr-out <file.pem> | --sign-with-root <root key id> [--validity-years 20] [--cert-out <file.pem>])
  import-issuing --cert <file.pem> [--issuer-cert <root.pem>] [--generation <name>]
  create-transport-key --label <name> [--out <transport.pem>]
            migration: an RSA-4096 key pair whose private half can only unwrap; the public key
            goes to the previous CA's HSM, which wraps its CA keys under it
  import-legacy --generation <name> --cert <old CA cert> --wrapped <file> --transport-key <key id>
            [--issuer-cert <old root cert>]   unwraps an old generation's key into the token
            (C_UnwrapKey; never in clear outside an HSM) and records the generation, inactive
  activate --issuer <key id>
  create-ocsp-responder --issuer <key id> [--key p-256|rsa-2048|...] [--validity-days N] [--cert-out <file.pem>]
  create-audit-signer --issuer <key id> [--key <spec>] [--validity-days N] [--cert-out <file.pem>]
  create-validation-signer --issuer <key id> [--key <spec>] [--validity-days N] [--cert-out <file.pem>]
  sign-arl --root <root key id> [--validity-days 365]
            the root's authority revocation list over the CA certificates revoked under it
  revoke-issuing --issuer <key id> --reason ca-compromise|key-compromise|superseded|cessation-of-operation|affiliation-changed|unspecified
            [--validity-days 365]   revokes an inactive issuing generation and signs the root's new ARL
  list [--json]              generations, active flag, pending requests, delegated signers, expiry
  init-dev --out <dir>       embedded deployment only: a development hierarchy, no custodians

A key id is the CA certificate's subjectKeyIdentifier in hex, as 'list' shows it.`;

const OPTIONS = {
  config: { type: 'string' },
  out: { type: 'string' },
  help: { type: 'boolean' },
  json: { type: 'boolean' },
  'share-file': { type: 'string', multiple: true },
  'pin-file': { type: 'string' },
  custodian: { type: 'string', multiple: true },
  threshold: { type: 'string' },
  'generate-pin': { type: 'boolean' },
  'split-current': { type: 'boolean' },
  generation: { type: 'string' },
  key: { type: 'string' },
  subject: { type: 'string' },
  'validity-years': { type: 'string' },
  'validity-days': { type: 'string' },
  'cert-out': { type: 'string' },
  'csr-out': { type: 'string' },
  'sign-with-root': { type: 'string' },
  cert: { type: 'string' },
  'issuer-cert': { type: 'string' },
  issuer: { type: 'string' },
  root: { type: 'string' },
  reason: { type: 'string' },
  label: { type: 'string' },
  wrapped: { type: 'string' },
  'transport-key': { type: 'string' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

class UsageError extends Error {}

function need<K extends keyof Values>(values: Values, name: K): NonNullable<Values[K]> {
  const value = values[name];
  if (value === undefined || value === '') throw new UsageError(`--${String(name)} is required`);
  return value as NonNullable<Values[K]>;
}

function integer(value: string | undefined, name: string, fallback?: number): number {
  if (value === undefined) {
    if (fallback === undefined) throw new UsageError(`--${name} is required`);
    return fallback;
  }
  if (!/^[0-9]+$/.test(value)) throw new UsageError(`--${name} must be a whole number`);
  return Number(value);
}

const progress = streamProgress(process.stderr);

/** The ceremony PIN from the custodians' shares, a prompt, or (development) a PIN file. */
async function ceremonyPin(config: CaSignerConfig, values: Values): Promise<ResolvedPin> {
  const requireCustody = custodyRequired(config);
  let source: PinSource;
  if (values['pin-file'] && values['share-file']) throw new UsageError('give either --share-file or --pin-file, not both');
  if (values['pin-file']) source = { kind: 'pin-file', path: values['pin-file'] };
  else if (values['share-file']?.length) source = { kind: 'shares', shares: await readShareFiles(values['share-file']) };
  else if (process.stdin.isTTY) source = { kind: 'prompt', askShare: askShareOnTerminal };
  else throw new UsageError('this step uses the HSM: give the custodians\' --share-file (or, in development, --pin-file)');
  const resolved = await resolveCeremonyPin(config, source, { requireCustody });
  progress.say(`present: ${resolved.attendance.actor}`);
  return resolved;
}

/**
 * Asks custodian N for their share without echoing it: a path to their share file (on their own
 * medium) or the share's line pasted. Custodians take turns at the keyboard; nothing typed stays
 * on screen.
 */
async function askShareOnTerminal(n: number, needed: number | undefined): Promise<string | undefined> {
  const of = needed === undefined ? '' : ` of ${needed}`;
  const answer = await askHidden(`custodian ${n}${of}: path to your share file, or paste the share (empty to stop): `);
  const trimmed = answer.trim();
  if (trimmed === '') return undefined;
  return trimmed.startsWith('{') ? trimmed : readFile(trimmed, 'utf8');
}

function askHidden(question: string): Promise<string> {
  let muted = false;
  const output = new Writable({
    write(chunk, encoding, callback) {
      if (!muted) process.stderr.write(chunk, encoding);
      callback();
    },
  });
  const rl = createInterface({ input: process.stdin, output, terminal: true });
  return new Promise((resolve) => {
    rl.question(question, (answer) => {
      rl.close();
      process.stderr.write('\n');
      resolve(answer);
    });
    muted = true;
  });
}

/** A wrapped key file from the legacy export (docs/migration/legacy-export.md): `name: value` lines. */
function parseWrappedKeyFile(text: string): { kek: Buffer; key: Buffer } {
  const fields = new Map(text.split('\n').filter(Boolean).map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1).trim()]));
  const kek = fields.get('wrapped-kek');
  const key = fields.get('wrapped-key');
  if (!kek || !key) throw new UsageError('--wrapped: the file must hold wrapped-kek and wrapped-key lines (base64)');
  return { kek: Buffer.from(kek, 'base64'), key: Buffer.from(key, 'base64') };
}

async function readCertificate(file: string): Promise<Buffer> {
  const data = await readFile(file).catch((err: NodeJS.ErrnoException) => {
    throw new PkiError('INVALID_ARGUMENT', `read certificate ${file}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
  });
  const text = data.toString('latin1');
  if (!text.includes('-----BEGIN')) return data; // DER
  const blocks = parsePemBlocks(text).filter((b) => b.label === 'CERTIFICATE');
  if (blocks.length !== 1) throw new PkiError('INVALID_ARGUMENT', `read certificate ${file}: expected exactly one CERTIFICATE block, found ${blocks.length}`);
  return fromPem(text, 'CERTIFICATE');
}

async function writePem(file: string | undefined, der: Buffer, label: 'CERTIFICATE' | 'CERTIFICATE REQUEST'): Promise<void> {
  if (file === undefined) return;
  await writeFile(file, toPem(der, label), { flag: 'wx' }).catch((err: NodeJS.ErrnoException) => {
    throw new PkiError(err.code === 'EEXIST' ? 'ALREADY_EXISTS' : 'INTERNAL', `write ${file}: ${err.code === 'EEXIST' ? 'file exists (a ceremony never overwrites its outputs)' : err.message}`);
  });
  progress.say(`wrote ${file}`);
}

/** Runs a step with the HSM opened on the custodians' PIN, closing everything afterwards. */
async function withCeremony<T>(config: CaSignerConfig, values: Values, run: (context: CeremonyContext) => Promise<T>): Promise<T> {
  const resolved = await ceremonyPin(config, values);
  const ceremony = await openCeremony(config, {
    pin: resolved.pin,
    attendance: resolved.attendance,
    progress,
    onAuditFailure: (message) => console.error(`pki: AUDIT GAP: ${message}`),
  });
  try {
    return await run(ceremony.context);
  } finally {
    await ceremony.close();
  }
}

async function runStep(step: string, values: Values): Promise<void> {
  if (step === 'init-dev') {
    const outDir = need(values, 'out');
    const config = loadConfigFile(caSignerConfigSchema, need(values, 'config'));
    const result = await ensureDevHierarchy(config, outDir, { onProgress: (m) => console.log(m) });
    console.log(`${result.created ? 'created' : 'kept'} the development CA hierarchy; certificates written to ${outDir}`);
    return;
  }
  const config = loadConfigFile(caSignerConfigSchema, need(values, 'config'));
  switch (step) {
    case 'split-pin': {
      const custodians = values.custodian ?? [];
      const threshold = integer(values.threshold, 'threshold');
      const outDir = need(values, 'out');
      if (values['generate-pin'] === values['split-current']) throw new UsageError('give exactly one of --generate-pin and --split-current');
      let current: ResolvedPin;
      if (values['share-file']?.length) current = await ceremonyPin(config, values);
      else if (values['pin-file']) {
        // The first split starts from the PIN set at token initialisation, in a file: allowed even
        // where custody is required, since this is the step that establishes custody.
        current = { pin: await readPinFile(values['pin-file'], 'split-pin'), attendance: { actor: 'PIN file', attributes: {} } };
      } else if (process.stdin.isTTY) {
        current = { pin: await askHidden('current token user PIN: '), attendance: { actor: 'PIN typed at the ceremony terminal', attributes: {} } };
      } else throw new UsageError('split-pin needs the current PIN: --pin-file, or the previous custodians\' --share-file');
      const result = await splitTokenPin(config, { custodians, threshold, outDir, mode: values['generate-pin'] ? 'generate' : 'current', current, progress });
      console.log(JSON.stringify({ splitId: result.splitId, threshold, shares: custodians.length, files: result.files }, null, 2));
      return;
    }
    case 'create-root': {
      const generation = need(values, 'generation');
      const keySpec = parseKeySpec(need(values, 'key'), 'create-root');
      const subject = parseSubject(need(values, 'subject'));
      const validityYears = integer(values['validity-years'], 'validity-years', 30);
      const result = await withCeremony(config, values, (ctx) => createRoot(ctx, { generation, keySpec, subject, validityYears }));
      await writePem(values['cert-out'], result.certificateDer, 'CERTIFICATE');
      console.log(JSON.stringify({ generation, keyId: result.keyId, hsmKeyId: result.hsmKeyId }, null, 2));
      return;
    }
    case 'create-issuing': {
      const generation = need(values, 'generation');
      const keySpec = parseKeySpec(need(values, 'key'), 'create-issuing');
      const subject = values.subject === undefined ? undefined : parseSubject(values.subject);
      const csrOut = values['csr-out'];
      const rootKeyId = values['sign-with-root'];
      if ((csrOut === undefined) === (rootKeyId === undefined)) throw new UsageError('give exactly one of --csr-out and --sign-with-root');
      const validityYears = integer(values['validity-years'], 'validity-years', 20);
      const result = await withCeremony(config, values, (ctx) =>
        createIssuing(ctx, { generation, keySpec, subject, certification: rootKeyId === undefined ? { by: 'csr' } : { by: 'root', rootKeyId, validityYears } }),
      );
      if (result.by === 'csr') {
        await writePem(csrOut, result.csrDer, 'CERTIFICATE REQUEST');
        console.log(JSON.stringify({ generation, hsmKeyId: result.hsmKeyId, state: 'PENDING', next: 'have the root sign the request, then import-issuing --cert' }, null, 2));
      } else {
        await writePem(values['cert-out'], result.certificateDer, 'CERTIFICATE');
        console.log(JSON.stringify({ generation, keyId: result.keyId, hsmKeyId: result.hsmKeyId, active: false }, null, 2));
      }
      return;
    }
    case 'import-issuing': {
      const certificateDer = await readCertificate(need(values, 'cert'));
      const issuerCertificateDer = values['issuer-cert'] === undefined ? undefined : await readCertificate(values['issuer-cert']);
      const result = await withCeremony(config, values, (ctx) => importIssuing(ctx, { certificateDer, issuerCertificateDer, generation: values.generation }));
      console.log(JSON.stringify({ generation: result.generation, keyId: result.keyId, hsmKeyId: result.hsmKeyId, active: false }, null, 2));
      return;
    }
    case 'create-transport-key': {
      const label = need(values, 'label');
      const result = await withCeremony(config, values, (ctx) => createTransportKey(ctx, { label }));
      if (values.out) await writeFile(values.out, toPem(result.publicKeySpki, 'PUBLIC KEY'));
      console.log(JSON.stringify({ transportKeyId: result.keyId, publicKey: values.out ?? null }, null, 2));
      return;
    }
    case 'import-legacy': {
      const certificateDer = await readCertificate(need(values, 'cert'));
      const issuerCertificateDer = values['issuer-cert'] === undefined ? undefined : await readCertificate(values['issuer-cert']);
      const wrapped = parseWrappedKeyFile(await readFile(need(values, 'wrapped'), 'utf8'));
      const transportKeyId = need(values, 'transport-key');
      const generation = need(values, 'generation');
      const result = await withCeremony(config, values, (ctx) =>
        importLegacyIssuer(ctx, { generation, certificateDer, issuerCertificateDer, transportKeyId, wrappedKek: wrapped.kek, wrappedKey: wrapped.key }),
      );
      console.log(JSON.stringify({ generation: result.generation, keyId: result.keyId, hsmKeyId: result.hsmKeyId, active: false, legacy: true }, null, 2));
      return;
    }
    case 'activate': {
      const keyId = need(values, 'issuer');
      const result = await withCeremony(config, values, (ctx) => activateIssuer(ctx, keyId));
      console.log(JSON.stringify(result, null, 2));
      console.error('pki: running signers keep the generations they loaded at start: restart ca-signer for new issuance to use this one');
      return;
    }
    case 'create-ocsp-responder':
    case 'create-audit-signer':
    case 'create-validation-signer': {
      const issuerKeyId = need(values, 'issuer');
      const keySpec = values.key === undefined ? undefined : parseKeySpec(values.key, step);
      const validityDays = values['validity-days'] === undefined ? undefined : integer(values['validity-days'], 'validity-days');
      const subject = values.subject === undefined ? undefined : parseSubject(values.subject);
      const purpose = step === 'create-ocsp-responder' ? 'OCSP_RESPONDER' : step === 'create-audit-signer' ? 'AUDIT_CHECKPOINT' : 'VALIDATION_RECEIPT';
      const result = await withCeremony(config, values, (ctx) => createDelegatedSigner(ctx, { issuerKeyId, purpose, keySpec, validityDays, subject }));
      await writePem(values['cert-out'], result.certificateDer, 'CERTIFICATE');
      console.log(JSON.stringify({ purpose, keyId: result.keyId, hsmKeyId: result.hsmKeyId, issuerKeyId: result.issuerKeyId, serial: result.serialHex }, null, 2));
      return;
    }
    case 'sign-arl':
    case 'revoke-issuing': {
      const validityDays = values['validity-days'] === undefined ? undefined : integer(values['validity-days'], 'validity-days');
      const result =
        step === 'sign-arl'
          ? await withCeremony(config, values, (ctx) => signArl(ctx, { rootKeyId: need(values, 'root'), validityDays }))
          : await withCeremony(config, values, (ctx) => revokeIssuing(ctx, { issuerKeyId: need(values, 'issuer'), reason: parseArlReason(need(values, 'reason'), step), validityDays }));
      console.log(JSON.stringify({ rootKeyId: result.rootKeyId, crlNumber: result.crlNumber, nextUpdate: result.nextUpdate.toISOString(), next: 'the crl service publishes it at its next GetIssuers refresh' }, null, 2));
      return;
    }
    case 'list': {
      // Reads the records only: no HSM, no PIN, no custodians.
      const ceremony = await openCeremony(config, { attendance: { actor: 'list (read only)', attributes: {} } });
      try {
        const listing = await listHierarchy(ceremony.pool, systemClock);
        if (values.json) console.log(JSON.stringify(listing, (key, value) => (key === 'certificateDer' ? undefined : value), 2));
        else printListing(listing);
      } finally {
        await ceremony.close();
      }
      return;
    }
    default:
      throw new UsageError(`unknown step '${step}'`);
  }
}

function printListing(listing: Awaited<ReturnType<typeof listHierarchy>>): void {
  const day = (d: Date) => d.toISOString().slice(0, 10);
  console.log('CA generations:');
  for (const g of listing.generations) {
    const state = g.expired ? 'EXPIRED' : g.active ? 'ACTIVE' : g.role === 'ROOT' ? 'root' : 'inactive';
    console.log(`  ${g.role.padEnd(7)} ${(g.generation ?? '-').padEnd(10)} ${state.padEnd(8)} ${g.keySpec.padEnd(8)} until ${day(g.notAfter)}  key id ${g.keyId}`);
    console.log(`          subject ${g.subject}; issuer ${g.issuer}`);
  }
  if (listing.pendingRequests.length > 0) {
    console.log('Pending issuing CA keys (waiting for import-issuing):');
    for (const p of listing.pendingRequests) console.log(`  ${p.generation.padEnd(10)} ${p.keySpec.padEnd(8)} since ${day(p.createdAt)}  token key ${p.hsmKeyId}`);
  }
  console.log('Delegated signers:');
  if (listing.delegatedSigners.length === 0) console.log('  (none)');
  for (const d of listing.delegatedSigners) {
    const state = d.expired ? 'EXPIRED' : d.active ? 'active' : 'replaced';
    console.log(`  ${d.purpose.padEnd(16)} ${state.padEnd(8)} ${d.keySpec.padEnd(8)} until ${day(d.notAfter)}  key id ${d.keyId}  issuer ${d.issuerKeyId}`);
  }
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: OPTIONS });
  } catch (err) {
    console.error(`pki: ${(err as Error).message}\n\n${USAGE}`);
    return 64;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const [group, step] = positionals;
  if (group !== 'ceremony' || step === undefined || positionals.length !== 2) {
    console.error(USAGE);
    return 64; // EX_USAGE
  }
  try {
    await runStep(step, values);
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`pki ceremony ${step}: ${err.message}\n\n${USAGE}`);
      return 64;
    }
    throw err;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`pki: ${(err as Error).message}`);
    // sysexits: 65 EX_DATAERR for bad input, 77 EX_NOPERM for a refused custody rule.
    const code = err instanceof PkiError ? (err.code === 'INVALID_ARGUMENT' || err.code === 'ALREADY_EXISTS' || err.code === 'NOT_FOUND' ? 65 : err.code === 'PERMISSION_DENIED' ? 77 : 1) : 1;
    process.exit(code);
  },
);
