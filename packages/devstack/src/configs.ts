import path from 'node:path';
import { allowListsWithIdentities } from '@pki/grpc';
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
  ra: {
    /** CA of the officers' client certificates. */
    officerCaFile: string;
    personalData: { encryptionKeyFile: string; lookupKeyFile: string; referenceKeyFile: string };
  };
  /** card-mgmt's keys (32 random bytes each, in secret files): administrative secrets, the supplier's transport key, idempotency fingerprints. */
  cardMgmt: { adminSecretKeyFile: string; transportKeyFile: string; fingerprintKeyFile: string };
  /** Where the CA certificates (root.pem, issuing.pem) are written; default: `ca` beside the secrets folder (devLayout). */
  caDir?: string;
}

/** The responder's URL in the embedded deployment: in the AIA of every certificate and in endpoints.json. */
export function ocspUrl(ports: ReturnType<typeof devPorts>): string {
  return `http://127.0.0.1:${ports.ocspHttp}/`;
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
  // Certificates name the crl service's URLs: CRLs under /crl, CA certificates under /ca.
  const crlHttp = `http://127.0.0.1:${ports.crlHttp}`;
  const caDir = inputs.caDir ?? path.join(path.dirname(path.dirname(inputs.databaseUrlFile)), 'ca');
  const ocspHttp = ocspUrl(ports);
  const configs: Record<ServiceName, Record<string, unknown>> = {
    'ca-signer': {
      ...base('ca-signer'),
      grpc: { host: '127.0.0.1', port: ports.caSignerGrpc, tls: inputs.tls['ca-signer'] },
      hsm: { ...inputs.hsm, sessionPoolSize: 2 },
      allow: allowListsWithIdentities('ca-signer', serviceIdentity),
      // Certificates issued by `make up` name the responder in their AIA (RFC 5280 §4.2.2.1).
      publication: { crlBaseUrl: `${crlHttp}/crl`, ocspUrl: ocspHttp, caIssuersUrl: `${crlHttp}/ca` },
      events: events('ca-signer'),
    },
    ra: {
      ...base('ra'),
      // HTTPS with the service certificate (SAN localhost and 127.0.0.1); officers present client
      // certificates from the development officer CA.
      http: { host: '127.0.0.1', port: ports.raHttp, certFile: inputs.tls.ra.certFile, keyFile: inputs.tls.ra.keyFile, clientCaFiles: [inputs.ra.officerCaFile] },
      grpc: { host: '127.0.0.1', port: ports.raGrpc },
      allow: allowListsWithIdentities('ra', serviceIdentity),
      tls: inputs.tls.ra,
      caSigner: { address: `127.0.0.1:${ports.caSignerGrpc}`, serverIdentity: serviceIdentity('ca-signer'), deadlineMs: 10_000 },
      events: { ...events('ra'), auditProducer: 'ra.audit' },
      personalData: {
        encryptionKeys: [{ id: 'pd-1', keyFile: inputs.ra.personalData.encryptionKeyFile }],
        activeEncryptionKey: 'pd-1',
        lookupKeys: [{ id: 'lookup-1', keyFile: inputs.ra.personalData.lookupKeyFile }],
        activeLookupKey: 'lookup-1',
        referenceKeyFile: inputs.ra.personalData.referenceKeyFile,
      },
    },
    'card-mgmt': {
      ...base('card-mgmt'),
      // HTTPS with its service certificate; officers present the same client certificates as to ra.
      http: { host: '127.0.0.1', port: ports.cardMgmtHttp, certFile: inputs.tls['card-mgmt'].certFile, keyFile: inputs.tls['card-mgmt'].keyFile, clientCaFiles: [inputs.ra.officerCaFile] },
      tls: inputs.tls['card-mgmt'],
      ra: { address: `127.0.0.1:${ports.raGrpc}`, serverIdentity: serviceIdentity('ra'), deadlineMs: 30_000 },
      events: { transport: { type: 'postgres' }, auditProducer: 'card-mgmt.audit' },
      adminSecretKeyFile: inputs.cardMgmt.adminSecretKeyFile,
      transportKeyFile: inputs.cardMgmt.transportKeyFile,
      fingerprintKeyFile: inputs.cardMgmt.fingerprintKeyFile,
    },
    ocsp: {
      ...base('ocsp'),
      http: { host: '127.0.0.1', port: ports.ocspHttp, threads: 2 },
      // Agencies' systems present their client certificates here to have their use counted for
      // them (decision 0029); the server certificate is the responder's service certificate.
      https: { host: '127.0.0.1', port: ports.ocspHttps, certFile: inputs.tls.ocsp.certFile, keyFile: inputs.tls.ocsp.keyFile },
      tls: inputs.tls.ocsp,
      caSigner: { address: `127.0.0.1:${ports.caSignerGrpc}`, serverIdentity: serviceIdentity('ca-signer'), deadlineMs: 10_000 },
      events: { transport: { type: 'postgres' } },
      // A development machine: room for a few hundred thousand responses, not millions.
      memory: { maxCertificates: 1_000_000, maxResponseBytes: 256 * 1024 * 1024 },
    },
    crl: {
      ...base('crl'),
      http: { host: '127.0.0.1', port: ports.crlHttp },
      // Operators authenticate with a certificate of the internal CA naming spiffe://pki.internal/operator.
      admin: { host: '127.0.0.1', port: ports.crlAdmin, tls: inputs.tls.crl, allow: [serviceIdentity('operator')] },
      tls: inputs.tls.crl,
      caSigner: { address: `127.0.0.1:${ports.caSignerGrpc}`, serverIdentity: serviceIdentity('ca-signer'), deadlineMs: 10_000 },
      events: events('crl'),
      // A development pace: complete CRLs hourly, deltas every minute, partitions hourly and soon after a change.
      schedule: {
        fullIntervalSeconds: 3_600,
        fullValiditySeconds: 4 * 3_600,
        deltaIntervalSeconds: 60,
        deltaValiditySeconds: 600,
        partitionIntervalSeconds: 3_600,
        partitionValiditySeconds: 4 * 3_600,
        expiredGraceSeconds: 3_600,
      },
    },
    audit: {
      ...base('audit'),
      // Auditors present client certificates from the officer CA, as ra's officers do (decision 0018).
      http: { host: '127.0.0.1', port: ports.auditHttps, certFile: inputs.tls.audit.certFile, keyFile: inputs.tls.audit.keyFile, clientCaFiles: [inputs.ra.officerCaFile] },
      tls: inputs.tls.audit,
      caSigner: { address: `127.0.0.1:${ports.caSignerGrpc}`, serverIdentity: serviceIdentity('ca-signer'), deadlineMs: 10_000 },
      auditLog: { origin: 'dev.citizen-pki.local/audit' },
      // Well under ca-signer's auditConfirmation bound (300 s by default).
      checkpoints: { intervalMs: 10_000, trustAnchorFiles: [path.join(caDir, 'root.pem'), path.join(caDir, 'issuing.pem')] },
      events: events('audit'),
    },
  };
  for (const s of SERVICES) if (!configs[s]) throw new Error(`no dev config for ${s}`);
  return configs;
}
