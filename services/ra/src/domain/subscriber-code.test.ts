import { DEFAULT_SUBSCRIBER_CODE_POLICY as policy, afterWrongCode, assertNotLocked, checkNewSubscriberCode, type CodeAttemptState } from './subscriber-code';

describe('subscriber code', () => {
  it('asks for 8-64 characters mixing letters and digits, and never echoes the code', () => {
    expect(checkNewSubscriberCode('abcd1234', policy, 'r')).toBe('abcd1234');
    expect(checkNewSubscriberCode('王小明的代碼2024', policy, 'r')).toBe('王小明的代碼2024');
    for (const bad of ['short1', 'onlyletters', '1234567890', 'abc\u0000defg123']) {
      expect(() => checkNewSubscriberCode(bad, policy, 'register')).toThrow(/^register: subscriberCode must|may not/);
      try {
        checkNewSubscriberCode(bad, policy, 'register');
      } catch (err) {
        expect((err as Error).message).not.toContain(bad);
      }
    }
  });

  it('locks after five wrong codes, for a period that doubles each time up to a day', () => {
    const now = new Date('2026-12-04T10:00:00Z');
    let state: CodeAttemptState = { failures: 0, lockouts: 0, lockedUntil: undefined };
    const locks: number[] = [];
    for (let round = 0; round < 9; round++) {
      for (let i = 0; i < policy.maxFailures; i++) {
        const next = afterWrongCode(state, now, policy);
        if (i < policy.maxFailures - 1) expect(next.locked).toBeUndefined();
        state = next;
      }
      locks.push((state.lockedUntil!.getTime() - now.getTime()) / 60_000);
    }
    expect(locks).toEqual([15, 30, 60, 120, 240, 480, 960, 1440, 1440]);
    expect(() => assertNotLocked(state, now, 'suspend')).toThrow(/locked after repeated wrong subscriber codes until/);
    expect(() => assertNotLocked(state, new Date(now.getTime() + 1440 * 60_000 + 1), 'suspend')).not.toThrow();
  });
});
