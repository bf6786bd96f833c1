-- CA generations held in the HSM. Several generations share one issuer DN (domain.md): they are
-- told apart only by key identifier, so the key identifier is the primary key.
CREATE TABLE issuers (
  key_id          text PRIMARY KEY,                      -- subjectKeyIdentifier, hex
  role            text NOT NULL CHECK (role IN ('ROOT', 'ISSUING')),
  hsm_key_id      text NOT NULL UNIQUE,                  -- CKA_ID of the private key in the token, hex
  subject_dn      text NOT NULL,
  certificate_der bytea NOT NULL,
  active          boolean NOT NULL DEFAULT false,        -- issues new certificates
  created_at      timestamptz NOT NULL DEFAULT now()
);
-- At most one active issuing generation at a time.
CREATE UNIQUE INDEX issuers_one_active ON issuers (role) WHERE active;

-- Every serial ever used, reserved before the HSM signs (so a crash between signing and recording
-- can never reuse a serial), unique across all generations.
CREATE TABLE serials (
  serial_hex      text PRIMARY KEY,
  issuer_key_id   text NOT NULL REFERENCES issuers (key_id),
  reserved_at     timestamptz NOT NULL DEFAULT now()
);

-- One issuance per (caller, idempotency key): a retry returns the same certificate.
CREATE TABLE issuances (
  caller          text NOT NULL,
  idempotency_key text NOT NULL,
  request_sha256  bytea NOT NULL,
  profile         text NOT NULL,
  issuer_key_id   text NOT NULL REFERENCES issuers (key_id),
  serial_hex      text NOT NULL UNIQUE REFERENCES serials (serial_hex),
  not_before      timestamptz NOT NULL,
  not_after       timestamptz NOT NULL,
  state           text NOT NULL CHECK (state IN ('RESERVED', 'ISSUED')),
  certificate_der bytea,
  created_at      timestamptz NOT NULL DEFAULT now(),
  issued_at       timestamptz,
  PRIMARY KEY (caller, idempotency_key),
  CHECK ((state = 'ISSUED') = (certificate_der IS NOT NULL))
);
