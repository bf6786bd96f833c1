import path from 'node:path';
import { ServiceRuntime, systemClock, type Clock, type Logger } from '@pki/kit';
import { createGrpcClient } from '@pki/grpc';
import { caSignerV1 } from '@pki/proto';
import { connectServiceDatabase, startOutboxRelay } from '@pki/outbox';
import { toPem } from '@pki/x509';
import type { RaConfig } from './config';
import { buildHttpApp } from './http/app';
import type { CaSigner } from './ports/ca-signer';

export interface RaDependencies {
  clock?: Clock;
  logger?: Logger;
  /** Replaces the gRPC client (unit tests only; integration tests use the real one). */
  caSigner?: CaSigner;
}

export interface RunningRa {
  runtime: ServiceRuntime;
  httpUrl: string;
  opsUrl: string;
}

/** Builds ra from a validated config and starts its listeners; main.ts only loads the config. */
export async function startRa(config: RaConfig, deps: RaDependencies = {}): Promise<RunningRa> {
  const runtime = new ServiceRuntime('ra', config, deps.logger);
  const { logger, lifecycle } = runtime;
  const clock = deps.clock ?? systemClock;
  const pool = await connectServiceDatabase(runtime, config.database, path.join(__dirname, '..', 'migrations'));

  let caSigner = deps.caSigner;
  if (!caSigner) {
    const client = createGrpcClient(caSignerV1.CaSignerService, { ...config.caSigner, tls: config.tls });
    lifecycle.onClose({ name: 'ca-signer client', stop: async () => client.close() });
    caSigner = client;
  }

  // The chain only changes with a key ceremony; fetch it once and again only after a failure.
  let chain: Promise<string[]> | undefined;
  const getChain = (): Promise<string[]> => {
    chain ??= caSigner.getIssuers({}).then(
      (r) => [...r.issuers.filter((i) => i.active).map((i) => toPem(i.certificate, 'CERTIFICATE')), ...[...r.chain].reverse().map((c) => toPem(c, 'CERTIFICATE'))],
      (err: unknown) => {
        chain = undefined;
        throw err;
      },
    );
    return chain;
  };

  await startOutboxRelay(runtime, pool, config.database, config.events);

  const http = buildHttpApp({ pool, caSigner, clock, producer: config.events.producer, logger, chain: getChain, requestDeadlineMs: config.caSigner.deadlineMs });
  await http.listen({ host: config.http.host, port: config.http.port });
  lifecycle.onStopAccepting({ name: 'http', stop: () => http.close() });
  const address = http.server.address();
  const httpUrl = typeof address === 'object' && address ? `http://${config.http.host}:${address.port}` : `http://${config.http.host}:${config.http.port}`;
  const opsUrl = await runtime.startOps();
  logger.info({ httpUrl, opsUrl }, 'ra started');
  return { runtime, httpUrl, opsUrl };
}
