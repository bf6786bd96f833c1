import { createHash } from 'node:crypto';
import { PkiError, type Clock } from '@pki/kit';
import {
  decodeAuthorityKeyIdentifier,
  decodeCertificatePolicies,
  decodeKeyUsage,
  fromPem,
  id_ce_authorityKeyIdentifier,
  id_ce_basicConstraints,
  id_ce_certificatePolicies,
  id_ce_certificatePolicies_anyPolicy,
  id_ce_cRLDistributionPoints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_subjectAltName,
  id_ce_subjectDirectoryAttributes,
  id_ce_subjectKeyIdentifier,
  id_pe_authorityInfoAccess,
  id_pkix_ocsp_nocheck,
  parseCertificate,
  verifyCertificateSignature,
  type ParsedCertificate,
} from '@pki/x509';
import type { CertificateStatus, StatusReason } from './lifecycle';

/** Tagged into every receipt; ca-signer's receipt key signs nothing without it (domain separation). */
export const VALIDATION_RECEIPT_FORMAT = 'pki-certificate-validation v1';
/** A citizen chain is end entity, issuing CA, root: a caller may send a few more, never dozens. */
export const MAX_SUBMITTED_CERTIFICATES = 5;
const MAX_CERTIFICATE_BYTES = 16 * 1024;
/** RFC 5280 §6.1: the longest path we build (end entity, intermediates, anchor). */
const MAX_PATH_LENGTH = 6;

/**
 * Extensions this validator processes (RFC 5280 §6.1.4 (o): a certificate with a critical
 * extension the validator does not process fails). nameConstraints and policyConstraints are
 * absent on purpose: the programme's CAs do not use them, so a certificate carrying them critical
 * is not one of ours and is refused rather than half-understood.
 */
const PROCESSED_EXTENSIONS: ReadonlySet<string> = new Set([
  id_ce_basicConstraints,
  id_ce_keyUsage,
  id_ce_extKeyUsage,
  id_ce_certificatePolicies,
  id_ce_subjectAltName,
  id_ce_subjectKeyIdentifier,
  id_ce_authorityKeyIdentifier,
  id_ce_cRLDistributionPoints,
  id_ce_subjectDirectoryAttributes,
  id_pe_authorityInfoAccess,
  id_pkix_ocsp_nocheck,
]);

/**
 * Why a certificate is not valid, worst first: a verdict names the first that applies.
 * - UNTRUSTED: no path to a configured trust anchor (another CA, or a generation not trusted).
 * - INVALID_CHAIN: a path exists by name and key identifier but a signature, a CA's constraints,
 *   a critical extension or a CA's own revocation breaks it.
 * - REVOKED / SUSPENDED: the registry's status (suspension is certificateHold, 停用).
 * - EXPIRED / NOT_YET_VALID: outside a validity period on the path at the validation time.
 * - POLICY_MISMATCH: the end entity asserts none of the accepted certificate policies.
 * - NOT_IN_REGISTRY: signed under one of our generations but not in the registry (never issued
 *   through ra, or different bytes under a registered serial): treated as not valid.
 */
export type ValidationVerdict = 'VALID' | 'UNTRUSTED' | 'INVALID_CHAIN' | 'REVOKED' | 'SUSPENDED' | 'EXPIRED' | 'NOT_YET_VALID' | 'POLICY_MISMATCH' | 'NOT_IN_REGISTRY';
const VERDICT_ORDER: readonly ValidationVerdict[] = ['UNTRUSTED', 'INVALID_CHAIN', 'REVOKED', 'SUSPENDED', 'EXPIRED', 'NOT_YET_VALID', 'POLICY_MISMATCH', 'NOT_IN_REGISTRY'];

export interface ValidationProblem {
  verdict: Exclude<ValidationVerdict, 'VALID'>;
  /** Index in the path (0 = the end entity); absent for problems of the whole path. */
  pathIndex?: number;
  message: string;
}

/** What the validator needs of the CA: the trust anchors and the issuing generations. */
export interface TrustMaterial {
  /** Root certificates (DER) the programme trusts: the path must end at one of them. */
  roots: readonly Buffer[];
  /** Issuing CA generations (DER) the signer reports, usable as intermediates whatever the caller sends. */
  generations: ReadonlyArray<{ keyId: string; certificateDer: Buffer; active: boolean }>;
  /** Serials (hex, lower case) of CA certificates their roots revoked (the roots' ARLs), by root key id. */
  revokedCaSerials: ReadonlyMap<string, ReadonlySet<string>>;
}

