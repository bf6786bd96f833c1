-- ra becomes the system of record for subscribers, applications, cards and the whole certificate
-- lifecycle. Personal data lives only encrypted (AES-256-GCM, per-row key id) plus keyed hashes.

-- The enrolment endpoint is gone: every certificate now comes from an application.
DROP TABLE enrolments;

-- The subject DN was personal data in clear. The certificate DER carries it too, so it is sealed
-- like the rest (rows from before this migration are sealed by ra at start; certificate_der keeps
-- them until then).
ALTER TABLE certificates
  DROP COLUMN subject_dn,
  ALTER COLUMN certificate_der DROP NOT NULL,
  ADD COLUMN certificate_sealed bytea,
  ADD COLUMN pd_key_id        text,
  ADD COLUMN card_number      text,
  ADD COLUMN application_id   uuid,
  ADD COLUMN key_slot         text,
  ADD COLUMN reason           text,
  ADD COLUMN revocation_time  timestamptz,
  ADD COLUMN invalidity_date  timestamptz,
  ADD COLUMN updated_at       timestamptz NOT NULL DEFAULT now();
UPDATE certificates SET key_slot = CASE profile WHEN 'citizen-encryption' THEN 'KEYX' ELSE 'SIGN' END,
                        reason = CASE status WHEN 'SUSPENDED' THEN 'certificateHold' WHEN 'REVOKED' THEN 'unspecified' END,
                        revocation_time = CASE WHEN status <> 'VALID' THEN created_at END;
ALTER TABLE certificates
  ALTER COLUMN key_slot SET NOT NULL,
  ADD CONSTRAINT certificates_key_slot CHECK (key_slot IN ('SIGN', 'KEYX')),
  ADD CONSTRAINT certificates_one_copy CHECK ((certificate_der IS NULL) <> (certificate_sealed IS NULL)),
  ADD CONSTRAINT certificates_sealed_key CHECK ((certificate_sealed IS NULL) = (pd_key_id IS NULL)),
  ADD CONSTRAINT certificates_revocation CHECK ((status = 'VALID') = (revocation_time IS NULL));
CREATE INDEX certificates_by_card ON certificates (card_number) WHERE card_number IS NOT NULL;
CREATE INDEX certificates_by_application ON certificates (application_id) WHERE application_id IS NOT NULL;
CREATE INDEX certificates_to_seal ON certificates (serial_hex) WHERE certificate_der IS NOT NULL;

-- Every status a certificate had, with who changed it: the registry's own history (the audit log
-- has the same facts, hash-chained, for auditors).
CREATE TABLE certificate_status_history (
  serial_hex      text        NOT NULL REFERENCES certificates (serial_hex),
  status          text        NOT NULL CHECK (status IN ('VALID', 'SUSPENDED', 'REVOKED')),
  reason          text,
  revocation_time timestamptz,
  invalidity_date timestamptz,
  changed_at      timestamptz NOT NULL,
  changed_by      text        NOT NULL
);
CREATE INDEX certificate_status_history_by_serial ON certificate_status_history (serial_hex, changed_at);

CREATE TABLE subscribers (
  id                   uuid        PRIMARY KEY,
  -- How audit records and events name the person (keyed hash of the national ID, never rotated).
  person_ref           text        NOT NULL UNIQUE,
  -- HMAC-SHA-256 of the national ID under lookup key `lookup_key_id`: one person, one subscriber.
  lookup_key_id        text        NOT NULL,
  national_id_lookup   bytea       NOT NULL UNIQUE,
  -- Sealed personal data (AES-256-GCM under key `pd_key_id`, bound to this row and field).
  pd_key_id            text        NOT NULL,
  national_id_sealed   bytea       NOT NULL,
  name_sealed          bytea       NOT NULL,
  birth_date_sealed    bytea       NOT NULL,
  email_sealed         bytea,
  id_kind              text        NOT NULL CHECK (id_kind IN ('CITIZEN', 'RESIDENT', 'RESIDENT_LEGACY')),
  -- For the programme's open statistics (domain.md); derived from the ID.
  gender               text        NOT NULL CHECK (gender IN ('MALE', 'FEMALE')),
  publication_consent  boolean     NOT NULL,
  subscriber_code_hash text        NOT NULL,
  code_failures        integer     NOT NULL DEFAULT 0,
  code_lockouts        integer     NOT NULL DEFAULT 0,
  code_locked_until    timestamptz,
  status               text        NOT NULL CHECK (status IN ('ACTIVE', 'ID_CHANGED', 'NAME_CHANGED', 'DECEASED', 'NATIONALITY_LOST')),
  office               text        NOT NULL,
  created_at           timestamptz NOT NULL
);
CREATE INDEX subscribers_to_reseal ON subscribers (pd_key_id, lookup_key_id);

