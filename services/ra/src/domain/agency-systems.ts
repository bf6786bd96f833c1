import { createHash, verify as verifySignature, X509Certificate } from 'node:crypto';
import { PkiError, type Clock } from '@pki/kit';
import { fromPem, parseCsr } from '@pki/x509';
import type { AgencyCaller, AgencyCredentialRecord, AgencyStore, AgencyTx, ApplicationSystemRecord, SystemContact, SystemSector, UsageChannel } from '../ports/agency';
import type { CertificateSigner, SignedCertificate } from '../ports/certificate-signer';
import { authorize, type Principal } from './access';
import { actorOf, changeCertificateStatus, idempotencyConflict, idempotencyScope, runOnce, type Command } from './shared';
import { deterministicId } from './issuance';

export type AgencyPrincipal = Extract<Principal, { kind: 'agency-system' }>;

/**
 * Request-level error codes of the agency APIs (domain.md: unknown client, bad signature, client
 * certificate not valid, malformed field, backend unavailable), carried in the error's details as
 * `code` so that agencies' clients can branch on them.
 */
export type AgencyErrorCode =
  | 'UNKNOWN_CLIENT'
  | 'BAD_SIGNATURE'
  | 'CLIENT_CERTIFICATE_NOT_VALID'
  | 'SYSTEM_NOT_ACTIVE'
  | 'MALFORMED_FIELD'
  | 'MALFORMED_XML'
  | 'BATCH_TOO_LARGE'
  | 'STALE_REQUEST'
  | 'REPLAYED_NONCE'
  | 'BACKEND_UNAVAILABLE';

export function agencyError(status: 'UNAUTHENTICATED' | 'PERMISSION_DENIED' | 'INVALID_ARGUMENT' | 'CONFLICT', code: AgencyErrorCode, message: string): PkiError {
  return new PkiError(status, message, { details: { code } });
}

export interface OnboardSystemInput {
  id: string;
  agency: string;
  name: string;
  sector: SystemSector;
  contact: SystemContact;
  rateLimitPerMinute?: number;
  /** PKCS#10 (PEM) made with the system's key: the proof of possession. */
  csr: string;
  /** Earlier than the profile's longest validity (2 years), e.g. for a trial. */
  notAfter?: string;
}

export interface ApplicationSystemView {
  id: string;
  agency: string;
  name: string;
  sector: SystemSector;
  contact: SystemContact;
  status: string;
  rateLimitPerMinute: number;
  createdAt: string;
  credentials: Array<{ serialHex: string; issuerKeyId: string; status: string; notBefore: string; notAfter: string; certificateSha256: string; certificate?: string }>;
}

export interface AgencyPolicy {
  defaultRateLimitPerMinute: number;
}

export interface AgencySystemsDeps {
  store: AgencyStore;
  signer: CertificateSigner;
  clock: Clock;
  policy: AgencyPolicy;
}

const SYSTEM_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const PROFILE = 'agency-client';

/**
 * The registry of agency application systems (issue 13, decision 0026): officers onboard,
 * suspend, resume, renew and retire systems; each system's credential is a client certificate our
 * own CA issues under ca-signer's agencyClient profile, recorded in the certificate registry with
 * its status events like every other certificate. Authentication of a system (mTLS, and the signer
 * of a signed request) and metering of its uses live here too.
 */
export class AgencySystems {
  readonly #deps: AgencySystemsDeps;

  constructor(deps: AgencySystemsDeps) {
    this.#deps = deps;
  }

