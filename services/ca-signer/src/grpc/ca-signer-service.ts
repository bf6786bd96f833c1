import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { PkiError } from '@pki/kit';
import type { ServiceHandlers } from '@pki/grpc';
import type { caSignerV1 } from '@pki/proto';
import type { CertificateAuthority } from '../domain/certificate-authority';

/** The gRPC face of the authority: translation only; every rule lives in the domain. */
export function caSignerHandlers(authority: CertificateAuthority): ServiceHandlers<typeof caSignerV1.CaSignerService> {
  return {
    issueCertificate: async (request, context) => {
      if (request.publicKeySpki.length === 0) throw new PkiError('INVALID_ARGUMENT', 'issue certificate: public_key_spki is empty');
      const issued = await authority.issue({
        caller: context.caller,
        idempotencyKey: request.idempotencyKey,
        profile: request.profile,
        publicKeySpki: request.publicKeySpki,
        subject: request.subject.map((a) => ({ type: a.type, value: a.value })),
        issuerKeyId: request.issuerKeyId || undefined,
        notAfter: request.notAfter ? timestampDate(request.notAfter) : undefined,
      });
      return {
        certificate: issued.certificateDer,
        serialHex: issued.serialHex,
        issuerKeyId: issued.issuerKeyId,
        notBefore: timestampFromDate(issued.notBefore),
        notAfter: timestampFromDate(issued.notAfter),
      };
    },
    getIssuers: async () => {
      const issuers = authority.issuers();
      return {
        issuers: issuers.filter((i) => i.role === 'ISSUING').map((i) => ({ keyId: i.keyId, certificate: i.certificateDer, active: i.active })),
        chain: issuers.filter((i) => i.role === 'ROOT').map((i) => i.certificateDer),
      };
    },
  };
}
