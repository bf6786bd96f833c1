import { PkiError, type Clock } from '@pki/kit';
import type { AgencyStore, IdentityLookupResult } from '../ports/agency';
import type { PersonalDataVault } from '../ports/personal-data-vault';
import { parseNationalId } from './national-id';
import { agencyError, taipeiMonth, type AgencyPrincipal } from './agency-systems';
import { actorOf } from './shared';

/**
 * 用戶身分確認服務 (domain.md): an agency asks, record by record, whether a certificate (by its
 * subject's 16-digit serialNumber) belongs to the person with a national ID, and learns nothing
 * but one of these codes.
 */
export const IDENTITY_CONFIRMATION_CODES = {
  /** The pair matches and the card is activated (valid or suspended). */
  MATCH: 0,
  /** No such (serialNumber, national ID) pair. */
  NO_SUCH_PAIR: 1,
  /** This national ID has no certificate. */
  NO_CERTIFICATE: 2,
  /** The pair matches but the card is not activated yet. */
  NOT_ACTIVATED: 3,
  /** The pair matches but the certificates have expired. */
  EXPIRED: 4,
  /** The pair matches but the certificates are revoked. */
  REVOKED: 5,
} as const;
export type IdentityConfirmationCode = (typeof IDENTITY_CONFIRMATION_CODES)[keyof typeof IDENTITY_CONFIRMATION_CODES];

export interface IdentityConfirmationRecord {
  seq: number;
  serialNumber: string;
  nationalId: string;
  birthDate?: string;
}

export interface IdentityConfirmationRequest {
  nonce: string;
  requestTime: Date;
  records: IdentityConfirmationRecord[];
}

export interface IdentityConfirmationResult {
  nonce: string;
  responseTime: string;
  results: Array<{ seq: number; code: IdentityConfirmationCode }>;
}

export interface IdentityConfirmationPolicy {
  maxRecords: number;
  /** How far requestTime may be from ra's clock, either way. */
  clockSkewSeconds: number;
}

const SERIAL_NUMBER = /^[0-9]{16}$/;
const NONCE = /^[A-Za-z0-9+/=_-]{16,128}$/;
const BIRTH_DATE = /^\d{4}-\d{2}-\d{2}$/;

/**
 * Checks a decoded request (JSON or XML, same fields) and returns it typed. Errors name the record's
 * sequence number and the field, never the value: the values are personal data.
 */
export function parseIdentityConfirmationRequest(input: unknown, policy: IdentityConfirmationPolicy, operation: string): IdentityConfirmationRequest {
  const malformed = (what: string) => agencyError('INVALID_ARGUMENT', 'MALFORMED_FIELD', `${operation}: ${what}`);
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw malformed('the request must be an object with nonce, requestTime and records');
  const body = input as Record<string, unknown>;
  const unknown = Object.keys(body).filter((k) => !['nonce', 'requestTime', 'records'].includes(k));
  if (unknown.length > 0) throw malformed(`unknown field ${unknown[0]}`);
  if (typeof body.nonce !== 'string' || !NONCE.test(body.nonce)) throw malformed('nonce must be 16-128 characters of base64 or hex');
  if (typeof body.requestTime !== 'string' || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/.test(body.requestTime) || Number.isNaN(Date.parse(body.requestTime))) {
    throw malformed('requestTime must be an RFC 3339 time with its offset, e.g. 2026-12-04T18:00:00Z');
  }
  if (!Array.isArray(body.records) || body.records.length === 0) throw malformed('records must be a non-empty list');
  if (body.records.length > policy.maxRecords) {
    throw agencyError('INVALID_ARGUMENT', 'BATCH_TOO_LARGE', `${operation}: a batch holds at most ${policy.maxRecords} records, this one has ${body.records.length}`);
  }
  const seen = new Set<number>();
  const records = body.records.map((raw, index): IdentityConfirmationRecord => {
    const where = `record ${index + 1}`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw malformed(`${where} must be an object`);
    const r = raw as Record<string, unknown>;
    const extra = Object.keys(r).filter((k) => !['seq', 'serialNumber', 'nationalId', 'birthDate'].includes(k));
    if (extra.length > 0) throw malformed(`${where}: unknown field ${extra[0]}`);
    const seq = typeof r.seq === 'string' && /^[0-9]{1,9}$/.test(r.seq) ? Number(r.seq) : r.seq;
    if (typeof seq !== 'number' || !Number.isInteger(seq) || seq < 1 || seq > 999_999_999) throw malformed(`${where}: seq must be a whole number from 1 to 999999999`);
    if (seen.has(seq)) throw malformed(`${where}: seq ${seq} appears twice`);
    seen.add(seq);
    if (typeof r.serialNumber !== 'string' || !SERIAL_NUMBER.test(r.serialNumber)) throw malformed(`record seq ${seq}: serialNumber must be the certificate subject's 16 digits`);
    let nationalId: string;
    try {
      nationalId = parseNationalId(r.nationalId, `${operation}: record seq ${seq}`).value;
    } catch (err) {
      // parseNationalId's message never repeats the value.
      throw agencyError('INVALID_ARGUMENT', 'MALFORMED_FIELD', err instanceof PkiError ? err.message : `${operation}: record seq ${seq}: nationalId is malformed`);
    }
    const record: IdentityConfirmationRecord = { seq, serialNumber: r.serialNumber, nationalId };
    if (r.birthDate !== undefined && r.birthDate !== null && r.birthDate !== '') {
      if (typeof r.birthDate !== 'string' || !BIRTH_DATE.test(r.birthDate) || new Date(`${r.birthDate}T00:00:00Z`).toISOString().slice(0, 10) !== r.birthDate) {
        throw malformed(`record seq ${seq}: birthDate must be a date as YYYY-MM-DD`);
      }
      record.birthDate = r.birthDate;
    }
    return record;
  });
  return { nonce: body.nonce, requestTime: new Date(body.requestTime), records };
}

