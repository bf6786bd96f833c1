import { authorize, officeFilter, reachesOffice, ROLES, type Principal } from './access';

const registrar: Principal = { kind: 'officer', id: 'r1', office: '63000000', role: 'registrar' };
const auditor: Principal = { kind: 'officer', id: 'a1', office: 'HQ', role: 'auditor' };

describe('roles and permissions', () => {
  it('lets a registrar suspend but not submit household events or bulk-revoke', () => {
    expect(() => authorize(registrar, 'card.suspend', 'suspend card')).not.toThrow();
    expect(() => authorize(registrar, 'cards.bulk-revoke', 'bulk revoke')).toThrow('bulk revoke: role registrar may not cards.bulk-revoke');
    expect(() => authorize(registrar, 'household-event.submit', 'household event')).toThrow(/PERMISSION|may not/);
  });
  it('keeps the auditor read-only', () => {
    for (const permission of ROLES.auditor.permissions) expect(permission).toMatch(/\.(read|read-self)$/);
    expect(() => authorize(auditor, 'card.revoke', 'revoke card')).toThrow('revoke card: role auditor may not card.revoke');
  });
  it('scopes queries to the officer\'s office unless the role reaches every office', () => {
    expect(officeFilter(registrar)).toBe('63000000');
    expect(officeFilter(auditor)).toBeUndefined();
    expect(reachesOffice(registrar, '64000000')).toBe(false);
    expect(reachesOffice(auditor, '64000000')).toBe(true);
  });
  it('gives the public only the repository', () => {
    expect(() => authorize({ kind: 'public' }, 'public.read', 'x')).not.toThrow();
    expect(() => authorize({ kind: 'public' }, 'card.read', 'get card')).toThrow('get card: public may not card.read');
  });
});
