-- Where each CA generation's CRLs are published, recorded when the generation is created and
-- fixed for its life: a certificate names its CRL partition (serial mod crl_partitions) under
-- crl_base_url at issuance, and the crl service must publish that partition there for as long
-- as the certificate lives, whatever the signer's configuration says later. Generations made
-- before this column existed take the configuration's values at the next start (app.ts).
ALTER TABLE issuers ADD COLUMN crl_partitions integer CHECK (crl_partitions BETWEEN 1 AND 4096);
ALTER TABLE issuers ADD COLUMN crl_base_url text;

-- CRLs signed from a stream of entries are not kept whole here (the crl service holds and
-- publishes the bytes): the signer keeps the digest it signed and the signature.
ALTER TABLE signed_crls ALTER COLUMN crl_der DROP NOT NULL;
ALTER TABLE signed_crls ADD COLUMN tbs_sha256 bytea;
ALTER TABLE signed_crls ADD COLUMN signature bytea;

-- CA certificates a root revoked, recorded at a key ceremony (the authority revocation list).
CREATE TABLE ca_revocations (
  issuer_key_id   text PRIMARY KEY REFERENCES issuers (key_id),   -- the revoked CA generation
  root_key_id     text NOT NULL REFERENCES issuers (key_id),      -- the root that certified it
  serial_hex      text NOT NULL,
  reason          smallint NOT NULL,                              -- RFC 5280 CRLReason
  revoked_at      timestamptz NOT NULL
);

-- Authority revocation lists signed at key ceremonies, newest by crl_number.
CREATE TABLE authority_revocation_lists (
  root_key_id     text NOT NULL REFERENCES issuers (key_id),
  crl_number      numeric NOT NULL,
  this_update     timestamptz NOT NULL,
  next_update     timestamptz NOT NULL,
  crl_der         bytea NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (root_key_id, crl_number)
);
