-- Agency application systems (issue 13, decision 0026): the registry of systems that call the
-- validation APIs, their client certificates, identity-confirmation nonces and usage metering.

-- A system's credential is a certificate our own CA issued under the agencyClient profile. It is
-- recorded in the certificate registry like every other certificate (status events reach ocsp and
-- crl, so relying parties can check it), with key slot AGENCY and the system it belongs to.
ALTER TABLE certificates
  DROP CONSTRAINT certificates_key_slot,
  ADD CONSTRAINT certificates_key_slot CHECK (key_slot IN ('SIGN', 'KEYX', 'MOBILE', 'AGENCY')),
  ADD COLUMN system_id text,
  ADD CONSTRAINT certificates_agency_system CHECK ((key_slot = 'AGENCY') = (system_id IS NOT NULL));

CREATE TABLE application_systems (
  id                    text        PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
  agency                text        NOT NULL,
  name                  text        NOT NULL,
  -- The programme's yearly table splits systems and uses into government-internal and public-facing.
  sector                text        NOT NULL CHECK (sector IN ('GOVERNMENT', 'PUBLIC')),
  -- The agency's contact for the system (a service desk, not a citizen): name, e-mail, phone.
  contact               jsonb       NOT NULL,
  status                text        NOT NULL CHECK (status IN ('ACTIVE', 'SUSPENDED', 'RETIRED')),
  rate_limit_per_minute integer     NOT NULL CHECK (rate_limit_per_minute > 0),
  created_at            timestamptz NOT NULL,
  created_by            text        NOT NULL,
  updated_at            timestamptz NOT NULL,
  retired_at            timestamptz
);

-- The certificates a system authenticates with: looked up by the SHA-256 of the DER (mTLS) and by
-- issuer key id and serial (the signer of a request). The DER is kept in clear here: it names an
-- agency and a system, no person.
CREATE TABLE agency_credentials (
  certificate_sha256 text        PRIMARY KEY CHECK (certificate_sha256 ~ '^[0-9a-f]{64}$'),
  serial_hex         text        NOT NULL UNIQUE REFERENCES certificates (serial_hex),
  issuer_key_id      text        NOT NULL,
  system_id          text        NOT NULL REFERENCES application_systems (id),
  certificate_der    bytea       NOT NULL,
  not_before         timestamptz NOT NULL,
  not_after          timestamptz NOT NULL,
  created_at         timestamptz NOT NULL
);
CREATE UNIQUE INDEX agency_credentials_by_issuer_serial ON agency_credentials (issuer_key_id, serial_hex);
CREATE INDEX agency_credentials_by_system ON agency_credentials (system_id, created_at);

-- Identity-confirmation nonces, each accepted once per system until it expires (after the clock
-- window, a request carrying it is refused as stale anyway).
CREATE TABLE identity_confirmation_nonces (
  system_id  text        NOT NULL,
  nonce      text        NOT NULL,
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (system_id, nonce)
);
CREATE INDEX identity_confirmation_nonces_expiry ON identity_confirmation_nonces (expires_at);

-- Uses per system, per month (Taipei time) and channel: identity confirmation and certificate
-- validation counted by ra itself, OCSP requests attributed from the responders' usage events.
CREATE TABLE usage_counts (
  system_id text   NOT NULL REFERENCES application_systems (id),
  month     date   NOT NULL CHECK (extract(day FROM month) = 1),
  channel   text   NOT NULL CHECK (channel IN ('identity-confirmation', 'certificate-validation', 'ocsp')),
  uses      bigint NOT NULL CHECK (uses >= 0),
  PRIMARY KEY (system_id, month, channel)
);

-- OCSP requests no registered system can be credited with: anonymous relying parties, and callers
-- that identified themselves with a key ra does not know.
CREATE TABLE usage_unattributed (
  month          date   NOT NULL CHECK (extract(day FROM month) = 1),
  identification text   NOT NULL CHECK (identification IN ('ANONYMOUS', 'OVERFLOW', 'MTLS', 'SIGNED_REQUEST', 'SYSTEM_URL', 'UNSPECIFIED')),
  requests       bigint NOT NULL CHECK (requests >= 0),
  PRIMARY KEY (month, identification)
);

-- Each responder window is counted once, whatever the transport redelivers.
CREATE TABLE usage_windows (
  responder_instance text        NOT NULL,
  window_sequence    bigint      NOT NULL,
  window_start       timestamptz NOT NULL,
  received_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (responder_instance, window_sequence)
);