  async onboard(command: Command, input: OnboardSystemInput): Promise<ApplicationSystemView> {
    const operation = 'onboard system';
    authorize(command.principal, 'agency.manage', operation);
    const id = String(input.id ?? '');
    if (!SYSTEM_ID.test(id)) throw new PkiError('INVALID_ARGUMENT', `${operation}: id must be 1-64 ASCII letters, digits, . _ - (it becomes the certificate's CN)`);
    const agency = text(input.agency, 'agency', 128, operation);
    const name = text(input.name, 'name', 128, operation);
    if (input.sector !== 'GOVERNMENT' && input.sector !== 'PUBLIC') throw new PkiError('INVALID_ARGUMENT', `${operation}: sector must be GOVERNMENT or PUBLIC`);
    const contact = parseContact(input.contact, operation);
    const rateLimit = input.rateLimitPerMinute ?? this.#deps.policy.defaultRateLimitPerMinute;
    if (!Number.isInteger(rateLimit) || rateLimit < 1 || rateLimit > 1_000_000) throw new PkiError('INVALID_ARGUMENT', `${operation}: rateLimitPerMinute must be a whole number from 1 to 1000000`);
    const spki = systemKey(input.csr, operation);
    const notAfter = parseNotAfter(input.notAfter, this.#deps.clock.now(), operation);

    const replay = await this.#replay(command, operation);
    if (replay) return replay as ApplicationSystemView;
    if (await this.#deps.store.getSystem(id)) throw new PkiError('CONFLICT', `${operation}: system ${id} already exists`);
    const requestId = deterministicId(idempotencyScope(command.principal), command.idempotencyKey);
    const certificate = await this.#issue(id, agency, name, spki, requestId, notAfter);
    return this.#deps.store.transaction(async (tx) => {
      const scope = idempotencyScope(command.principal);
      const claim = await tx.claimIdempotency(scope, command.idempotencyKey, operation, command.fingerprint);
      if (claim.kind === 'conflict') throw idempotencyConflict(operation, command.idempotencyKey, claim.operation);
      if (claim.kind === 'done') return claim.result as ApplicationSystemView;
      if (await tx.getSystem(id)) throw new PkiError('CONFLICT', `${operation}: system ${id} already exists`);
      const now = this.#deps.clock.now();
      const system: ApplicationSystemRecord = { id, agency, name, sector: input.sector, contact, status: 'ACTIVE', rateLimitPerMinute: rateLimit, createdAt: now, createdBy: command.principal.kind === 'officer' ? command.principal.id : 'unknown', updatedAt: now };
      await tx.insertSystem(system);
      const credential = await this.#record(tx, system.id, certificate, now);
      await tx.audit({
        action: 'agency-system.onboard',
        outcome: 'SUCCESS',
        actor: actorOf(command.principal),
        objects: [{ type: 'application-system', id }, { type: 'certificate', id: credential.serialHex }],
        attributes: { agency, sector: input.sector, rateLimitPerMinute: String(rateLimit), notAfter: credential.notAfter.toISOString() },
      });
      const view = systemView(system, [{ ...credential, status: 'VALID' }], true);
      await tx.completeIdempotency(scope, command.idempotencyKey, view);
      return view;
    });
  }

