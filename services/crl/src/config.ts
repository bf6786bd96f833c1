import { baseServiceConfig, eventTransportConfig, grpcClientConfig, tlsIdentityConfig, z } from '@pki/kit';

const seconds = (min: number, fallback: number) => z.number().int().min(min).default(fallback);
const identity = z.string().regex(/^spiffe:\/\/[a-z0-9.-]+\/[a-z0-9/-]+$/, 'must be spiffe://<trust domain>/<name>');

/**
 * When CRLs are made and how long they are valid (seconds). Every CRL's nextUpdate lies beyond
 * the time its successor is due, so that a client never holds an expired CRL while the next one
 * is on its way (RFC 5280 §5.1.2.5); the schema refuses a schedule without that overlap.
 */
export const crlScheduleConfig = z
  .strictObject({
    /** Complete CRL of each generation: daily by default (domain.md). */
    fullIntervalSeconds: seconds(10, 86_400),
    fullValiditySeconds: seconds(20, 7 * 86_400),
    /** Delta CRLs: every few minutes, and soon after a status change (at most one per deltaAfterChangeSeconds). */
    deltaIntervalSeconds: seconds(5, 300),
    deltaValiditySeconds: seconds(10, 3_600),
    deltaAfterChangeSeconds: seconds(1, 10),
    /** Partition CRLs: on a schedule, and soon after a change in the partition. */
    partitionIntervalSeconds: seconds(10, 86_400),
    partitionValiditySeconds: seconds(20, 7 * 86_400),
    partitionAfterChangeSeconds: seconds(1, 10),
    /**
     * How long a revoked certificate stays on CRLs after it expires (ExpiredCertsOnCRL). RFC 5280
     * §3.3: an entry stays until it has appeared on one regularly scheduled CRL after expiry, so
     * this is at least the complete CRL's interval.
     */
    expiredGraceSeconds: seconds(0, 7 * 86_400),
    /** Published CRLs are kept (and listed) this long after they were superseded. */
    retentionSeconds: seconds(60, 30 * 86_400),
    /** The generator lease: one pod generates; another takes over this long after it stops renewing. */
    leaseSeconds: seconds(3, 30),
    /** How often the generator looks at its schedule (status events wake it earlier). */
    tickSeconds: seconds(1, 5),
    /** How often the CA generations (and the roots' ARLs) are read from ca-signer. */
    issuerRefreshSeconds: seconds(5, 300),
    /** Deadline of one SignCrlStream call: a complete CRL of millions of entries streams for a while. */
    signTimeoutSeconds: seconds(5, 600),
  })
  .superRefine((s, ctx) => {
    const overlap = (validity: keyof typeof s, interval: keyof typeof s) => {
      if (s[validity] <= s[interval]) ctx.addIssue({ code: 'custom', path: [validity], message: `must exceed ${interval}: a CRL must stay valid until its successor is out` });
    };
    overlap('fullValiditySeconds', 'fullIntervalSeconds');
    overlap('deltaValiditySeconds', 'deltaIntervalSeconds');
    overlap('partitionValiditySeconds', 'partitionIntervalSeconds');
    if (s.expiredGraceSeconds > 0 && s.expiredGraceSeconds < s.fullIntervalSeconds) {
      ctx.addIssue({ code: 'custom', path: ['expiredGraceSeconds'], message: 'must be 0 or at least fullIntervalSeconds (RFC 5280 §3.3)' });
    }
  });

/** crl's whole configuration, decoded strictly at start (see packages/kit/src/config.ts). */
export const crlConfigSchema = baseServiceConfig.extend({
  /** Publication: CRLs and CA certificates over plain HTTP (RFC 5280 §4.2.1.13: no TLS for CRL fetching). */
  http: z.strictObject({
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65535),
    /** The path of ca-signer's publication.crlBaseUrl: CRLs are served under it. */
    crlPath: z.string().regex(/^\/[A-Za-z0-9._~/-]*$/).default('/crl'),
    /** The path of ca-signer's publication.caIssuersUrl: CA certificates are served under it. */
    caPath: z.string().regex(/^\/[A-Za-z0-9._~/-]*$/).default('/ca'),
    /** Cache-Control max-age per kind of CRL, never beyond the CRL's nextUpdate. */
    maxAgeSeconds: z
      .strictObject({ full: seconds(0, 3_600), delta: seconds(0, 60), partition: seconds(0, 300), arl: seconds(0, 3_600) })
      .default({ full: 3_600, delta: 60, partition: 300, arl: 3_600 }),
  }),
  /**
   * The operators' API (on-demand regeneration): HTTPS with client certificates from `tls.caFile`
   * whose SPIFFE identity is in `allow`.
   */
  admin: z.strictObject({
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65535),
    tls: tlsIdentityConfig,
    allow: z.array(identity).min(1),
  }),
  /** This service's mTLS identity (spiffe://pki.internal/crl), for calling ca-signer. */
  tls: tlsIdentityConfig,
  caSigner: grpcClientConfig,
  events: z.strictObject({
    transport: eventTransportConfig,
    /** Outbox producer of this service's audit events. */
    producer: z.string().min(1).default('crl'),
    /** Consumer group of the status events. */
    group: z.string().min(1).default('crl'),
    pollIntervalMs: z.number().int().min(10).default(500),
  }),
  schedule: crlScheduleConfig.default(crlScheduleConfig.parse({})),
});

export type CrlConfig = z.output<typeof crlConfigSchema>;
export type CrlSchedule = z.output<typeof crlScheduleConfig>;
