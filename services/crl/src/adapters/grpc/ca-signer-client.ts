import type { MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { PkiError } from '@pki/kit';
import type { ServiceClient } from '@pki/grpc';
import { caSignerV1 } from '@pki/proto';
import { parseCertificate, signatureAlgorithmOfDer } from '@pki/x509';
import type { CrlSigningClient, CrlSigningHeader, CrlSigningResult } from '../../ports/crl-signer';
import type { KnownIssuer } from '../../ports/crl-store';

/** The crl service's view of ca-signer over gRPC (mTLS, identity spiffe://pki.internal/crl). */
export class GrpcCrlSigningClient implements CrlSigningClient {
  readonly #client: ServiceClient<typeof caSignerV1.CaSignerService>;

  constructor(client: ServiceClient<typeof caSignerV1.CaSignerService>) {
    this.#client = client;
  }

  async getIssuers(): Promise<{ issuers: KnownIssuer[]; arls: Map<string, Buffer> }> {
    const response = await this.#client.getIssuers({});
    const issuers: KnownIssuer[] = response.issuers.map((i) => {
      if (i.crlPartitions === 0 || i.crlBaseUrl === '') throw new PkiError('FAILED_PRECONDITION', `read issuers: ca-signer reports no CRL publication for generation ${i.keyId}`);
      return { keyId: i.keyId, role: 'ISSUING', certificateDer: Buffer.from(i.certificate), crlPartitions: i.crlPartitions, crlBaseUrl: i.crlBaseUrl, notAfter: parseCertificate(i.certificate).notAfter };
    });
    const arls = new Map<string, Buffer>();
    for (const root of response.roots) {
      issuers.push({ keyId: root.keyId, role: 'ROOT', certificateDer: Buffer.from(root.certificate), crlPartitions: null, crlBaseUrl: null, notAfter: parseCertificate(root.certificate).notAfter });
      if (root.authorityRevocationList.length > 0) arls.set(root.keyId, Buffer.from(root.authorityRevocationList));
    }
    return { issuers, arls };
  }

  async signCrl(header: CrlSigningHeader, entries: AsyncIterable<Buffer>, deadline: Date): Promise<CrlSigningResult> {
    async function* messages(): AsyncIterable<MessageInitShape<typeof caSignerV1.SignCrlStreamRequestSchema>> {
      yield {
        part: {
          case: 'header',
          value: {
            idempotencyKey: header.idempotencyKey,
            issuerKeyId: header.issuerKeyId,
            partition: header.partition,
            crlNumber: header.crlNumber.toString(),
            deltaBaseCrlNumber: header.deltaBaseCrlNumber?.toString() ?? '',
            thisUpdate: timestampFromDate(header.thisUpdate),
            nextUpdate: timestampFromDate(header.nextUpdate),
            ...(header.expiredCertsOnCrl ? { expiredCertsOnCrl: timestampFromDate(header.expiredCertsOnCrl) } : {}),
            announceDeltaCrl: header.announceDeltaCrl,
            entryCount: BigInt(header.entryCount),
            entriesLength: BigInt(header.entriesLength),
          },
        },
      };
      for await (const chunk of entries) yield { part: { case: 'revokedCertificates', value: chunk } };
    }
    const response = await this.#client.signCrlStream(messages(), { deadline });
    const signatureAlgorithm = signatureAlgorithmOfDer(response.signatureAlgorithm);
    if (!signatureAlgorithm) throw new PkiError('INTERNAL', 'sign CRL: ca-signer answered with an unknown signature algorithm');
    return { signature: Buffer.from(response.signature), signatureAlgorithm, tbsSha256: Buffer.from(response.tbsSha256), tbsLength: Number(response.tbsLength) };
  }
}
