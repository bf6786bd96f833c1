import { create, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { eventsV1 } from '@pki/proto';
import { planAppend, recordedKey, type IncomingEvent } from './ingest';
import { sha256Hex } from './record';

const now = new Date('2026-12-04T12:00:00Z');
const payload = (n: number) =>
  toBinary(
    eventsV1.AuditEventSchema,
    create(eventsV1.AuditEventSchema, {
      eventId: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
      action: 'certificate.revoke',
      outcome: eventsV1.AuditOutcome.SUCCESS,
      actor: { type: eventsV1.AuditActorType.OFFICER, id: 'officer-1', office: '63000000', role: 'registrar' },
      objects: [{ type: 'certificate', id: 'ab' }],
      attributes: { z: '1', a: '2' },
      occurredAt: timestampFromDate(now),
    }),
  );
const event = (producer: string, seq: number, body = payload(seq)): IncomingEvent => ({ producer, seq, payload: body, committedAt: now, source: `t/0/${seq}` });

describe('planAppend: the sequence rules', () => {
  it('appends the next events in order, with a fixed key order and sorted attributes', () => {
    const plan = planAppend({ startIndex: 10, heads: new Map([['ra.audit', 4]]), recorded: new Map(), events: [event('ra.audit', 5), event('ra.audit', 6)], now });
    expect(plan.leaves.map((l) => [l.leaf.index, l.leaf.type])).toEqual([[10, 'event'], [11, 'event']]);
    expect(plan.leaves[0]!.bytes.toString()).toMatch(/^\{"type":"event","index":10,"producer":"ra.audit","seq":5,"eventId":"[^"]+","occurredAt":"2026-12-04T12:00:00.000Z","action":"certificate.revoke","outcome":"SUCCESS","actor":\{"type":"OFFICER","id":"officer-1","office":"63000000","role":"registrar"\},"objects":\[\{"type":"certificate","id":"ab"\}\],"reason":"","attributes":\{"a":"2","z":"1"\},/);
    expect(plan.heads.get('ra.audit')?.seq).toBe(6);
    expect(plan.breaks).toEqual([]);
  });

  it('skips a redelivery with the same content, and records a conflicting one as a break', () => {
    const recorded = new Map([[recordedKey('ra.audit', 3), sha256Hex(payload(3))]]);
    const plan = planAppend({ startIndex: 0, heads: new Map([['ra.audit', 3]]), recorded, events: [event('ra.audit', 3), event('ra.audit', 3, payload(99))], now });
    expect(plan.duplicates).toBe(1);
    expect(plan.breaks.map((b) => [b.kind, b.receivedSeq])).toEqual([['sequence-conflict', 3]]);
    expect(plan.heads.size).toBe(0);
  });

  it('records a gap before the event that follows it, and a late event inside the gap as out of order', () => {
    const plan = planAppend({ startIndex: 0, heads: new Map([['ca-signer', 1]]), recorded: new Map(), events: [event('ca-signer', 5), event('ca-signer', 3), event('ca-signer', 6)], now });
    expect(plan.leaves.map((l) => (l.leaf.type === 'break' ? `${l.leaf.kind} ${l.leaf.expectedSeq}-${l.leaf.receivedSeq}` : `event ${l.leaf.seq}`))).toEqual([
      'sequence-gap 2-5',
      'event 5',
      'sequence-out-of-order 6-3',
      'event 6',
    ]);
  });

  it('counts an undecodable payload as its sequence number used, and a message without headers as unattributable', () => {
    const plan = planAppend({
      startIndex: 0,
      heads: new Map(),
      recorded: new Map(),
      events: [event('card-mgmt', 1, new Uint8Array([0xff, 0xff, 0xff])), event('card-mgmt', 2), { payload: new Uint8Array([1]), committedAt: now, source: 'pki.audit.v1/0/77' }],
      now,
    });
    expect(plan.leaves.map((l) => (l.leaf.type === 'break' ? l.leaf.kind : 'event'))).toEqual(['undecodable-event', 'event', 'unattributable-message']);
    expect(plan.heads.get('card-mgmt')?.seq).toBe(2);
    expect(plan.breaks[1]!.detail).toContain('pki.audit.v1/0/77');
  });
});
