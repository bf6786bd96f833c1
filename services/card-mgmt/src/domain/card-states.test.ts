import { CARD_ACTIONS, CARD_STATES, TRANSITIONS, stateAfter, type CardState } from './card-states';

describe('card transitions', () => {
  it.each<[CardState, Exclude<(typeof CARD_ACTIONS)[number], 'receive'>, CardState | undefined]>([
    ['IN_STOCK', 'assign', 'ASSIGNED'],
    ['ASSIGNED', 'assign', undefined],
    ['ASSIGNED', 'reserve', 'PERSONALISING'],
    ['PERSONALISING', 'release', 'ASSIGNED'],
    ['PERSONALISING', 'personalise', 'PERSONALISED'],
    ['PERSONALISED', 'hand-over', 'ISSUED'],
    ['ASSIGNED', 'hand-over', undefined],
    ['ISSUED', 'activate', 'ACTIVATED'],
    ['ACTIVATED', 'report-lost', 'LOST'],
    ['LOST', 'replace', 'REPLACED'],
    ['REPLACED', 'destroy', 'DESTROYED'],
    ['ACTIVATED', 'destroy', undefined],
    ['DESTROYED', 'assign', undefined],
    ['DESTROYED', 'destroy', undefined],
    ['IN_STOCK', 'personalise', undefined],
  ])('%s -> %s gives %s', (from, action, to) => {
    if (to) expect(stateAfter('TEST0001', from, action)).toBe(to);
    else expect(() => stateAfter('TEST0001', from, action)).toThrow(new RegExp(`^${action} card: card TEST0001 is ${from}; ${action} needs a card that is`));
  });

  it('leaves DESTROYED final and names only known states', () => {
    for (const [action, rule] of Object.entries(TRANSITIONS)) {
      expect({ action, fromDestroyed: rule.from.includes('DESTROYED') }).toEqual({ action, fromDestroyed: false });
      for (const s of [...rule.from, rule.to]) expect(CARD_STATES).toContain(s);
    }
  });
});
