-- A CA generation's name as operators say it (e.g. 'G2', 'G3'); several share one issuer DN.
ALTER TABLE issuers ADD COLUMN generation text;

-- Keys that sign on a CA's behalf: the delegated OCSP responder of each issuing generation
-- (RFC 6960 §4.2.2.2, certificate with id-pkix-ocsp-nocheck) and the audit checkpoint key.
CREATE TABLE delegated_signers (
  key_id          text PRIMARY KEY,                      -- subjectKeyIdentifier of its certificate, hex
  purpose         text NOT NULL CHECK (purpose IN ('OCSP_RESPONDER', 'AUDIT_CHECKPOINT')),
  issuer_key_id   text NOT NULL REFERENCES issuers (key_id),  -- the CA that certified it
  hsm_key_id      text NOT NULL UNIQUE,                  -- CKA_ID in the token, hex
  certificate_der bytea NOT NULL,
  not_after       timestamptz NOT NULL,
  active          boolean NOT NULL DEFAULT true,
  created_at      timestamptz NOT NULL DEFAULT now()
);
-- One active signer per purpose and issuer.
CREATE UNIQUE INDEX delegated_signers_one_active ON delegated_signers (purpose, issuer_key_id) WHERE active;

-- The last cRLNumber signed per issuer and partition: a CRL number must only increase
-- (RFC 5280 §5.2.3), and full and delta CRLs share one sequence.
CREATE TABLE crl_numbers (
  issuer_key_id   text NOT NULL REFERENCES issuers (key_id),
  partition       text NOT NULL,
  last_number     numeric NOT NULL,
  last_this_update timestamptz NOT NULL,
  PRIMARY KEY (issuer_key_id, partition)
);

-- Idempotency for CRL signing: a retry returns the CRL already signed.
CREATE TABLE signed_crls (
  caller          text NOT NULL,
  idempotency_key text NOT NULL,
  request_sha256  bytea NOT NULL,
  issuer_key_id   text NOT NULL REFERENCES issuers (key_id),
  partition       text NOT NULL,
  crl_number      numeric NOT NULL,
  crl_der         bytea NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (caller, idempotency_key),
  UNIQUE (issuer_key_id, partition, crl_number)
);
