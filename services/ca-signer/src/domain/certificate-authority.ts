import { createHash } from 'node:crypto';
import type { Pool } from 'pg';
import { PkiError, type Clock, type Logger } from '@pki/kit';
import { BatchCommit, withTransaction, type BatchQueryable, type Tx } from '@pki/db';
import { formatName, parseCertificate, randomSerial, type DistinguishedName, type NameAttribute } from '@pki/x509';
import { appendAuditEvent, assertHsmAvailable, AuditOutcome, auditOutboxEvent, serviceActor, type AuditChannel, type NewAuditEvent } from './audit';
import { appendEventsFrom, eventColumns, eventRows } from '@pki/outbox';
import type { IssuerRecord, IssuerRegistry } from './issuer-registry';
import { lintCodes } from './lint';
import { sha256Hex } from './digest';
import { assertIdempotencyKey } from './requests';
import type { AuditConfirmationGate } from './audit-gate';

export type { IssuerRecord };
import type { KeyManager } from '../ports/key-manager';
import type { CertificateProfileName } from './certificate-profiles';
import { prepareCertificate, signPreparedCertificate, type IssuingCa, type PreparedCertificate } from './issuance';

/** Profile names on the wire (proto, REST) and the domain profiles they select. */
export const PROFILE_NAMES: Readonly<Record<string, CertificateProfileName>> = {
  'citizen-signature': 'citizenSignature',
  'citizen-encryption': 'citizenEncryption',
  'citizen-mobile': 'citizenMobile',
  // ra's agency application systems (issue 13): their mTLS and request-signing certificates.
  'agency-client': 'agencyClient',
};

export interface PublicationUrls {
  crlBaseUrl: string;
  /** CRL partitions per generation (certificates name partition serial mod N in their CRL DP). */
  crlPartitions: number;
  ocspUrl: string;
  caIssuersUrl: string;
}

export interface IssueRequest {
  /** The caller's mTLS identity: idempotency keys are scoped per caller. */
  caller: string;
  idempotencyKey: string;
  profile: string;
  publicKeySpki: Uint8Array;
  subject: ReadonlyArray<{ type: string; value: string }>;
  /** Empty selects the active generation. */
  issuerKeyId?: string;
  notAfter?: Date;
  /** For subjectDirectoryAttributes, on profiles that carry it (domain.md). */
  nationalIdLastFour?: string;
  /** For subjectAltName, on profiles that allow it. */
  email?: string;
}

export interface IssueResult {
  serialHex: string;
  issuerKeyId: string;
  certificateDer: Buffer;
  notBefore: Date;
  notAfter: Date;
}

export interface CertificateAuthorityDeps {
  pool: Pool;
  registry: IssuerRegistry;
  keyManager: KeyManager;
  clock: Clock;
  logger: Logger;
  /** Outbox producer of this signer's audit events. */
  producer: string;
  publication: PublicationUrls;
  serials?: () => Buffer;
  /** Refuses issuance while the audit log has not confirmed this signer's events (fail closed); absent only where the config disables it. */
  auditGate?: Pick<AuditConfirmationGate, 'assertConfirmed'>;
}

const OPERATION = 'issue certificate';
/** At most this many certificates in one IssueCertificates call. */
export const MAX_ISSUANCES_PER_CALL = 16;

/** A digest over several fields, each terminated so that no two requests hash alike by concatenation. */
function requestDigest(...parts: Array<string | Uint8Array>): Buffer {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part).update('\0');
  return hash.digest();
}

/**
 * The certificate authority as ca-signer runs it: every issuance is idempotent per
 * (caller, idempotency key), its serial is reserved in the database before the HSM is asked,
 * and its audit intent is committed before the signature and its result after. If the intent
 * cannot be recorded, nothing is signed.
 */
export class CertificateAuthority {
  readonly #deps: CertificateAuthorityDeps;
  readonly #audit: AuditChannel;
  /** The last issuance started under each (caller, key) still running in this process. */
  readonly #inFlight = new Map<string, Promise<IssueResult>>();
  /**
   * Reservations (with their audit intents) and results (with their audit results) of concurrent
   * issuances, each kind committed together in one statement: one round trip for a batch rather
   * than two per issuance and two per batch (decision 0038).
   */
  readonly #reservations: BatchCommit<Reservation, boolean>;
  readonly #results: BatchCommit<IssuedRecord, void>;

