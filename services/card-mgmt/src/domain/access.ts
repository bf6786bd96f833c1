import { PkiError } from '@pki/kit';

/**
 * Who may do what in card-mgmt. Officers are ra's officers (one directory, resolved through ra's
 * ResolveOfficer, decision 0023) with ra's roles; what each role may do with physical cards is
 * card-mgmt's own table. Every REST route names its permission and the HTTP layer checks it
 * before the body is read; use cases check the card's office with {@link assertOfficeScope}.
 */
export const OFFICER_ROLES = ['registrar', 'supervisor', 'card-centre', 'auditor'] as const;
export type OfficerRole = (typeof OFFICER_ROLES)[number];

export const PERMISSIONS = [
  'stock.read',
  'stock.receive',
  'stock.assign',
  'stock.transfer',
  'stock.return',
  'stock.destroy',
  'card.report-damaged',
  'card.personalise',
  'card.hand-over',
  'card.activate',
  'card.report-lost',
  'card.unlock',
  'report.read',
] as const;
export type Permission = (typeof PERMISSIONS)[number];

const COUNTER: readonly Permission[] = ['stock.read', 'stock.return', 'card.report-damaged', 'card.personalise', 'card.hand-over', 'card.activate', 'card.report-lost', 'card.unlock', 'report.read'];

export const ROLES: Readonly<Record<OfficerRole, { permissions: readonly Permission[]; allOffices: boolean }>> = {
  registrar: { permissions: COUNTER, allOffices: false },
  supervisor: { permissions: [...COUNTER, 'stock.transfer', 'stock.destroy'], allOffices: false },
  // The card centre (IC 卡卡管中心) receives the supplier's batches, supplies the offices, takes
  // returns back and cuts cards, nationwide.
  'card-centre': { permissions: ['stock.read', 'stock.receive', 'stock.assign', 'stock.transfer', 'stock.return', 'stock.destroy', 'card.report-damaged', 'report.read'], allOffices: true },
  auditor: { permissions: ['stock.read', 'report.read'], allOffices: true },
};

export interface Officer {
  id: string;
  office: string;
  role: OfficerRole;
  /** SHA-256 of the client certificate they presented: how ra is told who acts (decision 0023). */
  certificateSha256: string;
}

export function authorize(officer: Officer, permission: Permission, operation: string): void {
  if (!ROLES[officer.role]?.permissions.includes(permission)) throw new PkiError('PERMISSION_DENIED', `${operation}: role ${officer.role} may not ${permission}`);
}

export function reachesOffice(officer: Officer, office: string): boolean {
  return ROLES[officer.role].allOffices || officer.office === office;
}

/** A card held by another office is not this officer's to touch. */
export function assertOfficeScope(officer: Officer, office: string, operation: string, cardNumber: string): void {
  if (!reachesOffice(officer, office)) {
    throw new PkiError('PERMISSION_DENIED', `${operation}: card ${cardNumber} is in the stock of office ${office}, not of office ${officer.office}`, { details: { cardNumber } });
  }
}

export function officeFilter(officer: Officer): string | undefined {
  return ROLES[officer.role].allOffices ? undefined : officer.office;
}
