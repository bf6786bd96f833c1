import { PkiError } from '@pki/kit';
import type { CardStore } from '../ports/card-store';
import { authorize, officeFilter, type Officer } from './access';
import { ON_HAND_STATES, PRE_ISSUE_STATES } from './card-states';
import type { TransitionRecord } from './model';

export interface OfficeDay {
  office: string;
  /** Blank cards on hand when the day began. */
  openingOnHand: number;
  /** Blank cards that came into the office's stock (delivery, assignment, transfer in, return). */
  received: number;
  /** Blank cards that left for another office or the card centre. */
  transferredOut: number;
  /** Cards personalised: each carries two certificates issued by ra. */
  personalised: number;
  /** Cards handed to citizens. */
  issued: number;
  /** Cards damaged before hand-over (spoiled by the programme). */
  spoiled: number;
  /** Cards reported damaged after hand-over. */
  damagedInUse: number;
  destroyed: number;
  /** Blank cards on hand when the day ended. */
  closingOnHand: number;
  /** opening + in - out = closing, card by card, from the transitions. */
  balanced: boolean;
  /** The certificates of the cards personalised that day (serials, SIGN and KEYX), to tie to ra's issuance. */
  certificatesIssued: string[];
}

export interface DailyReport {
  date: string;
  /** The day as the programme counts it (UTC offset of its time zone). */
  from: string;
  to: string;
  offices: OfficeDay[];
}

const DATE = /^\d{4}-\d{2}-\d{2}$/;

/**
 * The daily reconciliation (issue 12): per office, what came in, what went out and why, and what
 * is on hand, computed from the card transitions alone; an auditor ties `personalised` to the
 * certificates ra issued through `certificatesIssued`.
 */
export class Reconciliation {
  constructor(
    private readonly store: CardStore,
    /** Minutes east of UTC of the programme's day (Taiwan: +480). */
    private readonly utcOffsetMinutes: number,
  ) {}

  async dailyReport(officer: Officer, date: unknown, officeInput?: string): Promise<DailyReport> {
    const operation = 'daily reconciliation';
    authorize(officer, 'report.read', operation);
    if (typeof date !== 'string' || !DATE.test(date) || Number.isNaN(Date.parse(`${date}T00:00:00Z`)) || new Date(`${date}T00:00:00Z`).toISOString().slice(0, 10) !== date) {
      throw new PkiError('INVALID_ARGUMENT', `${operation}: date must be a calendar date YYYY-MM-DD`);
    }
    const scope = officeFilter(officer);
    if (officeInput !== undefined && scope !== undefined && officeInput !== scope) throw new PkiError('PERMISSION_DENIED', `${operation}: office ${officeInput} is not office ${officer.office}`);
    const office = officeInput ?? scope;
    const from = new Date(Date.parse(`${date}T00:00:00Z`) - this.utcOffsetMinutes * 60_000);
    const to = new Date(from.getTime() + 24 * 3600_000);
    const [opening, closing, transitions] = await Promise.all([this.store.reads.positionsAt(from), this.store.reads.positionsAt(to), this.store.reads.transitionsBetween(from, to)]);

    const days = new Map<string, OfficeDay>();
    const day = (o: string): OfficeDay => {
      let d = days.get(o);
      if (!d) {
        d = { office: o, openingOnHand: 0, received: 0, transferredOut: 0, personalised: 0, issued: 0, spoiled: 0, damagedInUse: 0, destroyed: 0, closingOnHand: 0, balanced: true, certificatesIssued: [] };
        days.set(o, d);
      }
      return d;
    };
    for (const p of opening) if (ON_HAND_STATES.includes(p.state)) day(p.office).openingOnHand++;
    for (const p of closing) if (ON_HAND_STATES.includes(p.state)) day(p.office).closingOnHand++;
    const onHandIn = new Map<string, number>();
    const onHandOut = new Map<string, number>();
    const personalisedCards: Array<{ office: string; cardNumber: string }> = [];
    for (const t of transitions) {
      count(t, day, onHandIn, onHandOut);
      if (t.action === 'personalise') personalisedCards.push({ office: t.toOffice, cardNumber: t.cardNumber });
    }
    for (const { office: o, cardNumber } of personalisedCards) {
      const card = await this.store.reads.getCard(cardNumber);
      for (const serial of [card?.signingSerial, card?.encryptionSerial]) if (serial) day(o).certificatesIssued.push(serial);
    }
    for (const d of days.values()) {
      d.balanced = d.openingOnHand + (onHandIn.get(d.office) ?? 0) - (onHandOut.get(d.office) ?? 0) === d.closingOnHand;
      d.certificatesIssued.sort();
    }
    const offices = [...days.values()].filter((d) => office === undefined || d.office === office).sort((a, b) => a.office.localeCompare(b.office));
    if (office !== undefined && offices.length === 0) offices.push(day(office));
    return { date, from: from.toISOString(), to: to.toISOString(), offices };
  }
}

function count(t: TransitionRecord, day: (office: string) => OfficeDay, onHandIn: Map<string, number>, onHandOut: Map<string, number>): void {
  const wasOnHand = t.fromState !== undefined && t.fromOffice !== undefined && ON_HAND_STATES.includes(t.fromState);
  const isOnHand = ON_HAND_STATES.includes(t.toState);
  const moved = t.fromOffice !== t.toOffice;
  if (isOnHand && (!wasOnHand || moved)) {
    onHandIn.set(t.toOffice, (onHandIn.get(t.toOffice) ?? 0) + 1);
    day(t.toOffice).received++;
  }
  if (wasOnHand && (!isOnHand || moved)) {
    onHandOut.set(t.fromOffice!, (onHandOut.get(t.fromOffice!) ?? 0) + 1);
    if (moved) day(t.fromOffice!).transferredOut++;
  }
  switch (t.action) {
    case 'personalise':
      day(t.toOffice).personalised++;
      break;
    case 'hand-over':
      day(t.toOffice).issued++;
      break;
    case 'report-damaged':
      if (t.fromState && PRE_ISSUE_STATES.includes(t.fromState)) day(t.toOffice).spoiled++;
      else day(t.toOffice).damagedInUse++;
      break;
    case 'destroy':
      day(t.toOffice).destroyed++;
      break;
    default:
      break;
  }
}
