import { baseServiceConfig, eventTransportConfig, grpcServerConfig, secretFile, z } from '@pki/kit';

const identity = z.string().regex(/^(\*|spiffe:\/\/[a-z0-9.-]+\/[a-z0-9-]+)$/, "must be '*' or spiffe://<trust domain>/<service>");
const allowList = z.array(identity).min(1);

/** ca-signer's whole configuration, decoded strictly at start (see packages/kit/src/config.ts). */
export const caSignerConfigSchema = baseServiceConfig.extend({
  grpc: grpcServerConfig,
  hsm: z.strictObject({
    /** The PKCS#11 module (SoftHSM in dev and tests, the network HSM's module in production). */
    modulePath: z.string().min(1),
    tokenLabel: z.string().min(1),
    /** The user PIN is only ever read from this file, never from the config itself. */
    pinFile: secretFile,
    /**
     * PKCS#11 sessions, i.e. HSM operations in flight. More sessions than worker threads keeps a
     * signature queued behind each running one, so the workers never wait for the event loop
     * between two signatures (docs/benchmarks.md measures it).
     */
    sessionPoolSize: z.number().int().min(1).max(64).default(4),
    /**
     * Threads that run HSM operations (libuv's pool, UV_THREADPOOL_SIZE). Default: the CPUs this
     * process may use. More threads than CPUs only adds context switches: a software token is
     * CPU-bound, and a network HSM's latency is covered by more sessions, not more threads.
     */
    workerThreads: z.number().int().min(1).max(1024).optional(),
    /** How often a test signature checks the HSM while it is healthy (0 disables). */
    probeIntervalMs: z.number().int().min(0).default(10_000),
    /** A sign slower than this counts as an HSM failure and opens the circuit. */
    operationTimeoutMs: z.number().int().min(100).default(10_000),
    /** Re-initialisation of the module after a failure: exponential backoff between these. */
    recovery: z
      .strictObject({
        initialDelayMs: z.number().int().min(10).default(1_000),
        maxDelayMs: z.number().int().min(10).default(30_000),
      })
      .refine((r) => r.maxDelayMs >= r.initialDelayMs, { message: 'recovery.maxDelayMs must be at least recovery.initialDelayMs', path: ['maxDelayMs'] })
      .default({ initialDelayMs: 1_000, maxDelayMs: 30_000 }),
    /** SoftHSM only: its config file, exported as SOFTHSM2_CONF before the module loads. */
    softhsmConfigFile: z.string().min(1).optional(),
  }),
  /** Who may call each RPC (mTLS identities). Every RPC must be listed: there is no default. */
  allow: z.strictObject({
    IssueCertificate: allowList,
    GetIssuers: allowList,
    SignCrl: allowList,
    SignOcspResponses: allowList,
    SignLiveOcspResponses: allowList,
    SignAuditCheckpoint: allowList,
    ListIssuances: allowList,
    SignValidationReceipt: allowList,
    /** The streamed form of SignCrl (large CRLs); when not listed, the same callers as SignCrl. */
    SignCrlStream: allowList.optional(),
    /** The batched form of IssueCertificate (a card's pair in one call); when not listed, the same callers as IssueCertificate. */
    IssueCertificates: allowList.optional(),
  }).transform((allow) => ({ ...allow, SignCrlStream: allow.SignCrlStream ?? allow.SignCrl, IssueCertificates: allow.IssueCertificates ?? allow.IssueCertificate })),
  /**
   * Key ceremonies: with requireCustody (the default), every ceremony step that uses the HSM takes
   * the token PIN only from m-of-n custodian shares, never from a PIN file.
   */
  ceremony: z.strictObject({ requireCustody: z.boolean().default(true) }).default({ requireCustody: true }),
  /** URLs placed in issued certificates (CRL distribution point, AIA). */
  publication: z.strictObject({
    crlBaseUrl: z.url(),
    ocspUrl: z.url(),
    caIssuersUrl: z.url(),
    /**
     * CRL partitions per generation: a certificate's CRL DP names partition (serial mod N). Fixed
     * for the life of a generation: changing it moves certificates between partition URLs.
     */
    crlPartitions: z.number().int().min(1).max(4096).default(16),
  }),
  /**
   * Fail closed: issuance stops while this signer's own audit events have waited longer than
   * maxUnconfirmedSeconds for the audit log to confirm them (in a checkpoint it had signed). The
   * audit service's checkpoint interval must be well below the bound.
   */
  auditConfirmation: z
    .strictObject({
      required: z.boolean().default(true),
      maxUnconfirmedSeconds: z.number().int().min(1).max(86_400).default(300),
    })
    .default({ required: true, maxUnconfirmedSeconds: 300 }),
  events: z.strictObject({
    transport: eventTransportConfig,
    producer: z.string().min(1).default('ca-signer'),
    pollIntervalMs: z.number().int().min(10).default(500),
  }),
});

export type CaSignerConfig = z.output<typeof caSignerConfigSchema>;
