import { execFileSync } from 'node:child_process';
import { request as httpsRequest } from 'node:https';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Pool } from 'pg';
import { createLogger, parseConfig, systemClock, type Logger } from '@pki/kit';
import { createPool, migrate, withTransaction } from '@pki/db';
import { appendAuditEvent, AuditActorType, AuditOutcome } from '@pki/audit-events';
import { createEventTransport, outboxMigration, OutboxRelay, type EventTransport, type EventTransportConfig } from '@pki/outbox';
import { certificateSha256 } from '@pki/client-auth';
import { auditConfigSchema, type AuditConfig } from '../src/config';
import { startAudit, type RunningAudit } from '../src/app';
import type { CaSignerFixture } from '../../ca-signer/test/service-fixture';

export const quietLogger: Logger = createLogger({ service: 'audit-test', level: (process.env.TEST_LOG_LEVEL as 'silent' | undefined) ?? 'silent' });

/** An auditor's (or a stranger's) client certificate, made with OpenSSL from a test officer CA. */
export interface ClientCredential {
  certFile: string;
  keyFile: string;
}

export interface OfficerCa {
  caFile: string;
  issue(name: string): ClientCredential;
}

const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });

export function createOfficerCa(dir: string, name = 'Test officer CA'): OfficerCa {
  mkdirSync(dir, { recursive: true });
  const caKey = join(dir, 'ca.key');
  const caFile = join(dir, 'ca.pem');
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', caKey, '-out', caFile, '-days', '30', '-subj', `/O=Citizen PKI/CN=${name}`]);
  return {
    caFile,
    issue(cn: string) {
      const keyFile = join(dir, `${cn}.key`);
      const csr = join(dir, `${cn}.csr`);
      const certFile = join(dir, `${cn}.crt`);
      const ext = join(dir, `${cn}.ext`);
      writeFileSync(ext, 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
      openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', csr, '-subj', `/O=Citizen PKI/OU=Auditors/CN=${cn}`]);
      openssl(['x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKey, '-CAcreateserial', '-out', certFile, '-days', '10', '-extfile', ext]);
      return { certFile, keyFile };
    },
  };
}

/** Registers an auditor directly (as the CLI does). */
export async function registerAuditor(pool: Pool, id: string, credential: ClientCredential): Promise<void> {
  const pem = readFileSync(credential.certFile, 'utf8');
  const der = Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  await pool.query('INSERT INTO auditors (id, certificate_sha256, subject) VALUES ($1, $2, $3)', [id, certificateSha256(der), `CN=${id}`]);
}

export interface HttpAnswer {
  status: number;
  body: string;
  json: () => any; // eslint-disable-line @typescript-eslint/no-explicit-any
  headers: Record<string, string | string[] | undefined>;
}

/** One HTTPS request to the audit API, with or without a client certificate. */
export function call(baseUrl: string, path: string, options: { method?: string; credential?: ClientCredential; headers?: Record<string, string>; serverCa: string }): Promise<HttpAnswer> {
  const url = new URL(path, baseUrl);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      {
        method: options.method ?? 'GET',
        // A fresh connection per call: authentication belongs to the TLS connection.
        agent: false,
        headers: options.headers,
        ca: readFileSync(options.serverCa),
        // The service certificate names a SPIFFE identity, not this loopback address.
        checkServerIdentity: () => undefined,
        ...(options.credential ? { cert: readFileSync(options.credential.certFile), key: readFileSync(options.credential.keyFile) } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, body, json: () => JSON.parse(body), headers: res.headers });
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** A producing service: its own schema with an outbox, writing audit events as services do. */
export class TestProducer {
  readonly relay: OutboxRelay;
  constructor(
    readonly pool: Pool,
    readonly producer: string,
    transport: EventTransport,
  ) {
    this.relay = new OutboxRelay({ pool, publisher: transport.publisher, producers: [producer], batchSize: 500, pollIntervalMs: 100, retry: { initialDelayMs: 100, maxDelayMs: 1000 }, logger: quietLogger });
  }

  static async create(databaseUrl: string, schema: string, producer: string, transport: EventTransport): Promise<TestProducer> {
    const pool = createPool({ url: databaseUrl, schema, maxConnections: 6 });
    await migrate(pool, { schema, migrations: [outboxMigration(1)] });
    return new TestProducer(pool, producer, transport);
  }

  /** One transaction with `perTransaction` audit events, like an officer's action. */
  async write(n: number, perTransaction = 1): Promise<void> {
    for (let i = 0; i < n; i += perTransaction) {
      await withTransaction(this.pool, async (tx) => {
        for (let j = 0; j < perTransaction && i + j < n; j++) {
          await appendAuditEvent(tx, { producer: this.producer, clock: systemClock }, {
            action: 'certificate.suspend',
            outcome: AuditOutcome.SUCCESS,
            actor: { type: AuditActorType.OFFICER, id: 'officer-17', office: '63000000', role: 'registrar' },
            objects: [{ type: 'certificate', id: (i + j).toString(16).padStart(32, '0') }],
            reason: 'CERTIFICATE_HOLD',
            attributes: { channel: 'counter' },
          });
        }
      });
    }
  }

  async outbox(): Promise<Array<{ seq: number; payload: Buffer }>> {
    const { rows } = await this.pool.query<{ seq: string; payload: Buffer }>('SELECT seq, payload FROM outbox WHERE producer = $1 ORDER BY seq', [this.producer]);
    return rows.map((r) => ({ seq: Number(r.seq), payload: r.payload }));
  }

  async stop(): Promise<void> {
    await this.relay.stop();
    await this.pool.end();
  }
}

export function auditConfig(o: { databaseUrl: string; dir: string; signer: CaSignerFixture; officerCaFile: string; transport: EventTransportConfig; intervalMs?: number; sessionTimeoutMs?: number }): AuditConfig {
  const id = o.signer.identities.audit;
  return parseConfig(auditConfigSchema, {
    log: { level: 'silent' },
    ops: { host: '127.0.0.1', port: 0 },
    database: { url: o.databaseUrl, schema: 'audit' },
    http: { host: '127.0.0.1', port: 0, certFile: id.certFile, keyFile: id.keyFile, clientCaFiles: [o.officerCaFile] },
    tls: { caFile: id.caFile, certFile: id.certFile, keyFile: id.keyFile },
    caSigner: { address: o.signer.signer.grpcAddress, serverIdentity: o.signer.identities['ca-signer'].identity, deadlineMs: 30_000 },
    auditLog: { origin: 'pki.test/audit', maxBatch: 500 },
    checkpoints: { intervalMs: o.intervalMs ?? 3_600_000, trustAnchorFiles: [join(o.signer.caDir, 'root.pem'), join(o.signer.caDir, 'issuing.pem')] },
    events: {
      transport: o.transport.type === 'kafka' ? { type: 'kafka', brokers: o.transport.brokers, clientId: o.transport.clientId } : { type: 'postgres' },
      pollIntervalMs: 100,
      ...(o.sessionTimeoutMs ? { sessionTimeoutMs: o.sessionTimeoutMs } : {}),
    },
  });
}

export async function startTestAudit(config: AuditConfig): Promise<RunningAudit> {
  return startAudit(config, { logger: quietLogger });
}

export async function waitFor(what: string, condition: () => Promise<boolean>, timeoutMs = 90_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export { createEventTransport };
