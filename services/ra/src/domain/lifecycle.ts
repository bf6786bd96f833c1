import { PkiError } from '@pki/kit';

/**
 * The certificate and card lifecycle of the programme (domain.md), as pure rules: which
 * transitions are legal, which RFC 5280 reason each programme status maps to, and when a card may
 * be extended. The use cases (registration-authority.ts) apply them inside one transaction.
 */

export type CertificateStatus = 'VALID' | 'SUSPENDED' | 'REVOKED';

/**
 * ISSUED: certificates signed, the citizen has not confirmed receipt. ACTIVE: in use.
 * SUSPENDED (停用) and REVOKED (廢止) apply to both certificates of the card together.
 */
export type CardStatus = 'ISSUED' | 'ACTIVE' | 'SUSPENDED' | 'REVOKED';

/** RFC 5280 §5.3.1 CRLReason names, as the API speaks them. */
export const REVOCATION_REASONS = [
  'unspecified',
  'keyCompromise',
  'cACompromise',
  'affiliationChanged',
  'superseded',
  'cessationOfOperation',
  'privilegeWithdrawn',
] as const;
export type RevocationReason = (typeof REVOCATION_REASONS)[number];
/** The two reasons that are not revocations: a suspension and its removal (RFC 5280 §5.3.1). */
export type StatusReason = RevocationReason | 'certificateHold' | 'removeFromCRL';

/**
 * The programme's published status values (domain.md) and the RFC 5280 reason each one is
 * recorded with. Officers may state either; the repository shows the programme's words.
 */
export const PROGRAMME_REVOCATION_REASONS: Readonly<Record<string, RevocationReason>> = {
  'subscriber-key-compromise': 'keyCompromise',
  'ca-key-compromise': 'cACompromise',
  'identity-data-changed': 'affiliationChanged',
  superseded: 'superseded',
  'card-cut': 'cessationOfOperation',
};

/** Resolves an API reason (RFC 5280 name or programme value) or refuses it, listing the accepted ones. */
export function revocationReasonOf(input: string, operation: string): RevocationReason {
  if ((REVOCATION_REASONS as readonly string[]).includes(input)) return input as RevocationReason;
  const mapped = PROGRAMME_REVOCATION_REASONS[input];
  if (mapped) return mapped;
  throw new PkiError(
    'INVALID_ARGUMENT',
    `${operation}: reason '${String(input).slice(0, 40)}' is not one of ${[...REVOCATION_REASONS, ...Object.keys(PROGRAMME_REVOCATION_REASONS)].join(', ')}`,
  );
}

export type CardOperation = 'activate' | 'suspend' | 'resume' | 'revoke' | 'extend';

const ALLOWED_FROM: Readonly<Record<CardOperation, readonly CardStatus[]>> = {
  activate: ['ISSUED'],
  // A card lost on its way to the citizen is suspended before it was ever activated.
  suspend: ['ISSUED', 'ACTIVE'],
  resume: ['SUSPENDED'],
  revoke: ['ISSUED', 'ACTIVE', 'SUSPENDED'],
  // A suspended card is resumed first: extending it would hand out certificates that are on hold.
  extend: ['ISSUED', 'ACTIVE'],
};

/** Refuses an illegal transition, naming the card's current state and the states that allow it. */
export function assertCardTransition(cardNumber: string, status: CardStatus, operation: CardOperation): void {
  const allowed = ALLOWED_FROM[operation];
  if (!allowed.includes(status)) {
    throw new PkiError('FAILED_PRECONDITION', `${operation} card: card ${cardNumber} is ${status}; only a card that is ${allowed.join(' or ')} can be ${PAST[operation]}`, {
      details: { cardStatus: status },
    });
  }
}

const PAST: Readonly<Record<CardOperation, string>> = { activate: 'activated', suspend: 'suspended', resume: 'resumed', revoke: 'revoked', extend: 'extended' };

/** Where a card goes, and where its live certificates go, for each operation. */
export function cardStatusAfter(operation: Exclude<CardOperation, 'extend'>, before: CardStatus, activated: boolean): CardStatus {
  switch (operation) {
    case 'activate':
      return 'ACTIVE';
    case 'suspend':
      return 'SUSPENDED';
    case 'resume':
      // Back to what it was: a card suspended before receipt still awaits it.
      return activated ? 'ACTIVE' : 'ISSUED';
    case 'revoke':
      return 'REVOKED';
  }
  return before;
}

export function certificateStatusAfter(operation: 'suspend' | 'resume' | 'revoke'): CertificateStatus {
  return operation === 'suspend' ? 'SUSPENDED' : operation === 'resume' ? 'VALID' : 'REVOKED';
}

/** Extension (domain.md): once per card, by 3 years, inside a window around the expiry. */
export interface ExtensionPolicy {
  /** How long before notAfter the window opens (default 60 days). */
  opensBeforeExpiryDays: number;
  /** How long after notAfter it stays open (default 3 years). */
  closesAfterExpiryYears: number;
  /** How much the extension adds to the original notAfter (default 3 years). */
  extendsByYears: number;
  /** A card's private keys are not used beyond this many years after they were made (default 10). */
  maxKeyLifetimeYears: number;
}

export const DEFAULT_EXTENSION_POLICY: ExtensionPolicy = { opensBeforeExpiryDays: 60, closesAfterExpiryYears: 3, extendsByYears: 3, maxKeyLifetimeYears: 10 };

export function addYears(date: Date, years: number): Date {
  const d = new Date(date.getTime());
  d.setUTCFullYear(d.getUTCFullYear() + years);
  return d;
}

/**
 * The notAfter of the extended certificates: the original notAfter plus the extension, never past
 * the keys' lifetime, and refused outside the window or for a card already extended.
 */
export function extendedNotAfter(
  card: { cardNumber: string; extended: boolean; originalNotAfter: Date; keysCreatedAt: Date },
  now: Date,
  policy: ExtensionPolicy,
): Date {
  const operation = 'extend card';
  if (card.extended) throw new PkiError('FAILED_PRECONDITION', `${operation}: card ${card.cardNumber} was already extended once; a card is extended only once`);
  const opens = new Date(card.originalNotAfter.getTime() - policy.opensBeforeExpiryDays * 86_400_000);
  const closes = addYears(card.originalNotAfter, policy.closesAfterExpiryYears);
  if (now < opens) {
    throw new PkiError('FAILED_PRECONDITION', `${operation}: card ${card.cardNumber} can be extended from ${opens.toISOString()} (${policy.opensBeforeExpiryDays} days before its certificates expire), not before`);
  }
  if (now > closes) {
    throw new PkiError('FAILED_PRECONDITION', `${operation}: the extension window of card ${card.cardNumber} closed at ${closes.toISOString()} (${policy.closesAfterExpiryYears} years after expiry); a new card is needed`);
  }
  const keyLimit = addYears(card.keysCreatedAt, policy.maxKeyLifetimeYears);
  const wanted = addYears(card.originalNotAfter, policy.extendsByYears);
  const notAfter = new Date(Math.floor(Math.min(wanted.getTime(), keyLimit.getTime()) / 1000) * 1000);
  if (notAfter.getTime() <= now.getTime() + 86_400_000) {
    throw new PkiError('FAILED_PRECONDITION', `${operation}: the keys of card ${card.cardNumber} reach their ${policy.maxKeyLifetimeYears}-year limit; a new card is needed`);
  }
  return notAfter;
}