  /** Suspension and resumption: the system's status; its certificates stay as they are. */
  async changeStatus(command: Command, id: string, to: 'SUSPENDED' | 'ACTIVE', comment?: string): Promise<ApplicationSystemView> {
    const operation = to === 'SUSPENDED' ? 'suspend system' : 'resume system';
    authorize(command.principal, 'agency.manage', operation);
    return this.#once(command, operation, async (tx) => {
      const system = await tx.getSystem(id, { forUpdate: true });
      if (!system) throw new PkiError('NOT_FOUND', `${operation}: no system ${id}`);
      const from = system.status;
      if (from === 'RETIRED') throw new PkiError('FAILED_PRECONDITION', `${operation}: system ${id} is retired`);
      if (from === to) throw new PkiError('FAILED_PRECONDITION', `${operation}: system ${id} is already ${to}`);
      const now = this.#deps.clock.now();
      await tx.updateSystem(id, { status: to, updatedAt: now });
      await tx.audit({ action: to === 'SUSPENDED' ? 'agency-system.suspend' : 'agency-system.resume', outcome: 'SUCCESS', actor: actorOf(command.principal), objects: [{ type: 'application-system', id }], ...(comment ? { reason: comment.slice(0, 500) } : {}), attributes: { from, to } });
      return systemView({ ...system, status: to, updatedAt: now }, await tx.credentialsOfSystem(id), false);
    });
  }

  /**
   * A new certificate for the system's new key. The previous credentials are revoked (superseded)
   * unless `keepPrevious`: then they stay valid to their own notAfter, so the agency can roll the
   * new key out before the old one stops working.
   */
  async renew(command: Command, id: string, input: { csr: string; notAfter?: string; keepPrevious?: boolean }): Promise<ApplicationSystemView> {
    const operation = 'renew system certificate';
    authorize(command.principal, 'agency.manage', operation);
    const spki = systemKey(input.csr, operation);
    const notAfter = parseNotAfter(input.notAfter, this.#deps.clock.now(), operation);
    const replay = await this.#replay(command, operation);
    if (replay) return replay as ApplicationSystemView;
    const system = await this.#deps.store.getSystem(id);
    if (!system) throw new PkiError('NOT_FOUND', `${operation}: no system ${id}`);
    if (system.status === 'RETIRED') throw new PkiError('FAILED_PRECONDITION', `${operation}: system ${id} is retired`);
    const requestId = deterministicId(idempotencyScope(command.principal), command.idempotencyKey);
    const certificate = await this.#issue(id, system.agency, system.name, spki, requestId, notAfter);
    return this.#once(command, operation, async (tx) => {
      const current = (await tx.getSystem(id, { forUpdate: true }))!;
      const now = this.#deps.clock.now();
      const previous = (await tx.credentialsOfSystem(id)).filter((c) => c.status === 'VALID' && c.notAfter > now);
      const credential = await this.#record(tx, id, certificate, now);
      if (!input.keepPrevious) await this.#revoke(tx, previous, 'superseded', now, command);
      await tx.audit({
        action: 'agency-system.renew',
        outcome: 'SUCCESS',
        actor: actorOf(command.principal),
        objects: [{ type: 'application-system', id }, { type: 'certificate', id: credential.serialHex }, ...(input.keepPrevious ? [] : previous.map((c) => ({ type: 'certificate', id: c.serialHex })))],
        attributes: { previous: input.keepPrevious ? 'kept' : 'revoked', notAfter: credential.notAfter.toISOString() },
      });
      return systemView(current, await tx.credentialsOfSystem(id), true);
    });
  }

  /** The system leaves the programme: RETIRED, and its certificates are revoked. */
  async retire(command: Command, id: string, comment?: string): Promise<ApplicationSystemView> {
    const operation = 'retire system';
    authorize(command.principal, 'agency.manage', operation);
    return this.#once(command, operation, async (tx) => {
      const system = await tx.getSystem(id, { forUpdate: true });
      if (!system) throw new PkiError('NOT_FOUND', `${operation}: no system ${id}`);
      if (system.status === 'RETIRED') throw new PkiError('FAILED_PRECONDITION', `${operation}: system ${id} is already retired`);
      const now = this.#deps.clock.now();
      const live = (await tx.credentialsOfSystem(id)).filter((c) => c.status !== 'REVOKED' && c.notAfter > now);
      await this.#revoke(tx, live, 'cessationOfOperation', now, command);
      await tx.updateSystem(id, { status: 'RETIRED', updatedAt: now, retiredAt: now });
      await tx.audit({ action: 'agency-system.retire', outcome: 'SUCCESS', actor: actorOf(command.principal), objects: [{ type: 'application-system', id }, ...live.map((c) => ({ type: 'certificate', id: c.serialHex }))], ...(comment ? { reason: comment.slice(0, 500) } : {}) });
      return systemView({ ...system, status: 'RETIRED', updatedAt: now, retiredAt: now }, await tx.credentialsOfSystem(id), false);
    });
  }

  async get(principal: Principal, id: string): Promise<ApplicationSystemView> {
    authorize(principal, 'agency.read', 'get system');
    const system = await this.#deps.store.getSystem(id);
    if (!system) throw new PkiError('NOT_FOUND', `get system: no system ${id}`);
    return systemView(system, await this.#deps.store.credentialsOfSystem(id), true);
  }

  async list(principal: Principal): Promise<ApplicationSystemView[]> {
    authorize(principal, 'agency.read', 'list systems');
    const systems = await this.#deps.store.listSystems();
    return systems.map((s) => systemView(s, [], false));
  }

  /**
   * The agency-system access check: the TLS client certificate (SHA-256 of its DER) must be a
   * registered credential, VALID in the registry and within its validity period, of an ACTIVE
   * system. The certificate is pinned: it is exactly the one ra obtained from ca-signer.
   */
  async authenticate(certificateSha256: string, operation: string): Promise<AgencyPrincipal> {
    const caller = await this.#deps.store.callerByCertificate(certificateSha256);
    if (!caller) throw agencyError('UNAUTHENTICATED', 'UNKNOWN_CLIENT', `${operation}: the client certificate is not registered to any application system`);
    return principalOf(caller, this.#deps.clock.now(), operation);
  }

  /**
   * Checks a detached signature over the exact request bytes (decision 0026): the signer is named
   * by issuer key id and serial, must be a valid credential of the same system as the TLS client,
   * and its key must verify the signature (RSASSA-PKCS1-v1_5 or ECDSA, SHA-256).
   */
  async verifyRequestSignature(principal: AgencyPrincipal, signer: string | undefined, signature: string | undefined, body: Buffer, operation: string): Promise<void> {
    if (!signer || !signature) throw agencyError('UNAUTHENTICATED', 'BAD_SIGNATURE', `${operation}: the request must be signed (headers Pki-Signer: <issuer key id hex>:<serial hex> and Pki-Signature: <base64>)`);
    const match = /^([0-9a-fA-F]{2,128}):([0-9a-fA-F]{1,64})$/.exec(signer.trim());
    if (!match) throw agencyError('UNAUTHENTICATED', 'BAD_SIGNATURE', `${operation}: Pki-Signer must be <issuer key id hex>:<serial hex>`);
    const caller = await this.#deps.store.callerBySerial(match[1]!.toLowerCase(), normaliseSerial(match[2]!));
    if (!caller) throw agencyError('UNAUTHENTICATED', 'UNKNOWN_CLIENT', `${operation}: the signing certificate is not registered to any application system`);
    if (caller.system.id !== principal.id) throw agencyError('UNAUTHENTICATED', 'BAD_SIGNATURE', `${operation}: the signing certificate belongs to another system than the TLS client certificate`);
    principalOf(caller, this.#deps.clock.now(), operation);
    const bytes = /^[A-Za-z0-9+/]+={0,2}$/.test(signature.trim()) ? Buffer.from(signature.trim(), 'base64') : Buffer.alloc(0);
    let valid = false;
    try {
      valid = bytes.length > 0 && verifySignature('sha256', body, new X509Certificate(caller.credential.certificateDer).publicKey, bytes);
    } catch {
      valid = false;
    }
    if (!valid) throw agencyError('UNAUTHENTICATED', 'BAD_SIGNATURE', `${operation}: the signature does not verify over the request body with the signing certificate's key`);
  }

  /**
   * Counts one use of an agency API by a system, in its own transaction (the identity
   * confirmation counts inside its own). The certificate validation route calls this.
   */
  async meter(systemId: string, channel: UsageChannel, uses = 1): Promise<void> {
    await this.#deps.store.transaction((tx) => tx.addUsage(systemId, taipeiMonth(this.#deps.clock.now()), channel, uses));
  }

  /** Nonces past their expiry can no longer be replayed (their request time is stale): dropped. */
  async purgeExpiredNonces(): Promise<number> {
    return this.#deps.store.purgeNonces(this.#deps.clock.now());
  }

  async #issue(id: string, agency: string, name: string, spki: Buffer, requestId: string, notAfter: Date | undefined) {
    return this.#deps.signer.issue({
      // ca-signer returns the same certificate for the same key: a retried request never gets two.
      idempotencyKey: `ra/agency/${id}/${requestId}`,
      profile: PROFILE,
      publicKeySpki: spki,
      subject: [{ type: 'C', value: 'TW' }, { type: 'O', value: agency }, { type: 'OU', value: name }, { type: 'CN', value: id }],
      ...(notAfter ? { notAfter } : {}),
    });
  }

  async #record(tx: AgencyTx, systemId: string, certificate: SignedCertificate, now: Date): Promise<Omit<AgencyCredentialRecord, 'status'>> {
    if (await tx.getCertificate(certificate.serialHex)) throw new PkiError('CONFLICT', `record system certificate: certificate ${certificate.serialHex} is already recorded (retry with a new idempotency key)`);
    await tx.insertCertificate({ serialHex: certificate.serialHex, issuerKeyId: certificate.issuerKeyId, profile: PROFILE, keySlot: 'AGENCY', systemId, status: 'VALID', notBefore: certificate.notBefore, notAfter: certificate.notAfter, certificateDer: certificate.certificateDer, createdAt: now, updatedAt: now });
    await tx.recordStatusChange({ serialHex: certificate.serialHex, issuerKeyId: certificate.issuerKeyId, profile: PROFILE, status: 'VALID', changedAt: now, notBefore: certificate.notBefore, notAfter: certificate.notAfter });
    const credential = { certificateSha256: createHash('sha256').update(certificate.certificateDer).digest('hex'), serialHex: certificate.serialHex, issuerKeyId: certificate.issuerKeyId, systemId, certificateDer: certificate.certificateDer, notBefore: certificate.notBefore, notAfter: certificate.notAfter, createdAt: now };
    await tx.insertCredential(credential);
    return credential;
  }

  async #revoke(tx: AgencyTx, credentials: AgencyCredentialRecord[], reason: 'superseded' | 'cessationOfOperation', now: Date, command: Command): Promise<void> {
    const records = [];
    for (const c of credentials) records.push((await tx.getCertificate(c.serialHex))!);
    await changeCertificateStatus(tx, records, { status: 'REVOKED', reason, at: now, by: command.principal.kind === 'officer' ? command.principal.id : 'ra' });
  }

  async #replay(command: Command, operation: string): Promise<unknown> {
    // A read-only look at the idempotency key, rolled back: a completed request returns its result.
    const scope = idempotencyScope(command.principal);
    const marker = new Error('rollback');
    let result: unknown;
    try {
      await this.#deps.store.transaction(async (tx) => {
        const claim = await tx.claimIdempotency(scope, command.idempotencyKey, operation, command.fingerprint);
        if (claim.kind === 'conflict') throw idempotencyConflict(operation, command.idempotencyKey, claim.operation);
        if (claim.kind === 'done') result = claim.result;
        throw marker;
      });
    } catch (err) {
      if (err !== marker) throw err;
    }
    return result;
  }

  #once<T>(command: Command, operation: string, work: (tx: AgencyTx) => Promise<T>): Promise<T> {
    return runOnce<T, AgencyTx>({ registry: this.#deps.store }, command, operation, work);
  }
}

