import type { AgencyStore, SystemSector, UsageChannel } from '../ports/agency';
import { authorize, type Principal } from './access';

export interface SystemUsageView {
  systemId: string;
  agency: string;
  name: string;
  sector: SystemSector;
  /** Uses per month, January first (all channels). */
  months: number[];
  byChannel: Record<UsageChannel, number>;
  total: number;
}

export interface YearUsageView {
  year: number;
  systems: SystemUsageView[];
  /** The year's row of the programme's table. */
  totals: { systems: { government: number; public: number }; uses: { government: number; public: number } };
  months: Array<{ month: number; government: number; public: number }>;
  unattributedOcsp: Array<{ month: number; identification: string; requests: number }>;
}

export interface YearlyTableRow {
  year: number;
  systemsGovernment: number;
  systemsPublic: number;
  usesGovernment: number;
  usesPublic: number;
  unattributedOcsp: number;
}

export interface GenderRow {
  year: number;
  male: number;
  female: number;
  total: number;
}

const CHANNELS: readonly UsageChannel[] = ['identity-confirmation', 'certificate-validation', 'ocsp'];

/**
 * The programme's statistics (domain.md): uses per application system per month and year, split
 * government / public in the layout of its yearly table, and cards issued per year by gender as
 * open data. Only counts leave here; gender comes from the ID at registration and is stored alone.
 */
export class Statistics {
  readonly #store: AgencyStore;

  constructor(store: AgencyStore) {
    this.#store = store;
  }

  async usageOfYear(principal: Principal, year: number): Promise<YearUsageView> {
    authorize(principal, 'statistics.read', 'usage statistics');
    const rows = await this.#store.usageOfYear(year);
    const systems = new Map<string, SystemUsageView>();
    const months = Array.from({ length: 12 }, (_, i) => ({ month: i + 1, government: 0, public: 0 }));
    for (const r of rows) {
      let s = systems.get(r.systemId);
      if (!s) {
        s = { systemId: r.systemId, agency: r.agency, name: r.name, sector: r.sector, months: new Array<number>(12).fill(0), byChannel: { 'identity-confirmation': 0, 'certificate-validation': 0, ocsp: 0 }, total: 0 };
        systems.set(r.systemId, s);
      }
      s.months[r.month - 1]! += r.uses;
      s.byChannel[r.channel] += r.uses;
      s.total += r.uses;
      months[r.month - 1]![r.sector === 'GOVERNMENT' ? 'government' : 'public'] += r.uses;
    }
    const list = [...systems.values()];
    const inUse = list.filter((s) => s.total > 0);
    return {
      year,
      systems: list,
      totals: {
        systems: { government: inUse.filter((s) => s.sector === 'GOVERNMENT').length, public: inUse.filter((s) => s.sector === 'PUBLIC').length },
        uses: { government: months.reduce((a, m) => a + m.government, 0), public: months.reduce((a, m) => a + m.public, 0) },
      },
      months,
      unattributedOcsp: await this.#store.unattributedOfYear(year),
    };
  }

  /** The yearly table, open data: systems in use (with at least one use that year) and uses, government / public. */
  async yearlyTable(): Promise<YearlyTableRow[]> {
    return (await this.#store.yearlyUsage()).map((r) => ({
      year: r.year,
      systemsGovernment: r.systems.GOVERNMENT,
      systemsPublic: r.systems.PUBLIC,
      usesGovernment: r.uses.GOVERNMENT,
      usesPublic: r.uses.PUBLIC,
      unattributedOcsp: r.unattributedOcsp,
    }));
  }

  async issuanceByGender(): Promise<GenderRow[]> {
    return (await this.#store.issuanceByGender()).map((r) => ({ ...r, total: r.male + r.female }));
  }
}

/** RFC 4180 CSV: a header line and CRLF-terminated rows; fields quoted when they need it. */
export function toCsv(header: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number>>): string {
  const field = (v: string | number) => {
    const s = String(v);
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [header, ...rows].map((r) => r.map(field).join(',')).join('\r\n') + '\r\n';
}

export { CHANNELS as USAGE_CHANNELS };
