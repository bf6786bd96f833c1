import { createHash } from 'node:crypto';
import type { Pool } from 'pg';
import { PkiError, type Clock, type Logger } from '@pki/kit';
import { withTransaction, type Tx } from '@pki/db';
import {
  buildCrlFrame,
  certificateListEnvelope,
  compareSerials,
  crlPartitionUrl,
  decodeRevokedCertificate,
  deltaCrlUrl,
  encodeRevokedCertificate,
  parseCrlPartitionName,
  signatureAlgorithmIdentifier,
  streamingSignatureVerifier,
  type CrlEntry,
  type CrlFrameSpec,
  type CRLReasons,
  type ParsedCertificate,
  type SignatureAlgorithm,
} from '@pki/x509';
import { digestOfAlgorithm, supportsDigestSigning, type KeyManager } from '../ports/key-manager';
import { appendAuditEvent, assertHsmAvailable, AuditOutcome, serviceActor, type AuditChannel } from './audit';
import { signatureAlgorithmForIssuerSpki } from './certificate-signing';
import { sha256Hex } from './digest';
import { assertIdempotencyKey } from './requests';
import type { IssuerRegistry } from './issuer-registry';
import { parseSerialHex } from './revocation-signing';
import { assertLintClean, CrlEntryLinter, lintCodes, lintCrlFrame } from './lint';

/**
 * CRL signing (RFC 5280 §5). The signer never signs bytes a caller made: it builds the TBSCertList
 * itself from the header's facts and the generation's recorded publication (base URL, partition
 * count), and takes the entries only in the one canonical encoding @pki/x509 writes for each set
 * of facts, checking each as it passes. Entries stream through in constant memory: the signer
 * hashes as they arrive and signs the digest, so a complete CRL of a national CA (a million
 * entries and more, tens of MB) needs no more memory here than one message.
 */

export interface CrlSigningDeps {
  pool: Pool;
  registry: IssuerRegistry;
  keyManager: KeyManager;
  clock: Clock;
  logger: Logger;
  producer: string;
}

/** A streamed CRL's header (see proto SignCrlStream / CrlHeader). */
export interface CrlHeader {
  caller: string;
  idempotencyKey: string;
  issuerKeyId: string;
  /** '' for the complete CRL and its deltas, 'p<N>' for partition N. */
  partition: string;
  crlNumber: string;
  deltaBaseCrlNumber?: string;
  thisUpdate?: Date;
  nextUpdate?: Date;
  expiredCertsOnCrl?: Date;
  announceDeltaCrl: boolean;
  entryCount: bigint;
  entriesLength: bigint;
}

export interface CrlSignature {
  signature: Buffer;
  signatureAlgorithm: SignatureAlgorithm;
  tbsSha256: Buffer;
  tbsLength: number;
}

/** A unary SignCrl request: the entries as facts, for CRLs that fit in one message. */
export interface CrlRequest extends Omit<CrlHeader, 'entryCount' | 'entriesLength'> {
  entries: ReadonlyArray<{ serialHex: string; revocationDate?: Date; reason: number; invalidityDate?: Date }>;
}

const CRL_NUMBER = /^(0|[1-9][0-9]{0,47})$/;
const MAX_CRL_NUMBER = (1n << 159n) - 1n;
/** One message of entries at most; the gRPC server refuses anything above 8 MiB anyway. */
export const MAX_CRL_CHUNK = 4 * 1024 * 1024;
/** More entries than any CA generation will have: a sanity bound on the declared count. */
const MAX_CRL_ENTRIES = 100_000_000n;
// The crl service stamps thisUpdate just before it calls; anything further off is a bug or a replay.
const THIS_UPDATE_SKEW_SECONDS = 10 * 60;

function requireWholeSecond(date: Date | undefined, field: string, operation: string): Date {
  if (!date || Number.isNaN(date.getTime())) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${field} is required`);
  if (date.getUTCMilliseconds() !== 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${field} must be a whole second`);
  return date;
}

function parseCrlNumber(value: string, field: string, operation: string): bigint {
  if (!CRL_NUMBER.test(value)) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${field} must be a decimal number without leading zeros (e.g. YYYYMMDDnnnnnnn)`);
  const n = BigInt(value);
  if (n > MAX_CRL_NUMBER) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${field} must fit in 20 octets (RFC 5280 §5.2.3)`);
  return n;
}

