import { databaseConfig, secretFile, z } from '@pki/kit';

const key = z.strictObject({ id: z.string().regex(/^[A-Za-z0-9._-]{1,32}$/, 'must be 1-32 letters, digits, . _ -'), keyFile: secretFile });

/**
 * The importer's configuration: where ra's, card-mgmt's and ca-signer's databases are, and ra's
 * personal-data keys (the same key files as ra's own config: legacy data is sealed under the keys
 * ra reads it with). Strict like every service config: an unknown key is refused by name.
 */
export const migrationConfigSchema = z.strictObject({
  ra: z.strictObject({
    database: databaseConfig,
    personalData: z
      .strictObject({
        encryptionKeys: z.array(key).min(1),
        activeEncryptionKey: z.string().min(1),
        lookupKeys: z.array(key).min(1),
        activeLookupKey: z.string().min(1),
        referenceKeyFile: secretFile,
      })
      .refine((p) => p.encryptionKeys.some((k) => k.id === p.activeEncryptionKey), { message: 'activeEncryptionKey must name one of encryptionKeys', path: ['activeEncryptionKey'] })
      .refine((p) => p.lookupKeys.some((k) => k.id === p.activeLookupKey), { message: 'activeLookupKey must name one of lookupKeys', path: ['activeLookupKey'] }),
    /** ra's outbox producers (its events.producer and events.auditProducer). */
    statusProducer: z.string().min(1).default('ra'),
    auditProducer: z.string().min(1).default('ra.audit'),
  }),
  cardMgmt: z.strictObject({ database: databaseConfig }),
  /** When set, the old generations must already be issuer generations in ca-signer (import-legacy at the ceremony). */
  caSigner: z.strictObject({ database: databaseConfig }).optional(),
  batchSize: z.number().int().min(100).max(50_000).default(5000),
  /** Connections applying each of ra's stages side by side; about the database host's cores. */
  lanes: z.number().int().min(1).max(8).default(2),
});

export type MigrationConfig = z.output<typeof migrationConfigSchema>;
