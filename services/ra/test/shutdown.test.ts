import { createGrpcClient } from '@pki/grpc';
import { caSignerV1 } from '@pki/proto';
import { GrpcCertificateSigner } from '../src/adapters/grpc/ca-signer-client';
import type { CertificateSigner } from '../src/ports/certificate-signer';
import { startRaFixture, withCheckDigit, type RaFixture } from './ra-fixture';

let f: RaFixture;
afterAll(async () => {
  await f?.stop();
});

it('on shutdown, finishes the issuance in flight, fails readiness first, then refuses new requests', async () => {
  f = await startRaFixture();
  const registered = await f.call('registrar-a', 'POST', '/v1/subscribers', { nationalId: withCheckDigit('F12345678'), name: '林小華', birthDate: '1990-05-05', subscriberCode: 'lin12345', publicationConsent: false });
  const application = await f.call('registrar-a', 'POST', '/v1/applications', { subscriberId: registered.body.subscriberId, cardNumber: 'TP00000000009001', kind: 'NEW', signingCsr: f.csr('d-sign'), encryptionCsr: f.csr('d-keyx') });
  expect(application.status).toBe(201);

  // The real signer, held at the door until the test has begun the shutdown.
  const client = createGrpcClient(caSignerV1.CaSignerService, { ...f.config.caSigner, tls: f.config.tls });
  const real = new GrpcCertificateSigner(client);
  let reached!: () => void;
  const inFlight = new Promise<void>((r) => (reached = r));
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const gated: CertificateSigner = {
    issuers: () => real.issuers(),
    signValidationReceipt: (receipt) => real.signValidationReceipt(receipt),
    listIssuances: (t, s) => real.listIssuances(t, s),
    issue: async (request, deadline) => {
      reached();
      await gate;
      return real.issue(request, deadline);
    },
    issueMany: async (requests, deadline) => {
      reached();
      await gate;
      return real.issueMany(requests, deadline);
    },
  };
  await f.restart({ signer: gated });
  const { ra } = f;

  const response = f.call('registrar-a', 'POST', `/v1/applications/${application.body.id}/approval`);
  await inFlight;
  const stopping = ra.runtime.stop();
  const readiness = await fetch(`${ra.opsUrl}/readyz`);
  expect(readiness.status).toBe(503);
  expect(await readiness.json()).toMatchObject({ ready: false, checks: { shutdown: 'draining' } });

  release();
  const answer = await response;
  expect(answer.status).toBe(201);
  const card = answer.body.card as { certificates: Array<{ serialHex: string }> };
  expect(answer.headers.get('connection')).toBe('close');
  await stopping;

  await expect(f.call('registrar-a', 'GET', `/v1/cards/TP00000000009001`)).rejects.toThrow();
  // recorded, with its status events in the outbox (delivered now or by the next relay to start)
  const { rows } = await f.db.query('SELECT c.status FROM certificates c JOIN outbox o ON o.key = c.serial_hex WHERE c.card_number = $1', ['TP00000000009001']);
  expect(rows.map((r) => r.status)).toEqual(['VALID', 'VALID']);
  expect(card.certificates).toHaveLength(2);
  client.close();
  await f.restart(); // so that stop() finds a running service
});