/** The registry's record of a certificate, as the validator needs it. */
export interface RegisteredCertificate {
  serialHex: string;
  issuerKeyId: string;
  profile: string;
  certificateDer: Buffer;
  status: CertificateStatus;
  reason?: StatusReason;
  revocationTime?: Date;
  invalidityDate?: Date;
}

export interface CertificateValidationPorts {
  trust(): Promise<TrustMaterial>;
  registered(serialHex: string): Promise<RegisteredCertificate | undefined>;
  signReceipt(receipt: Buffer): Promise<{ signature: Buffer; signerCertificateDer: Buffer; signatureAlgorithm: string }>;
}

export interface ValidationResult {
  format: typeof VALIDATION_RECEIPT_FORMAT;
  /** The caller's own reference, echoed so the receipt can be filed against its case. */
  reference?: string;
  /** The application system that asked. */
  requestedBy: string;
  validatedAt: string;
  valid: boolean;
  verdict: ValidationVerdict;
  problems: ValidationProblem[];
  certificate: {
    sha256: string;
    serialHex: string;
    issuerKeyId?: string;
    notBefore: string;
    notAfter: string;
    policies: string[];
    profile?: string;
  };
  /** The CA generation that issued the end entity, when the path reached one of ours. */
  generation?: { keyId: string; active: boolean; notBefore: string; notAfter: string };
  /** The path found, end entity first, trust anchor last. */
  path: Array<{ sha256: string; subjectKeyId?: string; role: 'end-entity' | 'ca' | 'trust-anchor' }>;
  /** The registry's status of the end entity (absent when it is not ours). */
  status?: { status: CertificateStatus; reason?: StatusReason; revocationTime?: string; invalidityDate?: string };
}

export interface ValidationAnswer {
  result: ValidationResult;
  /** The exact bytes ca-signer signed: `result` as JSON. */
  receipt: Buffer;
  signature: Buffer;
  signatureAlgorithm: string;
  signerCertificateDer: Buffer;
}

export interface ValidationRequest {
  /** DER certificates: the one to validate first, then any intermediates the caller holds. */
  certificates: readonly Buffer[];
  reference?: string;
  requestedBy: string;
}

const REFERENCE = /^[\x20-\x7e]{1,128}$/;

/**
 * The certificate validation API's logic: RFC 5280 §6.1 path validation from the submitted
 * certificate to a configured root, across CA generations (they share one name, so an issuer is
 * chosen by key identifier and proven by signature), the programme's policy, and the status in
 * ra's own registry (authoritative, fresher than any CRL), answered as a receipt that ca-signer
 * signs with the validation receipt key, so an agency can keep it as evidence.
 */
export class CertificateValidator {
  readonly #ports: CertificateValidationPorts;
  readonly #clock: Clock;
  readonly #acceptedPolicies: ReadonlySet<string>;

  constructor(ports: CertificateValidationPorts, options: { clock: Clock; acceptedPolicies: readonly string[] }) {
    this.#ports = ports;
    this.#clock = options.clock;
    this.#acceptedPolicies = new Set(options.acceptedPolicies);
  }

  async validate(request: ValidationRequest): Promise<ValidationAnswer> {
    const result = await this.evaluate(request);
    const receipt = Buffer.from(JSON.stringify(result), 'utf8');
    const signed = await this.#ports.signReceipt(receipt);
    return { result, receipt, signature: signed.signature, signatureAlgorithm: signed.signatureAlgorithm, signerCertificateDer: signed.signerCertificateDer };
  }

  // The trust material changes at a key ceremony; parsing its certificates per request cost more
  // than the validation itself. Kept per material object (the directory replaces it on refresh).
  readonly #parsedTrust = new WeakMap<TrustMaterial, { roots: ParsedCertificate[]; generations: Array<{ keyId: string; active: boolean; certificate: ParsedCertificate }> }>();

