import type pg from 'pg';
import { fromBinary } from '@bufbuild/protobuf';
import { caSignerV1, eventsV1, Topics } from '@pki/proto';
import { createGrpcClient } from '@pki/grpc';
import { GrpcCertificateSigner } from '../src/adapters/grpc/ca-signer-client';
import type { CertificateSigner } from '../src/ports/certificate-signer';
import { startRaFixture, type ApiResponse, type RaFixture } from './ra-fixture';
import { cardNumber, person, register } from './lifecycle-helpers';

// Concurrent approvals, and concurrent recordings of issued cards, commit together (decision
// 0041): each one's statement in one transaction, their events appended once after them. These
// tests make batches happen on purpose (a first request held on a lock while the others queue
// behind it) and check that what a batch writes is what the requests alone would have written.
let f: RaFixture;

beforeAll(async () => {
  f = await startRaFixture();
}, 120_000);
afterAll(async () => f?.stop());

interface Submitted {
  id: string;
  subscriberId: string;
  cardNumber: string;
}

async function submitted(): Promise<Submitted> {
  const subscriberId = await register(f, person());
  const number = cardNumber();
  const res = await f.call('registrar-a', 'POST', '/v1/applications', { subscriberId, cardNumber: number, kind: 'NEW', signingCsr: f.csr(`${number}-s`), encryptionCsr: f.csr(`${number}-k`) });
  expect(res.status).toBe(201);
  return { id: res.body.id as string, subscriberId, cardNumber: number };
}

const approve = (id: string, key: string): Promise<ApiResponse> => f.call('registrar-a', 'POST', `/v1/applications/${id}/approval`, undefined, key);

interface Holder {
  /** Until a statement of ra waits for what the holder holds (the held request, stuck in its batch). */
  waitedFor(): Promise<void>;
  release(): Promise<void>;
}

