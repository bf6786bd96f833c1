import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { runInThisContext } from 'node:vm';
import { PkiError } from '@pki/kit';

const run = promisify(execFile);

/**
 * Where Debian's `softhsm2` package puts the PKCS#11 module. The first existing path wins; the
 * others cover other distributions and multiarch layouts.
 */
export const SOFTHSM_MODULE_CANDIDATES: readonly string[] = [
  '/usr/lib/softhsm/libsofthsm2.so',
  '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/local/lib/softhsm/libsofthsm2.so',
];

/** A SoftHSM2 token ready for a PKCS#11 client: what the client needs to load and log in. */
export interface SoftHsmToken {
  /** The PKCS#11 module to load. */
  modulePath: string;
  /**
   * The softhsm2.conf for this token. SoftHSM reads SOFTHSM2_CONF from the environment at
   * C_Initialize, so the loading process must set `process.env.SOFTHSM2_CONF` to this before it
   * initialises the module (see {@link useSoftHsmConfig}).
   */
  configPath: string;
  /** The folder holding the token files (`<dir>/tokens`). */
  tokenDir: string;
  label: string;
  /** The user PIN. Test and dev tokens only: production PINs come from a secret file. */
  pin: string;
}

export interface SoftHsmTokenOptions {
  /** A folder this token owns (config and token files go under it). */
  dir: string;
  /** Token label, at most 32 characters (PKCS#11 CK_TOKEN_INFO.label is 32 bytes, blank padded). */
  label: string;
  pin: string;
  soPin: string;
}

/** The PKCS#11 module of the installed softhsm2, or a clear error naming what to install. */
export function findSoftHsmModule(): string {
  const found = SOFTHSM_MODULE_CANDIDATES.find((path) => existsSync(path));
  if (found === undefined) {
    throw new PkiError(
      'FAILED_PRECONDITION',
      `find SoftHSM: libsofthsm2.so not found (looked in ${SOFTHSM_MODULE_CANDIDATES.join(', ')}); install the Debian packages softhsm2 and opensc (scripts/bootstrap.sh does)`,
    );
  }
  return found;
}

/**
 * Initialises a new token in the first free slot of a SoftHSM instance private to `dir`.
 * Fails if a token with this label already exists there (use {@link openOrCreateSoftHsmToken}
 * to reuse one).
 */
export async function createSoftHsmToken(options: SoftHsmTokenOptions): Promise<SoftHsmToken> {
  validateOptions(options);
  const modulePath = findSoftHsmModule();
  const { configPath, tokenDir } = await writeConfig(options.dir);
  if ((await listTokenLabels(configPath)).includes(options.label)) {
    throw new PkiError('ALREADY_EXISTS', `create SoftHSM token: a token labelled '${options.label}' already exists in ${tokenDir}`);
  }
  await softhsmUtil(configPath, 'create SoftHSM token', [
    '--init-token', '--free', '--label', options.label, '--so-pin', options.soPin, '--pin', options.pin,
  ]);
  return { modulePath, configPath, tokenDir, label: options.label, pin: options.pin };
}

/**
 * Reuses the token labelled `label` under `dir` if it exists, otherwise creates it. The embedded
 * stack calls this on every start so that the CA keys made on the first run survive restarts.
 * Tokens are found by label because SoftHSM re-numbers slots after each initialisation.
 */
export async function openOrCreateSoftHsmToken(options: SoftHsmTokenOptions): Promise<SoftHsmToken & { created: boolean }> {
  validateOptions(options);
  const modulePath = findSoftHsmModule();
  const { configPath, tokenDir } = await writeConfig(options.dir);
  if ((await listTokenLabels(configPath)).includes(options.label)) {
    return { modulePath, configPath, tokenDir, label: options.label, pin: options.pin, created: false };
  }
  return { ...(await createSoftHsmToken(options)), created: true };
}

/**
 * Points this process's SoftHSM at the token's configuration. Must run before the module is
 * initialised (C_Initialize reads SOFTHSM2_CONF with getenv); returns a function restoring the
 * old value.
 *
 * Under jest, `process` is a sandbox copy whose `env` is a plain object: writing it does not reach
 * the C environment that libsofthsm2 reads. `vm.runInThisContext` evaluates in the main context,
 * where `process` is the real one, so the variable is set there as well. Outside jest both are
 * the same object.
 */
