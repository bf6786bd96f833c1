import { NO_FAULTS, type FaultPoints } from './ports/certificate-signer';

/**
 * Crash injection for the crash-consistency tests, which kill a real ra process at a named point
 * of an issuance (services/ra/test/crash.test.ts). Off unless both variables are set:
 *   PKI_FAULT_INJECTION=1  PKI_RA_CRASH_AT=issuance.before-signer|issuance.after-signature|issuance.before-commit
 * The process then kills itself with SIGKILL when it reaches that point: no cleanup, no flush,
 * exactly what a power cut or the OOM killer does.
 */
export function crashPointsFromEnvironment(env: NodeJS.ProcessEnv = process.env): FaultPoints {
  if (env.PKI_FAULT_INJECTION !== '1' || !env.PKI_RA_CRASH_AT) return NO_FAULTS;
  const at = env.PKI_RA_CRASH_AT;
  process.stderr.write(`ra: FAULT INJECTION ENABLED: the process kills itself at ${at}\n`);
  return {
    reach(point) {
      if (point === at) process.kill(process.pid, 'SIGKILL');
    },
  };
}
