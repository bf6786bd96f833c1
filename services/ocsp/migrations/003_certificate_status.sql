-- The responder's own store, shared by every pod: one row per certificate, built from the status
-- events (pki.certificate-status.v1) and holding the pre-produced responses signed for it.
-- Migration 1 is the outbox, 2 the consumer position table (inbox_position).

-- The CA generations, as ca-signer's GetIssuers gave them: kept here so that a pod starts and
-- answers while ca-signer is down.
CREATE TABLE issuers (
  key_id                     text PRIMARY KEY,           -- subjectKeyIdentifier, hex
  certificate_der            bytea NOT NULL,
  ocsp_responder_certificate bytea,                      -- the generation's active delegated responder
  updated_at                 timestamptz NOT NULL DEFAULT now()
);

-- Every bump of a row's responses or status takes the next number: pods follow the store by
-- reading what changed after the last number they saw.
CREATE SEQUENCE certificate_change_ids;

CREATE TABLE certificates (
  serial_hex        text PRIMARY KEY,                    -- ca-signer's serials are unique across generations
  issuer_key_id     text NOT NULL,
  status            text NOT NULL CHECK (status IN ('VALID', 'SUSPENDED', 'REVOKED')),
  revocation_time   timestamptz,
  reason            smallint NOT NULL DEFAULT 0,          -- RFC 5280 CRLReason; 0 with REVOKED: no reason given
  not_after         timestamptz NOT NULL,
  -- The event that set this status: (producer, seq) orders events of one producer (ra).
  status_producer   text NOT NULL,
  status_seq        bigint NOT NULL,
  changed_at        timestamptz NOT NULL,
  -- The pre-produced responses (OCSPResponse DER) and the status_seq they say.
  response_sha1     bytea,
  response_sha256   bytea,
  signed_seq        bigint,
  this_update       timestamptz,
  next_update       timestamptz,
  -- When the updater signs this row next: at once after a status change, else before next_update.
  refresh_at        timestamptz NOT NULL,
  change_id         bigint NOT NULL DEFAULT nextval('certificate_change_ids'),
  CHECK ((status = 'VALID') = (revocation_time IS NULL))
);
CREATE INDEX certificates_due ON certificates (refresh_at);
CREATE INDEX certificates_changes ON certificates (change_id);