function principalOf(caller: AgencyCaller, now: Date, operation: string): AgencyPrincipal {
  const { credential, system } = caller;
  if (credential.status === 'REVOKED') throw agencyError('UNAUTHENTICATED', 'CLIENT_CERTIFICATE_NOT_VALID', `${operation}: the client certificate is revoked`);
  if (credential.status === 'SUSPENDED') throw agencyError('UNAUTHENTICATED', 'CLIENT_CERTIFICATE_NOT_VALID', `${operation}: the client certificate is suspended`);
  if (credential.notAfter.getTime() <= now.getTime()) throw agencyError('UNAUTHENTICATED', 'CLIENT_CERTIFICATE_NOT_VALID', `${operation}: the client certificate expired at ${credential.notAfter.toISOString()}`);
  if (credential.notBefore.getTime() > now.getTime()) throw agencyError('UNAUTHENTICATED', 'CLIENT_CERTIFICATE_NOT_VALID', `${operation}: the client certificate is not valid before ${credential.notBefore.toISOString()}`);
  if (system.status !== 'ACTIVE') throw agencyError('PERMISSION_DENIED', 'SYSTEM_NOT_ACTIVE', `${operation}: application system ${system.id} is ${system.status.toLowerCase()}`);
  return {
    kind: 'agency-system',
    id: system.id,
    sector: system.sector,
    credential: { certificateSha256: credential.certificateSha256, serialHex: credential.serialHex, issuerKeyId: credential.issuerKeyId },
    rateLimitPerMinute: system.rateLimitPerMinute,
  };
}

