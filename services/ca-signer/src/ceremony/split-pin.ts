import { rm } from 'node:fs/promises';
import { PkiError, type Clock, systemClock } from '@pki/kit';
import type { CaSignerConfig } from '../config';
import { checkCustodianName, checkPin, generatePin, splitPin, writeShareFiles } from './custody';
import type { ResolvedPin } from './session';
import { openCeremony } from './session';
import { silentProgress, type CeremonyProgress } from './progress';
import { changeUserPin } from './token-pin';

export interface SplitPinRequest {
  custodians: readonly string[];
  threshold: number;
  outDir: string;
  /**
   * `generate`: a new random PIN replaces the current one on the token (C_SetPIN), and only its
   * shares exist afterwards: nobody ever saw it. `current`: the current PIN itself is split (it
   * must be at least 16 characters; whoever set it still knows it, so prefer `generate`).
   */
  mode: 'generate' | 'current';
  /** The current PIN and who provided it (a PIN file at the first split, the previous custodians' shares later). */
  current: ResolvedPin;
  clock?: Clock;
  progress?: CeremonyProgress;
}

export interface SplitPinResult {
  splitId: string;
  files: string[];
}

/**
 * Puts the token PIN in m-of-n custody. The actor of the audit events is every custodian named,
 * since each must be present to take their share; `authorizedBy` says how the current PIN was
 * given (a PIN file, or the previous split's custodians).
 *
 * Ordering with `generate` matters: the shares of the new PIN are written to disk first and only
 * then is the token's PIN changed. Had the change come first, a failure writing the shares would
 * leave a token whose PIN nobody has. If the change fails, the new shares are deleted.
 */
export async function splitTokenPin(config: CaSignerConfig, request: SplitPinRequest): Promise<SplitPinResult> {
  const step = 'split-pin';
  const custodians = request.custodians.map((c) => checkCustodianName(c, step));
  if (request.mode === 'current') checkPin(request.current.pin, step);
  const clock = request.clock ?? systemClock;
  const progress = request.progress ?? silentProgress;
  const attendance = {
    actor: custodians.join(', '),
    attributes: { custody: `${request.threshold} of ${custodians.length} (new split)`, custodians: custodians.join(', '), authorizedBy: request.current.attendance.actor },
  };
  const newPin = request.mode === 'generate' ? generatePin() : request.current.pin;
  // Validates names, threshold and PIN before anything is recorded.
  const shares = await splitPin({ pin: newPin, custodians, threshold: request.threshold, tokenLabel: config.hsm.tokenLabel, clock });
  const splitId = shares[0]!.splitId;

  const ceremony = await openCeremony(config, { pin: request.current.pin, attendance, clock, progress });
  try {
    const intent = {
      splitId,
      threshold: String(request.threshold),
      shares: String(custodians.length),
      mode: request.mode === 'generate' ? 'new random PIN set on the token (C_SetPIN)' : 'current PIN split',
    };
    return await ceremony.context.audit.step(step, intent, async (scope) => {
      if (request.mode === 'current') {
        // Splitting a PIN that does not open the token would lock everyone out later: log in once.
        const health = await (await ceremony.context.hsm()).healthCheck();
        if (!health.healthy) throw new PkiError('FAILED_PRECONDITION', `${step}: the token did not accept the PIN: ${health.detail}`);
      }
      const files = await writeShareFiles(request.outDir, shares);
      if (request.mode === 'generate') {
        try {
          if (config.hsm.softhsmConfigFile) process.env.SOFTHSM2_CONF = config.hsm.softhsmConfigFile;
          changeUserPin({ modulePath: config.hsm.modulePath, tokenLabel: config.hsm.tokenLabel, currentPin: request.current.pin, newPin });
        } catch (err) {
          await Promise.all(files.map((f) => rm(f, { force: true })));
          throw err;
        }
        progress.say(`the token's user PIN was changed; it now exists only as the ${custodians.length} shares`);
      }
      await scope.complete({ shareFiles: String(files.length) });
      for (const [i, file] of files.entries()) progress.say(`share ${i + 1} of ${files.length} for ${custodians[i]}: ${file}`);
      return { splitId, files };
    });
  } finally {
    await ceremony.close();
  }
}
