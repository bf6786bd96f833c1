import { AsnConvert } from '@peculiar/asn1-schema';
import { Attributes, CertificationRequest, CertificationRequestInfo } from '@peculiar/asn1-csr';
import { PkiError } from '@pki/kit';
import {
  buildName,
  type DistinguishedName,
  parseCsr,
  parseSubjectPublicKeyInfo,
  type SignatureAlgorithm,
  signatureAlgorithmIdentifier,
  toArrayBuffer,
} from '@pki/x509';
import { signatureAlgorithmForIssuerSpki } from '../domain/certificate-signing';
import type { KeyManager } from '../ports/key-manager';

/** A certification request ready to be signed by the key it names (proof of possession). */
export interface PreparedCsr {
  keyId: string;
  publicKeySpki: Buffer;
  signatureAlgorithm: SignatureAlgorithm;
  /** DER of CertificationRequestInfo: the bytes the HSM signs. */
  infoDer: Buffer;
}

/**
 * Builds the CertificationRequestInfo (RFC 2986 §4.1) for an issuing CA key that an external root
 * will certify: version 0, the requested subject, the token key's SPKI and no attributes. No
 * extensions are requested: the root's own CA profile decides them (basicConstraints, keyUsage,
 * policies), and import-issuing checks what came back.
 */
export function prepareCsr(request: { keyId: string; publicKeySpki: Buffer; subject: DistinguishedName }, operation: string): PreparedCsr {
  const info = new CertificationRequestInfo({
    version: 0,
    subject: buildName(request.subject, operation),
    subjectPKInfo: parseSubjectPublicKeyInfo(request.publicKeySpki, operation),
    attributes: new Attributes(),
  });
  return {
    keyId: request.keyId,
    publicKeySpki: request.publicKeySpki,
    signatureAlgorithm: signatureAlgorithmForIssuerSpki(request.publicKeySpki),
    infoDer: Buffer.from(AsnConvert.serialize(info)),
  };
}

/** Signs a prepared request with its own key in the HSM and checks the result verifies. */
export async function signCsr(keyManager: KeyManager, prepared: PreparedCsr, operation: string): Promise<Buffer> {
  const { signature } = await keyManager.sign({ keyId: prepared.keyId, algorithm: prepared.signatureAlgorithm, data: prepared.infoDer });
  const info = AsnConvert.parse(prepared.infoDer, CertificationRequestInfo);
  const der = Buffer.from(
    AsnConvert.serialize(
      new CertificationRequest({ certificationRequestInfo: info, signatureAlgorithm: signatureAlgorithmIdentifier(prepared.signatureAlgorithm), signature: toArrayBuffer(signature) }),
    ),
  );
  const parsed = parseCsr(der);
  if (!parsed.signatureValid || !parsed.subjectPublicKeyInfo.equals(prepared.publicKeySpki)) {
    throw new PkiError('INTERNAL', `${operation}: the request signed with key ${prepared.keyId} does not verify with its public key`);
  }
  return der;
}
