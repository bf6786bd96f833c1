import type { PeerCertificate } from 'node:tls';

const SPIFFE_PREFIX = 'spiffe://';

/**
 * The caller identity of an mTLS peer: the spiffe:// URI in its certificate's subjectAltName
 * (issued by the internal service CA). Returns undefined when the certificate carries none, which
 * callers treat as "not allowed".
 */
export function spiffeIdOf(cert: Pick<PeerCertificate, 'subjectaltname'> | undefined): string | undefined {
  const san = cert?.subjectaltname;
  if (!san) return undefined;
  const uris = san
    .split(/,\s*/)
    .filter((entry) => entry.startsWith('URI:'))
    .map((entry) => entry.slice(4))
    .filter((uri) => uri.startsWith(SPIFFE_PREFIX));
  // A certificate with two identities is ambiguous: refuse rather than pick one.
  return uris.length === 1 ? uris[0] : undefined;
}

/** Allow-list of one RPC: exact identities, or '*' for any caller with a valid service certificate. */
export type AllowList = readonly string[];

export function isAllowed(allow: AllowList, identity: string | undefined): boolean {
  if (identity === undefined) return false;
  return allow.includes('*') || allow.includes(identity);
}
