import { fromBinary } from '@bufbuild/protobuf';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import type { Logger } from '@pki/kit';
import type { EventHandler, OutboxEvent } from '@pki/outbox';
import { eventsV1 } from '@pki/proto';
import type { StatusStore } from '../adapters/postgres/status-store';
import type { CertificateState } from './certificate-status';
import { isDatabaseFailure, type DependencyHealth } from './dependency-health';
import type { ResponseMemory } from './response-memory';
import type { ResponseUpdater } from './response-updater';

export interface StatusConsumerDeps {
  store: StatusStore;
  memory: ResponseMemory;
  updater: ResponseUpdater;
  health: DependencyHealth;
  logger: Logger;
  /** The consumer name under which applied positions are recorded (inbox_position). */
  consumer: string;
  /** Called once a status is applied, with the time it was committed in ra (for the latency metric). */
  onApplied?: (state: CertificateState) => void;
}

const STATUS: Record<number, CertificateState['status'] | undefined> = {
  [eventsV1.CertificateStatus.VALID]: 'VALID',
  [eventsV1.CertificateStatus.SUSPENDED]: 'SUSPENDED',
  [eventsV1.CertificateStatus.REVOKED]: 'REVOKED',
};

/** The state an event describes, or the reason it cannot be applied. */
export function stateOfEvent(event: Pick<OutboxEvent, 'producer' | 'seq' | 'payload'>): CertificateState | string {
  let message: eventsV1.CertificateStatusChanged;
  try {
    message = fromBinary(eventsV1.CertificateStatusChangedSchema, event.payload);
  } catch (err) {
    return `undecodable payload: ${(err as Error).message}`;
  }
  const status = STATUS[message.status];
  if (!status) return `status ${message.status} is not VALID, SUSPENDED or REVOKED`;
  if (!/^(?:[0-9a-f]{2}){1,20}$/.test(message.serialHex)) return `serial '${message.serialHex.slice(0, 50)}' is not lower-case hex of 1 to 20 octets`;
  if (!/^[0-9a-f]{2,128}$/.test(message.issuerKeyId)) return `issuer key id '${message.issuerKeyId.slice(0, 50)}' is not hex`;
  if (!message.notAfter || !message.changedAt) return 'not_after and changed_at are required';
  // SUSPENDED and REVOKED carry revocation_time; an older producer without it: the change time.
  const revocationTime = status === 'VALID' ? undefined : message.revocationTime ? timestampDate(message.revocationTime) : timestampDate(message.changedAt);
  return {
    serialHex: message.serialHex,
    issuerKeyId: message.issuerKeyId,
    status,
    ...(revocationTime ? { revocationTime: new Date(Math.floor(revocationTime.getTime() / 1000) * 1000) } : {}),
    reason: status === 'REVOKED' ? message.reason : 0,
    notAfter: timestampDate(message.notAfter),
    statusProducer: event.producer,
    statusSeq: event.seq,
    changedAt: timestampDate(message.changedAt),
  };
}

/**
 * Applies ra's status events (topic pki.certificate-status.v1) to the store, exactly once across
 * every pod (the position commits with the change), then has the certificate's responses signed at
 * once. From the moment a change is seen until its new responses are signed, the certificate is
 * answered tryLater, never with its previous status.
 *
 * When PostgreSQL is down, the change still reaches this pod's memory (signed straight from the
 * event) and the event is left unacknowledged, so it is applied to the store once the database is
 * back. A malformed event is logged and skipped: retrying it would block every later event.
 */
export function statusEventHandler(deps: StatusConsumerDeps): EventHandler {
  return async (event) => {
    const state = stateOfEvent(event);
    if (typeof state === 'string') {
      deps.logger.error({ producer: event.producer, seq: event.seq, key: event.key }, `ocsp: skipping a status event that cannot be applied: ${state}`);
      return;
    }
    let applied: boolean;
    try {
      applied = (await deps.store.applyStatus(deps.consumer, event, state)).applied;
      deps.health.up('database');
    } catch (err) {
      if (!isDatabaseFailure(err)) throw err;
      deps.health.down('database', (err as Error).message);
      deps.memory.markPending(state);
      await deps.updater.signNow(state).catch((signErr: unknown) => deps.logger.warn({ err: signErr, serial: state.serialHex }, 'ocsp: could not sign a status change while the database is down'));
      throw err;
    }
    if (!applied) return; // a redelivery, or older than what the store has
    deps.memory.markPending(state);
    deps.onApplied?.(state);
    // Not awaited: changes arriving together are signed in one batch; if ca-signer is down the
    // row stays due and the updater signs it when it is back (tryLater meanwhile).
    deps.updater.signNow(state).catch((err: unknown) => deps.logger.warn({ err, serial: state.serialHex }, 'ocsp: status change not signed yet; the updater retries'));
    await deps.updater.backpressure();
  };
}
