-- The validation receipt key (ra's certificate validation API signs its answers with it through
-- ca-signer): one more purpose of delegated signer, one active for the whole signer like the
-- audit checkpoint key.
ALTER TABLE delegated_signers DROP CONSTRAINT delegated_signers_purpose_check;
ALTER TABLE delegated_signers ADD CONSTRAINT delegated_signers_purpose_check
  CHECK (purpose IN ('OCSP_RESPONDER', 'AUDIT_CHECKPOINT', 'VALIDATION_RECEIPT'));
