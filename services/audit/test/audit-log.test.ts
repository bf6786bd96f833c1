import { execFileSync, spawnSync } from 'node:child_process';
import { sign, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { createTestDatabase } from '@pki/testing';
import { CompactRange, hashLeaf, verifyConsistency, verifyInclusion } from '@pki/merkle';
import { eventsV1 } from '@pki/proto';
import { startCaSignerFixture, type CaSignerFixture } from '../../ca-signer/test/service-fixture';
import { certificatesFromPem } from '../src/domain/checkpoint';
import { ExportVerifier, type CheckpointLine, type VerificationReport } from '../src/verify/verifier';
import type { RunningAudit } from '../src/app';
import { createRecordPool } from '../src/adapters/postgres/audit-log';
import { auditConfig, call, createEventTransport, createOfficerCa, quietLogger, registerAuditor, startTestAudit, TestProducer, waitFor, type ClientCredential } from './audit-fixture';

let dir: string;
let signer: CaSignerFixture;
let audit: RunningAudit;
let owner: pg.Pool;
let ra: TestProducer;
let card: TestProducer;
let auditor: ClientCredential;
let stranger: ClientCredential;
let closeTransport: () => Promise<void>;
let serverCa: string;
let databaseUrl: string;

const get = (path: string, credential: ClientCredential | null = auditor, method = 'GET', headers?: Record<string, string>) => call(audit.httpUrl, path, { credential: credential ?? undefined, serverCa, method, headers });
const treeSize = async () => (await audit.log.treeHead()).size;
const anchors = () => certificatesFromPem(readFileSync(join(signer.caDir, 'root.pem'), 'utf8') + readFileSync(join(signer.caDir, 'issuing.pem'), 'utf8'));

function verify(text: string, kept?: CheckpointLine): VerificationReport {
  const verifier = new ExportVerifier({ trustAnchors: anchors(), kept });
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  for (const line of lines) verifier.line(Buffer.from(line, 'utf8'));
  return verifier.finish();
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'audit-log-test-'));
  signer = await startCaSignerFixture();
  databaseUrl = await createTestDatabase('audit_log');
  const officers = createOfficerCa(join(dir, 'officers'));
  auditor = officers.issue('auditor-1');
  stranger = officers.issue('not-registered');
  serverCa = signer.identities.audit.caFile;
  const transport = await createEventTransport({ type: 'postgres', url: databaseUrl }, { logger: quietLogger });
  closeTransport = () => transport.close();
  ra = await TestProducer.create(databaseUrl, 'producer_ra', 'ra.audit', transport);
  card = await TestProducer.create(databaseUrl, 'producer_card', 'card-mgmt', transport);
  ra.relay.start();
  card.relay.start();
  audit = await startTestAudit(auditConfig({ databaseUrl, dir, signer, officerCaFile: officers.caFile, transport: { type: 'postgres', url: databaseUrl } }));
  owner = new pg.Pool({ connectionString: databaseUrl, options: '-c search_path=audit' });
  await registerAuditor(owner, 'auditor-1', auditor);
});
afterAll(async () => {
  await audit?.runtime.stop();
  await ra?.stop();
  await card?.stop();
  await closeTransport?.();
  await owner?.end();
  await signer?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('the audit log', () => {
  it('records every event of every producer once, in sequence, as the outboxes hold them', async () => {
    await Promise.all([ra.write(40, 4), card.write(25)]);
    await waitFor('60+ leaves', async () => (await treeSize()) >= 65);
    const { rows } = await owner.query<{ producer: string; seq: string; leaf: Buffer }>(`SELECT producer, seq, leaf FROM records WHERE kind = 'event' ORDER BY leaf_index`);
    for (const producer of [ra, card]) {
      const outbox = await producer.outbox();
      const recorded = rows.filter((r) => r.producer === producer.producer);
      expect(recorded.map((r) => Number(r.seq))).toEqual(outbox.map((o) => o.seq));
      // Each leaf carries the producer's event as it was written (same id, same payload hash).
      recorded.forEach((r, i) => {
        const leaf = JSON.parse(r.leaf.toString('utf8'));
        const event = fromBinary(eventsV1.AuditEventSchema, outbox[i]!.payload);
        expect(leaf).toMatchObject({ type: 'event', producer: producer.producer, seq: i + 1, eventId: event.eventId, action: 'certificate.suspend', outcome: 'SUCCESS' });
        expect(leaf.actor).toEqual({ type: 'OFFICER', id: 'officer-17', office: '63000000', role: 'registrar' });
      });
    }
  });

  it('cannot change or delete what it recorded: no privilege for its role, a trigger for everyone', async () => {
    const recordPool = createRecordPool({ url: databaseUrl, schema: 'audit', maxConnections: 1, statementTimeoutMs: 5000 });
    try {
      expect((await recordPool.query('SELECT current_user AS who')).rows[0].who).toBe('pki_audit_appender');
      await expect(recordPool.query('DELETE FROM records')).rejects.toThrow(/permission denied/);
    } finally {
      await recordPool.end();
    }
    const asAppender = await owner.connect();
    try {
      await asAppender.query('SET ROLE pki_audit_appender');
      await expect(asAppender.query(`UPDATE records SET action = 'x' WHERE leaf_index = 0`)).rejects.toThrow(/permission denied/);
      await expect(asAppender.query('DELETE FROM records WHERE leaf_index = 0')).rejects.toThrow(/permission denied/);
      await asAppender.query('RESET ROLE');
      await expect(asAppender.query(`UPDATE records SET action = 'x' WHERE leaf_index = 0`)).rejects.toThrow(/UPDATE on records refused: the audit record is append-only/);
      await expect(asAppender.query('DELETE FROM tree_nodes')).rejects.toThrow(/append-only/);
      await expect(asAppender.query('TRUNCATE checkpoints CASCADE')).rejects.toThrow(/append-only/);
    } finally {
      asAppender.release();
    }
  });

  it('has ca-signer sign checkpoints; serves inclusion and consistency proofs that verify against them', async () => {
    const first = (await audit.checkpointer.checkpoint({ force: false }))!;
    expect(first.treeSize).toBe(await treeSize());
    await ra.write(7);
    await waitFor('7 more leaves', async () => (await treeSize()) >= first.treeSize + 7);
    const second = (await audit.checkpointer.checkpoint({ force: false }))!;
    // Signed text names the producers' heads: the audit log's confirmations.
    const text = second.checkpoint.toString('utf8');
    expect(text).toContain('producer card-mgmt 25\n');
    expect(text).toContain('producer ra.audit 47\n');

    const proof = (await get(`/v1/events/3/inclusion-proof?treeSize=${second.treeSize}`)).json();
    const leaf = Buffer.from(proof.leafHash, 'base64');
    expect(verifyInclusion(leaf, 3, second.treeSize, proof.proof.map((p: string) => Buffer.from(p, 'base64')), second.rootHash)).toBe(true);
    const consistency = (await get(`/v1/consistency-proof?from=${first.treeSize}&to=${second.treeSize}`)).json();
    expect(verifyConsistency(first.treeSize, second.treeSize, first.rootHash, second.rootHash, consistency.proof.map((p: string) => Buffer.from(p, 'base64')))).toBe(true);
    expect((await get('/v1/checkpoints/latest')).json().treeSize).toBe(second.treeSize);
  });

  it('answers auditors only, and bad input with a clear error', async () => {
    expect((await get('/v1/checkpoints/latest', null)).json()).toEqual({ error: 'UNAUTHENTICATED', message: expect.stringContaining('needs a client certificate') });
    const strangerAnswer = await get('/v1/checkpoints/latest', stranger);
    expect(strangerAnswer.status).toBe(401);
    expect(strangerAnswer.json().message).toContain('not registered to an active principal');
    expect((await get('/v1/events?limit=0')).status).toBe(400);
    expect((await get('/v1/events?actorType=ROBOT')).status).toBe(400);
    expect((await get('/v1/events?color=blue')).status).toBe(400);
    expect((await get('/v1/events/999999/inclusion-proof')).status).toBe(404);
    expect((await get('/v1/export?to=3')).json()).toMatchObject({ error: 'INVALID_ARGUMENT', message: expect.stringContaining("'to' must be the tree size of a signed checkpoint") });
    const post = await get('/v1/checkpoints', auditor, 'POST');
    expect(post.status).toBe(400);
    expect(post.json().message).toContain('idempotency-key');
  });

  it('records a sequence gap as a break leaf, with an alert event and a metric', async () => {
    const bus = await createEventTransport({ type: 'postgres', url: databaseUrl }, { logger: quietLogger });
    const before = await treeSize();
    const body = (action: string) => Buffer.from(toBinary(eventsV1.AuditEventSchema, create(eventsV1.AuditEventSchema, { eventId: action, action, outcome: eventsV1.AuditOutcome.SUCCESS, actor: { type: eventsV1.AuditActorType.SERVICE, id: 'spiffe://pki.internal/rogue' }, occurredAt: timestampFromDate(new Date()) })));
    const at = { topic: 'pki.audit.v1', key: 'rogue', headers: {}, createdAt: new Date() };
    await bus.publisher.publish([
      { ...at, producer: 'rogue', seq: 1, payload: body('thing.one') },
      { ...at, producer: 'rogue', seq: 3, payload: body('thing.three') },
    ]);
    await bus.close();
    await waitFor('the rogue producer recorded', async () => (await treeSize()) >= before + 3);
    const { rows } = await owner.query<{ leaf: Buffer }>(`SELECT leaf FROM records WHERE producer = 'rogue' ORDER BY leaf_index`);
    expect(rows.map((r) => JSON.parse(r.leaf.toString('utf8'))).map((l) => (l.type === 'break' ? `${l.kind} ${l.expectedSeq}-${l.receivedSeq}` : `event ${l.seq}`))).toEqual(['event 1', 'sequence-gap 2-3', 'event 3']);
    // (Conflicting redeliveries and late events: ingest.test.ts; the bus itself keeps (producer, seq) unique.)
    const alerts = await owner.query<{ payload: Buffer }>(`SELECT payload FROM outbox WHERE producer = 'audit' ORDER BY seq`);
    const breaks = alerts.rows.map((r) => fromBinary(eventsV1.AuditEventSchema, r.payload)).filter((e) => e.action === 'audit-log.break');
    expect(breaks.map((e) => [e.reason, e.attributes.expectedSeq, e.attributes.receivedSeq])).toEqual([['sequence-gap', '2', '3']]);
    const metrics = await (await fetch(`${audit.opsUrl}/metrics`)).text();
    expect(metrics).toMatch(/audit_breaks_total\{[^}]*kind="sequence-gap"[^}]*\} 1\n/);
    expect(metrics).toMatch(/audit_events_recorded_total\{[^}]*producer="rogue"[^}]*\} 2\n/);
    expect(metrics).toMatch(/audit_tree_size\{[^}]*\} \d+\n/);
    expect(metrics).toMatch(/audit_checkpoint_age_seconds/);
  });

  it('queries by producer, actor, action and object', async () => {
    const byObject = (await get(`/v1/events?objectType=certificate&objectId=${(5).toString(16).padStart(32, '0')}`)).json().records;
    expect(byObject.map((r: { leaf: string }) => JSON.parse(r.leaf).producer).sort()).toEqual(['card-mgmt', 'ra.audit', 'ra.audit']);
    const byProducer = (await get('/v1/events?producer=card-mgmt&limit=10')).json();
    expect(byProducer.records).toHaveLength(10);
    expect(byProducer.nextAfterIndex).toBe(byProducer.records[9].index);
    expect((await get('/v1/events?actorType=OFFICER&actorId=officer-17&action=certificate.suspend&limit=1')).json().records).toHaveLength(1);
    // By occurrence time: nothing happened tomorrow, everything since yesterday.
    const day = 86_400_000;
    expect((await get(`/v1/events?from=${new Date(Date.now() + day).toISOString()}`)).json().records).toHaveLength(0);
    expect((await get(`/v1/events?from=${new Date(Date.now() - day).toISOString()}&producer=card-mgmt&limit=1000`)).json().records).toHaveLength(25);
    expect((await get('/v1/events?from=yesterday')).status).toBe(400);
  });

  it('signs a checkpoint on demand, once per idempotency key', async () => {
    const a = await get('/v1/checkpoints', auditor, 'POST', { 'idempotency-key': 'audit-2026-q4' });
    expect(a.status).toBe(201);
    const again = await get('/v1/checkpoints', auditor, 'POST', { 'idempotency-key': 'audit-2026-q4' });
    expect(again.status).toBe(200);
    expect(again.json().id).toBe(a.json().id);
  });

  it('exports a range that the offline verifier accepts, incrementally from a kept checkpoint', async () => {
    const whole = await get('/v1/export');
    expect(whole.headers['content-type']).toContain('application/x-ndjson');
    const report = verify(whole.body);
    expect(report.failures).toEqual([]);
    expect(report.verified).toBe(true);
    expect(report.producerHeads).toMatchObject({ 'card-mgmt': 25, 'ra.audit': 47, rogue: 3 });
    expect(report.breaks).toEqual([expect.objectContaining({ kind: 'sequence-gap', producer: 'rogue' })]);
    // Published for anyone who keeps checkpoints: one outbox event per signed checkpoint.
    const published = await owner.query(`SELECT count(*)::int AS n FROM outbox WHERE producer = 'audit.checkpoints' AND topic = 'pki.audit-checkpoints.v1'`);
    expect(published.rows[0].n).toBe((await owner.query('SELECT count(*)::int AS n FROM checkpoints')).rows[0].n);
    const kept = report.finalCheckpoint!;

    await card.write(5);
    await waitFor('5 more leaves', async () => (await treeSize()) >= kept.treeSize + 5);
    const next = (await audit.checkpointer.checkpoint({ force: false }))!;
    const increment = await get(`/v1/export?from=${kept.treeSize}&to=${next.treeSize}`);
    const incremental = verify(increment.body, kept);
    expect(incremental.failures).toEqual([]);
    expect(incremental.leaves).toBe(next.treeSize - kept.treeSize);

    // An export that starts after the kept checkpoint needs a consistency proof from it.
    const oldest = (await get('/v1/checkpoints?limit=1000')).json().checkpoints.at(-1);
    expect(oldest.treeSize).toBeLessThan(kept.treeSize);
    const keptEarlier = { type: 'checkpoint' as const, treeSize: oldest.treeSize, checkpoint: oldest.checkpoint, signature: oldest.signature, signatureAlgorithm: oldest.signatureAlgorithm, signerCertificate: oldest.signerCertificate };
    expect(verify(increment.body, keptEarlier).failures.join('\n')).toMatch(/carries no consistency proof from it \(export with consistencyFrom=\d+\)/);
    const proven = await get(`/v1/export?from=${kept.treeSize}&to=${next.treeSize}&consistencyFrom=${oldest.treeSize}`);
    expect(verify(proven.body, keptEarlier).failures).toEqual([]);
  });
});

