import type { Pool } from 'pg';
import { PkiError, type Clock } from '@pki/kit';
import { withTransaction, type Tx } from '@pki/db';
import { generateKeyPairSync } from 'node:crypto';
import {
  assembleCrl,
  buildTbsCertList,
  compareSerials,
  type CrlEntry,
  CRLReasons,
  type DistinguishedName,
  formatName,
  fullCrlUrl,
  nextCrlNumber,
  type NameAttribute,
  parseCertificate,
  type ParsedCertificate,
  parseName,
  randomSerial,
  rsaSubjectPublicKeyInfo,
  signatureAlgorithmIdentifier,
  verifyCertificateSignature,
  verifySignature,
} from '@pki/x509';
import {
  CITIZEN_CA_SUBJECT,
  checkCaCertificate,
  keySpecName,
  keySpecOfSpki,
  type PreparedCaCertificate,
  prepareIssuingCaCertificate,
  prepareRootCertificate,
  signCaCertificate,
} from '../domain/ca-hierarchy';
import { recordIssuer, type PublicationUrls } from '../domain/certificate-authority';
import { recordCrlPublication } from '../domain/crl-publication';
import { type CertificateProfile, type CertificateProfileName, certificateProfiles } from '../domain/certificate-profiles';
import { AuditOutcome } from '../domain/audit';
import { prepareCertificate, signPreparedCertificate, type IssuingCa } from '../domain/issuance';
import { signatureAlgorithmForIssuerSpki, wholeSecond } from '../domain/certificate-signing';
import { reserveCrlNumber } from '../domain/crl-signing';
import { assertLintClean, CrlEntryLinter, lintCrlFrame } from '../domain/lint';
import { type CaKeySpec, type GenerateKeyPairResponse, type KeyManager, supportsKeyImport } from '../ports/key-manager';
import { type CeremonyAudit, sha256Hex, type StepScope } from './audit';
import { prepareCsr, signCsr } from './csr';
import type { CeremonyProgress } from './progress';

/**
 * The key ceremony steps. Each one: checks its input and the records (nothing is touched when
 * they are wrong), writes its audit intent, opens the HSM only then, and ends with a result event
 * committed together with the records it changes. They take the HSM lazily so that a step that
 * fails its checks has not even logged in.
 */
export interface CeremonyContext {
  pool: Pool;
  /** Opens (once) and returns the token's key manager, logged in with the ceremony PIN. */
  hsm(): Promise<KeyManager>;
  clock: Clock;
  audit: CeremonyAudit;
  progress: CeremonyProgress;
  /** Where issued certificates point relying parties (AIA, CRL DP) for delegated signers. */
  publication: PublicationUrls;
  serials?: () => Buffer;
}

export type DelegatedPurpose = 'OCSP_RESPONDER' | 'AUDIT_CHECKPOINT' | 'VALIDATION_RECEIPT';

const GENERATION = /^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/;

/** Checks a generation name (`G3`, `R1`, `DEV-G1`): it is how operators address a generation. */
export function checkGeneration(generation: string, operation: string): string {
  if (!GENERATION.test(generation)) throw new PkiError('INVALID_ARGUMENT', `${operation}: generation must be 1 to 32 letters, digits, '.', '_' or '-', starting with a letter or digit`);
  return generation;
}

// --- create-root -------------------------------------------------------------------------------

export interface CreateRootRequest {
  generation: string;
  keySpec: CaKeySpec;
  subject: DistinguishedName;
  validityYears: number;
}

export interface CaGenerationResult {
  /** subjectKeyIdentifier of the certificate, hex: how every later step names this generation. */
  keyId: string;
  hsmKeyId: string;
  generation: string;
  certificateDer: Buffer;
}

/** Generates a root key in the token and its self-signed certificate; records the root (never "active"). */
export async function createRoot(ctx: CeremonyContext, request: CreateRootRequest): Promise<CaGenerationResult> {
  const step = 'create-root';
  const generation = checkGeneration(request.generation, step);
  await assertGenerationFree(ctx.pool, 'ROOT', generation, step);
  const subject = formatName(request.subject);
  // Dry build (see placeholderFor): a bad subject or validity is refused before anything happens.
  prepareRootCertificate({ keyId: '00', publicKeySpki: PLACEHOLDER_SPKI, subject: request.subject, notBefore: ctx.clock.now(), validityYears: request.validityYears }, step);

  return ctx.audit.step(step, { generation, keySpec: keySpecName(request.keySpec), subject, validityYears: String(request.validityYears) }, async (scope) => {
    const hsm = await ctx.hsm();
    const key = await generateKey(ctx, hsm, scope, { label: `root-ca-${generation}`, spec: request.keySpec });
    const prepared = prepareRootCertificate(
      { keyId: key.keyId, publicKeySpki: key.publicKeySpki, subject: request.subject, notBefore: ctx.clock.now(), validityYears: request.validityYears, serial: ctx.serials?.() },
      step,
    );
    await noteSignIntent(ctx, scope, prepared, 'self-signed root certificate');
    const certificateDer = await signCaCertificate(hsm, prepared, step);
    const result = { hsmKeyId: key.keyId, generation, certificateDer, keyId: '' };
    await scope.complete(certificateFacts(certificateDer), async (tx) => {
      result.keyId = (await recordIssuer(tx, { role: 'ROOT', hsmKeyId: key.keyId, certificateDer, active: false, generation })).keyId;
      await recordCrlPublication(tx, result.keyId, ctx.publication, 'ROOT');
      await reserveSerial(tx, prepared.serialHex, result.keyId);
    });
    ctx.progress.say(`root ${generation} recorded: key identifier ${result.keyId}`);
    return result;
  });
}

// --- create-issuing ----------------------------------------------------------------------------

export interface CreateIssuingRequest {
  generation: string;
  keySpec: CaKeySpec;
  /** Default the citizen CA's DN, which every generation shares (domain.md). */
  subject?: DistinguishedName;
  /**
   * `csr`: the key's certificate comes from an external root; a PKCS#10 request is returned and
   * the key waits for `importIssuing`. `root`: a root in this token certifies it now.
   */
  certification: { by: 'csr' } | { by: 'root'; rootKeyId: string; validityYears: number; policies?: readonly string[] };
}

