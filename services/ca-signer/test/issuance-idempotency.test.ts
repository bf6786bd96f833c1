import { generateKeyPairSync } from 'node:crypto';
import { fromBinary } from '@bufbuild/protobuf';
import { createPool, withTransaction, type Pool } from '@pki/db';
import { createLogger, PkiError, systemClock } from '@pki/kit';
import { migrateServiceSchema } from '@pki/outbox';
import { eventsV1 } from '@pki/proto';
import { createTestDatabase } from '@pki/testing';
import { verifyCertificateSignatureDer } from '@pki/x509';
import { FakeKeyManager } from '../src/adapters/fake';
import { MIGRATIONS_DIRECTORY } from '../src/app';
import { createCaHierarchy } from '../src/domain/ca-hierarchy';
import { CertificateAuthority, recordIssuer, type IssueRequest } from '../src/domain/certificate-authority';
import { IssuerRegistry } from '../src/domain/issuer-registry';
import type { KeyManager, SignRequest, SignResponse } from '../src/ports/key-manager';

/**
 * Idempotency and serial reservation against real PostgreSQL: a new key is reserved without a
 * look-up first, so every retry shape (concurrent twins, a retry after a failed signature, a
 * retry while the HSM is down, a retry with another body) is checked here to mean what it did.
 */

/** The fake HSM, with signatures that can be made to fail while the HSM still reports healthy. */
class FlakyKeyManager implements KeyManager {
  failSignatures = 0;
  constructor(readonly inner: FakeKeyManager) {}
  generateKeyPair: KeyManager['generateKeyPair'] = (request) => this.inner.generateKeyPair(request);
  getPublicKey: KeyManager['getPublicKey'] = (request) => this.inner.getPublicKey(request);
  healthCheck: KeyManager['healthCheck'] = () => this.inner.healthCheck();
  close: KeyManager['close'] = () => this.inner.close();
  async sign(request: SignRequest): Promise<SignResponse> {
    if (this.failSignatures > 0) {
      this.failSignatures--;
      throw new PkiError('UNAVAILABLE', 'sign: the token went away mid-operation');
    }
    return this.inner.sign(request);
  }
}

const CALLER = 'spiffe://pki.internal/ra';
const subject = [
  { type: 'C', value: 'TW' },
  { type: 'CN', value: '王小明' },
  { type: 'serialNumber', value: '1234567890123456' },
];
const rsaSpki = () => generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' });

let pool: Pool;
let fake: FakeKeyManager;
let hsm: FlakyKeyManager;
let authority: CertificateAuthority;
let issuingSpki: Buffer;
let makeAuthority: (serials?: () => Buffer) => CertificateAuthority;

beforeAll(async () => {
  pool = createPool({ url: await createTestDatabase('ca_signer_idempotency'), schema: 'ca_signer', maxConnections: 10 });
  await migrateServiceSchema(pool, 'ca_signer', MIGRATIONS_DIRECTORY, createLogger({ service: 'test', level: 'silent' }));
  fake = new FakeKeyManager();
  hsm = new FlakyKeyManager(fake);
  const hierarchy = await createCaHierarchy(fake, { clock: systemClock });
  await withTransaction(pool, async (tx) => {
    await recordIssuer(tx, { role: 'ROOT', hsmKeyId: hierarchy.root.keyId, certificateDer: hierarchy.root.certificateDer, active: true });
    await recordIssuer(tx, { role: 'ISSUING', hsmKeyId: hierarchy.issuing.keyId, certificateDer: hierarchy.issuing.certificateDer, active: true });
  });
  issuingSpki = (await fake.getPublicKey({ keyId: hierarchy.issuing.keyId })).publicKeySpki;
  const registry = new IssuerRegistry(pool);
  await registry.load();
  makeAuthority = (serials) =>
    new CertificateAuthority({
      pool,
      registry,
      keyManager: hsm,
      clock: systemClock,
      logger: createLogger({ service: 'test', level: 'silent' }),
      producer: 'ca-signer',
      publication: { crlBaseUrl: 'http://crl.pki.test/crl', crlPartitions: 16, ocspUrl: 'http://ocsp.pki.test/', caIssuersUrl: 'http://pki.test/ca' },
      ...(serials ? { serials } : {}),
    });
  authority = makeAuthority();
});
afterAll(async () => {
  await pool?.end();
});

const count = async (table: 'issuances' | 'serials') => Number((await pool.query(`SELECT count(*) FROM ${table}`)).rows[0].count);
const request = (idempotencyKey: string, publicKeySpki: Buffer = rsaSpki()): IssueRequest => ({ caller: CALLER, idempotencyKey, profile: 'citizen-signature', publicKeySpki, subject });

/** The audit actions recorded for one serial, in outbox order. */
async function auditOf(serialHex: string): Promise<string[]> {
  const { rows } = await pool.query(`SELECT payload FROM outbox WHERE topic = 'pki.audit.v1' ORDER BY seq`);
  return rows
    .map((r) => fromBinary(eventsV1.AuditEventSchema, r.payload))
    .filter((e) => e.attributes.serial === serialHex)
    .map((e) => `${e.action} ${eventsV1.AuditOutcome[e.outcome]}`);
}

