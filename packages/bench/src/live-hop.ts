import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Pkcs11KeyManager } from '@pki/ca-signer';
import { createGrpcClient, GrpcServer, servedMethods, type ServiceHandlers, type TlsFiles } from '@pki/grpc';
import { createLogger, PkiError } from '@pki/kit';
import { caSignerV1 } from '@pki/proto';
import { CpuMeter } from './common';

/* eslint-disable no-console -- prints its one result for the parent benchmark */

/**
 * The live OCSP path between the responder and the HSM, measured without the responder's HTTP side:
 * a caller sends SignLiveOcspResponses batches (the responder's batch size and calls in flight, one
 * SingleResponse and a 32-octet nonce per request, over the same mTLS gRPC channel) either to the
 * real ca-signer or to a sign-only stand-in that answers each request with one PKCS#11 signature of
 * the same key through the same adapter (Pkcs11KeyManager, same sessions and threads) and does
 * nothing else: no ResponseData, no signature check, no audit. The stand-in is the least any signer
 * behind that hop can cost, so "PKCS#11 alone" -> "stand-in" -> "ca-signer" -> "the whole live
 * path" tells apart the cost of the hop, of ca-signer's own work and of the responder's.
 *
 * Run by ocsp-bench.ts in processes of their own; the argument is a JSON object (see Signer, Caller).
 * The stand-in is a measuring instrument of the benchmark, never a service: it answers nothing but
 * raw signatures.
 */
interface Signer {
  role: 'signer';
  modulePath: string;
  softhsmConfigFile: string;
  tokenLabel: string;
  pinFile: string;
  keyId: string;
  sessions: number;
  port: number;
  tls: TlsFiles;
  /** The caller's SPIFFE identity, the only one allowed. */
  caller: string;
}

interface Caller {
  role: 'caller';
  address: string;
  serverIdentity: string;
  tls: TlsFiles;
  seconds: number;
  batchSize: number;
  concurrentBatches: number;
  issuerKeyId: string;
  serialsHex: string[];
  /** CPU per answer is read for this process (the signer or the stand-in) and PostgreSQL. */
  signerPid: number;
  postmasterPid?: number;
}

/** The size of a live ResponseData with one SingleResponse and a nonce (what ca-signer signs). */
const RESPONSE_DATA_BYTES = 250;

async function serveSignOnly(settings: Signer): Promise<void> {
  process.env.SOFTHSM2_CONF = settings.softhsmConfigFile;
  const logger = createLogger({ service: 'sign-only-stand-in', level: 'warn' });
  const keyManager = await Pkcs11KeyManager.open({ modulePath: settings.modulePath, tokenLabel: settings.tokenLabel, pin: readFileSync(settings.pinFile, 'utf8').trim(), sessionPoolSize: settings.sessions });
  const refuse = () => Promise.reject(new PkiError('FAILED_PRECONDITION', 'the sign-only stand-in serves SignLiveOcspResponses alone'));
  const handlers = new Proxy({} as ServiceHandlers<typeof caSignerV1.CaSignerService>, {
    get: (_target, name) =>
      name === 'signLiveOcspResponses'
        ? async (request: caSignerV1.SignLiveOcspResponsesRequest) => ({
            responses: await Promise.all(
              request.requests.map(async (r) => {
                // A message of a ResponseData's size, different for every request (its nonce).
                const data = Buffer.alloc(RESPONSE_DATA_BYTES, 0x30);
                data.set(r.nonce.subarray(0, 34), 0);
                return (await keyManager.sign({ keyId: settings.keyId, algorithm: 'RSA-SHA256', data })).signature;
              }),
            ),
          })
        : refuse,
  });
  const allow = Object.fromEntries(servedMethods(caSignerV1.CaSignerService).map((m) => [m.name, [settings.caller]]));
  const server = new GrpcServer({ host: '127.0.0.1', port: settings.port, tls: settings.tls, logger }, [{ service: caSignerV1.CaSignerService, handlers, allow }]);
  const { port } = await server.listen();
  console.log(JSON.stringify({ port }));
  await new Promise<void>((resolve) => process.once('SIGTERM', () => resolve()));
  await server.stop(1_000);
  await keyManager.close();
}

async function call(settings: Caller): Promise<void> {
  const client = createGrpcClient(caSignerV1.CaSignerService, { address: settings.address, serverIdentity: settings.serverIdentity, tls: settings.tls, deadlineMs: 60_000 });
  const thisUpdate = new Date(Math.floor(Date.now() / 1000) * 1000);
  const nextUpdate = new Date(thisUpdate.getTime() + 3600_000);
  let next = 0;
  // What the responder sends for one live request (adapters/grpc/ca-signer-client.ts): one good SingleResponse and a nonce.
  const request = (): MessageInitShape<typeof caSignerV1.LiveOcspRequestSchema> => ({
    responses: [
      {
        issuerKeyId: settings.issuerKeyId,
        serialHex: settings.serialsHex[next++ % settings.serialsHex.length]!,
        certIdHash: caSignerV1.CertIdHashAlgorithm.SHA1,
        status: caSignerV1.CertificateStatusKind.GOOD,
        thisUpdate: timestampFromDate(thisUpdate),
        nextUpdate: timestampFromDate(nextUpdate),
      },
    ],
    nonce: Buffer.concat([Buffer.from([0x04, 0x20]), randomBytes(32)]),
    extendedRevoke: false,
  });
  const run = async (seconds: number) => {
    const until = Date.now() + seconds * 1000;
    let answers = 0;
    const meter = new CpuMeter({ signer: settings.signerPid }, settings.postmasterPid);
    meter.start();
    await Promise.all(
      Array.from({ length: settings.concurrentBatches }, async () => {
        while (Date.now() < until) {
          const { responses } = await client.signLiveOcspResponses({ requests: Array.from({ length: settings.batchSize }, request) });
          if (responses.length !== settings.batchSize) throw new Error(`${responses.length} answers for ${settings.batchSize} requests`);
          answers += responses.length;
        }
      }),
    );
    const { perOperationUs, elapsed } = meter.stop(answers);
    return { perSecond: answers / elapsed, cpuPerAnswerUs: perOperationUs };
  };
  try {
    await run(1); // warm up
    console.log(JSON.stringify(await run(settings.seconds)));
  } finally {
    client.close();
  }
}

const settings = JSON.parse(process.argv[2] ?? '{}') as Signer | Caller;
(settings.role === 'signer' ? serveSignOnly(settings) : call(settings)).catch((err: unknown) => {
  console.error(`live-hop (${settings.role}) failed: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});
