import { createHash, X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { PkiError } from '@pki/kit';
import type { Principal } from '../domain/access';
import type { PrincipalRecord } from '../domain/model';

/** Who may call a route: staff and systems by client certificate, citizens and the public without one. */
export type RouteAccess = 'officer' | 'household-system' | 'agency-system' | 'citizen' | 'public';

export interface PrincipalDirectory {
  principalByCertificate(certificateSha256: string): Promise<PrincipalRecord | undefined>;
}

/**
 * The agency-system access kind (issue 13): resolves a client certificate's SHA-256 to a
 * registered application system, or refuses with the agency APIs' error codes (AgencySystems).
 */
export interface AgencySystemDirectory {
  authenticate(certificateSha256: string, operation: string): Promise<Extract<Principal, { kind: 'agency-system' }>>;
}

/**
 * Resolves the caller of a request from its TLS client certificate: the certificate must chain to
 * a client CA the deployment configured (the TLS layer checks that) and be registered to an
 * active principal by the SHA-256 of its DER (ra's principals table, managed with ra's CLI).
 * Lookups are cached for a short while, so that a disabled officer is locked out within
 * `cacheMs` without a database round trip on every request.
 */
export class CertificateAuthenticator {
  readonly #directory: PrincipalDirectory;
  readonly #cacheMs: number;
  readonly #cache = new Map<string, { at: number; principal: PrincipalRecord | undefined }>();
  /** A connection's client certificate does not change: its fingerprint and expiry are worked out once per connection. */
  readonly #peers = new WeakMap<TLSSocket, { fingerprint: string; notAfter: Date } | null>();

  readonly #agencies: AgencySystemDirectory | undefined;

  constructor(directory: PrincipalDirectory, cacheMs = 10_000, agencies?: AgencySystemDirectory) {
    this.#directory = directory;
    this.#cacheMs = cacheMs;
    this.#agencies = agencies;
  }

  async authenticate(socket: TLSSocket | undefined, access: RouteAccess, operation: string): Promise<Principal> {
    if (access === 'public') return { kind: 'public' };
    if (access === 'citizen') return { kind: 'citizen' };
    const peer = socket ? this.#peer(socket) : null;
    if (!peer) throw new PkiError('UNAUTHENTICATED', `${operation}: this operation needs a client certificate (mutual TLS)`, access === 'agency-system' ? { details: { code: 'UNKNOWN_CLIENT' } } : {});
    if (access === 'agency-system') {
      // Agency credentials are issued by our own CA and pinned (the registry holds the exact
      // certificate), so the TLS layer's list of client CAs does not decide; the registry does,
      // on every request (a revoked or expired certificate, a suspended system: refused at once).
      if (!this.#agencies) throw new PkiError('UNAVAILABLE', `${operation}: agency systems are not configured`);
      return this.#agencies.authenticate(peer.fingerprint, operation);
    }
    if (!socket!.authorized) {
      throw new PkiError('UNAUTHENTICATED', `${operation}: the client certificate is not issued by a certificate authority this service trusts`);
    }
    if (peer.notAfter.getTime() < Date.now()) throw new PkiError('UNAUTHENTICATED', `${operation}: the client certificate has expired`);
    const record = await this.#lookup(peer.fingerprint);
    if (!record || record.status !== 'ACTIVE') throw new PkiError('UNAUTHENTICATED', `${operation}: the client certificate is not registered to an active officer or system`);
    if (record.kind === 'officer' && access === 'officer') return { kind: 'officer', id: record.id, office: record.office!, role: record.role! };
    if (record.kind === 'household-system' && access === 'household-system') return { kind: 'household-system', id: record.id };
    throw new PkiError('PERMISSION_DENIED', `${operation}: ${record.kind === 'officer' ? 'an officer' : 'the household-registration system'} may not call this operation`);
  }

  #peer(socket: TLSSocket): { fingerprint: string; notAfter: Date } | null {
    let peer = this.#peers.get(socket);
    if (peer === undefined) {
      const certificate = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate(false) : undefined;
      peer = certificate?.raw ? { fingerprint: createHash('sha256').update(certificate.raw).digest('hex'), notAfter: new X509Certificate(certificate.raw).validToDate } : null;
      this.#peers.set(socket, peer);
    }
    return peer;
  }

  async #lookup(fingerprint: string): Promise<PrincipalRecord | undefined> {
    const hit = this.#cache.get(fingerprint);
    const now = Date.now();
    if (hit && now - hit.at < this.#cacheMs) return hit.principal;
    const principal = await this.#directory.principalByCertificate(fingerprint);
    if (this.#cache.size > 10_000) this.#cache.clear();
    this.#cache.set(fingerprint, { at: now, principal });
    return principal;
  }
}