CREATE TABLE applications (
  id               uuid        PRIMARY KEY,
  kind             text        NOT NULL CHECK (kind IN ('NEW', 'REPLACEMENT', 'REISSUE', 'EXTENSION')),
  state            text        NOT NULL CHECK (state IN ('SUBMITTED', 'PENDING_APPROVAL', 'ISSUING', 'ISSUED', 'REJECTED', 'FAILED')),
  subscriber_id    uuid        NOT NULL REFERENCES subscribers (id),
  card_number      text        NOT NULL,
  replaces_card    text,
  subject_serial   text        NOT NULL CHECK (subject_serial ~ '^[1-9][0-9]{15}$'),
  office           text        NOT NULL,
  created_by       text        NOT NULL,
  decided_by       text,
  signing_spki     bytea       NOT NULL,
  encryption_spki  bytea       NOT NULL,
  signing_spki_sha256    bytea NOT NULL,
  encryption_spki_sha256 bytea NOT NULL,
  not_after        timestamptz,
  reason           text,
  created_at       timestamptz NOT NULL,
  updated_at       timestamptz NOT NULL
);
CREATE INDEX applications_by_subscriber ON applications (subscriber_id);
CREATE INDEX applications_by_office ON applications (office, created_at, id);
CREATE INDEX applications_by_state ON applications (state, updated_at) WHERE state IN ('ISSUING', 'PENDING_APPROVAL', 'SUBMITTED');
-- A new card's number and subject serialNumber are taken once; an extension reuses its card's.
CREATE UNIQUE INDEX applications_one_new_card ON applications (card_number) WHERE kind <> 'EXTENSION' AND state NOT IN ('REJECTED', 'FAILED');
CREATE UNIQUE INDEX applications_subject_serial ON applications (subject_serial) WHERE kind <> 'EXTENSION';

CREATE TABLE cards (
  card_number          text        PRIMARY KEY,
  subscriber_id        uuid        NOT NULL REFERENCES subscribers (id),
  subject_serial       text        NOT NULL UNIQUE,
  status               text        NOT NULL CHECK (status IN ('ISSUED', 'ACTIVE', 'SUSPENDED', 'REVOKED')),
  office               text        NOT NULL,
  activated_at         timestamptz,
  extended             boolean     NOT NULL DEFAULT false,
  signing_spki         bytea       NOT NULL,
  encryption_spki      bytea       NOT NULL,
  signing_spki_sha256    bytea     NOT NULL UNIQUE,
  encryption_spki_sha256 bytea     NOT NULL UNIQUE,
  keys_created_at      timestamptz NOT NULL,
  original_not_after   timestamptz NOT NULL,
  created_at           timestamptz NOT NULL
);
CREATE INDEX cards_by_subscriber ON cards (subscriber_id);
ALTER TABLE certificates ADD CONSTRAINT certificates_card FOREIGN KEY (card_number) REFERENCES cards (card_number);

-- Dual control: requests that wait for a second officer.
CREATE TABLE approval_requests (
  id           uuid        PRIMARY KEY,
  operation    text        NOT NULL CHECK (operation IN ('card.revoke', 'cards.bulk-revoke', 'application.issue')),
  payload      jsonb       NOT NULL,
  state        text        NOT NULL CHECK (state IN ('PENDING', 'APPROVED', 'REJECTED', 'EXPIRED', 'EXECUTED')),
  office       text        NOT NULL,
  requested_by text        NOT NULL,
  created_at   timestamptz NOT NULL,
  expires_at   timestamptz NOT NULL,
  decided_by   text,
  decided_at   timestamptz,
  comment      text,
  CHECK (decided_by IS NULL OR decided_by <> requested_by)
);
CREATE INDEX approval_requests_by_office ON approval_requests (office, created_at, id);
CREATE INDEX approval_requests_pending ON approval_requests (expires_at) WHERE state = 'PENDING';

-- Household-registration events: each event id once, whatever the sender retries.
CREATE TABLE household_events (
  event_id     text        PRIMARY KEY,
  sender       text        NOT NULL,
  kind         text        NOT NULL,
  fingerprint  bytea       NOT NULL,
  person_ref   text        NOT NULL,
  occurred_at  timestamptz NOT NULL,
  result       jsonb       NOT NULL,
  received_at  timestamptz NOT NULL DEFAULT now()
);

-- Idempotency: one result per (caller, key). `fingerprint` is a keyed hash of the request, so a
-- replay with another body is refused; `result` is what the first call returned.
CREATE TABLE idempotency_keys (
  scope        text        NOT NULL,
  key          text        NOT NULL,
  operation    text        NOT NULL,
  fingerprint  bytea       NOT NULL,
  result       jsonb,
  created_at   timestamptz NOT NULL DEFAULT now(),
  completed_at timestamptz,
  PRIMARY KEY (scope, key)
);

-- Who may call the REST API with a client certificate: officers (with role and office) and the
-- household-registration system. A certificate is bound by the SHA-256 of its DER.
CREATE TABLE principals (
  id         text        PRIMARY KEY,
  kind       text        NOT NULL CHECK (kind IN ('officer', 'household-system')),
  role       text        CHECK (role IN ('registrar', 'supervisor', 'card-centre', 'auditor')),
  office     text,
  status     text        NOT NULL CHECK (status IN ('ACTIVE', 'DISABLED')),
  created_at timestamptz NOT NULL DEFAULT now(),
  CHECK ((kind = 'officer') = (role IS NOT NULL AND office IS NOT NULL))
);
CREATE TABLE principal_certificates (
  certificate_sha256 text        PRIMARY KEY CHECK (certificate_sha256 ~ '^[0-9a-f]{64}$'),
  principal_id       text        NOT NULL REFERENCES principals (id),
  not_after          timestamptz NOT NULL,
  added_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cursors (
  name       text        PRIMARY KEY,
  value      text        NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
