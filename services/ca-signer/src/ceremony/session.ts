import { readFile, stat } from 'node:fs/promises';
import type { Pool } from 'pg';
import { createLogger, PkiError, systemClock, type Clock, type Logger } from '@pki/kit';
import { createPool } from '@pki/db';
import { databaseUrl, migrateServiceSchema } from '@pki/outbox';
import type { CaSignerConfig } from '../config';
import { MIGRATIONS_DIRECTORY } from '../app';
import { Pkcs11KeyManager } from '../adapters/pkcs11';
import type { KeyManager } from '../ports/key-manager';
import { CeremonyAudit, type CeremonyAttendance } from './audit';
import { combinePinShares, parseShare, type PinShare, type ReconstructedPin } from './custody';
import { silentProgress, type CeremonyProgress } from './progress';
import type { CeremonyContext } from './steps';

/**
 * Where the ceremony PIN comes from. In production always from m custodians' shares; a PIN file
 * is for development and tests, and is refused where custody is required.
 */
export type PinSource =
  | { kind: 'shares'; shares: PinShare[] }
  /** Asks custodians one at a time (a terminal): returns the share text, or undefined to give up. */
  | { kind: 'prompt'; askShare: (custodianNumber: number, needed: number | undefined) => Promise<string | undefined> }
  | { kind: 'pin-file'; path: string };

export interface ResolvedPin {
  pin: string;
  attendance: CeremonyAttendance;
  custody?: ReconstructedPin;
}

/**
 * Whether this signer's ceremonies must have custodians: the configuration key
 * `ceremony.requireCustody` (default true), or PKI_CEREMONY_REQUIRE_CUSTODY=true in the
 * environment, which can only tighten it.
 */
export function custodyRequired(config: CaSignerConfig, env: NodeJS.ProcessEnv = process.env): boolean {
  return config.ceremony.requireCustody || /^(1|true|yes)$/i.test(env.PKI_CEREMONY_REQUIRE_CUSTODY ?? '');
}

/** Reads share files (each one line of JSON, as split-pin writes them). */
export async function readShareFiles(paths: readonly string[]): Promise<PinShare[]> {
  return Promise.all(
    paths.map(async (file) => {
      const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
        throw new PkiError('INVALID_ARGUMENT', `read PIN share ${file}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
      });
      return parseShare(text, file);
    }),
  );
}

/**
 * The ceremony PIN and who is present. Shares are combined and verified (custody.ts) before the
 * PIN goes anywhere near the token, so a wrong combination never costs a login attempt.
 */
export async function resolveCeremonyPin(config: CaSignerConfig, source: PinSource, options: { requireCustody: boolean }): Promise<ResolvedPin> {
  const operation = 'ceremony PIN';
  const tokenLabel = config.hsm.tokenLabel;
  if (source.kind === 'pin-file') {
    if (options.requireCustody) {
      throw new PkiError('PERMISSION_DENIED', `${operation}: this signer requires custodians for ceremonies; a PIN file is refused (bring the custodians' shares)`);
    }
    const pin = await readPinFile(source.path, operation);
    return { pin, attendance: { actor: 'operator with PIN file (no custodians)', attributes: { custody: 'none (PIN file)' } } };
  }
  let shares: PinShare[];
  if (source.kind === 'shares') shares = source.shares;
  else {
    shares = [];
    let needed: number | undefined;
    while (needed === undefined || shares.length < needed) {
      const text = await source.askShare(shares.length + 1, needed);
      if (text === undefined) break;
      const share = parseShare(text, `of custodian ${shares.length + 1}`);
      shares.push(share);
      needed ??= share.threshold;
    }
  }
  const custody = await combinePinShares(shares, tokenLabel);
  return {
    pin: custody.pin,
    custody,
    attendance: {
      actor: custody.custodians.join(', '),
      attributes: {
        custody: `${custody.threshold} of ${custody.shares}`,
        custodySplitId: custody.splitId,
        custodians: custody.custodians.join(', '),
      },
    },
  };
}

export interface OpenCeremonyOptions {
  /** The token PIN; absent for read-only use (listing), where the HSM is never opened. */
  pin?: string;
  attendance: CeremonyAttendance;
  clock?: Clock;
  progress?: CeremonyProgress;
  logger?: Logger;
  /** An already open key manager (the development stack's, tests); otherwise one is opened with `pin`. */
  keyManager?: KeyManager;
  serials?: () => Buffer;
  /** Told when a failure could not be written to the audit outbox. */
  onAuditFailure?: (message: string) => void;
}

export interface OpenCeremony {
  context: CeremonyContext;
  pool: Pool;
  close(): Promise<void>;
}

/**
 * Connects a ceremony to the signer's database (applying migrations, as the service does) and
 * prepares, without opening it yet, the HSM session it will log into with the ceremony PIN.
 */
export async function openCeremony(config: CaSignerConfig, options: OpenCeremonyOptions): Promise<OpenCeremony> {
  const logger = options.logger ?? createLogger({ service: 'ca-signer-ceremony', level: 'warn' });
  const pool = createPool({ url: databaseUrl(config.database), schema: config.database.schema, maxConnections: 2, applicationName: 'ca-signer-ceremony' });
  try {
    await migrateServiceSchema(pool, config.database.schema, MIGRATIONS_DIRECTORY, logger);
  } catch (err) {
    await pool.end();
    throw err;
  }
  const clock = options.clock ?? systemClock;
  let opened: Promise<KeyManager> | undefined;
  const hsm = (): Promise<KeyManager> => {
    if (options.keyManager) return Promise.resolve(options.keyManager);
    const pin = options.pin;
    if (pin === undefined) return Promise.reject(new PkiError('INTERNAL', 'ceremony: this session was opened without a PIN and cannot use the HSM'));
    opened ??= (async () => {
      // SoftHSM reads its config location from the environment when the module initialises.
      if (config.hsm.softhsmConfigFile) process.env.SOFTHSM2_CONF = config.hsm.softhsmConfigFile;
      // One session: a ceremony does one thing at a time, and leaves the rest of the pool to
      // the running signer if it shares the token.
      return Pkcs11KeyManager.open({ modulePath: config.hsm.modulePath, tokenLabel: config.hsm.tokenLabel, pin, sessionPoolSize: 1 }, { logger });
    })();
    return opened;
  };
  const audit = new CeremonyAudit({
    pool,
    producer: config.events.producer,
    clock,
    attendance: options.attendance,
    tokenLabel: config.hsm.tokenLabel,
    onAuditFailure: options.onAuditFailure ?? ((message) => logger.error(message)),
  });
  const context: CeremonyContext = {
    pool,
    hsm,
    clock,
    audit,
    progress: options.progress ?? silentProgress,
    publication: config.publication,
    serials: options.serials,
  };
  return {
    context,
    pool,
    async close() {
      try {
        if (opened) await (await opened.catch(() => undefined))?.close();
      } finally {
        await pool.end();
      }
    },
  };
}

/** A PIN file: one line, the PIN; must not be readable by group or others. */
export async function readPinFile(path: string, operation: string): Promise<string> {
  const info = await stat(path).catch((err: NodeJS.ErrnoException) => {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: PIN file ${path}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
  });
  if ((info.mode & 0o077) !== 0) throw new PkiError('PERMISSION_DENIED', `${operation}: PIN file ${path} is readable by group or others (chmod 600 it)`);
  const pin = (await readFile(path, 'utf8')).replace(/\r?\n$/, '');
  if (pin.length === 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: PIN file ${path} is empty`);
  return pin;
}
