import { execFile } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { runInThisContext } from 'node:vm';

const run = promisify(execFile);

/** Where p11-kit's OASIS-compatible pkcs11.h lives (Debian package libp11-kit-dev). */
const PKCS11_INCLUDE_DIR = '/usr/include/p11-kit-1';

export type FaultMode = 'device-error' | 'token-removed';

/** A built fault shim, set up for this process: load `modulePath` instead of the real module. */
export interface FaultShim {
  /** The shim's PKCS#11 module; it forwards to `target` while no fault is injected. */
  modulePath: string;
  target: string;
  /** From the next PKCS#11 call on, the module fails this way (see shim.c). */
  inject(mode: FaultMode): void;
  /** The device is back; sessions from before the fault stay dead until C_Initialize. */
  clear(): void;
  /** Clears the fault and restores the environment variables. */
  dispose(): void;
}

/**
 * Compiles tools/pkcs11-fault-shim/shim.c into `dir` and points this process at a control file in
 * `dir`. Built by each test run (no binary in the repository); needs gcc and libp11-kit-dev.
 *
 * The shim reads PKCS11_FAULT_FILE and PKCS11_FAULT_TARGET with getenv(), so they must be in the
 * C environment. Under jest `process.env` is a sandbox copy that does not reach it (the trap
 * documented in packages/testing/src/softhsm.ts); the real `process`, reached through
 * vm.runInThisContext, does. The variables are set once here, before the module loads, and never
 * touched while libuv threads may be calling getenv(): faults are switched with the file.
 */
export async function buildFaultShim(dir: string, target: string): Promise<FaultShim> {
  if (!existsSync(join(PKCS11_INCLUDE_DIR, 'p11-kit', 'pkcs11.h'))) {
    throw new Error(`build PKCS#11 fault shim: ${PKCS11_INCLUDE_DIR}/p11-kit/pkcs11.h not found; install the Debian package libp11-kit-dev`);
  }
  const modulePath = join(dir, 'pkcs11-fault-shim.so');
  const source = join(__dirname, 'shim.c');
  try {
    await run('gcc', ['-shared', '-fPIC', '-O2', '-Wall', '-Wextra', '-Werror', `-I${PKCS11_INCLUDE_DIR}`, source, '-o', modulePath, '-ldl']);
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`build PKCS#11 fault shim: gcc failed: ${e.stderr?.trim() || e.message}`);
  }
  const faultFile = join(dir, 'pkcs11-fault');
  const restore = setEnvironment({ PKCS11_FAULT_FILE: faultFile, PKCS11_FAULT_TARGET: target });
  return {
    modulePath,
    target,
    inject: (mode) => writeFileSync(faultFile, `${mode}\n`),
    clear: () => rmSync(faultFile, { force: true }),
    dispose() {
      rmSync(faultFile, { force: true });
      restore();
    },
  };
}

function setEnvironment(values: Record<string, string>): () => void {
  const real = runInThisContext('process') as NodeJS.Process;
  const envs = real === process ? [process.env] : [process.env, real.env];
  const previous = envs.map((env) => Object.fromEntries(Object.keys(values).map((name) => [name, env[name]])));
  for (const env of envs) Object.assign(env, values);
  return () =>
    envs.forEach((env, i) => {
      for (const [name, value] of Object.entries(previous[i]!)) {
        if (value === undefined) delete env[name];
        else env[name] = value;
      }
    });
}