/** Runs `hold` in a transaction of its own and keeps it open until released. */
async function holding(hold: (client: pg.PoolClient) => Promise<unknown>): Promise<Holder> {
  const client = await f.db.connect();
  const pid = (await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
  await client.query('BEGIN');
  await hold(client);
  return {
    async waitedFor() {
      await until(async () => {
        const { rows } = await f.db.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE $1::int = ANY (pg_blocking_pids(pid))`, [pid]);
        return rows[0].n > 0;
      }, 'a statement waiting for the held lock');
    },
    async release() {
      await client.query('ROLLBACK');
      client.release();
    },
  };
}

async function until(condition: () => Promise<boolean>, what: string): Promise<void> {
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) if (await condition()) return;
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * Which transaction appended each application's audit event `action`, told by the outbox row's
 * created_at: its default, now(), is the transaction's start, one value per transaction (the row's
 * xmin is not: the relay's update of published_at replaces it).
 */
async function auditTransactions(action: string, ids: readonly string[]): Promise<string[]> {
  const { rows } = await f.db.query(`SELECT to_char(created_at, 'YYYY-MM-DD HH24:MI:SS.US') AS tx, payload FROM outbox WHERE topic = $1 AND producer = 'ra.audit'`, [Topics.audit]);
  const byId = new Map<string, string>();
  for (const r of rows) {
    const event = fromBinary(eventsV1.AuditEventSchema, r.payload);
    const application = event.objects.find((o) => o.type === 'application')?.id;
    if (event.action === action && application) byId.set(application, r.tx);
  }
  return ids.map((id) => byId.get(id)!);
}

async function states(ids: readonly string[]): Promise<string[]> {
  const { rows } = await f.db.query(`SELECT id, state FROM applications WHERE id = ANY($1::uuid[])`, [ids]);
  const byId = new Map(rows.map((r) => [r.id as string, r.state as string]));
  return ids.map((id) => byId.get(id)!);
}

async function auditCount(action: string, applicationId: string): Promise<number> {
  return (await f.auditEvents()).filter((e) => e.action === action && e.objects.some((o) => o.type === 'application' && o.id === applicationId)).length;
}

/** The audit producer's sequence numbers have no gap and no repeat: a failed batch left nothing behind. */
async function expectOutboxWithoutGaps(): Promise<void> {
  const { rows } = await f.db.query(`SELECT producer, count(*)::int AS n, min(seq)::int AS first, max(seq)::int AS last, count(DISTINCT seq)::int AS distinct FROM outbox GROUP BY producer`);
  for (const r of rows) {
    expect({ producer: r.producer, n: r.n, distinct: r.distinct }).toEqual({ producer: r.producer, n: r.last - r.first + 1, distinct: r.n });
  }
}

function expectIssued(answer: ApiResponse): void {
  expect(answer.status).toBe(201);
  expect((answer.body.application as { state: string }).state).toBe('ISSUED');
  expect(((answer.body.card as { certificates: unknown[] }).certificates).length).toBe(2);
}

describe('approvals and recordings committed together', () => {
  it('approvals queued behind a held one commit in one transaction, each with its audit event once, and issue as they would alone', async () => {
    const held = await submitted();
    const queued = [await submitted(), await submitted(), await submitted(), await submitted()];
    const holder = await holding((c) => c.query('SELECT 1 FROM applications WHERE id = $1 FOR UPDATE', [held.id]));
    const first = approve(held.id, `approve-${held.id}`);
    await holder.waitedFor();
    const rest = queued.map((a) => approve(a.id, `approve-${a.id}`));
    // The rest reach the approvals' queue (a read each first) while the held one waits.
    await new Promise((r) => setTimeout(r, 500));
    expect(await states(queued.map((a) => a.id))).toEqual(queued.map(() => 'SUBMITTED'));
    await holder.release();

    for (const answer of await Promise.all([first, ...rest])) expectIssued(answer);
    const transactions = await auditTransactions('application.approve', [held.id, ...queued.map((a) => a.id)]);
    expect(new Set(transactions.slice(1)).size).toBe(1);
    expect(transactions[0]).not.toBe(transactions[1]);
    for (const a of [held, ...queued]) {
      expect(await auditCount('application.approve', a.id)).toBe(1);
      expect(await auditCount('application.issue', a.id)).toBe(1);
    }
    await expectOutboxWithoutGaps();
  });

  it('recordings queued behind a held one commit in one transaction: each card, its certificates and events whole', async () => {
    const held = await submitted();
    const queued = [await submitted(), await submitted(), await submitted()];
    // The held application's signature waits at the door until its row is locked (it is ISSUING
    // by then); the others' signatures are counted, so that the test knows they were recorded next.
    let opened!: () => void;
    const door = new Promise<void>((r) => (opened = r));
    let reached!: () => void;
    const atDoor = new Promise<void>((r) => (reached = r));
    const signed = new Set<string>();
    const client = createGrpcClient(caSignerV1.CaSignerService, { ...f.config.caSigner, tls: f.config.tls });
    const real = new GrpcCertificateSigner(client);
    const gated: CertificateSigner = {
      issuers: () => real.issuers(),
      signValidationReceipt: (receipt) => real.signValidationReceipt(receipt),
      listIssuances: (t, n) => real.listIssuances(t, n),
      issue: (request, deadline) => real.issue(request, deadline),
      issueMany: async (requests, deadline) => {
        const application = requests[0]!.idempotencyKey.split('/')[1]!;
        if (application === held.id) {
          reached();
          await door;
        }
        const answer = await real.issueMany(requests, deadline);
        signed.add(application);
        return answer;
      },
    };
    await f.restart({ signer: gated });
    try {
      const first = approve(held.id, `approve-${held.id}`);
      await atDoor;
      const holder = await holding((c) => c.query('SELECT 1 FROM applications WHERE id = $1 FOR UPDATE', [held.id]));
      opened();
      await holder.waitedFor(); // the held recording, stuck on the application's row
      const rest = queued.map((a) => approve(a.id, `approve-${a.id}`));
      await until(async () => queued.every((a) => signed.has(a.id)), 'the queued signatures');
      await new Promise((r) => setTimeout(r, 300)); // from the signature to the recordings' queue
      expect(await states([held.id, ...queued.map((a) => a.id)])).toEqual(['ISSUING', ...queued.map(() => 'ISSUING')]);
      await holder.release();

      const answers = await Promise.all([first, ...rest]);
      for (const answer of answers) expectIssued(answer);
      const transactions = await auditTransactions('application.issue', [held.id, ...queued.map((a) => a.id)]);
      expect(new Set(transactions.slice(1)).size).toBe(1);
      expect(transactions[0]).not.toBe(transactions[1]);
      // Each card whole: the card, two certificates with their history, two status events, the key's answer.
      for (const [i, a] of [held, ...queued].entries()) {
        const { rows } = await f.db.query(
          `SELECT (SELECT count(*)::int FROM cards WHERE card_number = $1) AS cards,
                  (SELECT count(*)::int FROM certificates WHERE application_id = $2) AS certificates,
                  (SELECT count(*)::int FROM certificate_status_history h JOIN certificates c USING (serial_hex) WHERE c.application_id = $2) AS history,
                  (SELECT count(*)::int FROM idempotency_keys WHERE key = $3 AND completed_at IS NOT NULL) AS completed`,
          [a.cardNumber, a.id, `approve-${a.id}`],
        );
        expect(rows[0]).toEqual({ cards: 1, certificates: 2, history: 2, completed: 1 });
        const serials = (answers[i]!.body.card as { certificates: Array<{ serialHex: string }> }).certificates.map((c) => c.serialHex);
        const events = (await f.statusEvents()).filter((e) => serials.includes(e.serialHex));
        expect(events.map((e) => e.status)).toEqual([eventsV1.CertificateStatus.VALID, eventsV1.CertificateStatus.VALID]);
        expect(await auditCount('application.issue', a.id)).toBe(1);
      }
      await expectOutboxWithoutGaps();
    } finally {
      client.close();
      await f.restart();
    }
  });

  it('a key held by another approval of the same batch fails the batch, which is written again item by item: one approval wins, the other is refused, nothing doubles', async () => {
    const held = await submitted();
    const [a, b, c] = [await submitted(), await submitted(), await submitted()];
    const holder = await holding((client) => client.query('SELECT 1 FROM applications WHERE id = $1 FOR UPDATE', [held.id]));
    const first = approve(held.id, `approve-${held.id}`);
    await holder.waitedFor();
    const shared = `approve-shared-${a.id}`;
    const [forA, forB, forC] = [approve(a.id, shared), approve(b.id, shared), approve(c.id, `approve-${c.id}`)];
    await new Promise((r) => setTimeout(r, 500));
    await holder.release();

    expectIssued(await first);
    expectIssued(await forC);
    const [answerA, answerB] = await Promise.all([forA, forB]);
    const won = answerA.status === 201 ? a : b;
    const lost = won === a ? b : a;
    const refused = won === a ? answerB : answerA;
    expectIssued(won === a ? answerA : answerB);
    expect(refused.status).toBe(409);
    expect(refused.body).toEqual({ error: 'CONFLICT', message: `approve application: idempotency key '${shared}' was already used for a different request` });
    expect(await states([won.id, lost.id, c.id])).toEqual(['ISSUED', 'SUBMITTED', 'ISSUED']);
    expect(await auditCount('application.approve', won.id)).toBe(1);
    expect(await auditCount('application.approve', lost.id)).toBe(0);
    expect(await auditCount('application.approve', c.id)).toBe(1);
    // Written again item by item: the winner and the third approval each in a transaction of its own.
    expect(new Set(await auditTransactions('application.approve', [won.id, c.id])).size).toBe(2);
    expect(Number((await f.db.query(`SELECT count(*) FROM certificates WHERE application_id = $1`, [lost.id])).rows[0].count)).toBe(0);
    await expectOutboxWithoutGaps();
    // The refused application is approved with a key of its own.
    expectIssued(await approve(lost.id, `approve-${lost.id}`));
  });
});