  constructor(deps: CertificateAuthorityDeps) {
    this.#deps = deps;
    this.#audit = { producer: deps.producer, clock: deps.clock };
    this.#reservations = new BatchCommit(deps.pool, (db, items) => this.#writeReservations(db, items), { singleStatement: true });
    this.#results = new BatchCommit(deps.pool, (db, items) => this.#writeResults(db, items), { singleStatement: true });
  }

  async issue(request: IssueRequest): Promise<IssueResult> {
    assertIdempotencyKey(request.idempotencyKey, OPERATION);
    const profile = PROFILE_NAMES[request.profile];
    if (!profile) {
      throw new PkiError('INVALID_ARGUMENT', `${OPERATION}: unknown profile '${request.profile}' (known: ${Object.keys(PROFILE_NAMES).join(', ')})`);
    }
    const issuer = this.#deps.registry.issuing(OPERATION, request.issuerKeyId);
    // The optional subject facts join the digest only when given, so digests of requests made
    // before they existed stay what they were.
    const optional = request.nationalIdLastFour || request.email ? [request.nationalIdLastFour ?? '', request.email ?? ''] : [];
    const requestHash = requestDigest(request.profile, request.publicKeySpki, JSON.stringify(request.subject), issuer.keyId, request.notAfter?.toISOString() ?? '', ...optional);
    // A new idempotency key is the common case: it is reserved straight away and looked up only
    // when the reservation finds it taken (a retry). While the HSM is down it is looked up first,
    // so that a retry of a finished issuance is still answered.
    const lookUpFirst = !(await this.#deps.keyManager.healthCheck()).healthy;
    // Requests under one key run one after another in this process: two concurrent retries of an
    // unfinished reservation would otherwise both sign it (the same bytes with RSA; with an ECDSA
    // issuer, two different certificates with one serial). The later one then finds the finished
    // issuance. (Replicas of the signer are not serialised against each other: see decision 0019.)
    const slot = `${request.caller}\u0000${request.idempotencyKey}`;
    const previous = this.#inFlight.get(slot);
    const work = (previous ? previous.catch(() => undefined) : Promise.resolve()).then(() => this.#issueUnderKey(request, profile, issuer, requestHash, lookUpFirst || previous !== undefined));
    this.#inFlight.set(slot, work);
    const forget = () => {
      if (this.#inFlight.get(slot) === work) this.#inFlight.delete(slot);
    };
    work.then(forget, forget);
    return work;
  }

  /**
   * Several issuances in one call (a card's pair), each exactly as {@link issue} makes it, in
   * parallel, answered in request order. If any fails, the first failure is the answer; the others
   * are kept, and a retry with the same keys answers them again.
   */
  async issueMany(requests: readonly IssueRequest[]): Promise<IssueResult[]> {
    if (requests.length === 0) throw new PkiError('INVALID_ARGUMENT', 'issue certificates: no certificates requested');
    if (requests.length > MAX_ISSUANCES_PER_CALL) throw new PkiError('INVALID_ARGUMENT', `issue certificates: ${requests.length} certificates in one call; at most ${MAX_ISSUANCES_PER_CALL}`);
    const keys = new Set<string>();
    for (const [index, request] of requests.entries()) {
      // Two under one key would be a retry of each other inside one call: refused, not guessed at.
      if (keys.has(request.idempotencyKey)) throw new PkiError('INVALID_ARGUMENT', `issue certificates: certificate ${index}: idempotency key '${request.idempotencyKey}' is used twice in the call`);
      keys.add(request.idempotencyKey);
    }
    const settled = await Promise.allSettled(requests.map((request) => this.issue(request)));
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
    return settled.map((s) => (s as PromiseFulfilledResult<IssueResult>).value);
  }

  async #issueUnderKey(request: IssueRequest, profile: CertificateProfileName, issuer: IssuerRecord, requestHash: Buffer, lookUpFirst: boolean): Promise<IssueResult> {
    const existing = lookUpFirst ? await this.#findIssuance(request.caller, request.idempotencyKey) : undefined;
    if (existing && !existing.requestSha256.equals(requestHash)) {
      throw new PkiError('CONFLICT', `${OPERATION}: idempotency key '${request.idempotencyKey}' was already used with a different request`);
    }
    if (existing?.certificateDer) return existing.result;

    const subject = request.subject.map((a) => ({ type: a.type, value: a.value }) as NameAttribute) as DistinguishedName;
    const issuingCa = this.#issuingCa(issuer);
    const build = (clock: Clock, serial: () => Buffer): PreparedCertificate =>
      prepareCertificate(
        { clock, serials: serial },
        {
          issuer: issuingCa,
          profile,
          subject,
          publicKeySpki: request.publicKeySpki,
          validity: request.notAfter ? { notAfter: request.notAfter } : undefined,
          ...(request.nationalIdLastFour ? { nationalIdLastFour: request.nationalIdLastFour } : {}),
          ...(request.email ? { email: request.email } : {}),
        },
      );

    await assertHsmAvailable(this.#deps.keyManager, OPERATION);
    // Before anything is reserved or signed: no new certificate while the audit log is behind.
    await this.#deps.auditGate?.assertConfirmed(OPERATION);
    // A lint refusal means the CA itself was about to produce a bad certificate: that is audited,
    // unlike a request that breaks its profile (refused as bad input, nothing about to be signed).
    const buildAudited = async (clock: Clock, serial: () => Buffer): Promise<PreparedCertificate> => {
      try {
        return build(clock, serial);
      } catch (err) {
        const lintErrors = err instanceof PkiError ? err.details.lintErrors : undefined;
        if (err instanceof PkiError && lintErrors !== undefined) {
          await withTransaction(this.#deps.pool, (tx) =>
            appendAuditEvent(tx, this.#audit, {
              action: 'certificate.issue.lint',
              outcome: AuditOutcome.FAILURE,
              actor: serviceActor(request.caller),
              attributes: { profile: request.profile, issuerKeyId: issuer.keyId, lintErrors, lintWarnings: err.details.lintWarnings ?? '' },
            }),
          );
        }
        throw err;
      }
    };
    let prepared: PreparedCertificate;
    if (existing) {
      // A reservation without a certificate: an earlier attempt failed or crashed after reserving.
      // Finish it with the same serial and validity, so the key still yields one certificate.
      prepared = await buildAudited({ now: () => existing.result.notBefore }, () => Buffer.from(existing.result.serialHex, 'hex'));
    } else {
      prepared = await buildAudited(this.#deps.clock, this.#deps.serials ?? (() => randomSerial()));
      const reserved = await this.#reserve(request, requestHash, prepared, issuer);
      // The key was used before, or a concurrent retry reserved it first: answer as a retry.
      if (!reserved) return this.#issueUnderKey(request, profile, issuer, requestHash, true);
    }

    let certificateDer: Buffer;
    try {
      ({ certificateDer } = await signPreparedCertificate({ keyManager: this.#deps.keyManager }, prepared));
    } catch (err) {
      const failure = PkiError.from(err, OPERATION);
      await withTransaction(this.#deps.pool, (tx) =>
        appendAuditEvent(tx, this.#audit, {
          action: 'certificate.issue.result',
          outcome: AuditOutcome.FAILURE,
          actor: serviceActor(request.caller),
          objects: [{ type: 'certificate', id: prepared.serialHex }, { type: 'issuer', id: issuer.keyId }],
          reason: `${failure.code}: ${failure.message}`,
          attributes: { serial: prepared.serialHex, issuerKeyId: issuer.keyId, errorCode: failure.code, error: failure.message },
        }),
      ).catch((auditErr: unknown) => this.#deps.logger.error({ err: auditErr, serial: prepared.serialHex }, 'could not record the failed issuance in the audit outbox'));
      throw failure;
    }

    await this.#results.submit({
      caller: request.caller,
      idempotencyKey: request.idempotencyKey,
      certificateDer,
      audit: {
        action: 'certificate.issue.result',
        outcome: AuditOutcome.SUCCESS,
        actor: serviceActor(request.caller),
        objects: [{ type: 'certificate', id: prepared.serialHex }, { type: 'issuer', id: issuer.keyId }],
        attributes: { serial: prepared.serialHex, issuerKeyId: issuer.keyId, certificateSha256: sha256Hex(certificateDer) },
      },
    });
    this.#deps.logger.info({ serial: prepared.serialHex, profile: request.profile, issuerKeyId: issuer.keyId, caller: request.caller }, 'certificate issued');
    return { serialHex: prepared.serialHex, issuerKeyId: issuer.keyId, certificateDer, notBefore: prepared.notBefore, notAfter: prepared.notAfter };
  }

  #issuingCa(issuer: IssuerRecord): IssuingCa {
    const { crlBaseUrl, ocspUrl, caIssuersUrl } = this.#deps.publication;
    return {
      keyId: issuer.hsmKeyId,
      certificateDer: issuer.certificateDer,
      // One CRL and one issuer certificate per generation, named by its key identifier.
      // The generation's recorded publication, not today's config: its CRLs stay where its
      // certificates already point (migrations/006).
      crl: { baseUrl: issuer.crlBaseUrl ?? crlBaseUrl, partitions: issuer.crlPartitions ?? this.#deps.publication.crlPartitions },
      ocspUrls: [ocspUrl],
      caIssuersUrls: [`${caIssuersUrl.replace(/\/$/, '')}/${issuer.keyId}.crt`],
    };
  }

  async #findIssuance(caller: string, key: string): Promise<{ requestSha256: Buffer; certificateDer: Buffer | null; result: IssueResult } | undefined> {
    const { rows } = await this.#deps.pool.query(
      `SELECT request_sha256, serial_hex, issuer_key_id, not_before, not_after, certificate_der FROM issuances WHERE caller = $1 AND idempotency_key = $2`,
      [caller, key],
    );
    const r = rows[0];
    if (!r) return undefined;
    return {
      requestSha256: r.request_sha256,
      certificateDer: r.certificate_der,
      result: { serialHex: r.serial_hex, issuerKeyId: r.issuer_key_id, certificateDer: r.certificate_der, notBefore: r.not_before, notAfter: r.not_after },
    };
  }

  /**
   * Reserves the serial and records the audit intent in one transaction (committed with the other
   * issuances' of the moment); false, with nothing written, if the key was taken.
   */
  async #reserve(request: IssueRequest, requestHash: Buffer, prepared: PreparedCertificate, issuer: IssuerRecord): Promise<boolean> {
    try {
      return await this.#reservations.submit({
        caller: request.caller,
        idempotencyKey: request.idempotencyKey,
        requestHash,
        profile: request.profile,
        issuerKeyId: issuer.keyId,
        serialHex: prepared.serialHex,
        notBefore: prepared.notBefore,
        notAfter: prepared.notAfter,
        // The intent names what is about to be signed without personal data: the hash of the key
        // and of the exact TBS bytes the HSM will sign. No hash of the subject alone: names and
        // 16-digit serials are few enough to guess, so an unkeyed hash of them would disclose them;
        // the TBS hash covers the subject together with a random serial and the key.
        intent: {
          action: 'certificate.issue.intent',
          outcome: AuditOutcome.INTENT,
          actor: serviceActor(request.caller),
          objects: [{ type: 'certificate', id: prepared.serialHex }, { type: 'issuer', id: issuer.keyId }],
          attributes: {
            profile: request.profile,
            issuerKeyId: issuer.keyId,
            serial: prepared.serialHex,
            publicKeySha256: sha256Hex(request.publicKeySpki),
            tbsSha256: sha256Hex(prepared.tbsDer),
            lint: prepared.lint.warnings.length > 0 ? 'warnings' : 'clean',
            lintWarnings: lintCodes(prepared.lint.warnings),
            crlPartition: String(prepared.crlPartition ?? ''),
            notBefore: prepared.notBefore.toISOString(),
            notAfter: prepared.notAfter.toISOString(),
          },
        },
      });
    } catch (err) {
      const constraint = (err as { constraint?: string }).constraint;
      // 128 random bits colliding means the random source is broken: refuse rather than retry.
      if (constraint === 'serials_pkey' || constraint === 'issuances_serial_hex_key') {
        throw new PkiError('INTERNAL', `${OPERATION}: serial ${prepared.serialHex} was already used`, { cause: err });
      }
      throw err;
    }
  }

  /**
   * A batch of reservations in one statement (its own transaction): the issuances, their serials,
   * and the audit intents of those reserved. A taken key inserts neither and writes no intent; a
   * used serial fails the statement (constraints are checked at its end, so an issuance may name a
   * serial inserted after it), and the batch is retried one reservation at a time.
   */
  async #writeReservations(db: BatchQueryable, items: readonly Reservation[]): Promise<boolean[]> {
    const column = <K extends keyof Reservation>(key: K) => items.map((i) => i[key]);
    const { rows } = await db.query<{ serial_hex: string }>({
      // One plan whatever the batch: the arrays' rows go through the primary key's conflict check,
      // and the events through the outbox head's.
      name: 'ca-signer.reserve-issuances',
      text: `WITH issuance AS (
               INSERT INTO issuances (caller, idempotency_key, request_sha256, profile, issuer_key_id, serial_hex, not_before, not_after, state)
               SELECT caller, idempotency_key, request_sha256, profile, issuer_key_id, serial_hex, not_before, not_after, 'RESERVED'
                 FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[], $5::text[], $6::text[], $7::timestamptz[], $8::timestamptz[])
                      AS r(caller, idempotency_key, request_sha256, profile, issuer_key_id, serial_hex, not_before, not_after)
               ON CONFLICT (caller, idempotency_key) DO NOTHING
               RETURNING serial_hex, issuer_key_id
             ), serial AS (
               INSERT INTO serials (serial_hex, issuer_key_id) SELECT serial_hex, issuer_key_id FROM issuance RETURNING serial_hex
             ), intent AS (
               -- The intents of the reservations made, in request order.
               SELECT s.producer, s.topic, s.key, s.payload, s.headers, s.ord
                 FROM unnest($9::text[], $10::text[], $11::text[], $12::bytea[], $13::jsonb[], $6::text[]) WITH ORDINALITY AS s(producer, topic, key, payload, headers, serial_hex, ord)
                WHERE s.serial_hex IN (SELECT serial_hex FROM serial)
             ), ${appendEventsFrom('intent')}
             -- The condition is always true: it reads outbox_notified, whose NOTIFY wakes the relay.
             SELECT serial_hex FROM serial WHERE (SELECT count(*) FROM outbox_notified) >= 0`,
      values: [
        column('caller'),
        column('idempotencyKey'),
        column('requestHash'),
        column('profile'),
        column('issuerKeyId'),
        column('serialHex'),
        column('notBefore'),
        column('notAfter'),
        ...eventColumns(items.map((i) => auditOutboxEvent(this.#audit, i.intent).event)),
      ],
    });
    // Each request's serial is its own (random, or its earlier reservation's): it names the row.
    const reserved = new Set(rows.map((r) => r.serial_hex));
    return items.map((i) => reserved.has(i.serialHex));
  }

  /** A batch of signed certificates in one statement (its own transaction): the issuances finished, with their audit results. */
  async #writeResults(db: BatchQueryable, items: readonly IssuedRecord[]): Promise<void[]> {
    // Not a named (prepared) statement: PostgreSQL may keep a generic plan made while issuances is
    // small (in a benchmark it took the (caller, created_at) index with a filter on the key, and
    // every issuance read all of its caller's earlier rows). Planned per call, each row is the
    // primary key's lookup.
    await db.query(
      `WITH finished AS (
         UPDATE issuances i SET state = 'ISSUED', certificate_der = r.certificate_der, issued_at = now()
           FROM unnest($1::text[], $2::text[], $3::bytea[]) AS r(caller, idempotency_key, certificate_der)
          WHERE i.caller = r.caller AND i.idempotency_key = r.idempotency_key
          RETURNING 1
       ), result AS (
         ${eventRows(4)}
       ), ${appendEventsFrom('result')}
       SELECT (SELECT count(*) FROM finished) AS finished, (SELECT count(*) FROM outbox_notified) AS producers`,
      [items.map((i) => i.caller), items.map((i) => i.idempotencyKey), items.map((i) => i.certificateDer), ...eventColumns(items.map((i) => auditOutboxEvent(this.#audit, i.audit).event))],
    );
    return items.map(() => undefined);
  }
}

/** An issuance to reserve, with its audit intent. */
interface Reservation {
  caller: string;
  idempotencyKey: string;
  requestHash: Buffer;
  profile: string;
  issuerKeyId: string;
  serialHex: string;
  notBefore: Date;
  notAfter: Date;
  intent: NewAuditEvent;
}

/** A signed certificate to record against its reservation, with its audit result. */
interface IssuedRecord {
  caller: string;
  idempotencyKey: string;
  certificateDer: Buffer;
  audit: NewAuditEvent;
}

export interface IssuanceListing {
  issuances: Array<{
    idempotencyKey: string;
    profile: string;
    serialHex: string;
    issuerKeyId: string;
    state: 'RESERVED' | 'ISSUED';
    certificateDer: Buffer | null;
    notBefore: Date;
    notAfter: Date;
    reservedAt: Date;
  }>;
  /** Empty when this page reached the end. */
  nextPageToken: string;
}

/**
 * One caller's issuances, oldest first, a page at a time. The token is the last row's
 * (created_at, serial): rows committed later with an earlier created_at can be missed by a
 * reader that already passed them, so readers that must see everything (ra's reconciliation)
 * re-read a recent window rather than trusting a cursor to the very end.
 */
export async function listIssuances(pool: Pool, caller: string, pageToken: string, pageSize: number): Promise<IssuanceListing> {
  const operation = 'list issuances';
  const size = pageSize === 0 ? 100 : pageSize;
  if (!Number.isInteger(size) || size < 1 || size > 1000) throw new PkiError('INVALID_ARGUMENT', `${operation}: page_size must be 1-1000`);
  let after: { createdAt: string; serial: string } | undefined;
  if (pageToken !== '') {
    const [createdAt, serial] = Buffer.from(pageToken, 'base64url').toString('utf8').split('|');
    if (!createdAt || !serial || Number.isNaN(Date.parse(createdAt)) || !/^[0-9a-f]{1,40}$/.test(serial)) {
      throw new PkiError('INVALID_ARGUMENT', `${operation}: page_token is not one this service returned`);
    }
    after = { createdAt, serial };
  }
  const { rows } = await pool.query(
    `SELECT idempotency_key, profile, serial_hex, issuer_key_id, state, certificate_der, not_before, not_after, created_at,
            to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_at_text
       FROM issuances
      WHERE caller = $1 AND ($2::timestamptz IS NULL OR (created_at, serial_hex) > ($2::timestamptz, $3::text))
      ORDER BY created_at, serial_hex
      LIMIT $4`,
    [caller, after?.createdAt ?? null, after?.serial ?? '', size],
  );
  const last = rows[rows.length - 1];
  return {
    issuances: rows.map((r) => ({
      idempotencyKey: r.idempotency_key,
      profile: r.profile,
      serialHex: r.serial_hex,
      issuerKeyId: r.issuer_key_id,
      state: r.state,
      certificateDer: r.certificate_der,
      notBefore: r.not_before,
      notAfter: r.not_after,
      reservedAt: r.created_at,
    })),
    // Microsecond text, not a JS Date: a millisecond cursor would skip or repeat rows.
    nextPageToken: rows.length === size && last ? Buffer.from(`${last.created_at_text}|${last.serial_hex}`).toString('base64url') : '',
  };
}

export interface NewIssuer {
  role: IssuerRecord['role'];
  hsmKeyId: string;
  certificateDer: Buffer;
  active: boolean;
  generation?: string;
}

/** Records a CA generation created by a ceremony; the key identifier comes from the certificate. */
export async function recordIssuer(tx: Tx, issuer: NewIssuer): Promise<NewIssuer & { keyId: string }> {
  const cert = parseCertificate(issuer.certificateDer, 'record issuer');
  if (!cert.subjectKeyIdentifier) throw new PkiError('INVALID_ARGUMENT', 'record issuer: the CA certificate has no subjectKeyIdentifier');
  const keyId = cert.subjectKeyIdentifier.toString('hex');
  if (issuer.active) await tx.query(`UPDATE issuers SET active = false WHERE role = $1 AND active`, [issuer.role]);
  await tx.query(`INSERT INTO issuers (key_id, role, hsm_key_id, subject_dn, certificate_der, active, generation) VALUES ($1, $2, $3, $4, $5, $6, $7)`, [
    keyId,
    issuer.role,
    issuer.hsmKeyId,
    formatName(cert.subject),
    issuer.certificateDer,
    issuer.active,
    issuer.generation ?? null,
  ]);
  return { ...issuer, keyId };
}
