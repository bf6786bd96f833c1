import { createHash } from 'node:crypto';
import { PkiError, type Clock, type Logger } from '@pki/kit';
import {
  buildCrlFrame,
  certificateListEnvelope,
  compareSerials,
  crlPartitionName,
  crlPartitionUrl,
  CRLReasons,
  decodeTbsCertList,
  deltaCrlUrl,
  describePublicKey,
  encodeRevokedCertificate,
  parseCertificate,
  signatureAlgorithmIdentifier,
  streamingSignatureVerifier,
  type CrlFrameSpec,
  type SignatureAlgorithm,
} from '@pki/x509';
import type { CrlSchedule } from '../config';
import type { CrlSigningClient } from '../ports/crl-signer';
import type { CrlKind, CrlRecord, CrlStore, KnownIssuer, LeaseClaim } from '../ports/crl-store';

/** What to build: the complete CRL, its delta, one partition. */
export type CrlTarget = { kind: 'FULL' } | { kind: 'DELTA' } | { kind: 'PARTITION'; partition: number };

export interface BuiltCrl {
  record: CrlRecord;
  number: bigint;
}

export interface GeneratorMetrics {
  generated(issuerKeyId: string, kind: CrlKind, seconds: number): void;
  failed(issuerKeyId: string, kind: CrlKind): void;
}

export interface CrlGeneratorDeps {
  store: CrlStore;
  signer: CrlSigningClient;
  schedule: CrlSchedule;
  clock: Clock;
  logger: Logger;
  metrics?: GeneratorMetrics;
  /** Entries per database batch (and per message to the signer). */
  batchEntries?: number;
}

/** Entries per batch: about 1 MB of DER, well under the 4 MiB a message may carry. */
const DEFAULT_BATCH = 20_000;

const wholeSecond = (ms: number) => new Date(Math.floor(ms / 1000) * 1000);

/**
 * The algorithm a CA key signs CRLs with, as ca-signer chooses it (RSA: PKCS#1 v1.5 with SHA-256;
 * EC: the hash of the curve's size). The signer's answer is compared with it before publishing.
 */
function algorithmOf(issuer: KnownIssuer): SignatureAlgorithm {
  const key = describePublicKey(parseCertificate(issuer.certificateDer).subjectPublicKeyInfo);
  if (key.type === 'RSA') return 'RSA-SHA256';
  return key.curve === 'P-384' ? 'ECDSA-SHA384' : 'ECDSA-SHA256';
}

/**
 * Builds, signs and publishes CRLs for one lease holder. Every CRL is read from one database
 * snapshot, streamed to ca-signer and into the CRL's stored chunks at the same time (the entries
 * are never all in memory), checked against the signer's answer (the same TBS digest, a signature
 * that verifies over the bytes stored) and published in a transaction that checks the lease again.
 */
export class CrlGenerator {
  readonly #deps: CrlGeneratorDeps;

  constructor(deps: CrlGeneratorDeps) {
    this.#deps = deps;
  }

