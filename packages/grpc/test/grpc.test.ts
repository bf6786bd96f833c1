import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { caSignerV1, healthV1 } from '@pki/proto';
import { createLogger, PkiError } from '@pki/kit';
import { createServiceIdentities } from '@pki/testing';
import { GrpcServer, createGrpcClient, methodDefinition, type CallContext, type ServiceHandlers } from '../src';

const logger = createLogger({ service: 'grpc-test', level: 'silent' });
const { CaSignerService } = caSignerV1;

describe('gRPC server and client over mTLS', () => {
  let dir: string;
  let ids: Awaited<ReturnType<typeof createServiceIdentities<'ca-signer' | 'ra' | 'ocsp'>>>;
  let server: GrpcServer;
  let address: string;
  let lastContext: CallContext | undefined;
  let ready = true;

  const handlers: ServiceHandlers<typeof CaSignerService> = {
    issueCertificate: async (request, context) => {
      lastContext = context;
      if (request.profile === 'unknown') throw new PkiError('INVALID_ARGUMENT', "issue certificate: unknown profile 'unknown'", { details: { field: 'profile' } });
      if (request.profile === 'crash') throw new Error('database password is hunter2');
      return { serialHex: '7f01', certificate: new Uint8Array([1, 2, 3]) };
    },
    getIssuers: async () => ({ issuers: [{ keyId: 'ab', active: true }] }),
    // Not exercised here: the plumbing is the same for every unary RPC.
    signCrl: async () => {
      throw new PkiError('FAILED_PRECONDITION', 'sign CRL: not part of this test');
    },
    signOcspResponses: async () => {
      throw new PkiError('FAILED_PRECONDITION', 'sign OCSP responses: not part of this test');
    },
    signValidationReceipt: async () => {
      throw new PkiError('FAILED_PRECONDITION', 'sign validation receipt: not part of this test');
    },
    signLiveOcspResponses: async () => {
      throw new PkiError('FAILED_PRECONDITION', 'sign live OCSP responses: not part of this test');
    },
    signAuditCheckpoint: async () => {
      throw new PkiError('FAILED_PRECONDITION', 'sign audit checkpoint: not part of this test');
    },
    listIssuances: async () => {
      throw new PkiError('FAILED_PRECONDITION', 'list issuances: not part of this test');
    },
    issueCertificates: async () => {
      throw new PkiError('FAILED_PRECONDITION', 'issue certificates: not part of this test');
    },
    // A client stream: counts what arrives, refuses a message that is not a header first.
    signCrlStream: async (requests, context) => {
      lastContext = context;
      let octets = 0;
      let first = true;
      for await (const message of requests) {
        if (first && message.part.case !== 'header') throw new PkiError('INVALID_ARGUMENT', 'sign CRL: the first message must be the header');
        if (message.part.case === 'revokedCertificates') octets += message.part.value.length;
        first = false;
      }
      return { tbsLength: BigInt(octets) };
    },
  };
  const otherRpcs = { IssueCertificates: ['*'], SignCrl: ['*'], SignOcspResponses: ['*'], SignLiveOcspResponses: ['*'], SignAuditCheckpoint: ['*'], ListIssuances: ['*'], SignValidationReceipt: ['*'] };

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'grpc-test-'));
    ids = await createServiceIdentities(dir, ['ca-signer', 'ra', 'ocsp'] as const);
    server = new GrpcServer(
      { host: '127.0.0.1', port: 0, tls: ids['ca-signer'], logger, readiness: [{ name: 'hsm', check: async () => { if (!ready) throw new Error('down'); } }] },
      [{ service: CaSignerService, handlers, allow: { IssueCertificate: [ids.ra.identity], GetIssuers: ['*'], SignCrlStream: [ids.ra.identity], ...otherRpcs } }],
    );
    address = (await server.listen()).address;
  });
  afterAll(async () => {
    await server.stop(1000);
    rmSync(dir, { recursive: true, force: true });
  });

  const clientAs = (who: 'ra' | 'ocsp', serverIdentity = ids['ca-signer'].identity) =>
    createGrpcClient(CaSignerService, { address, serverIdentity, tls: ids[who], deadlineMs: 5000 });

  it('serves a caller on the allow-list and tells the handler who called', async () => {
    const client = clientAs('ra');
    const response = await client.issueCertificate({ idempotencyKey: 'k1', profile: 'citizen-signature' });
    expect(response.serialHex).toBe('7f01');
    expect(lastContext?.caller).toBe('spiffe://pki.internal/ra');
    client.close();
  });

  it('streams many messages to a client-streaming RPC with backpressure, and answers once', async () => {
    // A generous deadline: the point is the volume, not the speed (the machine may be loaded).
    const client = createGrpcClient(CaSignerService, { address, serverIdentity: ids['ca-signer'].identity, tls: ids.ra, deadlineMs: 120_000 });
    const chunk = new Uint8Array(1024 * 1024).fill(7);
    let produced = 0;
    async function* messages() {
      yield { part: { case: 'header' as const, value: { issuerKeyId: 'ab' } } };
      // 24 MiB in all: far more than one message may carry (8 MiB), and more than any buffer holds.
      for (let i = 0; i < 24; i++) {
        produced++;
        yield { part: { case: 'revokedCertificates' as const, value: chunk } };
      }
    }
    const response = await client.signCrlStream(messages());
    expect(response.tbsLength).toBe(24n * 1024n * 1024n);
    expect(produced).toBe(24);
    expect(lastContext?.caller).toBe('spiffe://pki.internal/ra');
    client.close();
  });

  it('ends a client stream with the handler\'s error as soon as it throws, and with PERMISSION_DENIED for a caller not allowed', async () => {
    const client = createGrpcClient(CaSignerService, { address, serverIdentity: ids['ca-signer'].identity, tls: ids.ra, deadlineMs: 120_000 });
    let produced = 0;
    async function* endless() {
      for (;;) {
        produced++;
        yield { part: { case: 'revokedCertificates' as const, value: new Uint8Array(100_000) } };
      }
    }
    await expect(client.signCrlStream(endless())).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('the first message must be the header') });
    // The producer was stopped instead of streaming forever.
    expect(produced).toBeLessThan(10_000);
    client.close();
    const other = clientAs('ocsp');
    await expect(other.signCrlStream([{ part: { case: 'header' as const, value: {} } }])).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    other.close();
  });

  it('refuses a caller that is not on the RPC allow-list with PERMISSION_DENIED, without running the handler', async () => {
    lastContext = undefined;
    const client = clientAs('ocsp');
    await expect(client.issueCertificate({ idempotencyKey: 'k2', profile: 'citizen-signature' })).rejects.toMatchObject({
      code: 'PERMISSION_DENIED',
      message: expect.stringContaining('caller spiffe://pki.internal/ocsp is not allowed'),
    });
    expect(lastContext).toBeUndefined();
    // the same caller may use an RPC whose allow-list is '*'
    await expect(client.getIssuers({})).resolves.toMatchObject({ issuers: [{ keyId: 'ab', active: true }] });
    client.close();
  });

  /**
   * What the server does with a TLS client that presents `credentials`, seen from a raw TLS
   * connection: whether the handshake completed on the client's side, and whether the server then
   * spoke (its HTTP/2 SETTINGS) or cut the connection, and with which alert.
   */
  const tlsProbe = (credentials: { cert?: Buffer; key?: Buffer }) =>
    new Promise<{ handshake: boolean; serverSpoke: boolean; error?: string }>((resolve) => {
      const [host, port] = address.split(':');
      let handshake = false;
      let error: string | undefined;
      const socket = tls.connect({ host, port: Number(port), ca: readFileSync(ids['ca-signer'].caFile), ...credentials, ALPNProtocols: ['h2'], servername: 'ca-signer', checkServerIdentity: () => undefined }, () => {
        handshake = true;
        socket.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
      });
      const timer = setTimeout(() => socket.destroy(), 10_000);
      socket.once('data', () => {
        clearTimeout(timer);
        socket.destroy();
        resolve({ handshake, serverSpoke: true });
      });
      socket.on('error', (err: NodeJS.ErrnoException) => (error = err.code ?? err.message));
      socket.once('close', () => {
        clearTimeout(timer);
        resolve({ handshake, serverSpoke: false, ...(error ? { error } : {}) });
      });
    });
  const certified = () => ({ cert: readFileSync(ids.ra.certFile), key: readFileSync(ids.ra.keyFile) });

  it('does not let a client without a certificate connect: the server, reachable, refuses the handshake', async () => {
    // The same server answers a client with a certificate...
    const good = clientAs('ra');
    await expect(good.getIssuers({})).resolves.toMatchObject({ issuers: [{ keyId: 'ab' }] });
    good.close();
    expect(await tlsProbe(certified())).toEqual({ handshake: true, serverSpoke: true });

    // ...and sends a client without one the TLS 1.3 alert "certificate required" (116).
    const anonymous = new grpc.Client(address, grpc.credentials.createSsl(readFileSync(ids['ca-signer'].caFile), null, null, { checkServerIdentity: () => undefined }), { 'grpc.ssl_target_name_override': 'ca-signer' });
    const def = methodDefinition(CaSignerService, CaSignerService.method.getIssuers);
    const err = await new Promise<grpc.ServiceError>((resolve) =>
      anonymous.makeUnaryRequest(def.path, def.requestSerialize, def.responseDeserialize, {}, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (e) => resolve(e!)),
    );
    anonymous.close();
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expect(err.details).toMatch(/alert certificate required.*SSL alert number 116/);
    expect(await tlsProbe({})).toEqual({ handshake: true, serverSpoke: false, error: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED' });
  });

  it('does not let a client with a certificate from another CA connect: the server, reachable, drops it at the handshake', async () => {
    const other = await createServiceIdentities(path.join(dir, 'other'), ['ra'] as const);
    // Same server, same client settings, only the certificate differs.
    const good = createGrpcClient(CaSignerService, { address, serverIdentity: ids['ca-signer'].identity, tls: ids.ra, deadlineMs: 5000 });
    await expect(good.getIssuers({})).resolves.toMatchObject({ issuers: [{ keyId: 'ab' }] });
    good.close();
    const client = createGrpcClient(CaSignerService, { address, serverIdentity: ids['ca-signer'].identity, tls: { ...other.ra, caFile: ids.ra.caFile }, deadlineMs: 5000 });
    await expect(client.getIssuers({})).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    client.close();
    // On the wire: with a good certificate the server speaks HTTP/2 right after the handshake;
    // with the other CA's it closes the connection without a byte (Node's TLS server checks the
    // chain once the TLS 1.3 handshake is done, and destroys the socket when it fails).
    expect(await tlsProbe(certified())).toEqual({ handshake: true, serverSpoke: true });
    const refused = await tlsProbe({ cert: readFileSync(other.ra.certFile), key: readFileSync(other.ra.keyFile) });
    expect(refused).toMatchObject({ handshake: true, serverSpoke: false });
  });

  it('refuses to talk to a server that does not carry the expected identity', async () => {
    const right = clientAs('ra', ids['ca-signer'].identity);
    await expect(right.getIssuers({})).resolves.toMatchObject({ issuers: [{ keyId: 'ab' }] });
    right.close();
    const client = clientAs('ra', 'spiffe://pki.internal/ocsp');
    await expect(client.getIssuers({})).rejects.toMatchObject({
      code: 'UNAVAILABLE',
      message: expect.stringContaining('server identity spiffe://pki.internal/ca-signer is not the expected spiffe://pki.internal/ocsp'),
    });
    client.close();
  });

  it('carries the error code, message and details across the wire, and hides unexpected errors', async () => {
    const client = clientAs('ra');
    const err = await client.issueCertificate({ idempotencyKey: 'k3', profile: 'unknown' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PkiError);
    expect(err).toMatchObject({ code: 'INVALID_ARGUMENT', details: { field: 'profile' } });
    expect((err as PkiError).message).toBe("CaSignerService.IssueCertificate: issue certificate: unknown profile 'unknown'");

    const crash = (await client.issueCertificate({ idempotencyKey: 'k4', profile: 'crash' }).catch((e: unknown) => e)) as PkiError;
    expect(crash.code).toBe('INTERNAL');
    expect(crash.message).not.toContain('hunter2');
    client.close();
  });

  it('propagates the deadline to the handler and refuses a call whose deadline has passed', async () => {
    const client = clientAs('ra');
    const deadline = new Date(Date.now() + 3000);
    await client.issueCertificate({ idempotencyKey: 'k5', profile: 'citizen-signature' }, { deadline });
    // grpc-js carries the deadline as a relative timeout, so allow for transit time
    expect(Math.abs(lastContext!.deadline!.getTime() - deadline.getTime())).toBeLessThan(500);
    await expect(client.getIssuers({}, { deadline: new Date(Date.now() - 1) })).rejects.toMatchObject({ code: 'DEADLINE_EXCEEDED' });
    client.close();
  });

  it('answers the standard health check from the readiness checks', async () => {
    const health = createGrpcClient(healthV1.Health, { address, serverIdentity: ids['ca-signer'].identity, tls: ids.ocsp, deadlineMs: 5000 });
    expect((await health.check({})).status).toBe(healthV1.HealthCheckResponse_ServingStatus.SERVING);
    ready = false;
    expect((await health.check({})).status).toBe(healthV1.HealthCheckResponse_ServingStatus.NOT_SERVING);
    ready = true;
    health.close();
  });

  it('refuses to register an RPC without an allow-list', () => {
    expect(() => new GrpcServer({ host: '127.0.0.1', port: 0, tls: ids['ca-signer'], logger }, [
      { service: CaSignerService, handlers, allow: { GetIssuers: ['*'], ...otherRpcs } },
    ])).toThrow("RPC 'IssueCertificate' has no allow-list");
  });
});