/** The first day of the month, in Taiwan time (UTC+8, no daylight saving): the programme's months. */
export function taipeiMonth(at: Date): string {
  const t = new Date(at.getTime() + 8 * 3_600_000);
  return `${t.getUTCFullYear()}-${String(t.getUTCMonth() + 1).padStart(2, '0')}-01`;
}

/** Serials are kept as ca-signer writes them: lower-case hex, leading zero octets included. */
function normaliseSerial(hex: string): string {
  return hex.toLowerCase();
}

function systemView(system: ApplicationSystemRecord, credentials: Array<Omit<AgencyCredentialRecord, 'status'> & { status: string }>, withCertificates: boolean): ApplicationSystemView {
  return {
    id: system.id,
    agency: system.agency,
    name: system.name,
    sector: system.sector,
    contact: system.contact,
    status: system.status,
    rateLimitPerMinute: system.rateLimitPerMinute,
    createdAt: system.createdAt.toISOString(),
    credentials: credentials.map((c) => ({
      serialHex: c.serialHex,
      issuerKeyId: c.issuerKeyId,
      status: c.status,
      notBefore: c.notBefore.toISOString(),
      notAfter: c.notAfter.toISOString(),
      certificateSha256: c.certificateSha256,
      ...(withCertificates ? { certificate: new X509Certificate(c.certificateDer).toString() } : {}),
    })),
  };
}

