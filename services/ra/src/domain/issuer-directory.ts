import { X509Certificate } from 'node:crypto';
import { PkiError } from '@pki/kit';
import { revokedSerialsOfCrl, toPem } from '@pki/x509';
import type { CertificateSigner, IssuerGeneration } from '../ports/certificate-signer';
import type { TrustMaterial } from './certificate-validation';

export interface IssuerView {
  keyId: string;
  active: boolean;
  certificatePem: string;
  /** The chain of this generation, issuing CA first, root last (PEM). */
  chainPem: string[];
}

/**
 * The CA generations and their chains, as ca-signer reports them. Generations share one issuer
 * DN (domain.md), so a certificate's chain is found by its issuer key id, never by name. Cached:
 * generations change only at a key ceremony. The cache is refreshed after `ttlMs`, when a key id
 * is unknown, and when ca-signer has just signed under a generation the cache thinks inactive
 * (a ceremony activated it).
 */
export class IssuerDirectory {
  readonly #signer: Pick<CertificateSigner, 'issuers'>;
  readonly #ttlMs: number;
  #cache: Promise<Map<string, IssuerView>> | undefined;
  #trust: Promise<TrustMaterial> | undefined;
  #loadedAt = 0;

  constructor(signer: Pick<CertificateSigner, 'issuers'>, ttlMs = 300_000) {
    this.#signer = signer;
    this.#ttlMs = ttlMs;
  }

  async all(): Promise<IssuerView[]> {
    return [...(await this.#load(false)).values()];
  }

  /** The chain of the generation that signed a certificate; `justIssued`: ca-signer signed under it a moment ago. */
  async chainOf(issuerKeyId: string, options: { justIssued?: boolean } = {}): Promise<string[]> {
    let view = (await this.#load(false)).get(issuerKeyId);
    if (!view || (options.justIssued && !view.active)) view = (await this.#load(true)).get(issuerKeyId);
    if (!view) throw new PkiError('INTERNAL', `certificate chain: ca-signer reports no generation with key id ${issuerKeyId}`);
    return view.chainPem;
  }

  /**
   * What the certificate validation API trusts: the roots ca-signer reports (the anchors), every
   * issuing generation (intermediates the caller need not send), and the CA certificates each
   * root revoked (its ARL). Refreshed with the directory.
   */
  async trustMaterial(): Promise<TrustMaterial> {
    await this.#load(false);
    return this.#trust!;
  }

  #load(refresh: boolean): Promise<Map<string, IssuerView>> {
    if (refresh || !this.#cache || Date.now() - this.#loadedAt > this.#ttlMs) {
      this.#loadedAt = Date.now();
      const fetched = this.#signer.issuers();
      const trust = fetched.then(({ issuers, chain, roots }) => {
        const revokedCaSerials = new Map<string, ReadonlySet<string>>();
        for (const root of roots ?? []) {
          if (root.authorityRevocationListDer) revokedCaSerials.set(root.keyId, new Set(revokedSerialsOfCrl(root.authorityRevocationListDer, 'read root ARL')));
        }
        // Only the roots are anchors: the chain above the generations, minus any that is itself issued.
        const anchors = chain.filter((der) => {
          const c = new X509Certificate(der);
          return c.checkIssued(c);
        });
        return { roots: anchors, generations: issuers.map((i) => ({ keyId: i.keyId, certificateDer: i.certificateDer, active: i.active })), revokedCaSerials };
      });
      const loading = fetched.then(({ issuers, chain }) => {
        const roots = chain.map((der) => new X509Certificate(der));
        return new Map(
          issuers.map((i: IssuerGeneration) => {
            // The root that signed this generation: matched by key identifier and signature,
            // since every root and generation may share a name.
            const issuing = new X509Certificate(i.certificateDer);
            const root = roots.find((r) => issuing.checkIssued(r) && issuing.verify(r.publicKey));
            const pem = toPem(i.certificateDer, 'CERTIFICATE');
            return [i.keyId, { keyId: i.keyId, active: i.active, certificatePem: pem, chainPem: root ? [pem, toPem(root.raw, 'CERTIFICATE')] : [pem] }];
          }),
        );
      });
      // A failed load is not cached: the next caller asks again.
      loading.catch(() => {
        if (this.#cache === loading) this.#cache = undefined;
      });
      trust.catch(() => undefined);
      this.#cache = loading;
      this.#trust = trust;
    }
    return this.#cache;
  }
}
