import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { createGrpcClient, type ServiceClient } from '@pki/grpc';
import { CompactRange, consistencyProofRanges, hashLeaf, nodeKey, rangeHash } from '@pki/merkle';
import { caSignerV1 } from '@pki/proto';
import { toPem } from '@pki/x509';
import { startCaSignerFixture, type CaSignerFixture } from './service-fixture';

type Client = ServiceClient<typeof caSignerV1.CaSignerService>;

/** A Merkle tree in memory, as the audit log keeps it: every perfect node stored. */
class Tree {
  readonly nodes = new Map<string, Buffer>();
  readonly range = CompactRange.empty();
  constructor(readonly prefix: string) {}
  grow(to: number): this {
    while (this.range.size < to) {
      const leaf = hashLeaf(Buffer.from(`${this.prefix} ${this.range.size}`));
      this.nodes.set(nodeKey({ level: 0, index: this.range.size }), leaf);
      this.range.append(leaf, (node, hash) => this.nodes.set(nodeKey(node), hash));
    }
    return this;
  }
  root(size: number): Buffer {
    return rangeHash(0, size, (n) => this.nodes.get(nodeKey(n))!);
  }
  consistency(first: number, second: number): Buffer[] {
    return consistencyProofRanges(first, second).map(([a, b]) => rangeHash(a, b, (n) => this.nodes.get(nodeKey(n))!));
  }
}

let fixture: CaSignerFixture;
let db: pg.Pool;
let asAudit: Client;
let asOcsp: Client;
let asRa: Client;
const openssl = (args: string[]) => execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const file = (name: string, data: string | Uint8Array) => {
  const path = join(fixture.dir, name);
  writeFileSync(path, data);
  return path;
};
const origin = 'pki.test/audit-log';

beforeAll(async () => {
  // The gate's bound; the test ages events in the outbox rather than waiting, so that a loaded
  // machine cannot close the gate early or late.
  fixture = await startCaSignerFixture({ auditConfirmation: { required: true, maxUnconfirmedSeconds: 60 } });
  db = new pg.Pool({ connectionString: fixture.databaseUrl, options: '-c search_path=ca_signer' });
  const connect = (who: 'ocsp' | 'audit' | 'ra') =>
    createGrpcClient(caSignerV1.CaSignerService, { address: fixture.signer.grpcAddress, serverIdentity: fixture.identities['ca-signer'].identity, tls: fixture.identities[who], deadlineMs: 30_000 });
  asAudit = connect('audit');
  asOcsp = connect('ocsp');
  asRa = connect('ra');
});
afterAll(async () => {
  for (const c of [asAudit, asOcsp, asRa]) c?.close();
  await db?.end();
  await fixture?.stop();
});