export type CreateIssuingResult = { by: 'csr'; hsmKeyId: string; generation: string; csrDer: Buffer } | ({ by: 'root' } & CaGenerationResult);

/** Generates an issuing CA key and either a CSR for an external root or a certificate from a local root. */
export async function createIssuing(ctx: CeremonyContext, request: CreateIssuingRequest): Promise<CreateIssuingResult> {
  const step = 'create-issuing';
  const generation = checkGeneration(request.generation, step);
  const subjectDn = request.subject ?? CITIZEN_CA_SUBJECT;
  const subject = formatName(subjectDn);
  await assertGenerationFree(ctx.pool, 'ISSUING', generation, step);
  const certification = request.certification;
  let root: { keyId: string; hsmKeyId: string; certificateDer: Buffer } | undefined;
  if (certification.by === 'root') {
    root = await findIssuer(ctx.pool, certification.rootKeyId, 'ROOT', step);
    const r = root;
    prepareIssuingCaCertificate(
      { root: { keyId: r.hsmKeyId, certificateDer: r.certificateDer }, publicKeySpki: PLACEHOLDER_SPKI, subject: subjectDn, notBefore: ctx.clock.now(), validityYears: certification.validityYears },
      step,
    );
  } else {
    prepareCsr({ keyId: '00', publicKeySpki: PLACEHOLDER_SPKI, subject: subjectDn }, step);
  }
  const intent: Record<string, string> = { generation, keySpec: keySpecName(request.keySpec), subject, certification: certification.by === 'csr' ? 'external root (CSR)' : 'local root' };
  if (root && certification.by === 'root') Object.assign(intent, { rootKeyId: root.keyId, validityYears: String(certification.validityYears) });

  return ctx.audit.step(step, intent, async (scope): Promise<CreateIssuingResult> => {
    const hsm = await ctx.hsm();
    const key = await generateKey(ctx, hsm, scope, { label: `citizen-ca-${generation}`, spec: request.keySpec });
    if (certification.by === 'csr') {
      const prepared = prepareCsr({ keyId: key.keyId, publicKeySpki: key.publicKeySpki, subject: subjectDn }, step);
      await scope.note('sign.intent', AuditOutcome.INTENT, { what: 'certification request (PKCS#10)', signerHsmKeyId: key.keyId, tbsSha256: sha256Hex(prepared.infoDer) });
      const csrDer = await signCsr(hsm, prepared, step);
      await scope.complete({ csrSha256: sha256Hex(csrDer), state: 'PENDING (waiting for the certificate from the external root)' }, async (tx) => {
        await tx.query(
          `INSERT INTO ca_key_requests (hsm_key_id, generation, subject_dn, public_key_spki, key_spec, csr_der, state) VALUES ($1, $2, $3, $4, $5, $6, 'PENDING')`,
          [key.keyId, generation, subject, key.publicKeySpki, keySpecName(request.keySpec), csrDer],
        );
      });
      ctx.progress.say(`issuing CA key for ${generation} generated; its request waits for the external root's certificate (import-issuing)`);
      return { by: 'csr', hsmKeyId: key.keyId, generation, csrDer };
    }
    const r = root!;
    const prepared = prepareIssuingCaCertificate(
      {
        root: { keyId: r.hsmKeyId, certificateDer: r.certificateDer },
        publicKeySpki: key.publicKeySpki,
        subject: subjectDn,
        notBefore: ctx.clock.now(),
        validityYears: certification.validityYears,
        policies: certification.policies,
        serial: ctx.serials?.(),
        publication: rootPublication(ctx.publication, r.keyId),
      },
      step,
    );
    await noteSignIntent(ctx, scope, prepared, 'issuing CA certificate', async (tx) => reserveSerial(tx, prepared.serialHex, r.keyId));
    const certificateDer = await signCaCertificate(hsm, prepared, step);
    const result = { by: 'root' as const, hsmKeyId: key.keyId, generation, certificateDer, keyId: '' };
    await scope.complete({ ...certificateFacts(certificateDer), active: 'false' }, async (tx) => {
      result.keyId = (await recordIssuer(tx, { role: 'ISSUING', hsmKeyId: key.keyId, certificateDer, active: false, generation })).keyId;
      await recordCrlPublication(tx, result.keyId, ctx.publication, 'ISSUING');
    });
    ctx.progress.say(`issuing CA ${generation} recorded (inactive): key identifier ${result.keyId}`);
    return result;
  });
}

// --- import-issuing ----------------------------------------------------------------------------

export interface ImportIssuingRequest {
  certificateDer: Buffer;
  /** The external root's certificate: when given, the signature and issuer name are checked too. */
  issuerCertificateDer?: Buffer;
  /** Which pending request; by default the one whose key the certificate certifies. */
  generation?: string;
}

/**
 * Accepts the certificate an external root made for a pending issuing CA key, after checking it
 * against the request and against the key in the token; records the generation, inactive.
 */
export async function importIssuing(ctx: CeremonyContext, request: ImportIssuingRequest): Promise<CaGenerationResult> {
  const step = 'import-issuing';
  const cert = parseCertificate(request.certificateDer, step);
  const intent: Record<string, string> = { certificateSha256: sha256Hex(request.certificateDer), subject: formatName(cert.subject), issuer: formatName(cert.issuer) };
  if (request.generation !== undefined) intent.generation = checkGeneration(request.generation, step);
  // The intent comes first even for a certificate that will be refused: an attempt to bring a
  // foreign certificate into the CA is something the auditors want to see.
  return ctx.audit.step(step, intent, async (scope) => {
    const pending = await findPendingRequest(ctx.pool, cert, request.generation, step);
    scope.remember({ generation: pending.generation, hsmKeyId: pending.hsmKeyId });
    checkCaCertificate(
      request.certificateDer,
      { publicKeySpki: pending.publicKeySpki, subject: pending.subjectDn, clock: ctx.clock, issuerCertificateDer: request.issuerCertificateDer },
      step,
    );
    // The record says which key was generated; the token says whether it is still there and
    // still that key. Only then can the signer sign under this certificate.
    const hsm = await ctx.hsm();
    const { publicKeySpki } = await hsm.getPublicKey({ keyId: pending.hsmKeyId });
    if (!publicKeySpki.equals(cert.subjectPublicKeyInfo)) {
      throw new PkiError('INVALID_ARGUMENT', `${step}: the token key ${pending.hsmKeyId} does not match the certificate's public key`);
    }
    const result = { hsmKeyId: pending.hsmKeyId, generation: pending.generation, certificateDer: request.certificateDer, keyId: '' };
    await scope.complete({ ...certificateFacts(request.certificateDer), active: 'false' }, async (tx) => {
      result.keyId = (await recordIssuer(tx, { role: 'ISSUING', hsmKeyId: pending.hsmKeyId, certificateDer: request.certificateDer, active: false, generation: pending.generation })).keyId;
      await recordCrlPublication(tx, result.keyId, ctx.publication, 'ISSUING');
      await tx.query(`UPDATE ca_key_requests SET state = 'IMPORTED', issuer_key_id = $2, imported_at = now() WHERE hsm_key_id = $1`, [pending.hsmKeyId, result.keyId]);
    });
    ctx.progress.say(`issuing CA ${pending.generation} imported (inactive): key identifier ${result.keyId}`);
    return result;
  });
}

