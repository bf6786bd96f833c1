import { databaseConfig, eventTransportConfig, grpcClientConfig, logConfig, opsConfig, secretFile, tlsIdentityConfig, z } from '@pki/kit';

/** id-tw-gpki-certpolicy-class3Assurance, the policy of the citizen certificates. */
const CLASS3_POLICY = '2.16.886.101.0.3.3';

const identity = z.string().regex(/^(\*|spiffe:\/\/[a-z0-9.-]+\/[a-z0-9-]+)$/, "must be '*' or spiffe://<trust domain>/<service>");
const allowList = z.array(identity).min(1);
const key = z.strictObject({ id: z.string().regex(/^[A-Za-z0-9._-]{1,32}$/, 'must be 1-32 letters, digits, . _ -'), keyFile: secretFile });

/** ra's whole configuration, decoded strictly at start (see packages/kit/src/config.ts). */
export const raConfigSchema = z.strictObject({
  log: logConfig,
  ops: opsConfig,
  /** The REST API (HTTPS) for officers, the household-registration system, citizens and the public. */
  http: z.strictObject({
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65535),
    /** The server's certificate and key (PEM files). */
    certFile: z.string().min(1),
    keyFile: z.string().min(1),
    /** CAs whose client certificates may identify officers and systems (then registered in ra). */
    clientCaFiles: z.array(z.string().min(1)).min(1),
    bodyLimitBytes: z.number().int().min(1024).max(16 * 1024 * 1024).default(512 * 1024),
    rateLimits: z
      .strictObject({
        officerPerMinute: z.number().int().min(1).default(6000),
        householdPerMinute: z.number().int().min(1).default(6000),
        citizenPerMinute: z.number().int().min(1).default(30),
        publicPerMinute: z.number().int().min(1).default(300),
      })
      .default({ officerPerMinute: 6000, householdPerMinute: 6000, citizenPerMinute: 30, publicPerMinute: 300 }),
  }),
  /** The gRPC API for other services (card-mgmt; ocsp and crl to rebuild their state). */
  grpc: z.strictObject({ host: z.string().min(1).default('127.0.0.1'), port: z.number().int().min(0).max(65535) }),
  /** Who may call each RPC of pki.ra.v1.RaService (mTLS identities). Every RPC must be listed. */
  allow: z.strictObject({
    GetCertificate: allowList,
    ListCertificateStatuses: allowList,
    GetCard: allowList,
    // The counter operations card-mgmt calls for an officer (decision 0023); card-mgmt only.
    ResolveOfficer: allowList,
    IssueCardCertificates: allowList,
    ChangeCardStatus: allowList,
    VerifySubscriberCode: allowList,
    IssueMobileCertificate: allowList,
    ChangeMobileCertificateStatus: allowList,
  }),
  database: databaseConfig,
  /** This service's mTLS identity (spiffe://pki.internal/ra): calls to ca-signer and the gRPC server. */
  tls: tlsIdentityConfig,
  caSigner: grpcClientConfig,
  events: z.strictObject({
    transport: eventTransportConfig,
    /** Outbox producer of status events. */
    producer: z.string().min(1).default('ra'),
    /** Outbox producer of audit events: its own, so that its sequence has no gaps. */
    auditProducer: z.string().min(1).default('ra.audit'),
    pollIntervalMs: z.number().int().min(10).default(500),
  }),
  /**
   * Keys for personal data at rest (32 random bytes each, base64 or hex, in secret files). Rows
   * carry the id of the key that sealed them: add a key, make it active, and ra re-seals old rows
   * in the background.
   */
  personalData: z
    .strictObject({
      encryptionKeys: z.array(key).min(1),
      activeEncryptionKey: z.string().min(1),
      lookupKeys: z.array(key).min(1),
      activeLookupKey: z.string().min(1),
      /** Never rotated: person references in audit records stay stable for the life of the record. */
      referenceKeyFile: secretFile,
      resealBatch: z.number().int().min(1).max(10_000).default(500),
    })
    .refine((p) => p.encryptionKeys.some((k) => k.id === p.activeEncryptionKey), { message: 'activeEncryptionKey must name one of encryptionKeys', path: ['activeEncryptionKey'] })
    .refine((p) => p.lookupKeys.some((k) => k.id === p.activeLookupKey), { message: 'activeLookupKey must name one of lookupKeys', path: ['activeLookupKey'] }),
  subscriberCode: z
    .strictObject({
      minLength: z.number().int().min(6).default(8),
      maxLength: z.number().int().max(256).default(64),
      maxFailures: z.number().int().min(1).default(5),
      firstLockMinutes: z.number().int().min(1).default(15),
      maxLockMinutes: z.number().int().min(1).default(1440),
      /** scrypt N (a power of two); memory per hash is 1 KiB * N. */
      scryptCost: z.number().int().min(1024).default(32768),
    })
    .default({ minLength: 8, maxLength: 64, maxFailures: 5, firstLockMinutes: 15, maxLockMinutes: 1440, scryptCost: 32768 }),
  /** Dual control: which operations wait for a second officer, and for how long a request stays open. */
  dualControl: z
    .strictObject({
      operations: z.array(z.enum(['card.revoke', 'cards.bulk-revoke', 'application.issue'])).default(['card.revoke', 'cards.bulk-revoke', 'application.issue']),
      requestTtlMinutes: z.number().int().min(1).max(7 * 24 * 60).default(24 * 60),
    })
    .default({ operations: ['card.revoke', 'cards.bulk-revoke', 'application.issue'], requestTtlMinutes: 24 * 60 }),
  maxBulkCards: z.number().int().min(1).max(1000).default(1000),
  /** Agency application systems and their APIs (issue 13, decision 0026). */
  agency: z
    .strictObject({
      /** Requests a minute of a newly onboarded system, unless the officer sets its own. */
      defaultRateLimitPerMinute: z.number().int().min(1).default(600),
      identityConfirmation: z
        .strictObject({
          maxRecords: z.number().int().min(1).max(1000).default(1000),
          /** How far a request's requestTime may be from ra's clock; nonces are kept twice as long. */
          clockSkewSeconds: z.number().int().min(10).max(3600).default(300),
        })
        .default({ maxRecords: 1000, clockSkewSeconds: 300 }),
      /** Consumer group of the OCSP usage events (topic pki.usage.v1). */
      usageGroup: z.string().min(1).default('ra-usage'),
    })
    .default({ defaultRateLimitPerMinute: 600, identityConfirmation: { maxRecords: 1000, clockSkewSeconds: 300 }, usageGroup: 'ra-usage' }),
  /**
   * The certificate validation API: the end entity must assert one of these certificate policies
   * (RFC 5280 §4.2.1.4 OIDs); by default the programme's class 3 assurance policy.
   */
  validation: z
    .strictObject({ acceptedPolicies: z.array(z.string().regex(/^[0-2](\.(0|[1-9][0-9]*))+$/, 'a dotted OID')).min(1).default([CLASS3_POLICY]) })
    .default({ acceptedPolicies: [CLASS3_POLICY] }),
  reconciliation: z
    .strictObject({
      intervalSeconds: z.number().int().min(1).default(60),
      stuckAfterSeconds: z.number().int().min(1).default(60),
      settleSeconds: z.number().int().min(0).default(600),
      pageSize: z.number().int().min(1).max(1000).default(500),
    })
    .default({ intervalSeconds: 60, stuckAfterSeconds: 60, settleSeconds: 600, pageSize: 500 }),
});

export type RaConfig = z.output<typeof raConfigSchema>;
