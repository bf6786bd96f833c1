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
    sessionPoolSize: z.number().int().min(1).max(64).default(4),
    /** SoftHSM only: its config file, exported as SOFTHSM2_CONF before the module loads. */
    softhsmConfigFile: z.string().min(1).optional(),
  }),
  /** Who may call each RPC (mTLS identities). Every RPC must be listed: there is no default. */
  allow: z.strictObject({
    IssueCertificate: allowList,
    GetIssuers: allowList,
  }),
  /** URLs placed in issued certificates (CRL distribution point, AIA). */
  publication: z.strictObject({
    crlBaseUrl: z.url(),
    ocspUrl: z.url(),
    caIssuersUrl: z.url(),
  }),
  events: z.strictObject({
    transport: eventTransportConfig,
    producer: z.string().min(1).default('ca-signer'),
    pollIntervalMs: z.number().int().min(10).default(500),
  }),
});

export type CaSignerConfig = z.output<typeof caSignerConfigSchema>;
