import type { Pool } from 'pg';
import { PkiError, type Clock } from '@pki/kit';
import { withTransaction, type Tx } from '@pki/db';
import type { eventsV1 } from '@pki/proto';
import { AuditActorType, AuditOutcome, appendAuditEvent } from '../domain/audit';

/** Who is present at a ceremony, as its audit events name them. */
export interface CeremonyAttendance {
  /** The AuditEvent actor: the custodians' names, comma-separated, or what stood in for them. */
  actor: string;
  /** Added to every event: how the PIN was obtained (custody mode, split id, threshold). */
  attributes: Record<string, string>;
}

/** The development stack's ceremony: no custodians, the PIN from the config's PIN file. */
export const DEVELOPMENT_ATTENDANCE: CeremonyAttendance = {
  actor: 'development ceremony (no custodians)',
  attributes: { custody: 'none (development)' },
};

export interface StepScope {
  /** Records an event inside the step, in its own transaction: e.g. `key-generated`, `sign.intent`. */
  note(event: string, outcome: eventsV1.AuditOutcome, attributes: Record<string, string>, tx?: Tx): Promise<void>;
  /**
   * Ends the step successfully: runs `work` (the step's database changes) and writes the
   * `.result` SUCCESS event in the same transaction, so the record and its audit event exist
   * together or not at all.
   */
  complete(attributes: Record<string, string>, work?: (tx: Tx) => Promise<void>): Promise<void>;
  /** Facts learnt during the step (a key id) that the failure event should carry if one follows. */
  remember(attributes: Record<string, string>): void;
}

/**
 * The audit channel of a key ceremony. Every step writes `ceremony.<step>.intent` before it
 * touches the HSM, events for what happened in between (key generated, about to sign these TBS
 * bytes) and `ceremony.<step>.result`, SUCCESS or FAILURE. If the intent cannot be written the
 * step does not run (architecture.md: "if a service cannot record its audit event, it does not
 * perform the action").
 */
export class CeremonyAudit {
  readonly #pool: Pool;
  readonly #producer: string;
  readonly #clock: Clock;
  readonly #attendance: CeremonyAttendance;
  readonly #tokenLabel: string;
  readonly #onAuditFailure: (message: string) => void;

  constructor(deps: { pool: Pool; producer: string; clock: Clock; attendance: CeremonyAttendance; tokenLabel: string; onAuditFailure?: (message: string) => void }) {
    this.#pool = deps.pool;
    this.#producer = deps.producer;
    this.#clock = deps.clock;
    this.#attendance = deps.attendance;
    this.#tokenLabel = deps.tokenLabel;
    this.#onAuditFailure = deps.onAuditFailure ?? (() => undefined);
  }

  get actor(): string {
    return this.#attendance.actor;
  }

  /** Appends one audit event, in `tx` when given, else in a transaction of its own. */
  async record(action: string, outcome: eventsV1.AuditOutcome, attributes: Record<string, string>, tx?: Tx): Promise<void> {
    const append = (t: Tx) =>
      appendAuditEvent(t, { producer: this.#producer, clock: this.#clock }, {
        action,
        outcome,
        // The people present: custodians by name (staff, not subscribers), or what stood in for them.
        actor: { type: AuditActorType.CUSTODIAN, id: this.#attendance.actor },
        attributes: { ...this.#attendance.attributes, tokenLabel: this.#tokenLabel, ...attributes },
      });
    if (tx) await append(tx);
    else await withTransaction(this.#pool, append);
  }

  /**
   * Runs one ceremony step between its intent and its result. `body` must call `complete`; if it
   * throws instead, a FAILURE result naming the error is written (and if even that cannot be
   * written, the operator is told, since the audit trail now has an intent without a result).
   */
  async step<T>(step: string, intent: Record<string, string>, body: (scope: StepScope) => Promise<T>): Promise<T> {
    const action = `ceremony.${step}`;
    try {
      await this.record(`${action}.intent`, AuditOutcome.INTENT, intent);
    } catch (err) {
      throw new PkiError('UNAVAILABLE', `${step}: could not record the audit intent, nothing was done`, { cause: err });
    }
    const learnt: Record<string, string> = { ...intent };
    let completed = false;
    const scope: StepScope = {
      note: (event, outcome, attributes, tx) => this.record(`${action}.${event}`, outcome, attributes, tx),
      complete: async (attributes, work) => {
        await withTransaction(this.#pool, async (tx) => {
          await work?.(tx);
          await this.record(`${action}.result`, AuditOutcome.SUCCESS, { ...learnt, ...attributes }, tx);
        });
        completed = true;
      },
      remember: (attributes) => Object.assign(learnt, attributes),
    };
    try {
      const value = await body(scope);
      if (!completed) throw new PkiError('INTERNAL', `${step}: the step ended without recording its result`);
      return value;
    } catch (err) {
      const failure = PkiError.from(err, step);
      if (!completed) {
        await this.record(`${action}.result`, AuditOutcome.FAILURE, { ...learnt, errorCode: failure.code, error: failure.message }).catch((auditErr: unknown) =>
          this.#onAuditFailure(`${step}: the failure could not be recorded in the audit outbox (${(auditErr as Error).message}); record it by hand in the ceremony log`),
        );
      }
      throw failure;
    }
  }
}

export { sha256Hex } from '../domain/digest';