// --- create-transport-key / import-legacy (migration of a previous CA's keys, decision 0031) -----

/**
 * Generates the transport key pair a previous CA's HSM wraps its keys under: RSA, private half
 * only able to unwrap. Its public key goes to the exporting side; nothing is recorded but the audit.
 */
export async function createTransportKey(ctx: CeremonyContext, request: { label: string; bits?: 3072 | 4096 }): Promise<{ keyId: string; publicKeySpki: Buffer }> {
  const step = 'create-transport-key';
  const bits = request.bits ?? 4096;
  return ctx.audit.step(step, { keyLabel: request.label, keySpec: `rsa-${bits}`, purpose: 'unwrap keys brought from another HSM' }, async (scope) => {
    const hsm = await ctx.hsm();
    if (!supportsKeyImport(hsm)) throw new PkiError('FAILED_PRECONDITION', `${step}: this key manager cannot import keys`);
    const key = await ctx.progress.during(`generating transport key '${request.label}' in the HSM`, hsm.createTransportKey({ label: request.label, bits }));
    scope.remember({ hsmKeyId: key.keyId });
    await scope.complete({ transportKeyId: key.keyId, publicKeySha256: sha256Hex(key.publicKeySpki) });
    ctx.progress.say(`transport key ${key.keyId} generated: give its public key to the exporting side`);
    return key;
  });
}

export interface ImportLegacyRequest {
  generation: string;
  /** The old generation's CA certificate, as the legacy export carries it. */
  certificateDer: Buffer;
  /** The old root's certificate: the generation's certificate must verify under it. */
  issuerCertificateDer?: Buffer;
  transportKeyId: string;
  wrappedKek: Buffer;
  wrappedKey: Buffer;
}

/**
 * Brings an old CA generation's key into the token (C_UnwrapKey, never in clear outside an HSM)
 * and records the generation, inactive: ca-signer then signs CRLs and OCSP responder certificates
 * for the certificates the old system issued under it. Custody as for a new generation: the step
 * runs in a ceremony opened with the custodians' shares, and is audited intent first.
 */
export async function importLegacyIssuer(ctx: CeremonyContext, request: ImportLegacyRequest): Promise<CaGenerationResult> {
  const step = 'import-legacy';
  const generation = checkGeneration(request.generation, step);
  const cert = parseCertificate(request.certificateDer, step);
  checkCaCertificate(request.certificateDer, { publicKeySpki: cert.subjectPublicKeyInfo, subject: formatName(cert.subject), clock: ctx.clock, issuerCertificateDer: request.issuerCertificateDer }, step);
  const spec = keySpecOfSpki(cert.subjectPublicKeyInfo);
  if (!spec.startsWith('rsa-')) throw new PkiError('INVALID_ARGUMENT', `${step}: only RSA generations are imported (the legacy CA keys are RSA)`);
  const keyId = cert.subjectKeyIdentifier!.toString('hex');
  await assertGenerationFree(ctx.pool, 'ISSUING', generation, step);
  if ((await ctx.pool.query(`SELECT 1 FROM issuers WHERE key_id = $1`, [keyId])).rows.length > 0) throw new PkiError('ALREADY_EXISTS', `${step}: the generation with key identifier ${keyId} is already recorded`);
  const intent = {
    generation, certificateSha256: sha256Hex(request.certificateDer), subject: formatName(cert.subject), keyId, keySpec: spec,
    transportKeyId: request.transportKeyId, wrappedKeySha256: sha256Hex(request.wrappedKey),
  };
  return ctx.audit.step(step, intent, async (scope) => {
    const hsm = await ctx.hsm();
    if (!supportsKeyImport(hsm)) throw new PkiError('FAILED_PRECONDITION', `${step}: this key manager cannot import keys`);
    const imported = await ctx.progress.during(
      `unwrapping the ${generation} key into the HSM`,
      hsm.importWrappedKey({ transportKeyId: request.transportKeyId, wrappedKek: request.wrappedKek, wrappedKey: request.wrappedKey, label: `legacy-ca-${generation}`, publicKeySpki: cert.subjectPublicKeyInfo }),
    );
    scope.remember({ hsmKeyId: imported.keyId });
    await scope.note('key-imported', AuditOutcome.SUCCESS, { hsmKeyId: imported.keyId, keyLabel: `legacy-ca-${generation}`, publicKeySha256: sha256Hex(cert.subjectPublicKeyInfo) });
    // Proof of possession: the token's new key signs, the certificate's public key verifies.
    const challenge = Buffer.from(`import-legacy ${generation} ${keyId} ${ctx.clock.now().toISOString()}`);
    const algorithm = signatureAlgorithmForIssuerSpki(cert.subjectPublicKeyInfo);
    const { signature } = await hsm.sign({ keyId: imported.keyId, algorithm, data: challenge });
    if (!verifySignature({ algorithm: signatureAlgorithmIdentifier(algorithm), publicKeySpki: cert.subjectPublicKeyInfo, data: challenge, signature }, step)) {
      throw new PkiError('INVALID_ARGUMENT', `${step}: the imported key's signature does not verify with the certificate's public key`);
    }
    const result = { hsmKeyId: imported.keyId, generation, certificateDer: request.certificateDer, keyId: '' };
    await scope.complete({ ...certificateFacts(request.certificateDer), active: 'false', legacy: 'true' }, async (tx) => {
      result.keyId = (await recordIssuer(tx, { role: 'ISSUING', hsmKeyId: imported.keyId, certificateDer: request.certificateDer, active: false, generation })).keyId;
      await recordCrlPublication(tx, result.keyId, ctx.publication, 'ISSUING');
    });
    ctx.progress.say(`legacy generation ${generation} imported (inactive): key identifier ${result.keyId}`);
    return result;
  });
}

