import type { MessageInitShape } from '@bufbuild/protobuf';
import { timestampDate, timestampFromDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import { PkiError } from '@pki/kit';
import type { ServiceHandlers } from '@pki/grpc';
import { caSignerV1 } from '@pki/proto';
import { signatureAlgorithmIdentifierDer, type CertIdHash } from '@pki/x509';
import { listIssuances, type CertificateAuthority, type IssueRequest, type IssueResult } from '../domain/certificate-authority';
import type { Pool } from 'pg';
import type { IssuerRegistry } from '../domain/issuer-registry';
import type { OcspRequestItem, OcspSigner } from '../domain/ocsp-signing';
import type { AuditCheckpointSigner } from '../domain/audit-checkpoint';
import type { ValidationReceiptSigner } from '../domain/validation-receipt';
import type { CrlHeader, CrlSigner } from '../domain/crl-signing';

export interface CaSignerDomain {
  pool: Pool;
  registry: IssuerRegistry;
  authority: CertificateAuthority;
  crls: CrlSigner;
  ocsp: OcspSigner;
  checkpoints: AuditCheckpointSigner;
  receipts: ValidationReceiptSigner;
}

const dateOf = (t: Timestamp | undefined): Date | undefined => (t ? timestampDate(t) : undefined);

const CERT_ID_HASH: Record<number, CertIdHash | undefined> = {
  [caSignerV1.CertIdHashAlgorithm.SHA1]: 'SHA1',
  [caSignerV1.CertIdHashAlgorithm.SHA256]: 'SHA256',
};
const STATUS: Record<number, OcspRequestItem['status']> = {
  [caSignerV1.CertificateStatusKind.GOOD]: 'good',
  [caSignerV1.CertificateStatusKind.REVOKED]: 'revoked',
  [caSignerV1.CertificateStatusKind.UNKNOWN]: 'unknown',
};

function ocspRequestItem(r: caSignerV1.OcspResponseToSign): OcspRequestItem {
  return {
    issuerKeyId: r.issuerKeyId,
    serialHex: r.serialHex,
    certIdHash: CERT_ID_HASH[r.certIdHash],
    status: STATUS[r.status],
    revocationTime: dateOf(r.revocationTime),
    revocationReason: r.revocationReason,
    thisUpdate: dateOf(r.thisUpdate),
    nextUpdate: dateOf(r.nextUpdate),
  };
}

function issueRequest(request: caSignerV1.IssueCertificateRequest, caller: string, at: string): IssueRequest {
  if (request.publicKeySpki.length === 0) throw new PkiError('INVALID_ARGUMENT', `${at}: public_key_spki is empty`);
  return {
    caller,
    idempotencyKey: request.idempotencyKey,
    profile: request.profile,
    publicKeySpki: request.publicKeySpki,
    subject: request.subject.map((a) => ({ type: a.type, value: a.value })),
    issuerKeyId: request.issuerKeyId || undefined,
    notAfter: dateOf(request.notAfter),
    nationalIdLastFour: request.nationalIdLastFour || undefined,
    email: request.email || undefined,
  };
}

function issuedMessage(issued: IssueResult): MessageInitShape<typeof caSignerV1.IssueCertificateResponseSchema> {
  return {
    certificate: issued.certificateDer,
    serialHex: issued.serialHex,
    issuerKeyId: issued.issuerKeyId,
    notBefore: timestampFromDate(issued.notBefore),
    notAfter: timestampFromDate(issued.notAfter),
  };
}

/** The gRPC face of the signer: translation only; every rule lives in the domain. */
export function caSignerHandlers(domain: CaSignerDomain): ServiceHandlers<typeof caSignerV1.CaSignerService> {
  return {
    issueCertificate: async (request, context) => issuedMessage(await domain.authority.issue(issueRequest(request, context.caller, 'issue certificate'))),

    issueCertificates: async (request, context) => {
      const requests = request.certificates.map((c, index) => issueRequest(c, context.caller, `issue certificates: certificate ${index}`));
      return { certificates: (await domain.authority.issueMany(requests)).map(issuedMessage) };
    },

    getIssuers: async () => {
      const issuers = domain.registry.all();
      const arls = await domain.registry.authorityRevocationLists();
      const roots = issuers.filter((i) => i.role === 'ROOT');
      return {
        issuers: issuers
          .filter((i) => i.role === 'ISSUING')
          .map((i) => ({ keyId: i.keyId, certificate: i.certificateDer, active: i.active, crlPartitions: i.crlPartitions ?? 0, crlBaseUrl: i.crlBaseUrl ?? '', ocspResponderCertificate: domain.registry.activeDelegated('OCSP_RESPONDER', i.keyId)?.certificateDer })),
        chain: roots.map((i) => i.certificateDer),
        roots: roots.map((r) => ({ keyId: r.keyId, certificate: r.certificateDer, authorityRevocationList: arls.get(r.keyId) ?? new Uint8Array() })),
      };
    },

    signCrl: async (request, context) => ({
      crl: await domain.crls.sign({
        caller: context.caller,
        idempotencyKey: request.idempotencyKey,
        issuerKeyId: request.issuerKeyId,
        partition: request.partition,
        crlNumber: request.crlNumber,
        deltaBaseCrlNumber: request.deltaBaseCrlNumber || undefined,
        thisUpdate: dateOf(request.thisUpdate),
        nextUpdate: dateOf(request.nextUpdate),
        expiredCertsOnCrl: dateOf(request.expiredCertsOnCrl),
        announceDeltaCrl: request.announceDeltaCrl,
        entries: request.entries.map((e) => ({ serialHex: e.serialHex, revocationDate: dateOf(e.revocationDate), reason: e.reason, invalidityDate: dateOf(e.invalidityDate) })),
      }),
    }),

    signCrlStream: async (requests, context) => {
      const messages = requests[Symbol.asyncIterator]();
      const first = await messages.next();
      if (first.done || first.value.part.case !== 'header') throw new PkiError('INVALID_ARGUMENT', 'sign CRL: the first message must be the header');
      const h = first.value.part.value;
      const header: CrlHeader = {
        caller: context.caller,
        idempotencyKey: h.idempotencyKey,
        issuerKeyId: h.issuerKeyId,
        partition: h.partition,
        crlNumber: h.crlNumber,
        deltaBaseCrlNumber: h.deltaBaseCrlNumber || undefined,
        thisUpdate: dateOf(h.thisUpdate),
        nextUpdate: dateOf(h.nextUpdate),
        expiredCertsOnCrl: dateOf(h.expiredCertsOnCrl),
        announceDeltaCrl: h.announceDeltaCrl,
        entryCount: h.entryCount,
        entriesLength: h.entriesLength,
      };
      async function* chunks(): AsyncIterable<Uint8Array> {
        for (let next = await messages.next(); !next.done; next = await messages.next()) {
          if (next.value.part.case !== 'revokedCertificates') throw new PkiError('INVALID_ARGUMENT', 'sign CRL: only the first message is a header; the rest carry entries');
          yield next.value.part.value;
        }
      }
      const signed = await domain.crls.signStream(header, chunks());
      return { signature: signed.signature, signatureAlgorithm: signatureAlgorithmIdentifierDer(signed.signatureAlgorithm), tbsSha256: signed.tbsSha256, tbsLength: BigInt(signed.tbsLength) };
    },

    signOcspResponses: async (request, context) => ({
      responses: await domain.ocsp.signOcspResponses(context.caller, request.responses.map(ocspRequestItem)),
    }),

    signLiveOcspResponses: async (request, context) => ({
      responses: await domain.ocsp.signLiveOcspResponses(
        context.caller,
        request.requests.map((r) => ({ responses: r.responses.map(ocspRequestItem), nonce: r.nonce.length > 0 ? r.nonce : undefined, extendedRevoke: r.extendedRevoke })),
      ),
    }),

    listIssuances: async (request, context) => {
      const page = await listIssuances(domain.pool, context.caller, request.pageToken, request.pageSize);
      return {
        nextPageToken: page.nextPageToken,
        issuances: page.issuances.map((i) => ({
          idempotencyKey: i.idempotencyKey,
          profile: i.profile,
          serialHex: i.serialHex,
          issuerKeyId: i.issuerKeyId,
          state: i.state === 'ISSUED' ? caSignerV1.IssuanceState.ISSUED : caSignerV1.IssuanceState.RESERVED,
          certificate: i.certificateDer ?? new Uint8Array(),
          notBefore: timestampFromDate(i.notBefore),
          notAfter: timestampFromDate(i.notAfter),
          reservedAt: timestampFromDate(i.reservedAt),
        })),
      };
    },

    signAuditCheckpoint: async (request, context) => {
      const signed = await domain.checkpoints.sign({
        caller: context.caller,
        origin: request.origin,
        treeSize: request.treeSize,
        rootHash: request.rootHash,
        previousTreeSize: request.previousTreeSize,
        consistencyProof: request.consistencyProof,
        producerHeads: request.producerHeads.map((h) => ({ producer: h.producer, sequence: h.sequence })),
      });
      return { checkpoint: signed.checkpoint, signature: signed.signature, signerCertificate: signed.signerCertificateDer, signatureAlgorithm: signed.signatureAlgorithm };
    },

    signValidationReceipt: async (request, context) => {
      const signed = await domain.receipts.sign({ caller: context.caller, receipt: request.receipt });
      return { signature: signed.signature, signerCertificate: signed.signerCertificateDer, signatureAlgorithm: signed.signatureAlgorithm };
    },
  };
}
