import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { createGrpcClient } from '@pki/grpc';
import { createLogger, parseConfig } from '@pki/kit';
import { caSignerV1 } from '@pki/proto';
import { startCaSignerFixture, type CaSignerFixture } from '../../ca-signer/test/service-fixture';
import { raConfigSchema } from '../src/config';
import { startRa } from '../src/app';
import type { CaSigner } from '../src/ports/ca-signer';

let signer: CaSignerFixture;
beforeAll(async () => {
  signer = await startCaSignerFixture();
});
afterAll(async () => {
  await signer?.stop();
});

it('on shutdown, finishes the enrolment in flight, fails readiness first, then refuses new requests', async () => {
  const { caFile, certFile, keyFile } = signer.identities.ra;
  const tls = { caFile, certFile, keyFile };
  const config = parseConfig(raConfigSchema, {
    log: { level: 'silent' },
    ops: { host: '127.0.0.1', port: 0 },
    http: { host: '127.0.0.1', port: 0 },
    database: { url: signer.databaseUrl, schema: 'ra' },
    tls,
    caSigner: { address: signer.signer.grpcAddress, serverIdentity: signer.identities['ca-signer'].identity, deadlineMs: 20_000 },
    events: { transport: { type: 'postgres' }, pollIntervalMs: 50 },
  });
  // The real gRPC client, held at the door until the test has begun the shutdown.
  const real = createGrpcClient(caSignerV1.CaSignerService, { ...config.caSigner, tls });
  let reached!: () => void;
  const inFlight = new Promise<void>((r) => (reached = r));
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const caSigner: CaSigner = {
    getIssuers: (req, opts) => real.getIssuers(req, opts),
    issueCertificate: async (req, opts) => {
      reached();
      await gate;
      return real.issueCertificate(req, opts);
    },
  };
  const ra = await startRa(config, { caSigner, logger: createLogger({ service: 'ra', level: (process.env.TEST_LOG_LEVEL as 'silent') ?? 'silent' }) });

  execFileSync('openssl', ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(signer.dir, 'd.key'), '-utf8', '-subj', '/C=TW/CN=林小華/serialNumber=6543210987654321', '-out', join(signer.dir, 'd.csr')], { stdio: 'ignore' });
  const response = fetch(`${ra.httpUrl}/v1/enrolments`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ csr: readFileSync(join(signer.dir, 'd.csr'), 'utf8'), profile: 'citizen-signature' }),
  });
  await inFlight;
  const stopping = ra.runtime.stop();
  const readiness = await fetch(`${ra.opsUrl}/readyz`);
  expect(readiness.status).toBe(503);
  expect(await readiness.json()).toMatchObject({ ready: false, checks: { shutdown: 'draining' } });

  release();
  const answer = await response;
  expect(answer.status).toBe(201);
  const { serialHex } = (await answer.json()) as { serialHex: string };
  await stopping;

  await expect(fetch(`${ra.httpUrl}/v1/certificates/${serialHex}`)).rejects.toThrow();
  const db = new pg.Pool({ connectionString: signer.databaseUrl, options: '-c search_path=ra' });
  try {
    // recorded, with its status event in the outbox (delivered now or by the next relay to start)
    const { rows } = await db.query('SELECT c.status FROM certificates c JOIN outbox o ON o.key = c.serial_hex WHERE c.serial_hex = $1', [serialHex]);
    expect(rows).toHaveLength(1);
    expect(rows[0].status).toBe('VALID');
  } finally {
    await db.end();
    real.close();
  }
});