// --- activate ----------------------------------------------------------------------------------

/** Makes one issuing generation the one new certificates are issued under; exactly one is active. */
export async function activateIssuer(ctx: CeremonyContext, keyId: string): Promise<{ keyId: string; generation: string | null; previousKeyId: string | null }> {
  const step = 'activate';
  const issuer = await findIssuer(ctx.pool, keyId, 'ISSUING', step);
  const previous = (await ctx.pool.query(`SELECT key_id FROM issuers WHERE role = 'ISSUING' AND active`)).rows[0]?.key_id ?? null;
  return ctx.audit.step(step, { keyId: issuer.keyId, generation: issuer.generation ?? '', previousKeyId: previous ?? '' }, async (scope) => {
    const now = ctx.clock.now();
    if (now < issuer.certificate.notBefore || now >= issuer.certificate.notAfter) {
      throw new PkiError('FAILED_PRECONDITION', `${step}: the certificate of ${issuer.keyId} is not valid now (${issuer.certificate.notBefore.toISOString()} to ${issuer.certificate.notAfter.toISOString()})`);
    }
    // A generation whose key is gone from the token would make every issuance fail.
    const hsm = await ctx.hsm();
    const { publicKeySpki } = await hsm.getPublicKey({ keyId: issuer.hsmKeyId });
    if (!publicKeySpki.equals(issuer.certificate.subjectPublicKeyInfo)) {
      throw new PkiError('FAILED_PRECONDITION', `${step}: the token key ${issuer.hsmKeyId} does not match the certificate of ${issuer.keyId}`);
    }
    await scope.complete({ active: 'true' }, async (tx) => {
      // Both statements in one transaction; the partial unique index issuers_one_active makes
      // a second active generation impossible even if two ceremonies raced.
      await tx.query(`UPDATE issuers SET active = false WHERE role = 'ISSUING' AND active AND key_id <> $1`, [issuer.keyId]);
      await tx.query(`UPDATE issuers SET active = true WHERE key_id = $1`, [issuer.keyId]);
    });
    ctx.progress.say(`issuing CA ${issuer.generation ?? issuer.keyId} is now the active generation${previous && previous !== issuer.keyId ? ` (was ${previous})` : ''}`);
    return { keyId: issuer.keyId, generation: issuer.generation, previousKeyId: previous };
  });
}

// --- delegated signers -------------------------------------------------------------------------

export interface CreateDelegatedSignerRequest {
  issuerKeyId: string;
  purpose: DelegatedPurpose;
  /** Default the first key type the profile accepts. */
  keySpec?: CaKeySpec;
  /** Default the profile's longest validity. */
  validityDays?: number;
  /** Default derived from the issuer's DN and the profile's subject rules. */
  subject?: DistinguishedName;
}

export interface DelegatedSignerResult {
  keyId: string;
  hsmKeyId: string;
  issuerKeyId: string;
  purpose: DelegatedPurpose;
  serialHex: string;
  certificateDer: Buffer;
}

const PROFILE_OF_PURPOSE: Record<DelegatedPurpose, string> = { OCSP_RESPONDER: 'ocspResponder', AUDIT_CHECKPOINT: 'auditCheckpointSigner', VALIDATION_RECEIPT: 'validationReceiptSigner' };
const STEP_OF_PURPOSE: Record<DelegatedPurpose, string> = { OCSP_RESPONDER: 'create-ocsp-responder', AUDIT_CHECKPOINT: 'create-audit-signer', VALIDATION_RECEIPT: 'create-validation-signer' };
const LABEL_OF_PURPOSE: Record<DelegatedPurpose, string> = { OCSP_RESPONDER: 'ocsp-responder', AUDIT_CHECKPOINT: 'audit-checkpoint', VALIDATION_RECEIPT: 'validation-receipt' };
const NAME_OF_PURPOSE: Record<DelegatedPurpose, string> = { OCSP_RESPONDER: 'OCSP Responder', AUDIT_CHECKPOINT: 'Audit Checkpoint Signer', VALIDATION_RECEIPT: 'Validation Receipt Signer' };
/** Purposes with one active key for the whole signer (relying parties verify with one key at a time), not one per issuer. */
const SIGNER_WIDE: ReadonlySet<DelegatedPurpose> = new Set(['AUDIT_CHECKPOINT', 'VALIDATION_RECEIPT']);

/** The certificate profile a delegated signer is issued under, if this build defines it. */
export function delegatedSignerProfile(purpose: DelegatedPurpose): CertificateProfile | undefined {
  return (certificateProfiles as Record<string, CertificateProfile | undefined>)[PROFILE_OF_PURPOSE[purpose]];
}

/**
 * A key in the token that signs on an issuing CA's behalf, certified by that CA through the
 * ordinary issuance path (prepareCertificate / signPreparedCertificate, so the profile and its
 * checks apply): the delegated OCSP responder of RFC 6960 §4.2.2.2 (profile ocspResponder, with
 * id-kp-OCSPSigning and id-pkix-ocsp-nocheck) or the audit checkpoint key (auditCheckpointSigner).
 * The new signer replaces the active one of the same purpose and issuer; for audit checkpoints,
 * of any issuer, since auditors verify checkpoints with one key at a time.
 */
