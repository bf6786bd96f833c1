import type { Clock } from '@pki/kit';
import { PkiError } from '@pki/kit';
import {
  authorityKeyIdentifierExtension,
  basicConstraintsExtension,
  buildTbsCertificate,
  certificatePoliciesExtension,
  type DistinguishedName,
  id_tw_gpki_certpolicy_class3Assurance,
  keyUsageExtension,
  randomSerial,
  subjectKeyIdentifierExtension,
  subjectKeyIdentifierOf,
} from '@pki/x509';
import type { CaKeySpec, KeyManager } from '../ports/key-manager';
import { addYears, signatureAlgorithmForIssuerSpki, signCertificate, wholeSecond } from './certificate-signing';

/** The development government root DN (the real GRCA uses this O, without CN). */
export const DEV_ROOT_CA_SUBJECT: DistinguishedName = [
  { type: 'C', value: 'TW' },
  { type: 'O', value: 'Government Root Certification Authority' },
];

/** The citizen CA's DN, shared by every generation (domain.md): only AKI/SKI tell them apart. */
export const CITIZEN_CA_SUBJECT: DistinguishedName = [
  { type: 'C', value: 'TW' },
  { type: 'O', value: '行政院' },
  { type: 'OU', value: '內政部憑證管理中心' },
];

export interface CaHierarchyOptions {
  clock: Clock;
  rootSubject?: DistinguishedName;
  issuingSubject?: DistinguishedName;
  /** Default RSA-2048, quick for development; production ceremonies use RSA-4096 (G3). */
  rootKeySpec?: CaKeySpec;
  issuingKeySpec?: CaKeySpec;
  /** Default 30 years. */
  rootValidityYears?: number;
  /** Default 20 years, as G3 (domain.md); must end before the root does. */
  issuingValidityYears?: number;
  /** Certificate policies of the issuing CA; default the class 3 assurance policy. */
  issuingPolicies?: readonly string[];
  /** CKA_LABELs of the two keys. */
  keyLabels?: { root: string; issuing: string };
  serials?: () => Buffer;
}

export interface CaCertificate {
  keyId: string;
  certificateDer: Buffer;
}

export interface CaHierarchy {
  root: CaCertificate;
  issuing: CaCertificate;
}

/**
 * Generates, inside the key manager's token, a root CA key with its self-signed certificate and
 * an issuing CA key with a certificate signed by the root key. Used by the embedded stack on
 * first start and by tests; a production hierarchy comes from a key ceremony instead.
 */
export async function createCaHierarchy(keyManager: KeyManager, options: CaHierarchyOptions): Promise<CaHierarchy> {
  const operation = 'create CA hierarchy';
  const rootSubject = options.rootSubject ?? DEV_ROOT_CA_SUBJECT;
  const issuingSubject = options.issuingSubject ?? CITIZEN_CA_SUBJECT;
  const rootYears = options.rootValidityYears ?? 30;
  const issuingYears = options.issuingValidityYears ?? 20;
  for (const [name, years] of [['rootValidityYears', rootYears], ['issuingValidityYears', issuingYears]] as const) {
    if (!Number.isInteger(years) || years < 1 || years > 50) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${name} must be 1 to 50`);
  }
  if (issuingYears > rootYears) throw new PkiError('INVALID_ARGUMENT', `${operation}: the issuing CA cannot outlive the root`);
  const serials = options.serials ?? (() => randomSerial());
  const labels = options.keyLabels ?? { root: 'root-ca', issuing: 'citizen-ca' };
  const notBefore = wholeSecond(options.clock.now());

  const root = await keyManager.generateKeyPair({ label: labels.root, spec: options.rootKeySpec ?? { type: 'RSA', bits: 2048 } });
  const rootAlgorithm = signatureAlgorithmForIssuerSpki(root.publicKeySpki);
  // Self-signed root: RFC 5280 §4.2.1.9 basicConstraints critical with cA, §4.2.1.3 keyCertSign and
  // cRLSign, §4.2.1.2 SKI. AKI may be omitted in a self-signed certificate (§4.2.1.1).
  const rootTbs = buildTbsCertificate({
    serialNumber: serials(),
    signatureAlgorithm: rootAlgorithm,
    issuer: rootSubject,
    subject: rootSubject,
    validity: { notBefore, notAfter: addYears(notBefore, rootYears) },
    subjectPublicKeyInfo: root.publicKeySpki,
    extensions: [
      basicConstraintsExtension({ ca: true }, { critical: true }),
      keyUsageExtension(['keyCertSign', 'crlSign'], { critical: true }),
      subjectKeyIdentifierExtension(root.publicKeySpki),
    ],
  });
  const rootCertificate = await signCertificate(
    keyManager,
    { issuerKeyId: root.keyId, issuerSpki: root.publicKeySpki, algorithm: rootAlgorithm, tbsDer: rootTbs },
    operation,
  );

  const issuing = await keyManager.generateKeyPair({ label: labels.issuing, spec: options.issuingKeySpec ?? { type: 'RSA', bits: 2048 } });
  // The issuing CA signs only end-entity certificates and CRLs: pathLenConstraint 0 (§4.2.1.9).
  // AKI names the root key (§4.2.1.1); the policy is what subscriber certificates assert.
  const issuingTbs = buildTbsCertificate({
    serialNumber: serials(),
    signatureAlgorithm: rootAlgorithm,
    issuer: rootSubject,
    subject: issuingSubject,
    validity: { notBefore, notAfter: addYears(notBefore, issuingYears) },
    subjectPublicKeyInfo: issuing.publicKeySpki,
    extensions: [
      basicConstraintsExtension({ ca: true, pathLenConstraint: 0 }, { critical: true }),
      keyUsageExtension(['keyCertSign', 'crlSign'], { critical: true }),
      subjectKeyIdentifierExtension(issuing.publicKeySpki),
      authorityKeyIdentifierExtension(subjectKeyIdentifierOf(root.publicKeySpki)),
      certificatePoliciesExtension(options.issuingPolicies ?? [id_tw_gpki_certpolicy_class3Assurance]),
    ],
  });
  const issuingCertificate = await signCertificate(
    keyManager,
    { issuerKeyId: root.keyId, issuerSpki: root.publicKeySpki, algorithm: rootAlgorithm, tbsDer: issuingTbs },
    operation,
  );

  return {
    root: { keyId: root.keyId, certificateDer: rootCertificate },
    issuing: { keyId: issuing.keyId, certificateDer: issuingCertificate },
  };
}
