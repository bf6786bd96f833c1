import { PkiError } from '@pki/kit';

/**
 * Who may do what, in one place. Every REST route names the permission it needs; the HTTP layer
 * authenticates the caller and calls {@link authorize} before anything else runs, and the use
 * cases call {@link assertOfficeScope} where the object's office matters.
 */

export const OFFICER_ROLES = ['registrar', 'supervisor', 'card-centre', 'auditor'] as const;
export type OfficerRole = (typeof OFFICER_ROLES)[number];

export const PERMISSIONS = [
  'officer.read-self',
  'subscriber.register',
  'subscriber.read',
  'application.create',
  'application.read',
  'application.approve',
  'application.reject',
  'card.read',
  'card.activate',
  'card.suspend',
  'card.resume',
  'card.revoke',
  'card.extend',
  'cards.bulk-revoke',
  'certificate.read',
  'approval.read',
  'approval.decide',
  'household-event.submit',
  'self-service',
  'public.read',
  // Agency application systems (issue 13): the registry, the statistics, and what a system may call.
  'agency.read',
  'agency.manage',
  'statistics.read',
  'identity.confirm',
  'certificate.validate',
] as const;
export type Permission = (typeof PERMISSIONS)[number];

const REGISTRAR: readonly Permission[] = [
  'officer.read-self', 'subscriber.register', 'subscriber.read', 'application.create', 'application.read', 'application.approve',
  'application.reject', 'card.read', 'card.activate', 'card.suspend', 'card.resume', 'card.revoke', 'card.extend', 'certificate.read',
  'approval.read', 'approval.decide',
];

/** Roles and their operations. `allOffices`: queries are not limited to the officer's own office. */
export const ROLES: Readonly<Record<OfficerRole, { permissions: readonly Permission[]; allOffices: boolean; description: string }>> = {
  registrar: { permissions: REGISTRAR, allOffices: false, description: 'registration counter: enrols citizens, issues, suspends, resumes, revokes' },
  supervisor: {
    permissions: [...REGISTRAR, 'cards.bulk-revoke', 'agency.read', 'agency.manage', 'statistics.read'],
    allOffices: false,
    description: "counter supervisor: everything a registrar does, bulk operations, and the programme's agency systems and statistics",
  },
  'card-centre': {
    permissions: ['officer.read-self', 'card.read', 'certificate.read', 'application.read', 'card.revoke', 'cards.bulk-revoke', 'approval.read', 'approval.decide'],
    allOffices: true,
    description: 'card centre (IC 卡卡管中心): card problems nationwide, e.g. revoking a batch of defective cards',
  },
  auditor: {
    permissions: ['officer.read-self', 'card.read', 'certificate.read', 'application.read', 'approval.read', 'agency.read', 'statistics.read'],
    allOffices: true,
    description: 'auditor: reads everything, changes nothing',
  },
};

export type Principal =
  /** Staff authenticated by a client certificate registered in ra. */
  | { kind: 'officer'; id: string; office: string; role: OfficerRole }
  /** The household-registration system, authenticated by its client certificate. */
  | { kind: 'household-system'; id: string }
  /**
   * A registered agency application system (issue 13): its mTLS client certificate is a current
   * credential (issued by our CA under agencyClient, not revoked, not expired) of an ACTIVE system.
   */
  | { kind: 'agency-system'; id: string; sector: 'GOVERNMENT' | 'PUBLIC'; credential: { certificateSha256: string; serialHex: string; issuerKeyId: string }; rateLimitPerMinute: number }
  /** A citizen acting on one card; the subscriber code is checked by the use case itself. */
  | { kind: 'citizen' }
  /** Anyone: only the public repository. */
  | { kind: 'public' };

export function permissionsOf(principal: Principal): readonly Permission[] {
  switch (principal.kind) {
    case 'officer':
      return ROLES[principal.role].permissions;
    case 'household-system':
      return ['household-event.submit'];
    case 'agency-system':
      return ['identity.confirm', 'certificate.validate'];
    case 'citizen':
      return ['self-service', 'public.read'];
    case 'public':
      return ['public.read'];
  }
}

/** The one authorisation check: refuses (PERMISSION_DENIED) a caller whose role lacks the permission. */
export function authorize(principal: Principal, permission: Permission, operation: string): void {
  if (!permissionsOf(principal).includes(permission)) {
    const who = principal.kind === 'officer' ? `role ${principal.role}` : principal.kind;
    throw new PkiError('PERMISSION_DENIED', `${operation}: ${who} may not ${permission}`);
  }
}

/** Whether the officer's queries and actions reach objects of `office`. */
export function reachesOffice(principal: Principal, office: string): boolean {
  return principal.kind === 'officer' && (ROLES[principal.role].allOffices || principal.office === office);
}

export function assertOfficeScope(principal: Principal, office: string, operation: string, what: string): void {
  if (principal.kind === 'officer' && !reachesOffice(principal, office)) {
    throw new PkiError('PERMISSION_DENIED', `${operation}: ${what} belongs to office ${office}, not to office ${principal.office}`);
  }
}

/** The office filter for a list query: undefined means every office. */
export function officeFilter(principal: Principal): string | undefined {
  if (principal.kind !== 'officer') return undefined;
  return ROLES[principal.role].allOffices ? undefined : principal.office;
}