describe('SignAuditCheckpoint', () => {
  const tree = new Tree('event');

  it('signs a tree head an auditor verifies with OpenSSL alone, certified by the CA hierarchy', async () => {
    tree.grow(5);
    const signed = await asAudit.signAuditCheckpoint({ origin, treeSize: 5n, rootHash: tree.root(5), previousTreeSize: 0n, producerHeads: [{ producer: 'ra.audit', sequence: 3n }, { producer: 'ca-signer', sequence: 2n }] });
    const lines = Buffer.from(signed.checkpoint).toString('utf8').split('\n');
    expect(lines.slice(0, 4)).toEqual([origin, '5', tree.root(5).toString('base64'), 'pki-audit-checkpoint v2']);
    expect(lines[4]).toMatch(/^signed-at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/);
    expect(lines[5]).toMatch(/^signer-key-id [0-9a-f]{40}$/);
    // producers sorted by name, and the text ends with a newline
    expect(lines.slice(6)).toEqual(['producer ca-signer 2', 'producer ra.audit 3', '']);
    const cert = new X509Certificate(Buffer.from(signed.signerCertificate));
    const pub = file('checkpoint-signer.pub', cert.publicKey.export({ type: 'spki', format: 'pem' }) as string);
    expect(openssl(['dgst', '-sha256', '-verify', pub, '-signature', file('checkpoint.sig', signed.signature), file('checkpoint.txt', signed.checkpoint)]).trim()).toBe('Verified OK');
    const verify = openssl(['verify', '-CAfile', join(fixture.caDir, 'root.pem'), '-untrusted', join(fixture.caDir, 'issuing.pem'), file('checkpoint-signer.pem', toPem(signed.signerCertificate, 'CERTIFICATE'))]);
    expect(verify).toContain(': OK');
    const { rows } = await db.query(`SELECT producer, sequence::int AS sequence, tree_size::int AS tree_size FROM audit_confirmations ORDER BY producer`);
    expect(rows).toEqual([{ producer: 'ca-signer', sequence: 2, tree_size: 5 }, { producer: 'ra.audit', sequence: 3, tree_size: 5 }]);
  });

  it('signs a larger tree only with a consistency proof from the last signed one', async () => {
    tree.grow(13);
    await expect(asAudit.signAuditCheckpoint({ origin, treeSize: 13n, rootHash: tree.root(13), previousTreeSize: 5n, consistencyProof: [] })).rejects.toMatchObject({
      code: 'FAILED_PRECONDITION',
      message: expect.stringContaining('is not consistent with the checkpoint signed for pki.test/audit-log at size 5'),
    });
    await expect(asAudit.signAuditCheckpoint({ origin, treeSize: 13n, rootHash: tree.root(13), previousTreeSize: 3n, consistencyProof: tree.consistency(3, 13) })).rejects.toMatchObject({
      code: 'FAILED_PRECONDITION',
      message: expect.stringContaining('has tree size 5, not 3'),
    });
    const signed = await asAudit.signAuditCheckpoint({ origin, treeSize: 13n, rootHash: tree.root(13), previousTreeSize: 5n, consistencyProof: tree.consistency(5, 13) });
    expect(Buffer.from(signed.checkpoint).toString('utf8').split('\n')[1]).toBe('13');
    // The same size again (nothing new) is consistent with itself.
    await asAudit.signAuditCheckpoint({ origin, treeSize: 13n, rootHash: tree.root(13), previousTreeSize: 13n, consistencyProof: [] });
  });

  it('refuses a history rewritten after a checkpoint, and a log that shrinks', async () => {
    // Same first leaves but one changed below size 13: a real proof of the rewritten tree fails.
    const rewritten = new Tree('event').grow(13);
    const changed = hashLeaf(Buffer.from('a changed event'));
    rewritten.nodes.clear();
    const range = CompactRange.empty();
    for (let i = 0; i < 20; i++) {
      const leaf = i === 7 ? changed : hashLeaf(Buffer.from(`event ${i}`));
      rewritten.nodes.set(nodeKey({ level: 0, index: i }), leaf);
      range.append(leaf, (node, hash) => rewritten.nodes.set(nodeKey(node), hash));
    }
    await expect(asAudit.signAuditCheckpoint({ origin, treeSize: 20n, rootHash: rewritten.root(20), previousTreeSize: 13n, consistencyProof: rewritten.consistency(13, 20) })).rejects.toMatchObject({
      code: 'FAILED_PRECONDITION',
      message: expect.stringContaining('the history was rewritten or the proof is wrong'),
    });
    await expect(asAudit.signAuditCheckpoint({ origin, treeSize: 12n, rootHash: tree.root(12), previousTreeSize: 13n })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('exceeds tree_size') });
    // Another log (origin) starts on its own.
    const other = new Tree('other').grow(2);
    await asAudit.signAuditCheckpoint({ origin: 'pki.test/another-log', treeSize: 2n, rootHash: other.root(2), previousTreeSize: 0n });
  });

  it('refuses malformed requests and callers other than audit', async () => {
    const good = { origin, treeSize: 13n, rootHash: tree.root(13), previousTreeSize: 13n };
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ rootHash: new Uint8Array(31) }, /root_hash must be 32 bytes, got 31/],
      [{ origin: 'two\nlines' }, /must be one line/],
      [{ origin: '' }, /origin/],
      [{ treeSize: 0n, previousTreeSize: 0n }, /tree_size must be at least 1/],
      [{ consistencyProof: [new Uint8Array(5)] }, /consistency_proof\[0\] must be 32 bytes/],
      [{ producerHeads: [{ producer: 'Ra Service', sequence: 1n }] }, /producer 'Ra Service' must be a lower-case producer name/],
      [{ producerHeads: [{ producer: 'ra', sequence: 1n }, { producer: 'ra', sequence: 2n }] }, /producer ra is listed twice/],
      [{ producerHeads: [{ producer: 'ra', sequence: 0n }] }, /sequence must be at least 1/],
    ];
    for (const [change, message] of cases) {
      await expect(asAudit.signAuditCheckpoint({ ...good, ...change })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(message) });
    }
    await expect(asOcsp.signAuditCheckpoint(good)).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
  });
});

