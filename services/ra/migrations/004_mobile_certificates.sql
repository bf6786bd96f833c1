-- Mobile credentials (issue 12, decision 0025): a phone's P-256 key, bound to the person through
-- their card, certified by ca-signer's citizen-mobile profile and recorded here like the card's
-- own certificates (ra stays the authoritative registry and emits their status events). The
-- certificate names the card it was bound through and the device card-mgmt enrolled.
ALTER TABLE certificates
  DROP CONSTRAINT certificates_key_slot,
  ADD CONSTRAINT certificates_key_slot CHECK (key_slot IN ('SIGN', 'KEYX', 'MOBILE')),
  ADD COLUMN device_id uuid,
  ADD CONSTRAINT certificates_mobile_device CHECK ((key_slot = 'MOBILE') = (device_id IS NOT NULL));
CREATE UNIQUE INDEX certificates_by_device ON certificates (device_id) WHERE device_id IS NOT NULL;