export async function createDelegatedSigner(ctx: CeremonyContext, request: CreateDelegatedSignerRequest): Promise<DelegatedSignerResult> {
  const step = STEP_OF_PURPOSE[request.purpose];
  const profileName = PROFILE_OF_PURPOSE[request.purpose];
  const profile = delegatedSignerProfile(request.purpose);
  if (profile === undefined) throw new PkiError('FAILED_PRECONDITION', `${step}: this build has no certificate profile '${profileName}'`);
  const issuer = await findIssuer(ctx.pool, request.issuerKeyId, 'ISSUING', step);
  const keySpec = request.keySpec ?? defaultKeySpec(profile, step);
  const subject = request.subject ?? delegatedSubject(profile, issuer, request.purpose, step);
  const issuingCa = delegatedIssuingCa(issuer, request.purpose, ctx.publication);
  const validity = request.validityDays === undefined ? undefined : { days: request.validityDays };
  const serials = ctx.serials ?? (() => randomSerial());
  // Profile, subject, key type and validity are all checked before the intent and the key.
  prepareCertificate({ clock: ctx.clock, serials }, { issuer: issuingCa, profile: profileName as CertificateProfileName, subject, publicKeySpki: placeholderFor(keySpec), validity });
  const intent = { issuerKeyId: issuer.keyId, issuerGeneration: issuer.generation ?? '', purpose: request.purpose, profile: profileName, keySpec: keySpecName(keySpec), subject: formatName(subject) };

  return ctx.audit.step(step, intent, async (scope) => {
    const hsm = await ctx.hsm();
    const label = `${LABEL_OF_PURPOSE[request.purpose]}-${issuer.generation ?? issuer.keyId.slice(0, 8)}-${ctx.clock.now().toISOString().slice(0, 10)}`;
    const key = await generateKey(ctx, hsm, scope, { label, spec: keySpec });
    const prepared = prepareCertificate(
      { clock: ctx.clock, serials },
      { issuer: issuingCa, profile: profileName as CertificateProfileName, subject, publicKeySpki: key.publicKeySpki, validity },
    );
    // The serial is reserved with the intent, as in issuance: it is never used twice, even if
    // this step dies after the signature.
    await withTransaction(ctx.pool, async (tx) => {
      await reserveSerial(tx, prepared.serialHex, issuer.keyId);
      await scope.note(
        'sign.intent',
        AuditOutcome.INTENT,
        { what: `${profileName} certificate`, serial: prepared.serialHex, signerHsmKeyId: issuer.hsmKeyId, tbsSha256: sha256Hex(prepared.tbsDer), notAfter: prepared.notAfter.toISOString() },
        tx,
      );
    });
    const { certificateDer } = await signPreparedCertificate({ keyManager: hsm }, prepared);
    const signerKeyId = parseCertificate(certificateDer, step).subjectKeyIdentifier?.toString('hex');
    if (signerKeyId === undefined) throw new PkiError('INTERNAL', `${step}: the profile produced a certificate without subjectKeyIdentifier`);
    await scope.complete({ ...certificateFacts(certificateDer), signerKeyId, serial: prepared.serialHex }, async (tx) => {
      const signerWide = SIGNER_WIDE.has(request.purpose);
      const scopeSql = signerWide ? `purpose = $1` : `purpose = $1 AND issuer_key_id = $2`;
      await tx.query(`UPDATE delegated_signers SET active = false WHERE active AND ${scopeSql}`, signerWide ? [request.purpose] : [request.purpose, issuer.keyId]);
      await tx.query(
        `INSERT INTO delegated_signers (key_id, purpose, issuer_key_id, hsm_key_id, certificate_der, not_after, active) VALUES ($1, $2, $3, $4, $5, $6, true)`,
        [signerKeyId, request.purpose, issuer.keyId, key.keyId, certificateDer, prepared.notAfter],
      );
    });
    ctx.progress.say(`${profileName} certificate for issuer ${issuer.generation ?? issuer.keyId} recorded: key identifier ${signerKeyId}`);
    return { keyId: signerKeyId, hsmKeyId: key.keyId, issuerKeyId: issuer.keyId, purpose: request.purpose, serialHex: prepared.serialHex, certificateDer };
  });
}

// --- list --------------------------------------------------------------------------------------

export interface HierarchyListing {
  generations: Array<{
    role: 'ROOT' | 'ISSUING';
    generation: string | null;
    keyId: string;
    hsmKeyId: string;
    subject: string;
    issuer: string;
    keySpec: string;
    notBefore: Date;
    notAfter: Date;
    active: boolean;
    expired: boolean;
    certificateDer: Buffer;
  }>;
  pendingRequests: Array<{ generation: string; hsmKeyId: string; subject: string; keySpec: string; createdAt: Date }>;
  delegatedSigners: Array<{ purpose: DelegatedPurpose; keyId: string; issuerKeyId: string; hsmKeyId: string; keySpec: string; notAfter: Date; active: boolean; expired: boolean; certificateDer: Buffer }>;
}

/** What the signer holds: generations (active flag, expiry), pending key requests, delegated signers. */
export async function listHierarchy(pool: Pool, clock: Clock): Promise<HierarchyListing> {
  const now = clock.now();
  const issuers = await pool.query(`SELECT key_id, role, hsm_key_id, generation, certificate_der, active FROM issuers ORDER BY role DESC, created_at`);
  const pending = await pool.query(`SELECT hsm_key_id, generation, subject_dn, key_spec, created_at FROM ca_key_requests WHERE state = 'PENDING' ORDER BY created_at`);
  const delegated = await pool.query(`SELECT key_id, purpose, issuer_key_id, hsm_key_id, certificate_der, not_after, active FROM delegated_signers ORDER BY created_at`);
  return {
    generations: issuers.rows.map((r) => {
      const cert = parseCertificate(r.certificate_der, 'list');
      return {
        role: r.role,
        generation: r.generation,
        keyId: r.key_id,
        hsmKeyId: r.hsm_key_id,
        subject: formatName(cert.subject),
        issuer: formatName(cert.issuer),
        keySpec: keySpecOfSpki(cert.subjectPublicKeyInfo),
        notBefore: cert.notBefore,
        notAfter: cert.notAfter,
        active: r.active,
        expired: cert.notAfter <= now,
        certificateDer: r.certificate_der,
      };
    }),
    pendingRequests: pending.rows.map((r) => ({ generation: r.generation, hsmKeyId: r.hsm_key_id, subject: r.subject_dn, keySpec: r.key_spec, createdAt: r.created_at })),
    delegatedSigners: delegated.rows.map((r) => ({
      purpose: r.purpose,
      keyId: r.key_id,
      issuerKeyId: r.issuer_key_id,
      hsmKeyId: r.hsm_key_id,
      keySpec: keySpecOfSpki(parseCertificate(r.certificate_der, 'list').subjectPublicKeyInfo),
      notAfter: r.not_after,
      active: r.active,
      expired: r.not_after <= now,
      certificateDer: r.certificate_der,
    })),
  };
}

