import { id_tw_gpki_certpolicy_class3Assurance, type KeyUsageType, type NameAttributeType } from '@pki/x509';

/** One attribute of the subject DN a profile requires, in the order it must appear. */
export interface SubjectAttributeRule {
  type: NameAttributeType;
  /** The whole value must match. */
  pattern?: RegExp;
  /** What the pattern means, for the error message. */
  patternDescription?: string;
}

export type SubjectKeyRule = { type: 'RSA'; bits: number } | { type: 'EC'; curve: 'P-256' | 'P-384' };

/**
 * A certificate profile as data: what the subject, the key and the extensions of a certificate
 * issued under it look like. Issuance reads it; a linter can check profiles and their output.
 */
export interface CertificateProfile {
  name: string;
  /** The subject DN, attribute by attribute, in certificate order; nothing else is allowed. */
  subject: readonly SubjectAttributeRule[];
  /** Accepted subject public keys. */
  subjectKeys: readonly SubjectKeyRule[];
  /** Longest validity, and the one used when the request names none. */
  maxValidity: { years: number };
  keyUsage: { usages: readonly KeyUsageType[]; critical: boolean };
  extendedKeyUsage?: { purposes: readonly string[]; critical: boolean };
  certificatePolicies: { policies: readonly string[]; critical: boolean };
  /** Whether the last four digits of the national ID go into subjectDirectoryAttributes (2.5.29.9). */
  allowsNationalIdLastFour: boolean;
  /** Whether an e-mail address may go into subjectAltName. */
  allowsEmail: boolean;
}

/**
 * Citizen certificates (domain.md): subject `C=TW, CN=<name>, serialNumber=<16 digits>`, RSA-2048
 * keys generated on the card, class 3 policy, AKI/SKI, CRL DP and AIA, optional e-mail, and no
 * critical extension (observed on issued certificates; RFC 5280 requires none of these to be).
 */
const citizenSubject: readonly SubjectAttributeRule[] = [
  { type: 'C', pattern: /^TW$/, patternDescription: 'TW' },
  { type: 'CN' },
  { type: 'serialNumber', pattern: /^[0-9]{16}$/, patternDescription: '16 digits' },
];

/** The SIGN key pair's certificate: signatures with non-repudiation. */
export const citizenSignatureProfile: CertificateProfile = {
  name: 'citizenSignature',
  subject: citizenSubject,
  subjectKeys: [{ type: 'RSA', bits: 2048 }],
  maxValidity: { years: 5 },
  keyUsage: { usages: ['digitalSignature', 'nonRepudiation'], critical: false },
  certificatePolicies: { policies: [id_tw_gpki_certpolicy_class3Assurance], critical: false },
  allowsNationalIdLastFour: true,
  allowsEmail: true,
};

/** The KEYX key pair's certificate: key transport and data encryption. */
export const citizenEncryptionProfile: CertificateProfile = {
  name: 'citizenEncryption',
  subject: citizenSubject,
  subjectKeys: [{ type: 'RSA', bits: 2048 }],
  maxValidity: { years: 5 },
  keyUsage: { usages: ['keyEncipherment', 'dataEncipherment'], critical: false },
  certificatePolicies: { policies: [id_tw_gpki_certpolicy_class3Assurance], critical: false },
  allowsNationalIdLastFour: true,
  allowsEmail: true,
};

export const certificateProfiles = {
  citizenSignature: citizenSignatureProfile,
  citizenEncryption: citizenEncryptionProfile,
} as const satisfies Record<string, CertificateProfile>;

export type CertificateProfileName = keyof typeof certificateProfiles;