describe('the verifier detects tampering', () => {
  let exported: string[];
  let firstCheckpoint: CheckpointLine;
  beforeAll(async () => {
    exported = (await get('/v1/export')).body.trimEnd().split('\n');
    firstCheckpoint = JSON.parse(exported.find((l) => l.startsWith('{"type":"checkpoint"'))!);
  });
  const leafAt = (index: number) => exported.findIndex((l) => l.startsWith(`{"type":"event","index":${index},`));
  const failuresOf = (lines: string[], kept?: CheckpointLine) => {
    const report = verify(lines.join('\n'), kept);
    expect(report.verified).toBe(false);
    return report.failures.join('\n');
  };

  it('accepts the untouched export', () => {
    expect(verify(exported.join('\n')).failures).toEqual([]);
  });

  it('the verifier CLI (worker threads) says VERIFIED (breaks listed) or FAILED with its exit status, and keeps the last checkpoint', () => {
    const cli = join(__dirname, '../dist/verify-cli.js');
    if (!existsSync(cli)) throw new Error(`${cli} is missing: run 'make build' (make test builds first)`);
    const run = (lines: string[], ...extra: string[]) => {
      const file = join(dir, `export-${Math.random().toString(36).slice(2)}.jsonl`);
      writeFileSync(file, lines.join('\n') + '\n');
      return spawnSync(process.execPath, [cli, file, '--ca', join(signer.caDir, 'root.pem'), '--ca', join(signer.caDir, 'issuing.pem'), '--quiet', ...extra], { encoding: 'utf8' });
    };
    const keep = join(dir, 'kept-by-cli.json');
    const ok = run(exported, '--keep-to', keep);
    expect(ok.stdout).toMatch(/^VERIFIED: pki\.test\/audit leaves 0\.\.\d+/);
    // Intact, but the log records the rogue producer's gap: exit status 3, and the break is listed.
    expect(ok.stdout).toMatch(/the log records 1 break\(s\):\n\s+leaf \d+: sequence-gap rogue sequences 2\.\.2 never arrived/);
    expect(ok.status).toBe(3);
    expect(JSON.parse(readFileSync(keep, 'utf8')).type).toBe('checkpoint');
    const tampered = [...exported];
    tampered[leafAt(6)] = tampered[leafAt(6)]!.replace('"CERTIFICATE_HOLD"', '"KEY_COMPROMISE"');
    const bad = run(tampered);
    expect(bad.status).toBe(1);
    expect(bad.stdout).toMatch(/^FAILED:[\s\S]*failure: line \d+: the leaves do not hash to the root signed at tree size/);
    expect(run(exported, '--kept', join(dir, 'missing.json')).status).toBe(2);
  });

  it('a changed field', () => {
    const lines = [...exported];
    lines[leafAt(4)] = lines[leafAt(4)]!.replace('"officer-17"', '"officer-18"');
    expect(failuresOf(lines)).toMatch(/the leaves do not hash to the root signed at tree size \d+/);
  });

  it('a removed event', () => {
    const lines = exported.filter((_, i) => i !== leafAt(10));
    expect(failuresOf(lines)).toMatch(/leaf says index 11, its place is 10/);
  });

  it('a swapped pair', () => {
    const lines = [...exported];
    const [a, b] = [leafAt(20), leafAt(21)];
    [lines[a], lines[b]] = [lines[b]!, lines[a]!];
    expect(failuresOf(lines)).toMatch(/leaf says index 21, its place is 20/);
  });

  it('an inserted event (even with the indexes renumbered)', () => {
    const forged = exported[leafAt(2)]!.replace('"eventId":"', '"eventId":"0');
    const lines = [...exported.slice(0, leafAt(3)), forged, ...exported.slice(leafAt(3))];
    expect(failuresOf(lines)).toMatch(/leaf says index 2, its place is 3/);
    const renumbered = lines.map((l) => l.replace(/^\{"type":"event","index":(\d+),/, (_, n: string) => `{"type":"event","index":${Number(n) >= 3 ? Number(n) + 1 : n},`).replace(/^\{"type":"event","index":3,(.*)"eventId":"0/, '{"type":"event","index":3,$1"eventId":"0'));
    expect(failuresOf(renumbered)).toMatch(/sequence \d+ follows \d+|do not hash to the root/);
  });

  it('a truncated tail', () => {
    expect(failuresOf(exported.slice(0, -5))).toMatch(/truncated: the header announces leaves up to \d+, the export has \d+/);
  });

  it('a forged checkpoint', () => {
    const lines = [...exported];
    const at = lines.length - 2;
    const line = JSON.parse(lines[at]!) as CheckpointLine;
    const text = Buffer.from(line.checkpoint, 'base64').toString('utf8').replace(/^(.*\n\d+\n)(.)/, (_, head: string, c: string) => head + (c === 'A' ? 'B' : 'A'));
    lines[at] = JSON.stringify({ ...line, checkpoint: Buffer.from(text).toString('base64') });
    expect(failuresOf(lines)).toMatch(/forged checkpoint: checkpoint: the signature does not verify/);
  });

  it('a replayed checkpoint', () => {
    const lines = [...exported];
    lines[lines.length - 2] = JSON.stringify(firstCheckpoint);
    expect(failuresOf(lines)).toMatch(new RegExp(`checkpoint for tree size ${firstCheckpoint.treeSize} appears after \\d+ leaves \\(replayed or moved\\)`));
  });

  it('a checkpoint signed by a key the CA did not certify', () => {
    // Same text, same claimed signer, signed by a key of the operator's own making.
    const lines = [...exported];
    const line = JSON.parse(lines[lines.length - 2]!) as CheckpointLine;
    const key = join(dir, 'rogue.key');
    const cert = join(dir, 'rogue.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/C=TW/O=行政院/CN=Audit Checkpoint Signer', '-addext', 'extendedKeyUsage=1.3.6.1.5.5.7.3.36', '-utf8'], { stdio: 'ignore' });
    const signature = sign('sha256', Buffer.from(line.checkpoint, 'base64'), readFileSync(key));
    const der = new X509Certificate(readFileSync(cert)).raw;
    lines[lines.length - 2] = JSON.stringify({ ...line, signature: signature.toString('base64'), signerCertificate: der.toString('base64') });
    expect(failuresOf(lines)).toMatch(/forged checkpoint: checkpoint: the signer certificate is not issued by any of the given CA certificates/);
  });

  it('a checkpoint of another log', () => {
    const lines = [...exported];
    const header = JSON.parse(lines[0]!);
    lines[0] = JSON.stringify({ ...header, origin: 'pki.test/another-log' });
    expect(failuresOf(lines)).toMatch(/checkpoint of another log \('pki.test\/audit', the export is of 'pki.test\/another-log'\)/);
  });

  it('a changed field and a removed row in the database', async () => {
    const latest = (await get('/v1/checkpoints/latest')).json();
    const exportNow = async () => (await get(`/v1/export?to=${latest.treeSize}`)).body.trimEnd().split('\n');
    const asSuperuser = async (work: (c: pg.PoolClient) => Promise<void>) => {
      const c = await owner.connect();
      try {
        await c.query('BEGIN');
        await c.query('SET LOCAL session_replication_role = replica'); // what it takes to get past the triggers
        await work(c);
        await c.query('COMMIT');
      } finally {
        c.release();
      }
    };
    const original = (await owner.query<{ leaf: Buffer }>('SELECT leaf FROM records WHERE leaf_index = 5')).rows[0]!.leaf;
    await asSuperuser((c) => c.query('UPDATE records SET leaf = $1 WHERE leaf_index = 5', [Buffer.from(original.toString('utf8').replace('SUCCESS', 'FAILURE'))]).then(() => undefined));
    expect(failuresOf(await exportNow())).toMatch(/the leaves do not hash to the root signed at tree size/);
    await asSuperuser((c) => c.query('UPDATE records SET leaf = $1 WHERE leaf_index = 5', [original]).then(() => undefined));
    expect(verify((await exportNow()).join('\n')).failures).toEqual([]);

    const row = (await owner.query('SELECT * FROM records WHERE leaf_index = 7')).rows[0];
    const objects = (await owner.query('SELECT * FROM record_objects WHERE leaf_index = 7')).rows;
    await asSuperuser(async (c) => {
      await c.query('DELETE FROM record_objects WHERE leaf_index = 7');
      await c.query('DELETE FROM records WHERE leaf_index = 7');
    });
    expect(failuresOf(await exportNow())).toMatch(/leaf says index 8, its place is 7/);
    await asSuperuser(async (c) => {
      const columns = Object.keys(row);
      await c.query(`INSERT INTO records (${columns.join(', ')}) VALUES (${columns.map((_, i) => `$${i + 1}`).join(', ')})`, columns.map((k) => row[k]));
      for (const o of objects) await c.query('INSERT INTO record_objects VALUES ($1, $2, $3)', [o.object_type, o.object_id, o.leaf_index]);
    });
  });

  it('a history rewritten after a checkpoint the auditor kept (consistency fails)', async () => {
    // The auditor kept the first checkpoint. An operator with database access rewrites an event
    // before it, recomputes the whole tree, and exports from a later point with a fresh proof.
    const kept = firstCheckpoint;
    const client = await owner.connect();
    try {
      await client.query('BEGIN');
      await client.query('SET LOCAL session_replication_role = replica'); // triggers off (superuser)
      const { rows } = await client.query<{ leaf: Buffer }>('SELECT leaf FROM records WHERE leaf_index = 1');
      const rewritten = Buffer.from(rows[0]!.leaf.toString('utf8').replace('"officer-17"', '"officer-99"'));
      await client.query('UPDATE records SET leaf = $1, leaf_hash = $2 WHERE leaf_index = 1', [rewritten, hashLeaf(rewritten)]);
      // Rebuild every stored node and the head from the rewritten leaves.
      const all = await client.query<{ leaf_hash: Buffer }>('SELECT leaf_hash FROM records ORDER BY leaf_index');
      const range = CompactRange.empty();
      await client.query('DELETE FROM tree_nodes');
      for (const r of all.rows) {
        const nodes: Array<[number, number, Buffer]> = [];
        range.append(r.leaf_hash, (n, h) => nodes.push([n.level, n.index, h]));
        for (const [level, idx, hash] of nodes) await client.query('INSERT INTO tree_nodes VALUES ($1, $2, $3)', [level, idx, hash]);
      }
      await client.query('UPDATE log_state SET tree_size = $1, frontier = $2', [range.size, range.nodes]);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK');
      throw err;
    } finally {
      client.release();
    }
    // The log refuses to checkpoint a tree inconsistent with its own last checkpoint...
    await expect(audit.checkpointer.checkpoint({ force: true })).rejects.toThrow(/is not consistent with the checkpoint at \d+: the stored history changed/);
    // ...and an export of the rewritten log fails against the checkpoint the auditor kept.
    const latest = (await get('/v1/checkpoints/latest')).json();
    const rewrittenExport = (await get(`/v1/export?from=0&to=${latest.treeSize}`)).body.trimEnd().split('\n');
    expect(failuresOf(rewrittenExport, kept)).toMatch(/the tree at size \d+ is not the one you kept a checkpoint of: the history was rewritten|do not hash to the root/);
    // Even with the stored checkpoints deleted too, ca-signer will not sign the rewritten tree.
    const client2 = await owner.connect();
    try {
      await client2.query('BEGIN');
      await client2.query('SET LOCAL session_replication_role = replica');
      await client2.query('DELETE FROM checkpoint_requests');
      await client2.query('DELETE FROM checkpoints');
      await client2.query('COMMIT');
    } finally {
      client2.release();
    }
    await expect(audit.checkpointer.checkpoint({ force: true })).rejects.toMatchObject({ code: 'FAILED_PRECONDITION', message: expect.stringContaining('the history was rewritten or the proof is wrong') });
  });
});
