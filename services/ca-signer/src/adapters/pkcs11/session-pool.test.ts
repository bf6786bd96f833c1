import { PkiError } from '@pki/kit';
import { SessionPool } from './session-pool';

describe('SessionPool', () => {
  it('lends each session to one operation at a time and queues the rest in order', async () => {
    const pool = new SessionPool(['s1', 's2']);
    const busy = new Set<string>();
    const order: number[] = [];
    let maxInUse = 0;
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        pool.use('test', async (session) => {
          expect(busy.has(session)).toBe(false);
          busy.add(session);
          maxInUse = Math.max(maxInUse, busy.size);
          await new Promise((r) => setTimeout(r, 1));
          busy.delete(session);
          order.push(i);
        }),
      ),
    );
    expect(maxInUse).toBe(2);
    expect(order.slice(0, 2).sort()).toEqual([0, 1]);
    expect(pool.stats).toEqual({ size: 2, idle: 2, inUse: 0, waiting: 0 });
  });

  it('returns the session when the operation throws', async () => {
    const pool = new SessionPool(['s1']);
    await expect(pool.use('test', async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await pool.use('test', async (s) => s)).toBe('s1');
  });

  it('on close fails waiters with UNAVAILABLE, lets in-flight work finish, then hands the sessions back', async () => {
    const pool = new SessionPool(['s1']);
    let finish!: () => void;
    const inFlight = pool.use('sign', () => new Promise<string>((resolve) => (finish = () => resolve('done'))));
    const waiting = pool.use('sign', async () => 'never');
    const closing = pool.close();
    await expect(waiting).rejects.toThrow(new PkiError('UNAVAILABLE', 'wait for HSM session: key manager closed'));
    finish();
    expect(await inFlight).toBe('done');
    expect(await closing).toEqual(['s1']);
    await expect(pool.use('sign', async () => 'late')).rejects.toThrow('sign: key manager closed');
  });

  it('never lends a dead session again, and fails everyone with UNAVAILABLE once none is left', async () => {
    const discarded: string[] = [];
    const pool = new SessionPool(['s1', 's2'], { isBroken: (err) => err instanceof PkiError && err.code === 'UNAVAILABLE', discard: (s) => discarded.push(s) });
    const dead = new PkiError('UNAVAILABLE', 'sign: HSM unavailable: CKR_SESSION_HANDLE_INVALID in C_Sign');
    // A caller's own mistake does not kill the session.
    await expect(pool.use('sign', async () => Promise.reject(new PkiError('INVALID_ARGUMENT', 'sign: bad')))).rejects.toThrow('sign: bad');
    expect(pool.stats).toEqual({ size: 2, idle: 2, inUse: 0, waiting: 0 });

    let first = '';
    await expect(
      pool.use('sign', async (s) => {
        first = s;
        throw dead;
      }),
    ).rejects.toBe(dead);
    expect(discarded).toEqual([first]);
    expect(pool.stats).toEqual({ size: 1, idle: 1, inUse: 0, waiting: 0 });
    const survivor = first === 's1' ? 's2' : 's1';
    expect(await pool.use('sign', async (s) => s)).toBe(survivor);

    // The last session dies while someone waits for it: the waiter must not hang.
    let fail!: () => void;
    const last = pool.use('sign', () => new Promise((_, reject) => (fail = () => reject(dead))));
    const waiting = pool.use('sign', async () => 'never');
    await new Promise(setImmediate); // the first operation has its session now
    fail();
    await expect(last).rejects.toBe(dead);
    await expect(waiting).rejects.toThrow(new PkiError('UNAVAILABLE', 'wait for HSM session: HSM unavailable: every HSM session has failed'));
    await expect(pool.use('sign', async () => 'later')).rejects.toThrow('sign: HSM unavailable: every HSM session has failed');
    expect(discarded).toEqual([first, survivor]);
    expect(await pool.close()).toEqual([]);
  });
});