  #parsed(trust: TrustMaterial): { roots: ParsedCertificate[]; generations: Array<{ keyId: string; active: boolean; certificate: ParsedCertificate }> } {
    let parsed = this.#parsedTrust.get(trust);
    if (!parsed) {
      parsed = {
        roots: trust.roots.map((der) => parseCertificate(der, 'trust anchor')),
        generations: trust.generations.map((g) => ({ keyId: g.keyId, active: g.active, certificate: parseCertificate(g.certificateDer, 'CA generation') })),
      };
      this.#parsedTrust.set(trust, parsed);
    }
    return parsed;
  }

  /** The validation without the signature (also what the receipt says). */
  async evaluate(request: ValidationRequest): Promise<ValidationResult> {
    const operation = 'validate certificate';
    const submitted = parseSubmitted(request, operation);
    const leaf = submitted[0]!;
    const now = this.#clock.now();
    const trust = await this.#ports.trust();
    const problems: ValidationProblem[] = [];

    const { roots, generations } = this.#parsed(trust);
    const candidates = dedupe([...generations.map((g) => g.certificate), ...submitted.slice(1)]);
    const built = buildPath(leaf, candidates, roots);
    const path = built.path;
    if (built.anchor === undefined) problems.push({ verdict: built.nameMatched ? 'INVALID_CHAIN' : 'UNTRUSTED', message: built.failure });

    // RFC 5280 §6.1.3 and §6.1.4, for every certificate of the path found (the anchor's validity
    // too: OpenSSL checks it, and an expired root must not pass).
    const full = built.anchor ? [...path, built.anchor] : path;
    full.forEach((cert, index) => {
      const who = index === 0 ? 'the certificate' : `path certificate ${index}`;
      if (now < cert.notBefore) problems.push({ verdict: 'NOT_YET_VALID', pathIndex: index, message: `${who} is not valid before ${cert.notBefore.toISOString()}` });
      if (now > cert.notAfter) problems.push({ verdict: 'EXPIRED', pathIndex: index, message: `${who} expired at ${cert.notAfter.toISOString()}` });
      for (const [oid, ext] of cert.extensions) {
        if (ext.critical && !PROCESSED_EXTENSIONS.has(oid)) problems.push({ verdict: 'INVALID_CHAIN', pathIndex: index, message: `${who} has a critical extension ${oid} this validator does not process (RFC 5280 §6.1.4 (o))` });
      }
      if (index === 0) return;
      // §6.1.4 (k), (l), (m), (n): intermediates and anchor are CAs, may sign certificates, and
      // their path length constraint counts the non-self-issued CAs below them.
      if (cert.basicConstraints?.ca !== true) problems.push({ verdict: 'INVALID_CHAIN', pathIndex: index, message: `${who} is not a CA (basicConstraints cA is not true)` });
      const ku = cert.extensions.get(id_ce_keyUsage);
      if (ku !== undefined && !safely(() => decodeKeyUsage(ku.value), []).includes('keyCertSign')) problems.push({ verdict: 'INVALID_CHAIN', pathIndex: index, message: `${who} may not sign certificates (keyUsage lacks keyCertSign)` });
      const pathLen = cert.basicConstraints?.pathLenConstraint;
      const casBelow = index - 1;
      if (pathLen !== undefined && casBelow > pathLen) problems.push({ verdict: 'INVALID_CHAIN', pathIndex: index, message: `${who} allows ${pathLen} CA certificates below it, the path has ${casBelow}` });
    });

    // A CA certificate its root revoked (ARL, RFC 5280 §5: the root's CRL over CA certificates).
    if (built.anchor) {
      const anchorKeyId = built.anchor.subjectKeyIdentifier?.toString('hex');
      const revoked = anchorKeyId === undefined ? undefined : trust.revokedCaSerials.get(anchorKeyId);
      path.slice(1).forEach((cert, i) => {
        if (revoked?.has(cert.serialNumber.toString('hex'))) problems.push({ verdict: 'INVALID_CHAIN', pathIndex: i + 1, message: `path certificate ${i + 1} (a CA) was revoked by its root` });
      });
    }

    // Policy (§6.1: the programme's policy as the initial policy set, no mapping or inhibition:
    // its CAs assert anyPolicy or the same policies). The end entity must assert an accepted one.
    const policies = policiesOf(leaf);
    if (this.#acceptedPolicies.size > 0 && !policies.some((p) => this.#acceptedPolicies.has(p))) {
      problems.push({ verdict: 'POLICY_MISMATCH', pathIndex: 0, message: `the certificate asserts none of the accepted policies (${[...this.#acceptedPolicies].join(', ')})` });
    }
    path.slice(1).forEach((cert, i) => {
      if (!cert.extensions.has(id_ce_certificatePolicies)) return;
      const own = policiesOf(cert);
      if (!own.includes(id_ce_certificatePolicies_anyPolicy) && !policies.some((p) => own.includes(p))) {
        problems.push({ verdict: 'POLICY_MISMATCH', pathIndex: i + 1, message: `path certificate ${i + 1} does not allow the certificate's policies` });
      }
    });

    // The registry, for a certificate under one of our generations.
    const issuerCert = path[1] ?? built.anchor;
    const issuerKeyId = issuerCert?.subjectKeyIdentifier?.toString('hex');
    const generation = issuerKeyId === undefined ? undefined : generations.find((g) => g.keyId === issuerKeyId);
    const serialHex = leaf.serialNumber.toString('hex');
    let status: ValidationResult['status'];
    let profile: string | undefined;
    if (generation !== undefined && built.anchor !== undefined) {
      const record = await this.#ports.registered(serialHex);
      if (record === undefined || record.issuerKeyId !== generation.keyId || !record.certificateDer.equals(leaf.der)) {
        problems.push({ verdict: 'NOT_IN_REGISTRY', pathIndex: 0, message: 'the certificate verifies under one of our CA generations but is not in the registry' });
      } else {
        profile = record.profile;
        status = {
          status: record.status,
          ...(record.reason !== undefined ? { reason: record.reason } : {}),
          ...(record.revocationTime !== undefined ? { revocationTime: record.revocationTime.toISOString() } : {}),
          ...(record.invalidityDate !== undefined ? { invalidityDate: record.invalidityDate.toISOString() } : {}),
        };
        if (record.status === 'REVOKED') problems.push({ verdict: 'REVOKED', pathIndex: 0, message: `the certificate was revoked${record.reason ? ` (${record.reason})` : ''}` });
        if (record.status === 'SUSPENDED') problems.push({ verdict: 'SUSPENDED', pathIndex: 0, message: 'the certificate is suspended (certificateHold)' });
      }
    } else if (built.anchor !== undefined) {
      // Reached a root without one of the signer's generations: a CA the root certified that
      // ca-signer no longer reports. Its certificates are not in our registry.
      problems.push({ verdict: 'NOT_IN_REGISTRY', pathIndex: 0, message: 'the certificate was not issued by a CA generation this system operates' });
    }

    const verdict = VERDICT_ORDER.find((v) => problems.some((p) => p.verdict === v)) ?? 'VALID';
    return {
      format: VALIDATION_RECEIPT_FORMAT,
      ...(request.reference !== undefined ? { reference: request.reference } : {}),
      requestedBy: request.requestedBy,
      validatedAt: now.toISOString(),
      valid: verdict === 'VALID',
      verdict,
      problems,
      certificate: {
        sha256: sha256(leaf.der),
        serialHex,
        ...(issuerKeyId !== undefined ? { issuerKeyId } : authorityKeyId(leaf) !== undefined ? { issuerKeyId: authorityKeyId(leaf)! } : {}),
        notBefore: leaf.notBefore.toISOString(),
        notAfter: leaf.notAfter.toISOString(),
        policies,
        ...(profile !== undefined ? { profile } : {}),
      },
      ...(generation !== undefined
        ? { generation: { keyId: generation.keyId, active: generation.active, notBefore: generation.certificate.notBefore.toISOString(), notAfter: generation.certificate.notAfter.toISOString() } }
        : {}),
      path: full.map((cert, index) => ({
        sha256: sha256(cert.der),
        ...(cert.subjectKeyIdentifier ? { subjectKeyId: cert.subjectKeyIdentifier.toString('hex') } : {}),
        role: index === 0 ? 'end-entity' : built.anchor !== undefined && index === full.length - 1 ? 'trust-anchor' : 'ca',
      })),
      ...(status !== undefined ? { status } : {}),
    };
  }
}

