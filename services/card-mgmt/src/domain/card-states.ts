import { PkiError } from '@pki/kit';

/**
 * A physical card's states, from the supplier's batch to the card cut (issue 12, decision 0023).
 * Only the transitions in {@link TRANSITIONS} exist; each is recorded with its actor and time and
 * audited by the use case that makes it.
 */
export const CARD_STATES = [
  'IN_STOCK', // at the card centre, as delivered
  'ASSIGNED', // in an office's stock, blank
  'PERSONALISING', // reserved at a counter while ra issues its certificates
  'PERSONALISED', // keys and certificates on the chip, not yet handed over
  'ISSUED', // handed to the citizen
  'ACTIVATED', // the citizen confirmed receipt and changed the initial PIN
  'SUSPENDED',
  'REVOKED',
  'LOST',
  'DAMAGED',
  'DESTROYED', // card cut: final
  'REPLACED', // superseded by a new card: final until cut
] as const;
export type CardState = (typeof CARD_STATES)[number];

export const CARD_ACTIONS = [
  'receive',
  'assign',
  'transfer',
  'return',
  'reserve',
  'release',
  'personalise',
  'hand-over',
  'activate',
  'suspend',
  'resume',
  'report-lost',
  'report-damaged',
  'revoke',
  'replace',
  'destroy',
] as const;
export type CardAction = (typeof CARD_ACTIONS)[number];

/** States a card may be in before the action, and the state after it. */
export const TRANSITIONS: Readonly<Record<Exclude<CardAction, 'receive'>, { from: readonly CardState[]; to: CardState }>> = {
  assign: { from: ['IN_STOCK'], to: 'ASSIGNED' },
  transfer: { from: ['ASSIGNED'], to: 'ASSIGNED' },
  return: { from: ['ASSIGNED'], to: 'IN_STOCK' },
  reserve: { from: ['ASSIGNED'], to: 'PERSONALISING' },
  release: { from: ['PERSONALISING'], to: 'ASSIGNED' },
  personalise: { from: ['PERSONALISING'], to: 'PERSONALISED' },
  'hand-over': { from: ['PERSONALISED'], to: 'ISSUED' },
  activate: { from: ['ISSUED'], to: 'ACTIVATED' },
  suspend: { from: ['ISSUED', 'ACTIVATED'], to: 'SUSPENDED' },
  resume: { from: ['SUSPENDED'], to: 'ACTIVATED' },
  'report-lost': { from: ['ISSUED', 'ACTIVATED', 'SUSPENDED'], to: 'LOST' },
  // Spoiled in stock or at the counter, or broken in the citizen's hands.
  'report-damaged': { from: ['IN_STOCK', 'ASSIGNED', 'PERSONALISING', 'PERSONALISED', 'ISSUED', 'ACTIVATED', 'SUSPENDED'], to: 'DAMAGED' },
  revoke: { from: ['PERSONALISED', 'ISSUED', 'ACTIVATED', 'SUSPENDED', 'LOST', 'DAMAGED'], to: 'REVOKED' },
  // REVOKED too: ra's supersession of the old certificates may reach this service (status events)
  // before the replacement's own record does.
  replace: { from: ['ISSUED', 'ACTIVATED', 'SUSPENDED', 'LOST', 'DAMAGED', 'REVOKED'], to: 'REPLACED' },
  // A card is cut when it can never be used again; a blank card only when it is withdrawn.
  destroy: { from: ['IN_STOCK', 'ASSIGNED', 'DAMAGED', 'REVOKED', 'REPLACED'], to: 'DESTROYED' },
};

/** States in which a card counts as blank stock on hand. */
export const ON_HAND_STATES: readonly CardState[] = ['IN_STOCK', 'ASSIGNED', 'PERSONALISING'];
/** States before hand-over: a card damaged in one of these was spoiled by the programme, not the citizen. */
export const PRE_ISSUE_STATES: readonly CardState[] = ['IN_STOCK', 'ASSIGNED', 'PERSONALISING', 'PERSONALISED'];

/** The state after `action`, or FAILED_PRECONDITION naming the card, its state and the states that allow it. */
export function stateAfter(cardNumber: string, state: CardState, action: Exclude<CardAction, 'receive'>): CardState {
  const rule = TRANSITIONS[action];
  if (!rule.from.includes(state)) {
    throw new PkiError('FAILED_PRECONDITION', `${action} card: card ${cardNumber} is ${state}; ${action} needs a card that is ${rule.from.join(' or ')}`, {
      details: { cardNumber, state },
    });
  }
  return rule.to;
}
