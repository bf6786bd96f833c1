-- The last checkpoint ca-signer signed for each audit log (origin). A new checkpoint is signed only
-- if the audit service proves its tree extends this one (RFC 9162 consistency proof), so a history
-- rewritten in the audit database cannot get a signature.
CREATE TABLE audit_log_heads (
  origin    text        PRIMARY KEY,
  tree_size bigint      NOT NULL CHECK (tree_size > 0),
  root_hash bytea       NOT NULL CHECK (octet_length(root_hash) = 32),
  signed_at timestamptz NOT NULL
);

-- What the audit log had recorded of each producer at its last signed checkpoint: the last sequence
-- number its tree held. Issuance stops while this signer's own audit events stay unconfirmed for
-- longer than the configured bound (fail closed: "if automated auditing fails, issuance stops").
CREATE TABLE audit_confirmations (
  producer     text        PRIMARY KEY,
  sequence     bigint      NOT NULL CHECK (sequence > 0),
  origin       text        NOT NULL,
  tree_size    bigint      NOT NULL,
  confirmed_at timestamptz NOT NULL
);