function parseSubmitted(request: ValidationRequest, operation: string): ParsedCertificate[] {
  if (request.reference !== undefined && !REFERENCE.test(request.reference)) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: reference must be 1-128 printable ASCII characters`);
  }
  if (request.certificates.length === 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: no certificate given`);
  if (request.certificates.length > MAX_SUBMITTED_CERTIFICATES) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: ${request.certificates.length} certificates given; at most ${MAX_SUBMITTED_CERTIFICATES} (the certificate and its intermediates)`);
  }
  return request.certificates.map((der, i) => {
    if (der.length > MAX_CERTIFICATE_BYTES) throw new PkiError('INVALID_ARGUMENT', `${operation}: certificate ${i} has ${der.length} bytes; at most ${MAX_CERTIFICATE_BYTES}`);
    try {
      return parseCertificate(der, operation);
    } catch (err) {
      throw new PkiError('INVALID_ARGUMENT', `${operation}: certificate ${i} is not a DER X.509 certificate`, { cause: err });
    }
  });
}

/** Reads a submitted certificate: base64 DER or PEM. */
export function decodeSubmittedCertificate(text: string, index: number): Buffer {
  const trimmed = text.trim();
  if (trimmed.startsWith('-----BEGIN')) {
    try {
      return fromPem(trimmed, 'CERTIFICATE');
    } catch (err) {
      throw new PkiError('INVALID_ARGUMENT', `validate certificate: certificate ${index} is not a PEM CERTIFICATE`, { cause: err });
    }
  }
  if (!/^[A-Za-z0-9+/\s]+={0,2}$/.test(trimmed)) throw new PkiError('INVALID_ARGUMENT', `validate certificate: certificate ${index} is neither PEM nor base64 DER`);
  return Buffer.from(trimmed, 'base64');
}

interface BuiltPath {
  /** End entity first, then the intermediates; the anchor is separate. */
  path: ParsedCertificate[];
  anchor?: ParsedCertificate;
  /** Some issuer candidate matched by name and key identifier (the failure is then the chain's). */
  nameMatched: boolean;
  failure: string;
}

/**
 * Depth-first path building (RFC 4158 in its simplest form): at each step, the candidates whose
 * subject is the certificate's issuer and whose key identifier is its authority key identifier,
 * kept only if their key verifies the signature; roots are tried before intermediates.
 */
function buildPath(leaf: ParsedCertificate, intermediates: ParsedCertificate[], roots: ParsedCertificate[]): BuiltPath {
  let nameMatched = false;
  let failure = 'the certificate does not chain to a trust anchor of this system';
  const walk = (path: ParsedCertificate[]): BuiltPath | undefined => {
    const current = path[path.length - 1]!;
    const issues = (candidate: ParsedCertificate) => candidate.subjectDer.equals(current.issuerDer) && keyIdMatches(current, candidate);
    for (const root of roots.filter(issues)) {
      nameMatched = true;
      if (verifies(current, root)) return { path, anchor: root, nameMatched, failure: '' };
      failure = `path certificate ${path.length - 1}'s signature does not verify with the key of the trust anchor it names`;
    }
    if (path.length >= MAX_PATH_LENGTH - 1) return undefined;
    for (const candidate of intermediates.filter(issues)) {
      if (path.some((p) => p.der.equals(candidate.der))) continue;
      nameMatched = true;
      if (!verifies(current, candidate)) {
        failure = `path certificate ${path.length - 1}'s signature does not verify with the key of the CA it names`;
        continue;
      }
      const found = walk([...path, candidate]);
      if (found) return found;
    }
    return undefined;
  };
  return walk([leaf]) ?? { path: [leaf], nameMatched, failure };
}