describe('issuance fails closed when the audit log falls behind', () => {
  const subject = [{ type: 'C', value: 'TW' }, { type: 'CN', value: 'Test Citizen' }, { type: 'serialNumber', value: '1234567890123456' }];
  const spki = () => generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' });
  const lastSeq = async () => BigInt((await db.query(`SELECT max(seq) AS seq FROM outbox WHERE producer = 'ca-signer'`)).rows[0].seq);
  const issuances = async () => Number((await db.query('SELECT count(*) FROM issuances')).rows[0].count);
  let size = 13;
  const confirmUpTo = async (sequence: bigint) => {
    const { rows } = await db.query(`SELECT tree_size::int AS size FROM audit_log_heads WHERE origin = $1`, [origin]);
    const previous = rows[0].size as number;
    const tree = new Tree('event').grow(Math.max(previous, size) + 3);
    size = tree.range.size;
    await asAudit.signAuditCheckpoint({ origin, treeSize: BigInt(size), rootHash: tree.root(size), previousTreeSize: BigInt(previous), consistencyProof: tree.consistency(previous, size), producerHeads: [{ producer: 'ca-signer', sequence }] });
  };

  const gateMetrics = async () => {
    const text = await (await fetch(`${fixture.signer.opsUrl}/metrics`)).text();
    // Each series carries the service's default label: audit_gate_open{service="ca-signer"} 1
    const value = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1]);
    return { open: value('audit_gate_open'), ageSeconds: value('audit_unconfirmed_age_seconds') };
  };

  it('refuses new issuance with a clear error while its audit events stay unconfirmed past the bound, then resumes', async () => {
    await confirmUpTo(await lastSeq());
    await asRa.issueCertificate({ idempotencyKey: 'gate-1/SIGN', profile: 'citizen-signature', publicKeySpki: spki(), subject });
    // Its intent and result now wait for the audit log; say they have waited two minutes.
    await db.query(`UPDATE outbox SET created_at = created_at - interval '2 minutes' WHERE producer = 'ca-signer' AND seq > (SELECT sequence FROM audit_confirmations WHERE producer = 'ca-signer')`);
    const before = await issuances();
    await expect(asRa.issueCertificate({ idempotencyKey: 'gate-2/SIGN', profile: 'citizen-signature', publicKeySpki: spki(), subject })).rejects.toMatchObject({
      code: 'UNAVAILABLE',
      message: expect.stringMatching(/issue certificate: refused because the audit log has not confirmed this signer's audit events for 1[23]\d s \(bound 60 s\)/),
    });
    expect(await issuances()).toBe(before); // nothing reserved, nothing signed
    // Operators see it on /metrics: the gate closed, and for how long the oldest event has waited.
    const closed = await gateMetrics();
    expect(closed.open).toBe(0);
    expect(closed.ageSeconds).toBeGreaterThanOrEqual(120);
    // The audit log catches up: its next checkpoint confirms every event so far.
    await confirmUpTo(await lastSeq());
    const reopened = await gateMetrics();
    expect(reopened.open).toBe(1);
    expect(reopened.ageSeconds).toBeLessThan(60); // at most the checkpoint's own audit events, just written
    const resumed = await asRa.issueCertificate({ idempotencyKey: 'gate-2/SIGN', profile: 'citizen-signature', publicKeySpki: spki(), subject });
    expect(resumed.serialHex).toMatch(/^[0-9a-f]+$/);
  });

  it('refuses to issue when its audit event cannot be written: nothing reserved, nothing signed', async () => {
    await confirmUpTo(await lastSeq());
    const serials = async () => Number((await db.query('SELECT count(*) FROM serials')).rows[0].count);
    const [issuedBefore, serialsBefore] = [await issuances(), await serials()];
    // The outbox refuses writes (a full disk, a broken constraint, a revoked privilege).
    await db.query(`CREATE FUNCTION refuse_outbox() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'outbox unavailable'; END $$`);
    await db.query('CREATE TRIGGER refuse_outbox BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION refuse_outbox()');
    try {
      await expect(asRa.issueCertificate({ idempotencyKey: 'no-audit/SIGN', profile: 'citizen-signature', publicKeySpki: spki(), subject })).rejects.toMatchObject({ code: expect.stringMatching(/INTERNAL|UNAVAILABLE/) });
      expect(await issuances()).toBe(issuedBefore);
      expect(await serials()).toBe(serialsBefore);
    } finally {
      await db.query('DROP TRIGGER refuse_outbox ON outbox');
      await db.query('DROP FUNCTION refuse_outbox()');
    }
    // With the outbox back, the same request goes through.
    await asRa.issueCertificate({ idempotencyKey: 'no-audit/SIGN', profile: 'citizen-signature', publicKeySpki: spki(), subject });
  });
});
