import { readFileSync } from 'node:fs';
import os from 'node:os';
import { baseServiceConfig, eventTransportConfig, grpcClientConfig, secretFile, tlsIdentityConfig, z } from '@pki/kit';

const certIdHash = z.enum(['SHA1', 'SHA256']);

/** A PEM file read when the config is loaded, so that a wrong path stops the service before it starts. */
const pemFile = (label: string) =>
  z
    .string()
    .min(1)
    .transform((file, ctx) => {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` });
        return z.NEVER;
      }
      if (!text.includes(`-----BEGIN ${label}-----`)) {
        ctx.addIssue({ code: 'custom', message: `${file} holds no PEM ${label}` });
        return z.NEVER;
      }
      return text;
    });

/**
 * ocsp's configuration: the RFC 6960 / RFC 5019 responder, its updater of pre-produced responses
 * and its status consumer. Defaults are the production choices; docs in README.md ("OCSP").
 */
export const ocspConfigSchema = baseServiceConfig.extend({
  http: z.strictObject({
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65535),
    /** Serving threads, each with its own listener on the port (SO_REUSEPORT). Default: the CPUs. */
    threads: z.number().int().min(1).max(64).default(os.availableParallelism()),
    /** Where requests are served: POST <prefix>, GET <prefix><base64 request> (RFC 5019 §5). */
    pathPrefix: z.string().regex(/^\/([A-Za-z0-9._~-]+\/)*$/, "must start and end with '/'").default('/'),
    /** Largest POST body, and (base64-decoded) GET request, accepted; larger is malformedRequest. */
    maxRequestBytes: z.number().int().min(256).max(65_536).default(4096),
    /** Slow senders: the whole request must arrive within this. */
    requestTimeoutMs: z.number().int().min(100).default(10_000),
    headersTimeoutMs: z.number().int().min(100).default(5_000),
    keepAliveTimeoutMs: z.number().int().min(100).default(30_000),
    /** Upper bound of Cache-Control max-age on pre-produced responses (it never exceeds nextUpdate). */
    maxAgeSeconds: z.number().int().min(0).default(86_400),
  }),
  /**
   * An optional HTTPS listener for agencies that identify themselves with a TLS client certificate
   * of ours (relying parties use plain HTTP, RFC 5019 §5). Client certificates are optional; one
   * issued by a CA generation this responder answers for identifies the caller for metering.
   * Served by the same threads, same paths and answers as `http`.
   */
  https: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port: z.number().int().min(0).max(65535),
      /** The server certificate chain (PEM), read at load time. */
      certFile: pemFile('CERTIFICATE'),
      /** Its private key (PEM), a secret. */
      keyFile: secretFile,
    })
    .optional(),
  /**
   * Usage metering (issue 13): requests counted per identified caller in the serving threads,
   * published per window as OcspUsageCounted on `topic` through this service's outbox.
   */
  metering: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** Length of a metering window. */
      windowSeconds: z.number().int().min(1).max(3_600).default(60),
      /** Distinct callers one serving thread tallies per window; requests of further callers are counted as overflow. */
      maxCallersPerWindow: z.number().int().min(16).max(1_000_000).default(10_000),
      topic: z.string().regex(/^[a-zA-Z0-9._-]{1,249}$/).default('pki.usage.v1'),
      /** The outbox producer every pod writes its windows as (one relay delivers them, decision 0005). */
      producer: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,99}$/).default('ocsp'),
      /** responder_instance prefix; default the host name (the pod name). A start time and random suffix are appended. */
      instanceName: z.string().regex(/^[A-Za-z0-9._-]{1,100}$/).default(os.hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 100) || 'ocsp'),
    })
    .default({ enabled: true, windowSeconds: 60, maxCallersPerWindow: 10_000, topic: 'pki.usage.v1', producer: 'ocsp', instanceName: os.hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 100) || 'ocsp' }),
  /** mTLS identity towards ca-signer, and where it is. */
  tls: tlsIdentityConfig,
  caSigner: grpcClientConfig,
  events: z.strictObject({
    transport: eventTransportConfig,
    /** The consumer group of every pod: status events are applied once, to the shared store. */
    group: z.string().min(1).default('ocsp'),
    /** Where ra publishes status changes (CertificateStatusChanged). */
    topic: z.string().regex(/^[a-zA-Z0-9._-]{1,249}$/).default('pki.certificate-status.v1'),
  }),
  responses: z
    .strictObject({
      /** CertID hashes pre-produced for every certificate (RFC 5019 §2.1.1 names SHA-1; some clients send SHA-256). */
      certIdHashes: z.array(certIdHash).min(1).default(['SHA1', 'SHA256']),
      /** nextUpdate - thisUpdate of pre-produced responses. */
      validitySeconds: z.number().int().min(60).max(10 * 86_400).default(86_400),
      /** A response is re-signed when this share of its validity has passed (plus jitter). */
      refreshAt: z.number().min(0.05).max(0.9).default(0.5),
      /** Spread of the refresh time, as a share of the validity, so that refreshes do not bunch. */
      jitter: z.number().min(0).max(0.3).default(0.1),
      /** Certificates per SignOcspResponses call (each gets one response per CertID hash). */
      batchSize: z.number().int().min(1).max(500).default(200),
      /** Ceiling on scheduled signing (refreshes, first signing); status changes are signed at once regardless. */
      maxSignaturesPerSecond: z.number().int().min(1).default(1_000),
      /** Batches this pod has signed at once (claimed with SKIP LOCKED, so pods and loops never sign a row twice). */
      concurrentBatches: z.number().int().min(1).max(16).default(2),
      /** Expired certificates keep their answers this long after notAfter, then get `unauthorized`. */
      expiredRetentionDays: z.number().int().min(0).default(365),
    })
    .refine((r) => r.refreshAt + r.jitter < 0.95, { message: 'refreshAt + jitter must stay below 0.95 of the validity', path: ['refreshAt'] })
    .default({ certIdHashes: ['SHA1', 'SHA256'], validitySeconds: 86_400, refreshAt: 0.5, jitter: 0.1, batchSize: 200, maxSignaturesPerSecond: 1_000, concurrentBatches: 2, expiredRetentionDays: 365 }),
  policy: z
    .strictObject({
      /**
       * Serials the CA never issued are never "good" (RFC 6960 §2.2): `unauthorized` (an unsigned
       * status, costs nothing), or `revoked` with reason certificateHold, revocationTime 1970-01-01
       * and the extended-revoke extension (a live signature each, bounded like nonces).
       */
      neverIssued: z.enum(['unauthorized', 'revoked']).default('unauthorized'),
      /** Requests with a nonce: `echo` signs a live answer echoing it; `ignore` serves the pre-produced one. */
      nonce: z.enum(['echo', 'ignore']).default('echo'),
      /** Shortest nonce accepted (RFC 8954 §2.1: 1 to 32 octets). */
      minNonceLength: z.number().int().min(1).max(32).default(1),
      /** Most CertIDs in one request; requests with several are answered live. */
      maxCertIdsPerRequest: z.number().int().min(1).max(20).default(8),
    })
    .default({ neverIssued: 'unauthorized', nonce: 'echo', minNonceLength: 1, maxCertIdsPerRequest: 8 }),
  live: z
    .strictObject({
      /** Live requests admitted at once (queued or signing); beyond it they get tryLater at once. */
      maxInFlight: z.number().int().min(1).default(512),
      /** Requests per SignLiveOcspResponses call. */
      batchSize: z.number().int().min(1).max(1000).default(64),
      /**
       * SignLiveOcspResponses calls in flight. Two keep the signer busy (one batch signs while the
       * next is sent) and let batches grow under load: each call has a fixed cost (gRPC, two audit
       * events), and at 64 requests in flight four calls of 16 cost more per answer than two of 32
       * (docs/benchmarks.md, issue #9).
       */
      concurrentBatches: z.number().int().min(1).max(64).default(2),
      /** A live request not answered within this gets tryLater. */
      timeoutMs: z.number().int().min(50).default(3_000),
    })
    .default({ maxInFlight: 512, batchSize: 64, concurrentBatches: 2, timeoutMs: 3_000 }),
  memory: z
    .strictObject({
      /** Certificates the in-memory index holds (the whole population, resident or not). */
      maxCertificates: z.number().int().min(1_000).default(10_000_000),
      /** Memory for resident responses; beyond it the least recently read ones are evicted and read from PostgreSQL. */
      maxResponseBytes: z.number().int().min(1 << 20).default(4 * 1024 ** 3),
    })
    .default({ maxCertificates: 10_000_000, maxResponseBytes: 4 * 1024 ** 3 }),
  /** How often the store is polled for responses other pods signed (a NOTIFY wakes it sooner). */
  changePollIntervalMs: z.number().int().min(10).default(1_000),
});

export type OcspConfig = z.output<typeof ocspConfigSchema>;
