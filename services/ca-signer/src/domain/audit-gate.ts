import type { Pool } from 'pg';
import { PkiError } from '@pki/kit';

export interface AuditConfirmationGateOptions {
  pool: Pool;
  /** This signer's audit producer (its outbox holds the events to be confirmed). */
  producer: string;
  /** How long an audit event may stay unconfirmed by the audit log before issuance stops. */
  maxUnconfirmedMs: number;
}

/**
 * Fail closed ("if automated auditing fails, issuance stops", domain.md): before each issuance,
 * looks for the oldest of this signer's own audit events that the audit log has not yet
 * confirmed, i.e. that is beyond the producer head of the last checkpoint the audit service had
 * signed (audit_confirmations, written by {@link AuditCheckpointSigner}). If it has waited longer
 * than the bound, the audit log is down or behind, and issuance is refused until a checkpoint
 * confirms it again. Idle periods do not close the gate: with no new events there is nothing
 * unconfirmed.
 *
 * ca-signer learns about confirmations from the checkpoint requests the audit service already
 * makes, so the issuance path needs no call to the audit service (docs/decisions/0017).
 */
export class AuditConfirmationGate {
  readonly #options: AuditConfirmationGateOptions;

  constructor(options: AuditConfirmationGateOptions) {
    this.#options = options;
  }

  /** The oldest unconfirmed event of this signer, if any: its sequence number and age. */
  async oldestUnconfirmed(): Promise<{ sequence: number; ageMs: number } | undefined> {
    // The age is measured on the database's clock, the one that stamped created_at: a service
    // clock that is skewed (or, in tests, moved) must not open or close the gate. The outbox
    // primary key (producer, seq) makes this a short index range scan.
    const { rows } = await this.#options.pool.query<{ seq: string; age_ms: string }>(
      `SELECT seq, (extract(epoch FROM clock_timestamp() - created_at) * 1000)::bigint AS age_ms FROM outbox
        WHERE producer = $1 AND seq > COALESCE((SELECT sequence FROM audit_confirmations WHERE producer = $1), 0)
        ORDER BY seq LIMIT 1`,
      [this.#options.producer],
    );
    const row = rows[0];
    return row && { sequence: Number(row.seq), ageMs: Math.max(0, Number(row.age_ms)) };
  }

  /** Whether issuance may go on now, and the age of the oldest unconfirmed event (0 when none). */
  async state(): Promise<{ open: boolean; oldestUnconfirmedAgeMs: number }> {
    const oldest = await this.oldestUnconfirmed();
    return { open: !this.#closedBy(oldest), oldestUnconfirmedAgeMs: oldest?.ageMs ?? 0 };
  }

  #closedBy(oldest: { ageMs: number } | undefined): boolean {
    return oldest !== undefined && oldest.ageMs > this.#options.maxUnconfirmedMs;
  }

  async assertConfirmed(operation: string): Promise<void> {
    const oldest = await this.oldestUnconfirmed();
    if (oldest && this.#closedBy(oldest)) {
      throw new PkiError(
        'UNAVAILABLE',
        `${operation}: refused because the audit log has not confirmed this signer's audit events for ${Math.round(oldest.ageMs / 1000)} s ` +
          `(bound ${Math.round(this.#options.maxUnconfirmedMs / 1000)} s); issuance resumes once the audit log catches up and checkpoints`,
        { details: { retryAfterSeconds: '10', unconfirmedSequence: String(oldest.sequence) } },
      );
    }
  }
}
