-- (002 is the consumer position table, @pki/outbox inboxMigration(2).)

-- The CA generations, as ca-signer's GetIssuers reports them, with the CRL publication each one
-- recorded at creation: a certificate's partition is serial mod crl_partitions for the life of the
-- generation, so the number is copied once and refused if it ever comes back different.
CREATE TABLE issuers (
  key_id          text PRIMARY KEY,                     -- subjectKeyIdentifier, hex
  role            text NOT NULL CHECK (role IN ('ROOT', 'ISSUING')),
  certificate_der bytea NOT NULL,
  crl_partitions  integer CHECK (crl_partitions BETWEEN 1 AND 4096),
  crl_base_url    text,
  not_after       timestamptz NOT NULL,
  seen_at         timestamptz NOT NULL DEFAULT now(),
  CHECK ((role = 'ISSUING') = (crl_partitions IS NOT NULL))
);

-- Certificates that are or were suspended or revoked, from the status events. A row is listed on
-- CRLs while its status is not VALID (until it expires plus the grace period); a resumed
-- certificate stays as VALID until the next complete CRL no longer needs it for a delta.
CREATE TABLE revocations (
  issuer_key_id   text NOT NULL REFERENCES issuers (key_id),
  serial          bytea NOT NULL,                       -- DER INTEGER content octets
  partition       integer NOT NULL,
  status          text NOT NULL CHECK (status IN ('SUSPENDED', 'REVOKED', 'VALID')),
  revocation_time timestamptz,
  reason          smallint NOT NULL DEFAULT 0,
  invalidity_date timestamptz,
  not_after       timestamptz NOT NULL,
  entry_der       bytea,                                -- the RevokedCertificate DER, while listed
  change_seq      bigint NOT NULL,
  changed_at      timestamptz NOT NULL,
  -- CRL order is the serials' integer order: shorter first, then bytewise; one octet of length
  -- before the serial gives exactly that order to a plain bytea comparison.
  sort_key        bytea GENERATED ALWAYS AS (decode(lpad(to_hex(octet_length(serial)), 2, '0'), 'hex') || serial) STORED,
  PRIMARY KEY (issuer_key_id, serial),
  CHECK ((status = 'VALID') = (entry_der IS NULL))
);
-- A CRL is read in this order straight from the index (index-only: the entries are in it), not
-- by a million random visits to the table.
CREATE INDEX revocations_listed ON revocations (issuer_key_id, sort_key) INCLUDE (entry_der, not_after, revocation_time) WHERE status <> 'VALID';
CREATE INDEX revocations_listed_partition ON revocations (issuer_key_id, partition, sort_key) INCLUDE (entry_der, not_after, revocation_time) WHERE status <> 'VALID';
CREATE INDEX revocations_changes ON revocations (issuer_key_id, change_seq);
-- Deltas find rows that time moved on or off the CRL (expired past the grace period, or revoked
-- with a date after the base's thisUpdate) by these dates.
CREATE INDEX revocations_expiry ON revocations (issuer_key_id, not_after) WHERE status <> 'VALID';
CREATE INDEX revocations_effective ON revocations (issuer_key_id, revocation_time) WHERE status <> 'VALID';
ALTER TABLE revocations ALTER COLUMN entry_der SET STORAGE MAIN;

-- The state of a row just before each change (its before-image), so that a delta CRL can tell
-- what its base listed. Pruned up to the snapshot of the latest complete CRL.
CREATE TABLE revocation_history (
  issuer_key_id       text NOT NULL,
  change_seq          bigint NOT NULL,
  serial              bytea NOT NULL,
  was_status          text,                             -- NULL: no row before this change
  was_entry_der       bytea,
  was_not_after       timestamptz,
  was_revocation_time timestamptz,
  PRIMARY KEY (issuer_key_id, change_seq)
);
CREATE INDEX revocation_history_serial ON revocation_history (issuer_key_id, serial, change_seq);

-- One counter for every change, incremented under its row lock in the changing transaction: its
-- values are handed out in commit order, so a snapshot that reads N sees every change up to N
-- and none after (the outbox's argument, decision 0005).
CREATE TABLE change_counter (
  id    boolean PRIMARY KEY DEFAULT true CHECK (id),
  value bigint NOT NULL DEFAULT 0
);
INSERT INTO change_counter DEFAULT VALUES;

-- One numbering sequence per scope (RFC 5280 §5.2.3): 'full' (the complete CRL and its deltas,
-- §5.2.4), 'p<N>', 'arl'. changed_seq: the last change that touched the scope.
CREATE TABLE crl_scopes (
  issuer_key_id text NOT NULL REFERENCES issuers (key_id),
  scope         text NOT NULL,
  last_number   numeric NOT NULL DEFAULT 0,
  changed_seq   bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (issuer_key_id, scope)
);

-- Every CRL made, and published (state PUBLISHED) when its lease holder still held the lease.
CREATE TABLE crls (
  id              bigserial PRIMARY KEY,
  issuer_key_id   text NOT NULL REFERENCES issuers (key_id),
  scope           text NOT NULL,
  kind            text NOT NULL CHECK (kind IN ('FULL', 'DELTA', 'PARTITION', 'ARL')),
  crl_number      numeric NOT NULL,
  base_crl_number numeric,
  this_update     timestamptz NOT NULL,
  next_update     timestamptz NOT NULL,
  entries         bigint NOT NULL,
  size            bigint,
  tbs_sha256      bytea,
  snapshot_seq    bigint NOT NULL,
  state           text NOT NULL CHECK (state IN ('BUILDING', 'PUBLISHED')),
  holder          text,
  lease_token     bigint,
  started_at      timestamptz NOT NULL DEFAULT now(),
  published_at    timestamptz,
  generation_ms   integer,
  UNIQUE (issuer_key_id, scope, crl_number)
);
CREATE INDEX crls_published ON crls (issuer_key_id, scope, kind, crl_number DESC) WHERE state = 'PUBLISHED';

-- The DER of each CRL in pieces (the entries as they streamed to the signer), served in seq order.
CREATE TABLE crl_chunks (
  crl_id bigint NOT NULL REFERENCES crls (id) ON DELETE CASCADE,
  seq    integer NOT NULL,
  data   bytea NOT NULL,
  PRIMARY KEY (crl_id, seq)
);
-- DER of random serials does not compress: store it as it is.
ALTER TABLE crl_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

-- The generator lease: one holder at a time; token grows at every takeover (a fencing token), and
-- publishing checks holder, token and expiry in the publishing transaction.
CREATE TABLE generator_lease (
  id         boolean PRIMARY KEY DEFAULT true CHECK (id),
  holder     text,
  token      bigint NOT NULL DEFAULT 0,
  expires_at timestamptz
);
INSERT INTO generator_lease DEFAULT VALUES;

-- Operators' on-demand regenerations, idempotent per (caller, idempotency key).
CREATE TABLE regeneration_requests (
  id              bigserial PRIMARY KEY,
  caller          text NOT NULL,
  idempotency_key text NOT NULL,
  request_sha256  bytea NOT NULL,
  issuer_key_id   text NOT NULL REFERENCES issuers (key_id),
  kind            text NOT NULL CHECK (kind IN ('FULL', 'DELTA', 'PARTITION')),
  partition       integer,
  state           text NOT NULL CHECK (state IN ('PENDING', 'DONE', 'FAILED')),
  crl_number      numeric,
  error           text,
  requested_at    timestamptz NOT NULL DEFAULT now(),
  done_at         timestamptz,
  UNIQUE (caller, idempotency_key)
);
CREATE INDEX regeneration_requests_pending ON regeneration_requests (id) WHERE state = 'PENDING';

-- Status events of generations this service does not know yet (created since its last look at
-- ca-signer): kept, in order, and applied once the generation is known, so that they neither
-- stall the stream nor get lost.
CREATE TABLE parked_status_events (
  producer      text NOT NULL,
  seq           bigint NOT NULL,
  issuer_key_id text NOT NULL,
  payload       bytea NOT NULL,
  parked_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (producer, seq)
);
CREATE INDEX parked_status_events_issuer ON parked_status_events (issuer_key_id, producer, seq);
