import type { Migration } from '@pki/db';

/**
 * The outbox tables, created in each producing service's own schema by that service's migrations:
 *
 *   migrate(pool, { schema: 'ra', directory: '<ra>/migrations', migrations: [outboxMigration(2)] })
 *
 * The SQL ships as code rather than as a .sql file so that it needs no copy step into dist/ and
 * a service cannot pick up a different text than the one this package was tested with. The
 * version is the service's: it takes a free number in its own sequence. The text is frozen once
 * released (migrate refuses edited migrations); a later change to these tables comes as a new,
 * separately numbered migration.
 */
export const OUTBOX_MIGRATION_SQL = `
-- One row per producer: the last sequence number handed out. Its row lock, held by the appending
-- transaction until it ends, is what makes sequence numbers gapless and in commit order.
CREATE TABLE outbox_head (
  producer text   PRIMARY KEY,
  last_seq bigint NOT NULL CHECK (last_seq > 0)
);

CREATE TABLE outbox (
  producer     text        NOT NULL,
  seq          bigint      NOT NULL,
  topic        text        NOT NULL,
  key          text        NOT NULL,
  payload      bytea       NOT NULL,
  headers      jsonb       NOT NULL DEFAULT '{}'::jsonb,
  created_at   timestamptz NOT NULL DEFAULT now(),
  published_at timestamptz,
  PRIMARY KEY (producer, seq)
);

-- The relay's work queue: small however long the published history grows.
CREATE INDEX outbox_unpublished ON outbox (producer, seq) WHERE published_at IS NULL;
`;

/**
 * Where a consuming service records, per producer, the last sequence number it applied, in the
 * same transaction as the effect (see `acceptEventOnce`).
 */
export const INBOX_MIGRATION_SQL = `
CREATE TABLE inbox_position (
  consumer   text        NOT NULL,
  producer   text        NOT NULL,
  last_seq   bigint      NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, producer)
);
`;

/** The outbox tables as migration `version` of a producing service. */
export function outboxMigration(version: number): Migration {
  return { version, name: 'outbox', sql: OUTBOX_MIGRATION_SQL, source: `@pki/outbox outboxMigration(${version})` };
}

/** The consumer position table as migration `version` of a consuming service. */
export function inboxMigration(version: number): Migration {
  return { version, name: 'inbox', sql: INBOX_MIGRATION_SQL, source: `@pki/outbox inboxMigration(${version})` };
}