/** The facts of one CRL to sign, checked, with its frame and lint result. */
interface PreparedCrl {
  issuerKeyId: string;
  hsmKeyId: string;
  issuer: ParsedCertificate;
  partition: string;
  crlNumber: bigint;
  deltaBase: bigint | undefined;
  algorithm: SignatureAlgorithm;
  prefix: Buffer;
  suffix: Buffer;
  tbsLength: number;
  entryCount: number;
  entriesLength: number;
  thisUpdate: Date;
  lintWarnings: string;
}

export class CrlSigner {
  readonly #deps: CrlSigningDeps;
  readonly #audit: AuditChannel;

  constructor(deps: CrlSigningDeps) {
    this.#deps = deps;
    this.#audit = { producer: deps.producer, clock: deps.clock };
  }

  /**
   * Signs a CRL whose entries arrive as DER chunks. Nothing is recorded, audited or signed until
   * every entry has passed; a bad entry, a count or length other than declared, or a stream that
   * ends early refuses the whole CRL.
   */
  async signStream(header: CrlHeader, chunks: AsyncIterable<Uint8Array>): Promise<CrlSignature> {
    const operation = 'sign CRL';
    return this.#signPrepared(header, this.#prepare(header, operation), chunks, operation);
  }

  async #signPrepared(header: CrlHeader, prepared: PreparedCrl, chunks: AsyncIterable<Uint8Array>, operation: string): Promise<CrlSignature> {
    await assertHsmAvailable(this.#deps.keyManager, operation);
    const { hash } = digestOfAlgorithm(prepared.algorithm);
    const digest = createHash(hash);
    const verifier = streamingSignatureVerifier({ publicKeySpki: prepared.issuer.subjectPublicKeyInfo, algorithm: signatureAlgorithmIdentifier(prepared.algorithm) }, operation);
    const tbsHash = createHash('sha256');
    const feed = (bytes: Uint8Array) => {
      digest.update(bytes);
      verifier.update(bytes);
      tbsHash.update(bytes);
    };
    feed(prepared.prefix);
    const linter = new CrlEntryLinter({ delta: prepared.deltaBase !== undefined, authorityRevocationList: false, thisUpdate: prepared.thisUpdate });
    let count = 0;
    let length = 0;
    for await (const chunk of chunks) {
      if (chunk.length === 0 || chunk.length > MAX_CRL_CHUNK) throw new PkiError('INVALID_ARGUMENT', `${operation}: each message of entries must hold 1 octet to 4 MiB`);
      let offset = 0;
      while (offset < chunk.length) {
        const entry = decodeRevokedCertificate(chunk, offset, `${operation}: entry ${count}`);
        const problem = linter.check(entry);
        if (problem) throw new PkiError('INVALID_ARGUMENT', `${operation}: entry ${count}: ${problem}`);
        offset = entry.end;
        count++;
      }
      length += chunk.length;
      if (count > prepared.entryCount || length > prepared.entriesLength) {
        throw new PkiError('INVALID_ARGUMENT', `${operation}: more entries than the ${prepared.entryCount} (${prepared.entriesLength} octets) the header declared`);
      }
      feed(chunk);
    }
    if (count !== prepared.entryCount || length !== prepared.entriesLength) {
      throw new PkiError('INVALID_ARGUMENT', `${operation}: ${count} entries (${length} octets) arrived; the header declared ${prepared.entryCount} (${prepared.entriesLength} octets)`);
    }
    feed(prepared.suffix);
    return this.#sign(header, prepared, digest.digest(), tbsHash.digest(), verifier, operation);
  }