/**
 * The code of one record from what the registry knows. A birth date, when given, must match the
 * holder's too; a mismatch is a pair that does not exist (code 1), nothing more specific.
 */
export function identityConfirmationCode(found: IdentityLookupResult, now: Date, birthDateMatches: boolean | undefined): IdentityConfirmationCode {
  const C = IDENTITY_CONFIRMATION_CODES;
  if (!found.personFound || !found.personHasCard) return C.NO_CERTIFICATE;
  const pair = found.pair;
  if (!pair || birthDateMatches === false) return C.NO_SUCH_PAIR;
  if (pair.cardStatus === 'REVOKED') return C.REVOKED;
  if (pair.notAfter && pair.notAfter.getTime() <= now.getTime()) return C.EXPIRED;
  if (pair.cardStatus === 'ISSUED') return C.NOT_ACTIVATED;
  return C.MATCH;
}

/**
 * The refusals of an authenticated system's batch that an auditor looks for: a signature that does
 * not hold (or a signing certificate that is unknown, revoked or expired), and a batch that comes
 * again or outside its time, as a replay would. Malformed batches are a client's bug: answered and
 * logged, not audited.
 */
const AUDITED_REFUSALS: ReadonlySet<string> = new Set(['BAD_SIGNATURE', 'UNKNOWN_CLIENT', 'CLIENT_CERTIFICATE_NOT_VALID', 'STALE_REQUEST', 'REPLAYED_NONCE']);

export interface IdentityConfirmationDeps {
  store: AgencyStore;
  vault: PersonalDataVault;
  clock: Clock;
  policy: IdentityConfirmationPolicy;
}

export class IdentityConfirmation {
  readonly #deps: IdentityConfirmationDeps;

  constructor(deps: IdentityConfirmationDeps) {
    this.#deps = deps;
  }

  /**
   * Answers one batch: refuses a stale request time and a nonce seen before, looks the whole batch
   * up in one statement, and records the nonce, the audit event (counts only) and the use in the
   * same transaction, so an answered batch is always audited and metered, and a failed one is
   * neither and may be retried with its nonce.
   */
  async confirm(principal: AgencyPrincipal, request: IdentityConfirmationRequest): Promise<IdentityConfirmationResult> {
    const operation = 'identity confirmation';
    const { store, vault, clock, policy } = this.#deps;
    const now = clock.now();
    const skew = Math.abs(now.getTime() - request.requestTime.getTime());
    if (skew > policy.clockSkewSeconds * 1000) {
      throw agencyError('INVALID_ARGUMENT', 'STALE_REQUEST', `${operation}: requestTime is ${Math.round(skew / 1000)} s from the server's time; at most ${policy.clockSkewSeconds} s is accepted (server time ${now.toISOString()})`);
    }
    const keys = request.records.map((r) => ({ seq: r.seq, subjectSerial: r.serialNumber, lookups: vault.lookupHashes(r.nationalId) }));
    return store.transaction(async (tx) => {
      // The nonce outlives the window in which its request time is accepted.
      if (!(await tx.acceptNonce(principal.id, request.nonce, new Date(request.requestTime.getTime() + 2 * policy.clockSkewSeconds * 1000)))) {
        throw agencyError('CONFLICT', 'REPLAYED_NONCE', `${operation}: nonce was used before by this system; every request needs a fresh one`);
      }
      const found = await tx.lookupIdentities(keys, now);
      const histogram = [0, 0, 0, 0, 0, 0];
      const results = request.records.map((record, i) => {
        const f = found[i]!;
        let birthDateMatches: boolean | undefined;
        if (record.birthDate && f.pair) birthDateMatches = vault.open('birthDate', f.pair.subscriberId, f.pair.birthDateSealed) === record.birthDate;
        const code = identityConfirmationCode(f, now, birthDateMatches);
        histogram[code]!++;
        return { seq: record.seq, code };
      });
      await tx.addUsage(principal.id, taipeiMonth(now), 'identity-confirmation', 1);
      await tx.audit({
        action: 'identity.confirm',
        outcome: 'SUCCESS',
        actor: actorOf(principal),
        objects: [{ type: 'application-system', id: principal.id }],
        // Counts only: which people were asked about stays with the agency.
        attributes: { records: String(request.records.length), clientCertificate: principal.credential.serialHex, ...Object.fromEntries(histogram.map((n, code) => [`code${code}`, String(n)])) },
      });
      return { nonce: request.nonce, responseTime: now.toISOString(), results };
    });
  }

  /**
   * Audits a refused batch of `principal` (an authenticated system) when the refusal is one an
   * auditor looks for (see AUDITED_REFUSALS), in a transaction of its own: the batch's rolled back.
   * The event names the system, the client certificate and the error code, never the records.
   */
  async recordRefusal(principal: AgencyPrincipal, error: unknown): Promise<void> {
    const code = error instanceof PkiError ? error.details.code : undefined;
    if (code === undefined || !AUDITED_REFUSALS.has(code)) return;
    await this.#deps.store.transaction((tx) =>
      tx.audit({
        action: 'identity.confirm',
        outcome: 'FAILURE',
        actor: actorOf(principal),
        objects: [{ type: 'application-system', id: principal.id }],
        reason: (error as PkiError).message,
        attributes: { errorCode: code, clientCertificate: principal.credential.serialHex },
      }),
    );
  }
}
