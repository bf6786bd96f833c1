import { createLogger, FixedClock } from '@pki/kit';
import { MTLS, SIGNED_REQUEST, SYSTEM_URL, UsageTally } from '../http/usage-tally';
import type { UsageWindow } from '../ports/usage-publishing';
import { UsageMeter } from './usage-meter';

// The counting and windowing logic alone; the serving threads, the outbox and the transports are
// exercised against the real components in test/usage-metering.test.ts.

const logger = createLogger({ service: 'test', level: 'silent' });

describe('UsageTally', () => {
  it('counts per caller and identification, anonymous apart, and starts afresh after take', () => {
    const tally = new UsageTally(16);
    tally.identified(SYSTEM_URL, 'a');
    tally.identified(SYSTEM_URL, 'a');
    tally.identified(MTLS, 'a'); // the same key under another identification is another caller
    tally.identified(SIGNED_REQUEST, 'k:01');
    tally.anonymous();
    const first = tally.take();
    expect(first.entries.sort()).toEqual([[MTLS, 'a', 1], [SIGNED_REQUEST, 'k:01', 1], [SYSTEM_URL, 'a', 2]].sort());
    expect(first).toMatchObject({ anonymous: 1, overflow: 0 });
    expect(tally.take()).toEqual({ entries: [], anonymous: 0, overflow: 0 });
    tally.identified(SYSTEM_URL, 'a');
    expect(tally.take().entries).toEqual([[SYSTEM_URL, 'a', 1]]);
  });

  it('counts callers beyond its capacity as overflow, so totals stay exact', () => {
    const tally = new UsageTally(16);
    for (let i = 0; i < 20; i++) tally.identified(SYSTEM_URL, `s${i}`);
    tally.identified(SYSTEM_URL, 's0'); // already in the table: still its own
    const taken = tally.take();
    expect(taken.entries.length).toBe(16);
    expect(taken.overflow).toBe(4);
    expect(taken.entries.reduce((n, e) => n + e[2], 0) + taken.overflow).toBe(21);
  });
});

describe('UsageMeter', () => {
  function meterWith(sink: (w: UsageWindow) => Promise<void>, clock = new FixedClock(new Date('2026-01-01T00:00:00Z'))) {
    return { clock, meter: new UsageMeter({ instance: 'pod-1-x', windowMs: 60_000, collect: async () => undefined, sink: { publish: sink }, clock, logger }) };
  }

  it('merges the threads\' tallies, numbers windows from 1, and starts each where the last ended', async () => {
    const published: UsageWindow[] = [];
    const { clock, meter } = meterWith(async (w) => void published.push(w));
    meter.add({ entries: [[SYSTEM_URL, 'a', 2]], anonymous: 3, overflow: 0 });
    meter.add({ entries: [[SYSTEM_URL, 'a', 1], [MTLS, 'k:1', 5]], anonymous: 1, overflow: 2 });
    clock.advance(60_000);
    await meter.closeWindow();
    clock.advance(60_000);
    await meter.closeWindow();
    expect(published.map((w) => w.sequence)).toEqual([1, 2]);
    expect(published[0]!.entries.sort((a, b) => a.kind.localeCompare(b.kind))).toEqual([
      { kind: 'mtls', callerKey: 'k:1', requests: 5 },
      { kind: 'systemUrl', callerKey: 'a', requests: 3 },
    ]);
    expect(published[0]).toMatchObject({ instance: 'pod-1-x', anonymous: 4, overflow: 2, start: new Date('2026-01-01T00:00:00Z'), end: new Date('2026-01-01T00:01:00Z') });
    // An empty window is published too: the consumer sees the sequence without gaps.
    expect(published[1]).toMatchObject({ entries: [], anonymous: 0, overflow: 0, start: new Date('2026-01-01T00:01:00Z'), end: new Date('2026-01-01T00:02:00Z') });
  });

  it('keeps windows the sink refuses, in order, and records them with their own numbers when it accepts again', async () => {
    const published: UsageWindow[] = [];
    let down = true;
    const { meter } = meterWith(async (w) => {
      if (down) throw new Error('database unavailable');
      published.push(w);
    });
    meter.add({ entries: [], anonymous: 1, overflow: 0 });
    await meter.closeWindow();
    meter.add({ entries: [], anonymous: 2, overflow: 0 });
    await meter.closeWindow();
    expect(meter.pending).toBe(2);
    down = false;
    meter.add({ entries: [], anonymous: 3, overflow: 0 });
    await meter.stop();
    expect(published.map((w) => [w.sequence, w.anonymous])).toEqual([
      [1, 1],
      [2, 2],
      [3, 3],
    ]);
    expect(meter.pending).toBe(0);
  });

  it('closes the open window on stop with the counts handed over last, once', async () => {
    const published: UsageWindow[] = [];
    const { meter } = meterWith(async (w) => void published.push(w));
    meter.start();
    meter.add({ entries: [[SIGNED_REQUEST, 'k:2', 7]], anonymous: 0, overflow: 0 });
    await meter.stop();
    await meter.stop();
    expect(published).toHaveLength(1);
    expect(published[0]!.entries).toEqual([{ kind: 'signedRequest', callerKey: 'k:2', requests: 7 }]);
  });
});