export function useSoftHsmConfig(token: Pick<SoftHsmToken, 'configPath'>): () => void {
  const envs = processEnvironments();
  const previous = envs.map((env) => env['SOFTHSM2_CONF']);
  for (const env of envs) env['SOFTHSM2_CONF'] = token.configPath;
  return () => {
    envs.forEach((env, i) => {
      const value = previous[i];
      if (value === undefined) delete env['SOFTHSM2_CONF'];
      else env['SOFTHSM2_CONF'] = value;
    });
  };
}

function processEnvironments(): NodeJS.ProcessEnv[] {
  const real = runInThisContext('process') as NodeJS.Process;
  return real === process ? [process.env] : [process.env, real.env];
}

/** Labels of the initialised tokens visible through `configPath`, in slot order. */
export async function listTokenLabels(configPath: string): Promise<string[]> {
  const stdout = await softhsmUtil(configPath, 'list SoftHSM tokens', ['--show-slots']);
  // `softhsm2-util --show-slots` prints, per slot, "    Label:            <label>" under
  // "Token info:"; an uninitialised slot prints an empty label and "Initialized: no".
  const labels: string[] = [];
  for (const block of stdout.split(/^Slot /m).slice(1)) {
    if (!/Initialized:\s+yes/.test(block)) continue;
    const match = /^\s+Label:[ \t]*(.*)$/m.exec(block);
    if (match?.[1] !== undefined) labels.push(match[1].trimEnd());
  }
  return labels;
}

function validateOptions(options: SoftHsmTokenOptions): void {
  if (options.label.length === 0 || Buffer.byteLength(options.label, 'utf8') > 32) {
    throw new PkiError('INVALID_ARGUMENT', 'create SoftHSM token: label must be 1 to 32 bytes (CK_TOKEN_INFO.label)');
  }
  // SoftHSM accepts PINs of 4 to 255 bytes (MIN_PIN_LEN / MAX_PIN_LEN in its source; PKCS#11
  // passes a length in bytes). The message never repeats the PIN.
  for (const [name, value] of [['pin', options.pin], ['soPin', options.soPin]] as const) {
    const bytes = Buffer.byteLength(value, 'utf8');
    if (bytes < 4 || bytes > 255) {
      throw new PkiError('INVALID_ARGUMENT', `create SoftHSM token: ${name} must be 4 to 255 bytes`);
    }
  }
}

async function writeConfig(dir: string): Promise<{ configPath: string; tokenDir: string }> {
  const base = resolve(dir);
  const tokenDir = join(base, 'tokens');
  await mkdir(tokenDir, { recursive: true, mode: 0o700 });
  const configPath = join(base, 'softhsm2.conf');
  // objectstore.backend=file keeps the token inspectable and needs no sqlite build option;
  // log.level=ERROR keeps SoftHSM's syslog chatter out of test output.
  await writeFile(
    configPath,
    [`directories.tokendir = ${tokenDir}`, 'objectstore.backend = file', 'log.level = ERROR', 'slots.removable = false', ''].join('\n'),
    { mode: 0o600 },
  );
  return { configPath, tokenDir };
}

async function softhsmUtil(configPath: string, operation: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await run('softhsm2-util', args, { env: { ...process.env, SOFTHSM2_CONF: configPath } });
    return stdout;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string; stdout?: string };
    if (e.code === 'ENOENT') {
      throw new PkiError('FAILED_PRECONDITION', `${operation}: softhsm2-util not found; install the Debian package softhsm2`);
    }
    // The command line carries the PINs: report softhsm2-util's own output and never attach the
    // child-process error as a cause (its message, `cmd` and `spawnargs` hold the full command line).
    const reason = `${e.stderr ?? ''}${e.stdout ?? ''}`.trim() || `exit code ${String(e.code)}`;
    throw new PkiError('INTERNAL', `${operation}: softhsm2-util failed: ${reason}`);
  }
}