function text(value: unknown, field: string, max: number, operation: string): string {
  if (typeof value !== 'string' || value.trim() === '' || [...value].length > max || /[\p{Cc}]/u.test(value)) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${field} must be 1-${max} characters without control characters`);
  return value.trim().normalize('NFC');
}

function parseContact(input: unknown, operation: string): SystemContact {
  const c = (input ?? {}) as Record<string, unknown>;
  const name = text(c.name, 'contact.name', 128, operation);
  if (typeof c.email !== 'string' || !/^[^\s@]{1,64}@[A-Za-z0-9.-]{1,189}\.[A-Za-z]{2,}$/.test(c.email)) throw new PkiError('INVALID_ARGUMENT', `${operation}: contact.email must be an e-mail address`);
  const contact: SystemContact = { name, email: c.email };
  if (c.phone !== undefined) {
    if (typeof c.phone !== 'string' || !/^[0-9+() #-]{4,32}$/.test(c.phone)) throw new PkiError('INVALID_ARGUMENT', `${operation}: contact.phone must be a telephone number`);
    contact.phone = c.phone;
  }
  return contact;
}

function systemKey(csr: unknown, operation: string): Buffer {
  if (typeof csr !== 'string' || csr.length === 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: csr must be a PKCS#10 request in PEM`);
  let parsed;
  try {
    parsed = parseCsr(fromPem(csr, 'CERTIFICATE REQUEST'));
  } catch (err) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: csr is not a PKCS#10 request in PEM`, { cause: err });
  }
  if (!parsed.signatureValid) throw new PkiError('INVALID_ARGUMENT', `${operation}: csr's signature does not verify with its own key (no proof of possession)`);
  return parsed.subjectPublicKeyInfo;
}

function parseNotAfter(value: string | undefined, now: Date, operation: string): Date | undefined {
  if (value === undefined) return undefined;
  // Certificates carry whole seconds (RFC 5280 §4.1.2.5): a fraction is dropped, not refused.
  const at = new Date(Math.floor(new Date(value).getTime() / 1000) * 1000);
  if (Number.isNaN(at.getTime()) || at.getTime() <= now.getTime()) throw new PkiError('INVALID_ARGUMENT', `${operation}: notAfter must be a time in the future (RFC 3339)`);
  return at;
}
