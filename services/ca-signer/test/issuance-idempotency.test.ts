import { generateKeyPairSync } from 'node:crypto';
import { fromBinary } from '@bufbuild/protobuf';
import { createPool, withTransaction, type Pool, type Tx } from '@pki/db';
import { createLogger, PkiError, systemClock } from '@pki/kit';
import { migrateServiceSchema } from '@pki/outbox';
import { eventsV1 } from '@pki/proto';
import { createTestDatabase } from '@pki/testing';
import { verifyCertificateSignatureDer } from '@pki/x509';
import { FakeKeyManager } from '../src/adapters/fake';
import { MIGRATIONS_DIRECTORY } from '../src/app';
import { createCaHierarchy } from '../src/domain/ca-hierarchy';
import { CertificateAuthority, recordIssuer, type IssueRequest } from '../src/domain/certificate-authority';
import { BatchCommit, GroupCommit } from '../src/domain/group-commit';
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

describe('GroupCommit', () => {
  it('commits concurrent work in shared transactions, and gives each caller its own outcome when one fails', async () => {
    const commits = new GroupCommit(pool);
    await pool.query('CREATE TABLE IF NOT EXISTS group_commit_probe (id int PRIMARY KEY, tx bigint NOT NULL)');
    const write = (id: number) => (tx: Tx) => tx.query('INSERT INTO group_commit_probe (id, tx) VALUES ($1, txid_current())', [id]).then(() => id);
    await Promise.all([1, 2, 3, 4, 5, 6].map((id) => commits.transaction(write(id))));
    const first = (await pool.query('SELECT tx FROM group_commit_probe')).rows.map((r) => r.tx);
    // Fewer transactions than writes: submitted in one turn of the event loop, they went together.
    expect(new Set(first).size).toBeLessThan(first.length);

    const outcomes = await Promise.allSettled([7, 8, 3, 9, 10].map((id) => commits.transaction(write(id))));
    // The duplicate id fails its own caller only; the others, in its batch, committed all the same.
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    expect(outcomes[2]).toMatchObject({ reason: { constraint: 'group_commit_probe_pkey' } });
    const { rows } = await pool.query('SELECT id FROM group_commit_probe ORDER BY id');
    expect(rows.map((r) => r.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('BatchCommit writes concurrent items with one statement per batch, and retries a failed batch item by item', async () => {
    await pool.query('CREATE TABLE IF NOT EXISTS batch_commit_probe (id int PRIMARY KEY, tx bigint NOT NULL)');
    let statements = 0;
    const batches = new BatchCommit<number, number>(pool, async (tx, ids) => {
      statements++;
      const { rows } = await tx.query<{ id: number }>('INSERT INTO batch_commit_probe (id, tx) SELECT id, txid_current() FROM unnest($1::int[]) AS t(id) RETURNING id', [ids]);
      return ids.map((id) => (rows.some((r) => r.id === id) ? id * 10 : -1));
    });
    expect(await Promise.all([1, 2, 3, 4, 5, 6].map((id) => batches.submit(id)))).toEqual([10, 20, 30, 40, 50, 60]);
    // Submitted in one turn of the event loop: one batch, one statement, one transaction.
    expect(statements).toBe(1);
    expect(new Set((await pool.query('SELECT tx FROM batch_commit_probe')).rows.map((r) => r.tx)).size).toBe(1);
    // Submitted while a batch is being written: they wait for it, then go together.
    const first = batches.submit(11);
    await new Promise((r) => setImmediate(r));
    const rest = [12, 13, 14].map((id) => batches.submit(id));
    expect(await Promise.all([first, ...rest])).toEqual([110, 120, 130, 140]);
    expect(statements).toBe(3);

    // A duplicate fails the batch's statement: each item is then written alone, and only its caller sees the error.
    const outcomes = await Promise.allSettled([7, 8, 3, 9].map((id) => batches.submit(id)));
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect(outcomes[2]).toMatchObject({ reason: { constraint: 'batch_commit_probe_pkey' } });
    const { rows } = await pool.query('SELECT id FROM batch_commit_probe ORDER BY id');
    expect(rows.map((r) => r.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14]);
  });

  it('BatchCommit in single-statement mode writes a batch with one statement and no transaction around it, and calls an unreachable database UNAVAILABLE', async () => {
    await pool.query('CREATE TABLE IF NOT EXISTS batch_statement_probe (id int PRIMARY KEY, tx bigint NOT NULL)');
    const texts: string[] = [];
    const write = (db: { query: Tx['query'] }, ids: readonly number[]) => {
      const text = 'INSERT INTO batch_statement_probe (id, tx) SELECT id, txid_current() FROM unnest($1::int[]) AS t(id) RETURNING id';
      texts.push(text);
      return db.query<{ id: number }>(text, [ids]).then(({ rows }) => ids.map((id) => rows.some((r) => r.id === id)));
    };
    const batches = new BatchCommit<number, boolean>(pool, write, { singleStatement: true });
    expect(await Promise.all([1, 2, 3].map((id) => batches.submit(id)))).toEqual([true, true, true]);
    expect(texts).toHaveLength(1);
    expect(new Set((await pool.query('SELECT tx FROM batch_statement_probe')).rows.map((r) => r.tx)).size).toBe(1);

    const unreachable = createPool({ url: 'postgres://nobody@127.0.0.1:1/none', schema: 'ca_signer', maxConnections: 1 });
    try {
      const refused = new BatchCommit<number, boolean>(unreachable, write, { singleStatement: true });
      await expect(refused.submit(4)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    } finally {
      await unreachable.end();
    }
  });
});
