import type { MessageInitShape } from '@bufbuild/protobuf';
import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { PkiError } from '@pki/kit';
import type { ServiceClient } from '@pki/grpc';
import { caSignerV1 } from '@pki/proto';
import type { CertificateSigner, IssuanceEntry, IssueRequest, RootCa, SignedCertificate } from '../../ports/certificate-signer';

export type CaSignerClient = Pick<ServiceClient<typeof caSignerV1.CaSignerService>, 'issueCertificate' | 'issueCertificates' | 'getIssuers' | 'listIssuances' | 'signValidationReceipt'>;

function issueMessage(request: IssueRequest): MessageInitShape<typeof caSignerV1.IssueCertificateRequestSchema> {
  return {
    idempotencyKey: request.idempotencyKey,
    profile: request.profile,
    publicKeySpki: request.publicKeySpki,
    subject: request.subject,
    nationalIdLastFour: request.nationalIdLastFour ?? '',
    email: request.email ?? '',
    ...(request.notAfter ? { notAfter: timestampFromDate(request.notAfter) } : {}),
  };
}

function signedCertificate(response: caSignerV1.IssueCertificateResponse): SignedCertificate {
  return {
    serialHex: response.serialHex,
    issuerKeyId: response.issuerKeyId,
    certificateDer: Buffer.from(response.certificate),
    notBefore: timestampDate(response.notBefore!),
    notAfter: timestampDate(response.notAfter!),
  };
}

/**
 * ca-signer over gRPC (mTLS, allow-listed for ra), in the domain's terms. Errors arrive as PkiError
 * with ca-signer's code; when ca-signer cannot be reached, the error says which dependency is down
 * (the API answers 503 naming it, never the address or the transport's message).
 */
export class GrpcCertificateSigner implements CertificateSigner {
  readonly #client: CaSignerClient;

  constructor(client: CaSignerClient) {
    this.#client = client;
  }

  async issue(request: IssueRequest, deadline?: Date): Promise<SignedCertificate> {
    return signedCertificate(await unavailableNamed(this.#client.issueCertificate(issueMessage(request), deadline ? { deadline } : {})));
  }

  async issueMany(requests: readonly IssueRequest[], deadline?: Date): Promise<SignedCertificate[]> {
    // One call for the pair: half the per-call work (TLS records, HTTP/2 streams, the caller's
    // identity read from its certificate) on both sides.
    const response = await unavailableNamed(this.#client.issueCertificates({ certificates: requests.map(issueMessage) }, deadline ? { deadline } : {}));
    if (response.certificates.length !== requests.length) {
      throw new PkiError('INTERNAL', `issue certificates: ca-signer answered ${response.certificates.length} certificates for ${requests.length}`);
    }
    return response.certificates.map(signedCertificate);
  }

  async listIssuances(pageToken: string, pageSize: number): Promise<{ issuances: IssuanceEntry[]; nextPageToken: string }> {
    const response = await unavailableNamed(this.#client.listIssuances({ pageToken, pageSize }));
    return {
      nextPageToken: response.nextPageToken,
      issuances: response.issuances.map((i) => ({
        idempotencyKey: i.idempotencyKey,
        profile: i.profile,
        serialHex: i.serialHex,
        issuerKeyId: i.issuerKeyId,
        state: i.state === caSignerV1.IssuanceState.ISSUED ? 'ISSUED' : 'RESERVED',
        ...(i.certificate.length > 0 ? { certificateDer: Buffer.from(i.certificate) } : {}),
        notBefore: timestampDate(i.notBefore!),
        notAfter: timestampDate(i.notAfter!),
        reservedAt: timestampDate(i.reservedAt!),
      })),
    };
  }

  async issuers(): Promise<{ issuers: Array<{ keyId: string; certificateDer: Buffer; active: boolean }>; chain: Buffer[]; roots: RootCa[] }> {
    const response = await unavailableNamed(this.#client.getIssuers({}));
    return {
      issuers: response.issuers.map((i) => ({ keyId: i.keyId, certificateDer: Buffer.from(i.certificate), active: i.active })),
      chain: response.chain.map((c) => Buffer.from(c)),
      roots: response.roots.map((r) => ({
        keyId: r.keyId,
        certificateDer: Buffer.from(r.certificate),
        ...(r.authorityRevocationList.length > 0 ? { authorityRevocationListDer: Buffer.from(r.authorityRevocationList) } : {}),
      })),
    };
  }

  async signValidationReceipt(receipt: Buffer): Promise<{ signature: Buffer; signerCertificateDer: Buffer; signatureAlgorithm: string }> {
    const response = await unavailableNamed(this.#client.signValidationReceipt({ receipt }));
    return { signature: Buffer.from(response.signature), signerCertificateDer: Buffer.from(response.signerCertificate), signatureAlgorithm: response.signatureAlgorithm };
  }
}

async function unavailableNamed<T>(call: Promise<T>): Promise<T> {
  try {
    return await call;
  } catch (err) {
    if (err instanceof PkiError && (err.code === 'UNAVAILABLE' || err.code === 'DEADLINE_EXCEEDED')) {
      throw new PkiError('UNAVAILABLE', `ca-signer: ${err.message}`, { cause: err, details: { dependency: 'the certificate signer (ca-signer)', retryAfterSeconds: '5' } });
    }
    if (err instanceof PkiError && err.code !== 'INTERNAL') {
      // A refusal is for the caller; the RPC's name is not.
      throw new PkiError(err.code, `ca-signer refused: ${err.message.replace(/^CaSignerService\.[A-Za-z]+: /, '')}`, { cause: err, details: { ...err.details } });
    }
    throw err;
  }
}