  /** Signs a CRL given whole (SignCrl); returns the CertificateList DER. */
  async sign(request: CrlRequest): Promise<Buffer> {
    const operation = 'sign CRL';
    const encoded = request.entries
      .map((e) => {
        const serial = parseSerialHex(e.serialHex, operation);
        const entry: CrlEntry = { serial, revocationDate: requireWholeSecond(e.revocationDate, `revocation_date of ${e.serialHex}`, operation) };
        if (e.reason !== 0) entry.reason = e.reason as CRLReasons;
        if (e.invalidityDate) entry.invalidityDate = requireWholeSecond(e.invalidityDate, `invalidity_date of ${e.serialHex}`, operation);
        return { serial, der: encodeRevokedCertificate(entry, operation) };
      })
      .sort((a, b) => compareSerials(a.serial, b.serial));
    for (let i = 1; i < encoded.length; i++) {
      if (compareSerials(encoded[i - 1]!.serial, encoded[i]!.serial) === 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: serial ${encoded[i]!.serial.toString('hex')} is listed twice`);
    }
    // Messages of whole entries, at most MAX_CRL_CHUNK octets each.
    const chunks: Buffer[] = [];
    let current: Buffer[] = [];
    let size = 0;
    let total = 0;
    for (const { der } of encoded) {
      if (size > 0 && size + der.length > MAX_CRL_CHUNK) {
        chunks.push(Buffer.concat(current));
        current = [];
        size = 0;
      }
      current.push(der);
      size += der.length;
      total += der.length;
    }
    if (size > 0) chunks.push(Buffer.concat(current));
    const header: CrlHeader = { ...request, entryCount: BigInt(encoded.length), entriesLength: BigInt(total) };
    const prepared = this.#prepare(header, operation);
    const signed = await this.#signPrepared(header, prepared, (async function* () {
      yield* chunks;
    })(), operation);
    const { header: head, trailer } = certificateListEnvelope(signed.tbsLength, signed.signatureAlgorithm, signed.signature);
    return Buffer.concat([head, prepared.prefix, ...chunks, prepared.suffix, trailer]);
  }

  /** The issuer generation, partition URL and the numbers; the frame built and linted. */
  #prepare(header: CrlHeader, operation: string): PreparedCrl {
    assertIdempotencyKey(header.idempotencyKey, operation);
    if (!header.issuerKeyId) throw new PkiError('INVALID_ARGUMENT', `${operation}: issuer_key_id is required (one CRL per CA generation)`);
    const issuer = this.#deps.registry.issuing(operation, header.issuerKeyId);
    if (issuer.crlPartitions === null || issuer.crlBaseUrl === null) {
      throw new PkiError('FAILED_PRECONDITION', `${operation}: generation ${issuer.keyId} has no recorded CRL publication (restart the signer to record it)`);
    }
    let distributionPointUri: string | undefined;
    if (header.partition !== '') {
      const partition = parseCrlPartitionName(header.partition);
      if (partition === undefined || partition >= issuer.crlPartitions) {
        throw new PkiError('INVALID_ARGUMENT', `${operation}: partition '${header.partition.slice(0, 40)}' must be p0 to p${issuer.crlPartitions - 1} (this generation has ${issuer.crlPartitions} partitions)`);
      }
      distributionPointUri = crlPartitionUrl(issuer.crlBaseUrl, issuer.keyId, partition);
    }
    const crlNumber = parseCrlNumber(header.crlNumber, 'crl_number', operation);
    const deltaBase = header.deltaBaseCrlNumber ? parseCrlNumber(header.deltaBaseCrlNumber, 'delta_base_crl_number', operation) : undefined;
    if (deltaBase !== undefined) {
      if (deltaBase >= crlNumber) throw new PkiError('INVALID_ARGUMENT', `${operation}: delta_base_crl_number must be lower than crl_number`);
      if (header.partition !== '') throw new PkiError('INVALID_ARGUMENT', `${operation}: delta CRLs are issued for the complete CRL only, not for partitions`);
      if (header.announceDeltaCrl) throw new PkiError('INVALID_ARGUMENT', `${operation}: a delta CRL cannot announce delta CRLs (RFC 5280 §5.2.6)`);
    }
    if (header.announceDeltaCrl && header.partition !== '') throw new PkiError('INVALID_ARGUMENT', `${operation}: only the complete CRL announces delta CRLs`);
    const thisUpdate = requireWholeSecond(header.thisUpdate, 'this_update', operation);
    const nextUpdate = requireWholeSecond(header.nextUpdate, 'next_update', operation);
    const now = this.#deps.clock.now();
    if (Math.abs(thisUpdate.getTime() - now.getTime()) > THIS_UPDATE_SKEW_SECONDS * 1000) {
      throw new PkiError('INVALID_ARGUMENT', `${operation}: this_update ${thisUpdate.toISOString()} is more than 10 minutes from the signer's clock`);
    }
    if (nextUpdate <= thisUpdate) throw new PkiError('INVALID_ARGUMENT', `${operation}: next_update must be after this_update`);
    if (nextUpdate > issuer.certificate.notAfter) throw new PkiError('INVALID_ARGUMENT', `${operation}: next_update is after the issuer certificate expires`);
    if (header.expiredCertsOnCrl) {
      requireWholeSecond(header.expiredCertsOnCrl, 'expired_certs_on_crl', operation);
      if (header.expiredCertsOnCrl > thisUpdate) throw new PkiError('INVALID_ARGUMENT', `${operation}: expired_certs_on_crl must not be after this_update`);
    }
    if (header.entryCount < 0n || header.entryCount > MAX_CRL_ENTRIES || header.entriesLength < 0n || header.entriesLength > header.entryCount * 128n) {
      throw new PkiError('INVALID_ARGUMENT', `${operation}: entry_count and entries_length are not a plausible CRL size`);
    }
    const entryCount = Number(header.entryCount);
    const entriesLength = Number(header.entriesLength);
    const algorithm = signatureAlgorithmForIssuerSpki(issuer.certificate.subjectPublicKeyInfo);
    const spec: CrlFrameSpec = {
      signatureAlgorithm: algorithm,
      issuerDer: issuer.certificate.subjectDer,
      authorityKeyIdentifier: Buffer.from(issuer.keyId, 'hex'),
      thisUpdate,
      nextUpdate,
      crlNumber,
      ...(deltaBase !== undefined ? { deltaBaseCrlNumber: deltaBase } : {}),
      ...(distributionPointUri !== undefined ? { issuingDistributionPoint: { uri: distributionPointUri, onlyContains: 'userCerts' as const } } : {}),
      ...(header.announceDeltaCrl ? { freshestCrlUrl: deltaCrlUrl(issuer.crlBaseUrl, issuer.keyId) } : {}),
      ...(header.expiredCertsOnCrl ? { expiredCertsOnCrl: header.expiredCertsOnCrl } : {}),
    };
    const frame = buildCrlFrame(spec, entriesLength, entryCount, operation);
    const bare = buildCrlFrame(spec, 0, 0, operation);
    const lint = lintCrlFrame(Buffer.concat([bare.prefix, bare.suffix]), {
      issuer: issuer.certificate,
      signatureAlgorithm: algorithm,
      ...(distributionPointUri !== undefined ? { distributionPointUri } : {}),
      authorityRevocationList: false,
      delta: deltaBase !== undefined,
      now,
      allowedClockSkewSeconds: THIS_UPDATE_SKEW_SECONDS,
    });
    assertLintClean(lint, operation);
    return {
      issuerKeyId: issuer.keyId,
      hsmKeyId: issuer.hsmKeyId,
      issuer: issuer.certificate,
      partition: header.partition,
      crlNumber,
      deltaBase,
      algorithm,
      prefix: frame.prefix,
      suffix: frame.suffix,
      tbsLength: frame.tbsLength,
      entryCount,
      entriesLength,
      thisUpdate,
      lintWarnings: lintCodes(lint.warnings),
    };
  }

  async #sign(
    header: CrlHeader,
    prepared: PreparedCrl,
    digest: Buffer,
    tbsSha256: Buffer,
    verifier: { verify(signature: Uint8Array): boolean },
    operation: string,
  ): Promise<CrlSignature> {
    const result = (signature: Buffer): CrlSignature => ({ signature, signatureAlgorithm: prepared.algorithm, tbsSha256, tbsLength: prepared.tbsLength });
    const previous = await this.#deps.pool.query(`SELECT request_sha256, signature FROM signed_crls WHERE caller = $1 AND idempotency_key = $2`, [header.caller, header.idempotencyKey]);
    if (previous.rows[0]) {
      if (!previous.rows[0].request_sha256.equals(tbsSha256) || previous.rows[0].signature === null) {
        throw new PkiError('CONFLICT', `${operation}: idempotency key '${header.idempotencyKey}' was already used with a different request`);
      }
      return result(previous.rows[0].signature);
    }
    const attributes = {
      issuerKeyId: prepared.issuerKeyId,
      partition: prepared.partition,
      crlNumber: String(prepared.crlNumber),
      ...(prepared.deltaBase !== undefined ? { deltaBaseCrlNumber: String(prepared.deltaBase) } : {}),
      entries: String(prepared.entryCount),
      tbsSha256: tbsSha256.toString('hex'),
      lint: prepared.lintWarnings === '' ? 'clean' : 'warnings',
      lintWarnings: prepared.lintWarnings,
    };
    const objects = [{ type: 'crl', id: `${prepared.issuerKeyId}/${prepared.partition || 'full'}/${prepared.crlNumber}` }, { type: 'issuer', id: prepared.issuerKeyId }];
    const actor = serviceActor(header.caller);
    await withTransaction(this.#deps.pool, async (tx) => {
      await reserveCrlNumber(tx, prepared.issuerKeyId, prepared.partition, prepared.crlNumber, prepared.thisUpdate, operation);
      await appendAuditEvent(tx, this.#audit, { action: 'crl.sign.intent', outcome: AuditOutcome.INTENT, actor, objects, attributes });
    });
    let signature: Buffer;
    try {
      const keyManager = this.#deps.keyManager;
      if (!supportsDigestSigning(keyManager)) throw new PkiError('FAILED_PRECONDITION', `${operation}: the key manager cannot sign digests (needed for streamed CRLs)`);
      ({ signature } = await keyManager.signDigest({ keyId: prepared.hsmKeyId, algorithm: prepared.algorithm, digest }));
      // Checked over the bytes themselves, not the digest: a key that does not match the
      // certificate, or a faulty HSM signature, never leaves the signer.
      if (!verifier.verify(signature)) throw new PkiError('INTERNAL', `${operation}: the HSM key ${prepared.hsmKeyId} does not match the certificate it signs for`);
    } catch (err) {
      const failure = PkiError.from(err, operation);
      await withTransaction(this.#deps.pool, (tx) =>
        appendAuditEvent(tx, this.#audit, { action: 'crl.sign.result', outcome: AuditOutcome.FAILURE, actor, objects, reason: `${failure.code}: ${failure.message}`, attributes: { ...attributes, errorCode: failure.code } }),
      ).catch((auditErr: unknown) => this.#deps.logger.error({ err: auditErr }, 'could not record a CRL signing failure in the audit outbox'));
      throw failure;
    }
    await withTransaction(this.#deps.pool, async (tx) => {
      await tx.query(
        `INSERT INTO signed_crls (caller, idempotency_key, request_sha256, issuer_key_id, partition, crl_number, tbs_sha256, signature) VALUES ($1, $2, $3, $4, $5, $6, $3, $7)`,
        [header.caller, header.idempotencyKey, tbsSha256, prepared.issuerKeyId, prepared.partition, prepared.crlNumber.toString(), signature],
      );
      await appendAuditEvent(tx, this.#audit, { action: 'crl.sign.result', outcome: AuditOutcome.SUCCESS, actor, objects, attributes: { ...attributes, signatureSha256: sha256Hex(signature) } });
    });
    this.#deps.logger.info({ issuerKeyId: prepared.issuerKeyId, partition: prepared.partition, crlNumber: String(prepared.crlNumber), entries: prepared.entryCount }, 'CRL signed');
    return result(signature);
  }
}

/**
 * RFC 5280 §5.2.3: numbers only increase per scope, across complete and delta CRLs of the scope
 * (§5.2.4). The row lock makes two concurrent requests for one number impossible; a refusal names
 * the last number so the caller can continue above it.
 */
export async function reserveCrlNumber(tx: Tx, keyId: string, partition: string, crlNumber: bigint, thisUpdate: Date, operation: string): Promise<void> {
  const { rows } = await tx.query(`SELECT last_number::text AS last FROM crl_numbers WHERE issuer_key_id = $1 AND partition = $2 FOR UPDATE`, [keyId, partition]);
  const last = rows[0] ? BigInt(rows[0].last) : undefined;
  if (last !== undefined && crlNumber <= last) {
    throw new PkiError('FAILED_PRECONDITION', `${operation}: CRL number ${crlNumber} does not exceed the last one signed for this issuer and partition (${last})`, {
      details: { lastCrlNumber: String(last) },
    });
  }
  await tx.query(
    `INSERT INTO crl_numbers (issuer_key_id, partition, last_number, last_this_update) VALUES ($1, $2, $3, $4)
     ON CONFLICT (issuer_key_id, partition) DO UPDATE SET last_number = EXCLUDED.last_number, last_this_update = EXCLUDED.last_this_update`,
    [keyId, partition, crlNumber.toString(), thisUpdate],
  );
}

