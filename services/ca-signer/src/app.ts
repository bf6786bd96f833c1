import path from 'node:path';
import { PkiError, ServiceRuntime, systemClock, type Clock, type Logger } from '@pki/kit';
import { GrpcServer } from '@pki/grpc';
import { caSignerV1 } from '@pki/proto';
import { connectServiceDatabase, startOutboxRelay } from '@pki/outbox';
import type { CaSignerConfig } from './config';
import { Pkcs11KeyManager } from './adapters/pkcs11';
import type { KeyManager } from './ports/key-manager';
import { CertificateAuthority } from './domain/certificate-authority';
import { caSignerHandlers } from './grpc/ca-signer-service';

export const MIGRATIONS_DIRECTORY = path.join(__dirname, '..', 'migrations');

export interface CaSignerDependencies {
  clock?: Clock;
  logger?: Logger;
  /** Replaces the PKCS#11 key manager (unit tests only). */
  keyManager?: KeyManager;
}

export interface RunningCaSigner {
  runtime: ServiceRuntime;
  authority: CertificateAuthority;
  grpcAddress: string;
  opsUrl: string;
}

/** Opens the HSM named by the config; the only place in the project that loads a PKCS#11 module. */
export async function openKeyManager(config: CaSignerConfig, logger: Logger): Promise<KeyManager> {
  // SoftHSM reads its config location from the environment when the module initialises.
  if (config.hsm.softhsmConfigFile) process.env.SOFTHSM2_CONF = config.hsm.softhsmConfigFile;
  return Pkcs11KeyManager.open(
    { modulePath: config.hsm.modulePath, tokenLabel: config.hsm.tokenLabel, pin: config.hsm.pinFile.reveal(), sessionPoolSize: config.hsm.sessionPoolSize },
    { logger },
  );
}

/** Builds ca-signer from a validated config and starts serving; main.ts only loads the config. */
export async function startCaSigner(config: CaSignerConfig, deps: CaSignerDependencies = {}): Promise<RunningCaSigner> {
  const runtime = new ServiceRuntime('ca-signer', config, deps.logger);
  const { logger, lifecycle } = runtime;
  const pool = await connectServiceDatabase(runtime, config.database, MIGRATIONS_DIRECTORY);
  const keyManager = deps.keyManager ?? (await openKeyManager(config, logger));
  lifecycle.onClose({ name: 'hsm', stop: () => keyManager.close() });
  runtime.addReadinessCheck({
    name: 'hsm',
    check: async () => {
      const health = await keyManager.healthCheck();
      if (!health.healthy) throw new PkiError('UNAVAILABLE', `hsm: ${health.detail}`);
    },
  });

  await startOutboxRelay(runtime, pool, config.database, config.events);
  const authority = new CertificateAuthority({ pool, keyManager, clock: deps.clock ?? systemClock, logger, producer: config.events.producer, publication: config.publication });
  const issuers = await authority.loadIssuers();
  if (!issuers.some((i) => i.role === 'ISSUING' && i.active)) {
    logger.warn('no active issuing CA generation: IssueCertificate refuses until a key ceremony records one');
  }

  const server = new GrpcServer(
    { host: config.grpc.host, port: config.grpc.port, tls: config.grpc.tls, logger, registry: runtime.registry, readiness: runtime.readiness },
    [{ service: caSignerV1.CaSignerService, handlers: caSignerHandlers(authority), allow: config.allow }],
  );
  const { address } = await server.listen();
  lifecycle.onStopAccepting({ name: 'grpc', stop: () => server.stop() });
  const opsUrl = await runtime.startOps();
  logger.info({ grpcAddress: address, opsUrl, issuers: issuers.map((i) => ({ keyId: i.keyId, role: i.role, active: i.active })) }, 'ca-signer started');
  return { runtime, authority, grpcAddress: address, opsUrl };
}
