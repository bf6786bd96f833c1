import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { TLSSocket } from 'node:tls';
import { PkiError, type Clock } from '@pki/kit';

/**
 * People and external systems (registration officers, auditors, the household-registration
 * system) authenticate to the REST APIs with TLS client certificates issued by a CA the deployment
 * configures (the officer CA), and are then looked up by the SHA-256 of their certificate in the
 * serving service's own registry, where their role lives. This package holds the part every such
 * API shares: the TLS options, the certificate checks and the cached registry lookup; the
 * registry and the roles stay with each service (docs/decisions/0018).
 */

/** HTTPS server options: ask for a client certificate, but let the request through to answer a clear 401. */
export function clientCertificateTlsOptions(files: { certFile: string; keyFile: string; clientCaFiles: readonly string[] }) {
  return {
    cert: readFileSync(files.certFile),
    key: readFileSync(files.keyFile),
    ca: files.clientCaFiles.map((f) => readFileSync(f)),
    requestCert: true,
    // Checked per request instead (socket.authorized), so that a caller without a valid
    // certificate gets a 401 that says why rather than a failed handshake.
    rejectUnauthorized: false,
  };
}

export interface PresentedCertificate {
  /** Lower-case hex SHA-256 of the certificate's DER: the registry key. */
  sha256: string;
  der: Buffer;
  subject: string;
  notAfter: Date;
}

/**
 * The client certificate of a request, once the TLS layer has checked that it chains to a
 * configured client CA and it is within its validity. UNAUTHENTICATED, saying which, otherwise.
 */
export function presentedCertificate(socket: TLSSocket | undefined, operation: string, clock: Clock): PresentedCertificate {
  const peer = socket && typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate(false) : undefined;
  if (!peer || !peer.raw) throw new PkiError('UNAUTHENTICATED', `${operation}: this operation needs a client certificate (mutual TLS)`);
  if (!socket!.authorized) throw new PkiError('UNAUTHENTICATED', `${operation}: the client certificate is not issued by a certificate authority this service trusts`);
  const certificate = new X509Certificate(peer.raw);
  const now = clock.now().getTime();
  if (certificate.validToDate.getTime() < now) throw new PkiError('UNAUTHENTICATED', `${operation}: the client certificate has expired`);
  if (certificate.validFromDate.getTime() > now) throw new PkiError('UNAUTHENTICATED', `${operation}: the client certificate is not valid yet`);
  return { sha256: certificateSha256(peer.raw), der: peer.raw, subject: certificate.subject, notAfter: certificate.validToDate };
}

export function certificateSha256(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex');
}

/** A registered principal: active or not, and whatever the service records about it. */
export interface RegisteredPrincipal {
  id: string;
  active: boolean;
}

/**
 * Resolves a request's client certificate to a principal registered in the service's directory.
 * Lookups are cached for `cacheMs`, so a disabled principal is locked out within that time
 * without a database round trip on every request.
 */
export class ClientCertificateAuthenticator<P extends RegisteredPrincipal> {
  readonly #lookup: (certificateSha256: string) => Promise<P | undefined>;
  readonly #clock: Clock;
  readonly #cacheMs: number;
  readonly #cache = new Map<string, { at: number; principal: P | undefined }>();

  constructor(options: { lookup: (certificateSha256: string) => Promise<P | undefined>; clock: Clock; cacheMs?: number }) {
    this.#lookup = options.lookup;
    this.#clock = options.clock;
    this.#cacheMs = options.cacheMs ?? 10_000;
  }

  async authenticate(socket: TLSSocket | undefined, operation: string): Promise<{ certificate: PresentedCertificate; principal: P }> {
    const certificate = presentedCertificate(socket, operation, this.#clock);
    const principal = await this.#cached(certificate.sha256);
    if (!principal || !principal.active) throw new PkiError('UNAUTHENTICATED', `${operation}: the client certificate is not registered to an active principal of this service`);
    return { certificate, principal };
  }

  async #cached(sha256: string): Promise<P | undefined> {
    const now = this.#clock.now().getTime();
    const hit = this.#cache.get(sha256);
    if (hit && now - hit.at < this.#cacheMs) return hit.principal;
    const principal = await this.#lookup(sha256);
    if (this.#cache.size > 10_000) this.#cache.clear();
    this.#cache.set(sha256, { at: now, principal });
    return principal;
  }
}
