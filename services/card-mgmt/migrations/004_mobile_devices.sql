-- Mobile credentials (decision 0025): up to 3 phones per person, each bound through a card by a
-- challenge the card's SIGN key signed (with the subscriber code), each with its own certificate.

-- One-time binding challenges, short-lived.
CREATE TABLE binding_challenges (
  id          uuid        PRIMARY KEY,
  card_number text        NOT NULL REFERENCES cards (card_number),
  challenge   bytea       NOT NULL,
  expires_at  timestamptz NOT NULL,
  used_at     timestamptz,
  created_at  timestamptz NOT NULL
);

CREATE TABLE devices (
  id            uuid        PRIMARY KEY,
  subscriber_id uuid        NOT NULL,
  card_number   text        NOT NULL REFERENCES cards (card_number),
  name          text        NOT NULL,
  -- The phone's P-256 key (SPKI DER): one device per key.
  public_key    bytea       NOT NULL UNIQUE,
  state         text        NOT NULL CHECK (state IN ('ACTIVE', 'SUSPENDED', 'REVOKED')),
  serial_hex    text,
  created_at    timestamptz NOT NULL,
  updated_at    timestamptz NOT NULL
);
CREATE INDEX devices_by_subscriber ON devices (subscriber_id);

-- Status events from ra name certificates by serial: find the card or device they belong to.
CREATE INDEX cards_by_signing_serial ON cards (signing_serial) WHERE signing_serial IS NOT NULL;
CREATE INDEX devices_by_serial ON devices (serial_hex) WHERE serial_hex IS NOT NULL;
