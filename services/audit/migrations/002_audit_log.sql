-- The audit log: every recorded leaf (events and breaks), the Merkle tree's stored nodes, the
-- signed checkpoints, and the auditors allowed to read them. Leaves, nodes and checkpoints are
-- append-only twice over: the role the service writes with (pki_audit_appender) has no UPDATE or
-- DELETE on them, and triggers refuse UPDATE, DELETE and TRUNCATE from anyone.

CREATE TABLE records (
  -- Position in the Merkle tree (0-based).
  leaf_index     bigint      PRIMARY KEY CHECK (leaf_index >= 0),
  kind           text        NOT NULL CHECK (kind IN ('event', 'break')),
  producer       text        NOT NULL,
  seq            bigint      NOT NULL,
  event_id       text,
  occurred_at    timestamptz,
  action         text,
  outcome        text,
  actor_type     text,
  actor_id       text,
  -- SHA-256 of the producer's protobuf payload: tells a redelivery from a conflicting event.
  payload_sha256 text        NOT NULL,
  -- The leaf exactly as hashed: one JSON line, UTF-8.
  leaf           bytea       NOT NULL,
  leaf_hash      bytea       NOT NULL CHECK (octet_length(leaf_hash) = 32),
  recorded_at    timestamptz NOT NULL DEFAULT now()
);
-- One event leaf per producer sequence number (breaks may repeat a number: conflicts, late arrivals).
CREATE UNIQUE INDEX records_producer_seq ON records (producer, seq) WHERE kind = 'event';
CREATE INDEX records_occurred_at ON records (occurred_at);
CREATE INDEX records_action ON records (action, leaf_index);
CREATE INDEX records_actor ON records (actor_type, actor_id, leaf_index);
CREATE INDEX records_producer ON records (producer, leaf_index);

-- Object references of event leaves, for queries by object.
CREATE TABLE record_objects (
  object_type text   NOT NULL,
  object_id   text   NOT NULL,
  leaf_index  bigint NOT NULL REFERENCES records (leaf_index),
  PRIMARY KEY (object_type, object_id, leaf_index)
);

-- Perfect subtrees of the tree, level 1 and up (level 0 is records.leaf_hash): what proofs need.
CREATE TABLE tree_nodes (
  level    smallint NOT NULL CHECK (level > 0),
  node_idx bigint   NOT NULL CHECK (node_idx >= 0),
  hash     bytea    NOT NULL CHECK (octet_length(hash) = 32),
  PRIMARY KEY (level, node_idx)
);

-- The tree's head: its size and compact range (frontier). Mutable, and derivable from the leaves.
-- Its row lock serialises appends.
CREATE TABLE log_state (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  tree_size bigint  NOT NULL DEFAULT 0,
  frontier  bytea[] NOT NULL DEFAULT '{}'
);
INSERT INTO log_state DEFAULT VALUES;

-- Per producer: the last sequence number recorded (mutable, derivable from the leaves).
CREATE TABLE producer_heads (
  producer          text        PRIMARY KEY,
  last_seq          bigint      NOT NULL,
  last_committed_at timestamptz NOT NULL,
  last_recorded_at  timestamptz NOT NULL
);

-- Checkpoints ca-signer signed over the tree.
CREATE TABLE checkpoints (
  id                  bigserial   PRIMARY KEY,
  tree_size           bigint      NOT NULL CHECK (tree_size > 0),
  root_hash           bytea       NOT NULL CHECK (octet_length(root_hash) = 32),
  signed_at           timestamptz NOT NULL,
  checkpoint          bytea       NOT NULL,
  signature           bytea       NOT NULL,
  signature_algorithm text        NOT NULL,
  signer_certificate  bytea       NOT NULL,
  stored_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX checkpoints_by_size ON checkpoints (tree_size, id);

-- On-demand checkpoints are mutating calls: the idempotency key returns the same checkpoint.
CREATE TABLE checkpoint_requests (
  auditor_id      text   NOT NULL,
  idempotency_key text   NOT NULL,
  checkpoint_id   bigint NOT NULL REFERENCES checkpoints (id),
  PRIMARY KEY (auditor_id, idempotency_key)
);

-- Auditors, by the SHA-256 of their client certificate (issued by the officer CA).
CREATE TABLE auditors (
  id                 text        PRIMARY KEY,
  certificate_sha256 text        NOT NULL UNIQUE CHECK (certificate_sha256 ~ '^[0-9a-f]{64}$'),
  subject            text        NOT NULL,
  active             boolean     NOT NULL DEFAULT true,
  added_at           timestamptz NOT NULL DEFAULT now(),
  disabled_at        timestamptz
);

CREATE FUNCTION refuse_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit log: % on % refused: the audit record is append-only', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER records_append_only BEFORE UPDATE OR DELETE ON records FOR EACH ROW EXECUTE FUNCTION refuse_audit_change();
CREATE TRIGGER records_no_truncate BEFORE TRUNCATE ON records FOR EACH STATEMENT EXECUTE FUNCTION refuse_audit_change();
CREATE TRIGGER record_objects_append_only BEFORE UPDATE OR DELETE ON record_objects FOR EACH ROW EXECUTE FUNCTION refuse_audit_change();
CREATE TRIGGER record_objects_no_truncate BEFORE TRUNCATE ON record_objects FOR EACH STATEMENT EXECUTE FUNCTION refuse_audit_change();
CREATE TRIGGER tree_nodes_append_only BEFORE UPDATE OR DELETE ON tree_nodes FOR EACH ROW EXECUTE FUNCTION refuse_audit_change();
CREATE TRIGGER tree_nodes_no_truncate BEFORE TRUNCATE ON tree_nodes FOR EACH STATEMENT EXECUTE FUNCTION refuse_audit_change();
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON checkpoints FOR EACH ROW EXECUTE FUNCTION refuse_audit_change();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints FOR EACH STATEMENT EXECUTE FUNCTION refuse_audit_change();

-- The role the service appends with (SET ROLE on every connection of its record pool). Roles are
-- cluster-wide: created once, granted per schema.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pki_audit_appender') THEN
    CREATE ROLE pki_audit_appender NOLOGIN;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
  NULL; -- another schema's migration created it at the same moment
END
$$;
DO $$
BEGIN
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO pki_audit_appender', current_schema());
  EXECUTE format('GRANT pki_audit_appender TO %I', current_user);
END
$$;
GRANT SELECT, INSERT ON records, record_objects, tree_nodes, checkpoints, checkpoint_requests TO pki_audit_appender;
GRANT SELECT, UPDATE ON log_state TO pki_audit_appender;
GRANT SELECT, INSERT, UPDATE ON producer_heads TO pki_audit_appender;
GRANT SELECT ON auditors TO pki_audit_appender;
GRANT USAGE ON SEQUENCE checkpoints_id_seq TO pki_audit_appender;
-- Its own outbox (alerts, checkpoint publications, auditors' exports) in the same transactions.
GRANT SELECT, INSERT, UPDATE ON outbox_head TO pki_audit_appender;
GRANT SELECT, INSERT ON outbox TO pki_audit_appender;