function keyIdMatches(subject: ParsedCertificate, issuer: ParsedCertificate): boolean {
  const aki = authorityKeyId(subject);
  const ski = issuer.subjectKeyIdentifier?.toString('hex');
  return aki === undefined || ski === undefined || aki === ski;
}

function authorityKeyId(cert: ParsedCertificate): string | undefined {
  const ext = cert.extensions.get(id_ce_authorityKeyIdentifier);
  return ext === undefined ? undefined : safely(() => decodeAuthorityKeyIdentifier(ext.value).keyIdentifier?.toString('hex'), undefined);
}

function verifies(cert: ParsedCertificate, issuer: ParsedCertificate): boolean {
  return safely(() => verifyCertificateSignature(cert, issuer.subjectPublicKeyInfo), false);
}

function policiesOf(cert: ParsedCertificate): string[] {
  const ext = cert.extensions.get(id_ce_certificatePolicies);
  return ext === undefined ? [] : safely(() => decodeCertificatePolicies(ext.value).map((p) => p.policyIdentifier), []);
}

function dedupe(certs: ParsedCertificate[]): ParsedCertificate[] {
  const seen = new Set<string>();
  return certs.filter((c) => {
    const key = sha256(c.der);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function sha256(der: Buffer): string {
  return createHash('sha256').update(der).digest('hex');
}

function safely<T>(f: () => T, fallback: T): T {
  try {
    return f();
  } catch {
    return fallback;
  }
}
