-- Issuing CA keys generated in the token whose certificate comes from an external root (the
-- government root signs the real ones): the key and the request made for it, until
-- `pki ceremony import-issuing` checks the certificate that came back against them and records
-- the generation in `issuers`.
CREATE TABLE ca_key_requests (
  hsm_key_id      text PRIMARY KEY,                      -- CKA_ID in the token, hex
  generation      text NOT NULL,                         -- e.g. 'G3'
  subject_dn      text NOT NULL,                         -- the subject requested, formatted
  public_key_spki bytea NOT NULL UNIQUE,                 -- what the certificate must certify
  key_spec        text NOT NULL,                         -- rsa-4096, p-384, ...
  csr_der         bytea NOT NULL,
  state           text NOT NULL CHECK (state IN ('PENDING', 'IMPORTED')),
  issuer_key_id   text REFERENCES issuers (key_id),      -- the generation it became
  created_at      timestamptz NOT NULL DEFAULT now(),
  imported_at     timestamptz,
  CHECK ((state = 'IMPORTED') = (issuer_key_id IS NOT NULL))
);
-- A generation name is reserved from the moment its key exists.
CREATE UNIQUE INDEX ca_key_requests_pending_generation ON ca_key_requests (generation) WHERE state = 'PENDING';

-- Generation names are how operators address generations sharing one DN: one name, one key.
CREATE UNIQUE INDEX issuers_role_generation ON issuers (role, generation) WHERE generation IS NOT NULL;
