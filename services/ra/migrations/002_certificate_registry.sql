-- The certificate registry: ra holds the authoritative status of every certificate it obtained.
CREATE TABLE certificates (
  serial_hex      text PRIMARY KEY,          -- ca-signer reserves serials globally (128-bit random)
  issuer_key_id   text NOT NULL,             -- which CA generation signed it (its SKI, hex)
  profile         text NOT NULL,
  subject_dn      text NOT NULL,
  status          text NOT NULL CHECK (status IN ('VALID', 'SUSPENDED', 'REVOKED')),
  not_before      timestamptz NOT NULL,
  not_after       timestamptz NOT NULL,
  certificate_der bytea NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now()
);

-- One enrolment request from a registration counter. The caller's idempotency key is forwarded to
-- ca-signer, so a retried request returns the same certificate and never a second one.
CREATE TABLE enrolments (
  idempotency_key text PRIMARY KEY,
  request_sha256  bytea NOT NULL,
  profile         text NOT NULL,
  serial_hex      text NOT NULL UNIQUE REFERENCES certificates (serial_hex),
  created_at      timestamptz NOT NULL DEFAULT now()
);