/** The root's ARL and certificate, as its issuing CA certificates point to them. */
function rootPublication(publication: PublicationUrls, rootKeyId: string): { crlUrls: string[]; caIssuersUrls: string[] } {
  return { crlUrls: [fullCrlUrl(publication.crlBaseUrl, rootKeyId)], caIssuersUrls: [`${publication.caIssuersUrl.replace(/\/$/, '')}/${rootKeyId}.crt`] };
}

// --- authority revocation lists ------------------------------------------------------------------

export interface SignArlRequest {
  rootKeyId: string;
  /** nextUpdate = thisUpdate + this many days; the next ceremony must come before. Default 365. */
  validityDays?: number;
}

export interface SignArlResult {
  rootKeyId: string;
  crlNumber: string;
  crlDer: Buffer;
  nextUpdate: Date;
}

const ARL_REASONS: Readonly<Record<string, CRLReasons>> = {
  'key-compromise': CRLReasons.keyCompromise,
  'ca-compromise': CRLReasons.cACompromise,
  'affiliation-changed': CRLReasons.affiliationChanged,
  superseded: CRLReasons.superseded,
  'cessation-of-operation': CRLReasons.cessationOfOperation,
  unspecified: CRLReasons.unspecified,
};

/** The reason names revoke-issuing accepts (RFC 5280 §5.3.1 CRLReason, as words). */
export function parseArlReason(name: string, operation: string): CRLReasons {
  const reason = ARL_REASONS[name];
  if (reason === undefined) throw new PkiError('INVALID_ARGUMENT', `${operation}: reason must be one of ${Object.keys(ARL_REASONS).join(', ')}`);
  return reason;
}

/**
 * Signs the root's authority revocation list over the CA certificates revoked under it, with the
 * root key, at a ceremony. It is a complete CRL of the root, without an issuingDistributionPoint:
 * the root certifies only CA certificates, so it lists nothing else, and a scoped ARL
 * (onlyContainsCACerts, RFC 5280 §5.2.5) would be out of scope for the root certificate itself,
 * which carries no CRL distribution point: `openssl verify -crl_check_all` refuses the chain with
 * "different CRL scope" at the root. The crl service publishes the latest one at <crl base URL>/<root key id>.crl, where
 * the issuing CA certificates' CRL distribution point names it. The same pre-signing lint as every
 * CRL runs on it before the HSM is asked.
 */
export async function signArl(ctx: CeremonyContext, request: SignArlRequest): Promise<SignArlResult> {
  const step = 'sign-arl';
  const root = await findIssuer(ctx.pool, request.rootKeyId, 'ROOT', step);
  const validityDays = request.validityDays ?? 365;
  if (!Number.isInteger(validityDays) || validityDays < 1 || validityDays > 3660) throw new PkiError('INVALID_ARGUMENT', `${step}: validity must be 1 to 3660 days`);
  const thisUpdate = wholeSecond(ctx.clock.now());
  const nextUpdate = new Date(Math.min(thisUpdate.getTime() + validityDays * 86_400_000, root.certificate.notAfter.getTime()));
  const { rows: revoked } = await ctx.pool.query(`SELECT serial_hex, reason, revoked_at FROM ca_revocations WHERE root_key_id = $1`, [root.keyId]);
  const entries: CrlEntry[] = revoked.map((r) => ({ serial: Buffer.from(r.serial_hex, 'hex'), revocationDate: wholeSecond(r.revoked_at), ...(r.reason !== 0 ? { reason: r.reason as CRLReasons } : {}) }));
  const last = (await ctx.pool.query(`SELECT last_number::text AS last FROM crl_numbers WHERE issuer_key_id = $1 AND partition = ''`, [root.keyId])).rows[0]?.last;
  const crlNumber = nextCrlNumber(last === undefined ? undefined : BigInt(last), thisUpdate);
  const algorithm = signatureAlgorithmForIssuerSpki(root.certificate.subjectPublicKeyInfo);
  const spec = {
    signatureAlgorithm: algorithm,
    issuerDer: root.certificate.subjectDer,
    authorityKeyIdentifier: root.certificate.subjectKeyIdentifier ?? Buffer.from(root.keyId, 'hex'),
    thisUpdate,
    nextUpdate,
    crlNumber,
  };
  const tbsDer = buildTbsCertList({ ...spec, entries });
  const bare = buildTbsCertList({ ...spec, entries: [] });
  const lint = lintCrlFrame(bare, { issuer: root.certificate, signatureAlgorithm: algorithm, authorityRevocationList: true, delta: false, now: ctx.clock.now(), allowedClockSkewSeconds: 60 });
  assertLintClean(lint, step);
  const entryLint = new CrlEntryLinter({ delta: false, authorityRevocationList: true, thisUpdate });
  for (const e of [...entries].sort((a, b) => compareSerials(a.serial, b.serial))) {
    const problem = entryLint.check({ serial: Buffer.from(e.serial), revocationDate: e.revocationDate.getTime() / 1000, ...(e.reason !== undefined ? { reason: e.reason } : {}), end: 0 });
    if (problem) throw new PkiError('INTERNAL', `${step}: ${problem}`);
  }
  return ctx.audit.step(step, { rootKeyId: root.keyId, crlNumber: String(crlNumber), entries: String(entries.length), nextUpdate: nextUpdate.toISOString() }, async (scope) => {
    const hsm = await ctx.hsm();
    await withTransaction(ctx.pool, async (tx) => {
      await reserveCrlNumber(tx, root.keyId, '', crlNumber, thisUpdate, step);
      await scope.note('sign.intent', AuditOutcome.INTENT, { what: 'authority revocation list', signerHsmKeyId: root.hsmKeyId, tbsSha256: sha256Hex(tbsDer) }, tx);
    });
    const { signature } = await hsm.sign({ keyId: root.hsmKeyId, algorithm, data: tbsDer });
    const crlDer = assembleCrl(tbsDer, algorithm, signature);
    if (!verifySignature({ publicKeySpki: root.certificate.subjectPublicKeyInfo, algorithm: signatureAlgorithmIdentifier(algorithm), data: tbsDer, signature }, step)) {
      throw new PkiError('INTERNAL', `${step}: the root key ${root.hsmKeyId} does not match the root certificate`);
    }
    await scope.complete({ crlSha256: sha256Hex(crlDer), crlNumber: String(crlNumber) }, async (tx) => {
      await tx.query(`INSERT INTO authority_revocation_lists (root_key_id, crl_number, this_update, next_update, crl_der) VALUES ($1, $2, $3, $4, $5)`, [
        root.keyId,
        crlNumber.toString(),
        thisUpdate,
        nextUpdate,
        crlDer,
      ]);
    });
    ctx.progress.say(`ARL ${crlNumber} of root ${root.generation ?? root.keyId} signed (${entries.length} revoked CA certificates), valid until ${nextUpdate.toISOString()}`);
    return { rootKeyId: root.keyId, crlNumber: String(crlNumber), crlDer, nextUpdate };
  });
}