  async build(claim: LeaseClaim, issuer: KnownIssuer, target: CrlTarget): Promise<BuiltCrl> {
    const operation = `generate ${target.kind === 'PARTITION' ? `partition ${target.partition}` : target.kind.toLowerCase()} CRL of ${issuer.keyId}`;
    const { store, schedule, clock } = this.#deps;
    if (issuer.role !== 'ISSUING' || issuer.crlPartitions === null || issuer.crlBaseUrl === null) throw new PkiError('FAILED_PRECONDITION', `${operation}: not an issuing CA generation`);
    const started = performance.now();
    const scope = target.kind === 'PARTITION' ? crlPartitionName(target.partition) : 'full';
    const thisUpdate = wholeSecond(clock.now().getTime());
    const validity = target.kind === 'FULL' ? schedule.fullValiditySeconds : target.kind === 'DELTA' ? schedule.deltaValiditySeconds : schedule.partitionValiditySeconds;
    const nextUpdate = new Date(Math.min(thisUpdate.getTime() + validity * 1000, issuer.notAfter.getTime()));
    const expiredBefore = new Date(thisUpdate.getTime() - schedule.expiredGraceSeconds * 1000);
    let base: CrlRecord | undefined;
    if (target.kind === 'DELTA') {
      base = await store.find(issuer.keyId, 'full', 'FULL');
      if (!base) throw new PkiError('FAILED_PRECONDITION', `${operation}: no complete CRL yet to be the base`);
    }
    const number = await store.reserveNumber(claim, issuer.keyId, scope, thisUpdate);

    // The entries, from one snapshot (complete CRLs and partitions) or the changes since the base (deltas).
    let snapshot: { seq: bigint; count: number; length: number; batches: () => AsyncIterable<Buffer>; close: () => Promise<void> };
    if (base) {
      const baseExpiredBefore = new Date(base.thisUpdate.getTime() - schedule.expiredGraceSeconds * 1000);
      const delta = await store.deltaEntries(issuer.keyId, { snapshotSeq: base.snapshotSeq, thisUpdate: base.thisUpdate, expiredBefore: baseExpiredBefore }, { thisUpdate, expiredBefore });
      const encoded = delta.entries
        .map((e) => ('entryDer' in e ? e : { serial: e.serial, entryDer: encodeRevokedCertificate({ serial: e.serial, revocationDate: e.removedRevocationTime, reason: CRLReasons.removeFromCRL }) }))
        .sort((a, b) => compareSerials(a.serial, b.serial));
      const body = Buffer.concat(encoded.map((e) => e.entryDer));
      snapshot = {
        seq: delta.seq,
        count: encoded.length,
        length: body.length,
        batches: async function* () {
          if (body.length > 0) yield body;
        },
        close: async () => undefined,
      };
    } else {
      snapshot = await store.openSnapshot(
        { issuerKeyId: issuer.keyId, ...(target.kind === 'PARTITION' ? { partition: target.partition } : {}), expiredBefore, revokedBy: thisUpdate },
        this.#deps.batchEntries ?? DEFAULT_BATCH,
      );
    }

    try {
      const algorithm = algorithmOf(issuer);
      const certificate = parseCertificate(issuer.certificateDer);
      const spec: CrlFrameSpec = {
        signatureAlgorithm: algorithm,
        issuerDer: certificate.subjectDer,
        authorityKeyIdentifier: Buffer.from(issuer.keyId, 'hex'),
        thisUpdate,
        nextUpdate,
        crlNumber: number,
        ...(base ? { deltaBaseCrlNumber: base.crlNumber } : {}),
        ...(target.kind === 'PARTITION' ? { issuingDistributionPoint: { uri: crlPartitionUrl(issuer.crlBaseUrl, issuer.keyId, target.partition), onlyContains: 'userCerts' as const } } : {}),
        ...(target.kind === 'FULL' ? { freshestCrlUrl: deltaCrlUrl(issuer.crlBaseUrl, issuer.keyId) } : {}),
        ...(schedule.expiredGraceSeconds > 0 ? { expiredCertsOnCrl: expiredBefore } : {}),
      };
      const frame = buildCrlFrame(spec, snapshot.length, snapshot.count, operation);
      const crlId = await store.beginCrl(claim, {
        issuerKeyId: issuer.keyId,
        scope,
        kind: target.kind,
        crlNumber: number,
        baseCrlNumber: base?.crlNumber,
        thisUpdate,
        nextUpdate,
        entries: snapshot.count,
        snapshotSeq: snapshot.seq,
      });
      // The same bytes go three ways as they pass: to the signer, into the stored chunks, and into
      // this service's own digest and signature check of the TBS it will publish.
      const tbsHash = createHash('sha256');
      const verifier = streamingSignatureVerifier({ publicKeySpki: certificate.subjectPublicKeyInfo, algorithm: signatureAlgorithmIdentifier(algorithm) }, operation);
      const see = (bytes: Buffer) => {
        tbsHash.update(bytes);
        verifier.update(bytes);
      };
      see(frame.prefix);
      let seq = 1;
      let written = 0;
      const writes: Array<Promise<void>> = [];
      await store.writeChunk(crlId, seq++, frame.prefix);
      async function* entries(): AsyncIterable<Buffer> {
        for await (const batch of snapshot.batches()) {
          see(batch);
          written += batch.length;
          // The chunk write runs while the batch travels to the signer; the next batch waits for both.
          const write = store.writeChunk(crlId, seq++, batch);
          // Awaited below or at the end; a failed call leaves the CRL unpublished either way.
          write.catch(() => undefined);
          writes.push(write);
          yield batch;
          await write;
        }
      }
      const signed = await this.#deps.signer.signCrl(
        {
          idempotencyKey: `crl/${issuer.keyId}/${scope}/${number}`,
          issuerKeyId: issuer.keyId,
          partition: target.kind === 'PARTITION' ? scope : '',
          crlNumber: number,
          ...(base ? { deltaBaseCrlNumber: base.crlNumber } : {}),
          thisUpdate,
          nextUpdate,
          ...(spec.expiredCertsOnCrl ? { expiredCertsOnCrl: spec.expiredCertsOnCrl } : {}),
          announceDeltaCrl: target.kind === 'FULL',
          entryCount: snapshot.count,
          entriesLength: snapshot.length,
        },
        entries(),
        new Date(Date.now() + schedule.signTimeoutSeconds * 1000),
      );
      await Promise.all(writes);
      if (written !== snapshot.length) throw new PkiError('INTERNAL', `${operation}: ${written} octets of entries read, ${snapshot.length} counted`);
      see(frame.suffix);
      const tbsSha256 = tbsHash.digest();
      if (!tbsSha256.equals(signed.tbsSha256) || signed.tbsLength !== frame.tbsLength || signed.signatureAlgorithm !== algorithm) {
        throw new PkiError('INTERNAL', `${operation}: the TBSCertList ca-signer signed is not the one built here (check that both use the generation's recorded CRL publication)`);
      }
      if (!verifier.verify(signed.signature)) throw new PkiError('INTERNAL', `${operation}: the signature does not verify over the CRL stored here`);
      const { header, trailer } = certificateListEnvelope(frame.tbsLength, algorithm, signed.signature);
      const size = header.length + frame.tbsLength + trailer.length;
      const generationMs = Math.round(performance.now() - started);
      await store.publishCrl(
        claim,
        crlId,
        { header, trailer: Buffer.concat([frame.suffix, trailer]), lastSeq: seq, size, tbsSha256, generationMs },
        { kind: target.kind, scope, crlNumber: number.toString(), entries: String(snapshot.count), ...(base ? { baseCrlNumber: base.crlNumber.toString() } : {}) },
      );
      this.#deps.metrics?.generated(issuer.keyId, target.kind, generationMs / 1000);
      this.#deps.logger.info({ issuerKeyId: issuer.keyId, kind: target.kind, scope, crlNumber: number.toString(), entries: snapshot.count, size, generationMs }, 'CRL published');
      const record = await store.find(issuer.keyId, scope, target.kind, number);
      return { record: record!, number };
    } catch (err) {
      this.#deps.metrics?.failed(issuer.keyId, target.kind);
      throw err;
    } finally {
      await snapshot.close();
    }
  }

  /**
   * Publishes a root's ARL as ca-signer holds it (signed at a key ceremony), when its number is
   * above the last one published. Nothing is signed here.
   */
  async publishArl(claim: LeaseClaim, root: KnownIssuer, arl: Buffer): Promise<boolean> {
    const operation = `publish ARL of ${root.keyId}`;
    const { store } = this.#deps;
    // The TBSCertList follows the outer SEQUENCE's identifier and length octets.
    const tbsEnd = arl[1]! < 0x80 ? 2 : 2 + (arl[1]! & 0x7f);
    const decoded = decodeTbsCertList(tbsSlice(arl, tbsEnd), operation);
    const numberExt = decoded.extensions.find((e) => e.oid === '2.5.29.20');
    if (!numberExt) throw new PkiError('INVALID_ARGUMENT', `${operation}: the ARL has no cRLNumber`);
    const number = BigInt(`0x${numberExt.value.subarray(2).toString('hex') || '0'}`);
    const latest = await store.find(root.keyId, 'arl', 'ARL');
    if (latest && latest.crlNumber >= number) return false;
    const reserved = await store.reserveNumber(claim, root.keyId, 'arl', decoded.thisUpdate, number - 1n);
    if (reserved !== number) {
      // Ceremony numbers follow the same YYYYMMDD form; publish under the ARL's own number only.
      this.#deps.logger.warn({ rootKeyId: root.keyId, arlNumber: number.toString(), reserved: reserved.toString() }, 'ARL number is not the next in its scope; publishing it under its own number');
    }
    const crlId = await store.beginCrl(claim, {
      issuerKeyId: root.keyId,
      scope: 'arl',
      kind: 'ARL',
      crlNumber: number,
      baseCrlNumber: undefined,
      thisUpdate: decoded.thisUpdate,
      nextUpdate: decoded.nextUpdate ?? decoded.thisUpdate,
      entries: decoded.entryCount,
      snapshotSeq: 0n,
    });
    await store.publishCrl(claim, crlId, { header: Buffer.alloc(0), trailer: arl, lastSeq: 1, size: arl.length, tbsSha256: createHash('sha256').update(tbsSlice(arl, tbsEnd)).digest(), generationMs: 0 }, { kind: 'ARL', crlNumber: number.toString() });
    this.#deps.logger.info({ rootKeyId: root.keyId, crlNumber: number.toString() }, 'ARL published');
    return true;
  }
}

/** The TBSCertList element of a CertificateList DER starting at `start`. */
function tbsSlice(der: Buffer, start: number): Buffer {
  const first = der[start + 1]!;
  const lengthOctets = first < 0x80 ? 0 : first & 0x7f;
  let length = first < 0x80 ? first : 0;
  for (let i = 0; i < lengthOctets; i++) length = length * 256 + der[start + 2 + i]!;
  return der.subarray(start, start + 2 + lengthOctets + length);
}
