import { PkiError } from '@pki/kit';
import type { Page, PageRequest } from '../ports/registry';
import { assertOfficeScope, authorize, officeFilter, type Principal } from './access';
import type { ApplicationState, CertificateRecord } from './model';
import type { CertificateStatus } from './lifecycle';
import type { RaDeps } from './shared';
import { applicationView, cardView, certificateView, type ApplicationView, type CardView, type CertificateView } from './views';
import type { IssuerView } from './issuer-directory';

/** What the public repository shows of a certificate whose subscriber consented to publication. */
export interface PublishedCertificate {
  serialHex: string;
  status: 'VALID' | 'SUSPENDED' | 'REVOKED' | 'EXPIRED';
  name: string;
  nationalIdLastFour: string;
  profile: string;
  notBefore: string;
  notAfter: string;
}

const SERIAL = /^[0-9a-f]{1,40}$/;

/** Reads: officers' queries (scoped to their office unless their role says otherwise) and the public repository. */
export class Queries {
  readonly #deps: RaDeps;

  constructor(deps: RaDeps) {
    this.#deps = deps;
  }

  async application(principal: Principal, id: string): Promise<ApplicationView> {
    const operation = 'get application';
    authorize(principal, 'application.read', operation);
    const application = await this.#deps.registry.reads.getApplication(id);
    if (!application) throw new PkiError('NOT_FOUND', `${operation}: no application ${id}`);
    assertOfficeScope(principal, application.office, operation, `application ${id}`);
    return applicationView(application);
  }

  async applications(principal: Principal, filter: { state?: ApplicationState; subscriberId?: string }, page: PageRequest): Promise<Page<ApplicationView>> {
    authorize(principal, 'application.read', 'list applications');
    const office = officeFilter(principal);
    const result = await this.#deps.registry.reads.listApplications({ ...filter, ...(office ? { office } : {}) }, page);
    return { items: result.items.map((a) => applicationView(a)), ...(result.nextPageToken ? { nextPageToken: result.nextPageToken } : {}) };
  }

  /** A card by its number, from any office: a citizen may walk into any counter. */
  async card(principal: Principal, cardNumber: string): Promise<CardView> {
    const operation = 'get card';
    authorize(principal, 'card.read', operation);
    const card = await this.#deps.registry.reads.getCard(cardNumber);
    if (!card) throw new PkiError('NOT_FOUND', `${operation}: no card ${cardNumber}`);
    const certificates = await this.#deps.registry.reads.certificatesOfCard(cardNumber);
    return cardView(card, certificates, await this.#chains(certificates));
  }

  async certificate(principal: Principal, serialHex: string): Promise<CertificateView> {
    const operation = 'get certificate';
    authorize(principal, 'certificate.read', operation);
    const serial = checkSerial(serialHex, operation);
    const certificate = await this.#deps.registry.reads.getCertificate(serial);
    if (!certificate) throw new PkiError('NOT_FOUND', `${operation}: no certificate with serial ${serial}`);
    return certificateView(certificate, await this.#deps.issuers.chainOf(certificate.issuerKeyId));
  }

  async certificates(principal: Principal, filter: { cardNumber?: string; status?: CertificateStatus }, page: PageRequest): Promise<Page<CertificateView>> {
    authorize(principal, 'certificate.read', 'list certificates');
    const office = officeFilter(principal);
    const result = await this.#deps.registry.reads.listCertificates({ ...filter, ...(office ? { office } : {}) }, page);
    return { items: result.items.map((c) => certificateView(c)), ...(result.nextPageToken ? { nextPageToken: result.nextPageToken } : {}) };
  }

  /** Public repository: one certificate, if its subscriber consented to publication; else not found. */
  async publishedCertificate(serialHex: string): Promise<PublishedCertificate> {
    const operation = 'public repository';
    const serial = checkSerial(serialHex, operation);
    const certificate = await this.#deps.registry.reads.getCertificate(serial);
    const published = certificate && (await this.#publish([certificate]));
    // Not consenting and not existing look alike: the repository reveals nothing about either.
    if (!published || published.length === 0) throw new PkiError('NOT_FOUND', `${operation}: no published certificate with serial ${serial}`);
    return published[0]!;
  }

  async publishedCertificatesOfCard(cardNumber: string): Promise<PublishedCertificate[]> {
    const certificates = await this.#deps.registry.reads.certificatesOfCard(cardNumber);
    const published = await this.#publish(certificates);
    if (published.length === 0) throw new PkiError('NOT_FOUND', `public repository: no published certificates for card ${cardNumber}`);
    return published;
  }

  async issuers(): Promise<IssuerView[]> {
    return this.#deps.issuers.all();
  }

  async #publish(certificates: CertificateRecord[]): Promise<PublishedCertificate[]> {
    const out: PublishedCertificate[] = [];
    const now = this.#deps.clock.now();
    for (const c of certificates) {
      if (!c.cardNumber) continue;
      const card = await this.#deps.registry.reads.getCard(c.cardNumber);
      const subscriber = card && (await this.#deps.registry.reads.getSubscriber(card.subscriberId));
      if (!subscriber?.publicationConsent) continue;
      const open = (field: 'name' | 'nationalId', ciphertext: Buffer) => this.#deps.vault.open(field, subscriber.id, { keyId: subscriber.sealed.keyId, ciphertext });
      out.push({
        serialHex: c.serialHex,
        status: c.status === 'VALID' && c.notAfter <= now ? 'EXPIRED' : c.status,
        name: open('name', subscriber.sealed.name),
        nationalIdLastFour: open('nationalId', subscriber.sealed.nationalId).slice(-4),
        profile: c.profile,
        notBefore: c.notBefore.toISOString(),
        notAfter: c.notAfter.toISOString(),
      });
    }
    return out;
  }

  async #chains(certificates: readonly CertificateRecord[]): Promise<Map<string, string[]>> {
    const chains = new Map<string, string[]>();
    for (const keyId of new Set(certificates.map((c) => c.issuerKeyId))) chains.set(keyId, await this.#deps.issuers.chainOf(keyId));
    return chains;
  }
}

function checkSerial(serialHex: string, operation: string): string {
  const serial = String(serialHex).toLowerCase();
  if (!SERIAL.test(serial)) throw new PkiError('INVALID_ARGUMENT', `${operation}: serial must be hex of at most 20 octets`);
  return serial;
}