/**
 * Revokes an issuing CA generation under its root and signs the root's new ARL in the same step.
 * The active generation is refused: activate its successor first, so issuance never runs under a
 * revoked CA.
 */
export async function revokeIssuing(ctx: CeremonyContext, request: { issuerKeyId: string; reason: CRLReasons; validityDays?: number }): Promise<SignArlResult> {
  const step = 'revoke-issuing';
  const issuer = await findIssuer(ctx.pool, request.issuerKeyId, 'ISSUING', step);
  const { rows } = await ctx.pool.query(`SELECT active FROM issuers WHERE key_id = $1`, [issuer.keyId]);
  if (rows[0]?.active) throw new PkiError('FAILED_PRECONDITION', `${step}: ${issuer.keyId} is the active generation; activate its successor first`);
  if (request.reason === CRLReasons.certificateHold || request.reason === CRLReasons.removeFromCRL) throw new PkiError('INVALID_ARGUMENT', `${step}: CA certificates are revoked, not suspended`);
  const root = (await ctx.pool.query(`SELECT key_id, certificate_der FROM issuers WHERE role = 'ROOT'`)).rows.find((r) => verifyCertificateSignature(issuer.certificate, parseCertificate(r.certificate_der).subjectPublicKeyInfo));
  if (!root) throw new PkiError('FAILED_PRECONDITION', `${step}: the root that certified ${issuer.keyId} is not in this signer (an external root revokes it on its own ARL)`);
  await ctx.audit.step(step, { issuerKeyId: issuer.keyId, rootKeyId: root.key_id, reason: String(request.reason) }, async (scope) => {
    await scope.complete({ revoked: 'true' }, async (tx) => {
      await tx.query(`INSERT INTO ca_revocations (issuer_key_id, root_key_id, serial_hex, reason, revoked_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (issuer_key_id) DO NOTHING`, [
        issuer.keyId,
        root.key_id,
        issuer.certificate.serialNumber.toString('hex'),
        request.reason,
        wholeSecond(ctx.clock.now()),
      ]);
    });
  });
  return signArl(ctx, { rootKeyId: root.key_id, validityDays: request.validityDays });
}

// --- helpers -----------------------------------------------------------------------------------

interface StoredIssuer {
  keyId: string;
  hsmKeyId: string;
  generation: string | null;
  certificateDer: Buffer;
  certificate: ParsedCertificate;
}

async function findIssuer(pool: Pool, keyId: string, role: 'ROOT' | 'ISSUING', operation: string): Promise<StoredIssuer> {
  const normalized = keyId.toLowerCase();
  if (!/^[0-9a-f]{2,128}$/.test(normalized)) throw new PkiError('INVALID_ARGUMENT', `${operation}: a key identifier is the certificate's subjectKeyIdentifier in hex (see 'pki ceremony list')`);
  const { rows } = await pool.query(`SELECT key_id, role, hsm_key_id, generation, certificate_der FROM issuers WHERE key_id = $1`, [normalized]);
  const row = rows[0];
  if (!row) throw new PkiError('NOT_FOUND', `${operation}: no CA generation with key identifier ${normalized} (see 'pki ceremony list')`);
  if (row.role !== role) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${normalized} is a ${row.role.toLowerCase()} CA, not ${role === 'ROOT' ? 'a root' : 'an issuing'} CA`);
  return { keyId: row.key_id, hsmKeyId: row.hsm_key_id, generation: row.generation, certificateDer: row.certificate_der, certificate: parseCertificate(row.certificate_der, operation) };
}

async function assertGenerationFree(pool: Pool, role: 'ROOT' | 'ISSUING', generation: string, operation: string): Promise<void> {
  const { rows } = await pool.query(
    `SELECT 1 FROM issuers WHERE role = $1 AND generation = $2 UNION ALL SELECT 1 FROM ca_key_requests WHERE $1 = 'ISSUING' AND generation = $2 AND state = 'PENDING'`,
    [role, generation],
  );
  if (rows.length > 0) throw new PkiError('ALREADY_EXISTS', `${operation}: ${role === 'ROOT' ? 'a root' : 'an issuing'} generation named '${generation}' already exists`);
}

async function findPendingRequest(
  pool: Pool,
  cert: ParsedCertificate,
  generation: string | undefined,
  operation: string,
): Promise<{ hsmKeyId: string; generation: string; subjectDn: string; publicKeySpki: Buffer }> {
  const { rows } =
    generation === undefined
      ? await pool.query(`SELECT hsm_key_id, generation, subject_dn, public_key_spki FROM ca_key_requests WHERE state = 'PENDING' AND public_key_spki = $1`, [cert.subjectPublicKeyInfo])
      : await pool.query(`SELECT hsm_key_id, generation, subject_dn, public_key_spki FROM ca_key_requests WHERE state = 'PENDING' AND generation = $1`, [generation]);
  const row = rows[0];
  if (!row) {
    throw new PkiError(
      'INVALID_ARGUMENT',
      generation === undefined
        ? `${operation}: the certificate's public key is not the key of any pending issuing CA request (see 'pki ceremony list')`
        : `${operation}: no pending issuing CA request for generation '${generation}'`,
    );
  }
  return { hsmKeyId: row.hsm_key_id, generation: row.generation, subjectDn: row.subject_dn, publicKeySpki: row.public_key_spki };
}

