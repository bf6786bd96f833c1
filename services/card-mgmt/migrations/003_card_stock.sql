-- card-mgmt: the physical cards, from the supplier's batch to the card cut, one by one
-- (decision 0023). Every change of state or holder is a row of card_transitions, written in the
-- same transaction as the change and its audit event; the daily reconciliation is computed from
-- those rows, never from counters that could drift.

CREATE TABLE card_batches (
  id          text        PRIMARY KEY,
  supplier    text        NOT NULL,
  card_count  integer     NOT NULL CHECK (card_count > 0),
  received_at timestamptz NOT NULL,
  received_by text        NOT NULL
);

CREATE TABLE cards (
  card_number         text        PRIMARY KEY,
  -- The chip's own serial from the supplier's manifest: one chip, one card number.
  chip_serial         text        NOT NULL UNIQUE,
  -- The chip's attestation key from the manifest (SPKI DER): only keys it attests were generated
  -- on this chip (decision 0024).
  attestation_key     bytea       NOT NULL,
  batch_id            text        NOT NULL REFERENCES card_batches (id),
  state               text        NOT NULL CHECK (state IN ('IN_STOCK', 'ASSIGNED', 'PERSONALISING', 'PERSONALISED', 'ISSUED', 'ACTIVATED',
                                                            'SUSPENDED', 'REVOKED', 'LOST', 'DAMAGED', 'DESTROYED', 'REPLACED')),
  -- Who holds the card: the card centre's code while in central stock, else an office.
  office              text        NOT NULL,
  -- Set at personalisation: ra's subscriber (an id, never personal data).
  subscriber_id       uuid,
  -- The card this one replaced, and the card that replaced this one.
  replaces_card       text        REFERENCES cards (card_number),
  replaced_by         text        REFERENCES cards (card_number),
  -- The certificates ra issued for the card's SIGN and KEYX keys.
  signing_serial      text,
  encryption_serial   text,
  -- The SIGN certificate (DER): mobile bindings are verified with its key.
  signing_certificate bytea,
  -- The token serial the workstation read from the chip at personalisation.
  token_serial        text,
  updated_at          timestamptz NOT NULL,
  created_at          timestamptz NOT NULL
);
CREATE INDEX cards_by_office_state ON cards (office, state);
CREATE INDEX cards_by_subscriber ON cards (subscriber_id) WHERE subscriber_id IS NOT NULL;

-- One row per change, with its actor and time: the card's history and the reconciliation's input.
CREATE TABLE card_transitions (
  id           bigserial   PRIMARY KEY,
  card_number  text        NOT NULL REFERENCES cards (card_number),
  action       text        NOT NULL,
  from_state   text,
  to_state     text        NOT NULL,
  from_office  text,
  to_office    text        NOT NULL,
  actor_type   text        NOT NULL,
  actor_id     text        NOT NULL,
  actor_office text,
  actor_role   text,
  reason       text,
  at           timestamptz NOT NULL
);
CREATE INDEX card_transitions_by_card ON card_transitions (card_number, id);
CREATE INDEX card_transitions_by_time ON card_transitions (at);

-- A personalisation at the counter: the card is reserved (PERSONALISING) until ra has issued both
-- certificates, or released when ra refuses. `challenge` is what each of the card's keys signs to
-- show it is this session's key (decision 0024).
CREATE TABLE personalisations (
  id               uuid        PRIMARY KEY,
  card_number      text        NOT NULL REFERENCES cards (card_number),
  kind             text        NOT NULL CHECK (kind IN ('NEW', 'REPLACEMENT')),
  replaces_card    text        REFERENCES cards (card_number),
  subscriber_id    uuid        NOT NULL,
  office           text        NOT NULL,
  officer_id       text        NOT NULL,
  officer_cert     text        NOT NULL,
  challenge        bytea       NOT NULL,
  state            text        NOT NULL CHECK (state IN ('STARTED', 'ISSUING', 'COMPLETED', 'FAILED')),
  failure          text,
  result           jsonb,
  -- Kept once ra is asked (public keys only): an interrupted issuance is resumed with the same
  -- request, so ra finishes the same issuance.
  signing_csr      text,
  encryption_csr   text,
  token_serial     text,
  created_at       timestamptz NOT NULL,
  updated_at       timestamptz NOT NULL
);
-- At most one open personalisation per card.
CREATE UNIQUE INDEX personalisations_open ON personalisations (card_number) WHERE state IN ('STARTED', 'ISSUING');

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