describe('IssueCertificate idempotency and serial reservation', () => {
  it('gives concurrent requests under one key one serial, one issuance and the same certificate', async () => {
    const [issuances, serials, signatures] = [await count('issuances'), await count('serials'), fake.signatures.length];
    const twin = request('card-1/SIGN');
    const results = await Promise.all(Array.from({ length: 6 }, () => authority.issue(twin)));
    expect(new Set(results.map((r) => r.serialHex)).size).toBe(1);
    for (const r of results) expect(r.certificateDer.equals(results[0]!.certificateDer)).toBe(true);
    expect(verifyCertificateSignatureDer(results[0]!.certificateDer, issuingSpki)).toBe(true);
    expect(await count('issuances')).toBe(issuances + 1);
    expect(await count('serials')).toBe(serials + 1);
    // Twins in one signer wait for each other: one signature, one intent, one result (with an
    // ECDSA issuer two signatures would be two different certificates under one serial).
    expect(fake.signatures.length - signatures).toBe(1);
    expect(await auditOf(results[0]!.serialHex)).toEqual(['certificate.issue.intent INTENT', 'certificate.issue.result SUCCESS']);
  });

  it('refuses the key with another body (CONFLICT), reserving no serial and signing nothing', async () => {
    const first = await authority.issue(request('card-2/SIGN'));
    const [serials, signatures] = [await count('serials'), fake.signatures.length];
    await expect(authority.issue(request('card-2/SIGN'))).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringContaining("idempotency key 'card-2/SIGN' was already used") });
    expect(await count('serials')).toBe(serials);
    expect(fake.signatures.length).toBe(signatures);
    expect(await auditOf(first.serialHex)).toEqual(['certificate.issue.intent INTENT', 'certificate.issue.result SUCCESS']);
  });

  it('finishes a reservation whose signature failed with the same serial and validity when the key is retried', async () => {
    const card = request('card-3/SIGN');
    hsm.failSignatures = 1;
    await expect(authority.issue(card)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    const { rows } = await pool.query(`SELECT serial_hex, state, not_before, not_after FROM issuances WHERE idempotency_key = 'card-3/SIGN'`);
    expect(rows).toEqual([expect.objectContaining({ state: 'RESERVED' })]);
    const serials = await count('serials');

    const retry = await authority.issue(card);
    expect(retry.serialHex).toBe(rows[0].serial_hex);
    expect(retry.notBefore).toEqual(rows[0].not_before);
    expect(retry.notAfter).toEqual(rows[0].not_after);
    expect(verifyCertificateSignatureDer(retry.certificateDer, issuingSpki)).toBe(true);
    expect(await count('serials')).toBe(serials);
    expect((await pool.query(`SELECT state FROM issuances WHERE idempotency_key = 'card-3/SIGN'`)).rows[0].state).toBe('ISSUED');
    expect(await auditOf(retry.serialHex)).toEqual([
      'certificate.issue.intent INTENT',
      'certificate.issue.result FAILURE',
      'certificate.issue.result SUCCESS',
    ]);
  });

  it('still answers a retry of a finished issuance while the HSM is down, and refuses a new key with UNAVAILABLE, reserving nothing', async () => {
    const card = request('card-4/SIGN');
    const issued = await authority.issue(card);
    fake.simulateOutage('token removed');
    try {
      const [issuances, serials] = [await count('issuances'), await count('serials')];
      await expect(authority.issue(card)).resolves.toMatchObject({ serialHex: issued.serialHex, certificateDer: issued.certificateDer });
      await expect(authority.issue(request('card-5/SIGN'))).rejects.toMatchObject({ code: 'UNAVAILABLE' });
      expect([await count('issuances'), await count('serials')]).toEqual([issuances, serials]);
    } finally {
      fake.simulateOutage(undefined);
    }
  });

  it('refuses a serial that was used before (INTERNAL), while the issuances committed alongside it go through', async () => {
    const used = (await authority.issue(request('card-6/SIGN'))).serialHex;
    const repeating = makeAuthority(() => Buffer.from(used, 'hex'));
    const [issuances, serials] = [await count('issuances'), await count('serials')];
    const [again, ...others] = await Promise.allSettled([repeating.issue(request('card-7/SIGN')), ...['card-8/SIGN', 'card-9/SIGN', 'card-10/SIGN'].map((key) => authority.issue(request(key)))]);
    expect(again).toMatchObject({ status: 'rejected', reason: { code: 'INTERNAL', message: expect.stringContaining(`serial ${used} was already used`) } });
    for (const other of others) expect(other.status).toBe('fulfilled');
    expect([await count('issuances'), await count('serials')]).toEqual([issuances + 3, serials + 3]);
    expect((await pool.query(`SELECT count(*) FROM issuances WHERE idempotency_key = 'card-7/SIGN'`)).rows[0].count).toBe('0');
  });
});