async function generateKey(ctx: CeremonyContext, hsm: KeyManager, scope: StepScope, request: { label: string; spec: CaKeySpec }): Promise<GenerateKeyPairResponse> {
  const key = await ctx.progress.during(`generating ${keySpecName(request.spec)} key '${request.label}' in the HSM`, hsm.generateKeyPair(request));
  scope.remember({ hsmKeyId: key.keyId });
  // Recorded at once: if a later part of the step fails, the audit trail still accounts for the
  // key that now exists in the token.
  await scope.note('key-generated', AuditOutcome.SUCCESS, { hsmKeyId: key.keyId, keyLabel: request.label, keySpec: keySpecName(request.spec), publicKeySha256: sha256Hex(key.publicKeySpki) });
  return key;
}

async function noteSignIntent(ctx: CeremonyContext, scope: StepScope, prepared: PreparedCaCertificate, what: string, work?: (tx: Tx) => Promise<void>): Promise<void> {
  const attributes = {
    what,
    serial: prepared.serialHex,
    signerHsmKeyId: prepared.signerKeyId,
    tbsSha256: sha256Hex(prepared.tbsDer),
    notBefore: prepared.notBefore.toISOString(),
    notAfter: prepared.notAfter.toISOString(),
  };
  if (work === undefined) return scope.note('sign.intent', AuditOutcome.INTENT, attributes);
  // The serial reservation and the intent commit together, as in issuance.
  return withTransaction(ctx.pool, async (tx) => {
    await work(tx);
    await scope.note('sign.intent', AuditOutcome.INTENT, attributes, tx);
  });
}

async function reserveSerial(tx: Tx, serialHex: string, issuerKeyId: string): Promise<void> {
  await tx.query(`INSERT INTO serials (serial_hex, issuer_key_id) VALUES ($1, $2)`, [serialHex, issuerKeyId]);
}

function certificateFacts(certificateDer: Buffer): Record<string, string> {
  const cert = parseCertificate(certificateDer, 'describe certificate');
  return {
    certificateSha256: sha256Hex(certificateDer),
    keyId: cert.subjectKeyIdentifier?.toString('hex') ?? '',
    serial: cert.serialNumber.toString('hex'),
    notBefore: cert.notBefore.toISOString(),
    notAfter: cert.notAfter.toISOString(),
  };
}

/**
 * Public keys for dry builds: each step builds its certificate (or request) once with a
 * placeholder key before anything is written or generated, so that a bad subject, validity or
 * profile is refused while the token and the audit trail are still untouched. The RSA modulus is
 * odd and of the right length but not a product of primes, which nothing here checks; EC needs a
 * point on the curve, so a throwaway software key supplies it. Never signed, never stored.
 */
function placeholderFor(spec: CaKeySpec): Buffer {
  if (spec.type === 'RSA') {
    const modulus = Buffer.alloc(spec.bits / 8, 0x5a);
    modulus[0] = 0xc0;
    modulus[modulus.length - 1] = 0x01;
    return rsaSubjectPublicKeyInfo(modulus, Buffer.from([1, 0, 1]));
  }
  return generateKeyPairSync('ec', { namedCurve: spec.curve }).publicKey.export({ format: 'der', type: 'spki' });
}
const PLACEHOLDER_SPKI = placeholderFor({ type: 'RSA', bits: 2048 });

function defaultKeySpec(profile: CertificateProfile, operation: string): CaKeySpec {
  const first = profile.subjectKeys[0];
  if (first === undefined) throw new PkiError('FAILED_PRECONDITION', `${operation}: profile ${profile.name} accepts no key type`);
  if (first.type === 'EC') return { type: 'EC', curve: first.curve };
  if (first.bits !== 2048 && first.bits !== 3072 && first.bits !== 4096) throw new PkiError('FAILED_PRECONDITION', `${operation}: profile ${profile.name} wants RSA-${first.bits}, which the HSM adapter does not generate`);
  return { type: 'RSA', bits: first.bits };
}

/**
 * The subject of a delegated signer, attribute by attribute as the profile requires: attributes
 * the issuing CA's DN has (C, O, OU) are taken from it, so the responder is visibly the CA's;
 * a CN names the purpose and generation.
 */
function delegatedSubject(profile: CertificateProfile, issuer: StoredIssuer, purpose: DelegatedPurpose, operation: string): DistinguishedName {
  const available = parseName(issuer.certificate.subject);
  const used = new Set<number>();
  const name = `${NAME_OF_PURPOSE[purpose]} ${issuer.generation ?? issuer.keyId.slice(0, 16)}`;
  return profile.subject.map((rule): NameAttribute => {
    const index = available.findIndex((a, i) => !used.has(i) && a.type === rule.type);
    if (index >= 0 && rule.type !== 'CN') {
      used.add(index);
      return { type: rule.type, value: available[index]!.value };
    }
    if (rule.type === 'CN') return { type: 'CN', value: name };
    throw new PkiError('INVALID_ARGUMENT', `${operation}: profile ${profile.name} needs a subject ${rule.type} the issuer's DN does not have; give --subject`);
  });
}

function delegatedIssuingCa(issuer: StoredIssuer, purpose: DelegatedPurpose, publication: PublicationUrls): IssuingCa {
  const caIssuersUrls = [`${publication.caIssuersUrl.replace(/\/$/, '')}/${issuer.keyId}.crt`];
  // RFC 6960 §4.2.2.2.1: a responder certificate with id-pkix-ocsp-nocheck is not checked for
  // revocation, so it carries no CRL DP or OCSP pointer; the audit key is checked like any other.
  if (purpose === 'OCSP_RESPONDER') return { keyId: issuer.hsmKeyId, certificateDer: issuer.certificateDer, crlUrls: [], ocspUrls: [], caIssuersUrls };
  return {
    keyId: issuer.hsmKeyId,
    certificateDer: issuer.certificateDer,
    crlUrls: [`${publication.crlBaseUrl.replace(/\/$/, '')}/${issuer.keyId}.crl`],
    ocspUrls: [publication.ocspUrl],
    caIssuersUrls,
  };
}
