import type { MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { createGrpcClient, type ServiceClient, type TlsFiles } from '@pki/grpc';
import { caSignerV1 } from '@pki/proto';
import type { CertIdHash, OcspSingleResponseSpec } from '@pki/x509';
import type { OcspSigningPort, ResponseToSign, LiveRequestToSign, SignerIssuer } from '../../ports/ocsp-signing';

const HASH: Record<CertIdHash, caSignerV1.CertIdHashAlgorithm> = { SHA1: caSignerV1.CertIdHashAlgorithm.SHA1, SHA256: caSignerV1.CertIdHashAlgorithm.SHA256 };

function toSign(r: ResponseToSign): MessageInitShape<typeof caSignerV1.OcspResponseToSignSchema> {
  const status: OcspSingleResponseSpec['status'] = r.status;
  return {
    issuerKeyId: r.issuerKeyId,
    serialHex: r.serialHex,
    certIdHash: HASH[r.certIdHash],
    status: status.kind === 'good' ? caSignerV1.CertificateStatusKind.GOOD : status.kind === 'revoked' ? caSignerV1.CertificateStatusKind.REVOKED : caSignerV1.CertificateStatusKind.UNKNOWN,
    ...(status.kind === 'revoked' ? { revocationTime: timestampFromDate(status.revocationTime), revocationReason: (status.reason ?? 0) as number } : {}),
    thisUpdate: timestampFromDate(r.thisUpdate),
    nextUpdate: timestampFromDate(r.nextUpdate),
  };
}

/** ca-signer over gRPC with mTLS: the only place ocsp's responses are signed. */
export class GrpcOcspSigner implements OcspSigningPort {
  readonly #client: ServiceClient<typeof caSignerV1.CaSignerService>;

  constructor(options: { address: string; serverIdentity: string; tls: TlsFiles; deadlineMs: number }) {
    this.#client = createGrpcClient(caSignerV1.CaSignerService, options);
  }

  async signPreProduced(responses: readonly ResponseToSign[]): Promise<Uint8Array[]> {
    return (await this.#client.signOcspResponses({ responses: responses.map(toSign) })).responses;
  }

  async signLive(requests: readonly LiveRequestToSign[], deadline?: Date): Promise<Uint8Array[]> {
    const result = await this.#client.signLiveOcspResponses(
      { requests: requests.map((r) => ({ responses: r.responses.map(toSign), nonce: r.nonce ?? new Uint8Array(), extendedRevoke: r.extendedRevoke })) },
      deadline ? { deadline } : {},
    );
    return result.responses;
  }

  async issuers(): Promise<SignerIssuer[]> {
    const { issuers } = await this.#client.getIssuers({});
    return issuers.map((i) => ({
      keyId: i.keyId,
      certificateDer: Buffer.from(i.certificate),
      ...(i.ocspResponderCertificate.length > 0 ? { responderCertificateDer: Buffer.from(i.ocspResponderCertificate) } : {}),
    }));
  }

  close(): void {
    this.#client.close();
  }
}
