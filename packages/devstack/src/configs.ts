import { serviceIdentity } from '@pki/internal-ca';
import { SERVICES, type ServiceName, devPorts } from './layout';

export interface TlsFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
}

export interface DevConfigInputs {
  ports: ReturnType<typeof devPorts>;
  /** Secret file holding the database URL (with its password). */
  databaseUrlFile: string;
  hsm: { modulePath: string; tokenLabel: string; pinFile: string; softhsmConfigFile: string };
  tls: Record<ServiceName, TlsFiles>;
}

/**
 * The config file of every service in the embedded deployment. Pure, so that a test can check
 * that each one is accepted by its service's schema (services/<name>/src/config.ts).
 */
export function buildDevConfigs(inputs: DevConfigInputs): Record<ServiceName, Record<string, unknown>> {
  const { ports } = inputs;
  const base = (service: ServiceName) => ({
    log: { level: 'info' },
    ops: { host: '127.0.0.1', port: ports.ops[service] },
    database: { urlFile: inputs.databaseUrlFile, schema: service.replace('-', '_') },
  });
  // Embedded mode: the outbox is delivered through PostgreSQL, no Kafka needed.
  const events = (service: ServiceName) => ({ transport: { type: 'postgres' }, producer: service });
  const raHttp = `http://127.0.0.1:${ports.raHttp}`;
  const configs: Record<ServiceName, Record<string, unknown>> = {
    'ca-signer': {
      ...base('ca-signer'),
      grpc: { host: '127.0.0.1', port: ports.caSignerGrpc, tls: inputs.tls['ca-signer'] },
      hsm: { ...inputs.hsm, sessionPoolSize: 2 },
      allow: {
        IssueCertificate: [serviceIdentity('ra')],
        GetIssuers: ['*'],
        SignCrl: [serviceIdentity('crl')],
        SignOcspResponses: [serviceIdentity('ocsp')],
        SignAuditCheckpoint: [serviceIdentity('audit')],
        ListIssuances: [serviceIdentity('ra')],
      },
      publication: { crlBaseUrl: `${raHttp}/crl`, ocspUrl: `${raHttp}/ocsp`, caIssuersUrl: `${raHttp}/ca` },
      events: events('ca-signer'),
    },
    ra: {
      ...base('ra'),
      http: { host: '127.0.0.1', port: ports.raHttp },
      tls: inputs.tls.ra,
      caSigner: { address: `127.0.0.1:${ports.caSignerGrpc}`, serverIdentity: serviceIdentity('ca-signer'), deadlineMs: 10_000 },
      events: events('ra'),
    },
    'card-mgmt': base('card-mgmt'),
    ocsp: base('ocsp'),
    crl: base('crl'),
    audit: base('audit'),
  };
  for (const s of SERVICES) if (!configs[s]) throw new Error(`no dev config for ${s}`);
  return configs;
}
