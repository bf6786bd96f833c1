import { parseBirthDate, parseEmail, parseName, parseNationalId, type PersonalDataVault } from '@pki/ra';
import { ExportError, LEGACY_CODE_ALGORITHMS, parseRocDate } from './format';
import { uuidOf } from './uuid';

/**
 * The CPU work of the pre-pass for one batch of subscriber lines: validate every field as ra
 * validates an application, then seal the personal data with ra's keys (four AES-GCM seals and
 * two keyed hashes per subscriber, about 140 µs: the largest share of the pre-pass after the
 * certificates). Pure, so it runs the same in the importer's thread and in the worker threads.
 */
export interface SubscriberLine {
  /** `file:line`, the location every problem is reported at. */
  where: string;
  fields: string[];
}

export interface PreparedSubscribers {
  /** Rows for legacy_import.subscribers after export_id, in column order; the last column is the location. */
  rows: unknown[][];
  /** [legacy subscriber id, subscriber id] per row above. */
  ids: Array<[string, string]>;
  errors: Array<{ location: string; problem: string }>;
}

export class SubscriberBatchPreparer {
  constructor(
    private readonly vault: PersonalDataVault,
    /** Birth dates in the future are refused against this day. */
    private readonly today: Date,
  ) {}

  prepare(lines: SubscriberLine[]): PreparedSubscribers {
    const out: PreparedSubscribers = { rows: [], ids: [], errors: [] };
    for (const { where, fields } of lines) {
      const [legacyId, nationalIdText, nameText, birthText, emailText, algorithm, codeHash, consent, office] = fields as [string, string, string, string, string, string, string, string, string];
      try {
        const nationalId = parseNationalId(nationalIdText, where);
        const personName = parseName(nameText, where);
        const birthIso = parseRocDate(birthText);
        if (!birthIso) throw new ExportError(where, 'birth_date must be a Minguo date yyy/mm/dd');
        const birthDate = parseBirthDate(birthIso, where, this.today);
        const email = emailText ? parseEmail(emailText, where) : undefined;
        if (!(LEGACY_CODE_ALGORITHMS as readonly string[]).includes(algorithm)) throw new ExportError(where, `unknown code_algorithm '${algorithm}' (expected ${LEGACY_CODE_ALGORITHMS.join(' or ')})`);
        const hash = /^([0-9a-f]{2,64}):([0-9a-f]{32,64})$/.exec(codeHash);
        if (!hash) throw new ExportError(where, 'code_hash must be salt:digest in hex');
        if (consent !== 'Y' && consent !== 'N') throw new ExportError(where, 'consent must be Y or N');
        if (!/^[0-9A-Z-]{1,16}$/.test(office)) throw new ExportError(where, 'office must be an office code');
        if (!/^[A-Za-z0-9-]{1,32}$/.test(legacyId)) throw new ExportError(where, 'subscriber_id must be 1-32 letters, digits or -');
        const personRef = this.vault.personReference(nationalId.value);
        const subscriberId = uuidOf(`legacy-subscriber:${personRef}`);
        const lookup = this.vault.lookupHash(nationalId.value);
        const seal = (field: 'nationalId' | 'name' | 'birthDate' | 'email', value: string) => this.vault.seal(field, subscriberId, value).ciphertext;
        out.rows.push([
          subscriberId, personRef, lookup.keyId, lookup.hash, this.vault.activeKeyId, seal('nationalId', nationalId.value), seal('name', personName), seal('birthDate', birthDate),
          email ? seal('email', email) : null, nationalId.kind, nationalId.gender, consent === 'Y', `legacy-${algorithm.toLowerCase()}$${hash[1]}$${hash[2]}`, office, where,
        ]);
        out.ids.push([legacyId, subscriberId]);
      } catch (err) {
        if (err instanceof ExportError) out.errors.push({ location: err.location, problem: err.problem });
        else if (err instanceof Error) out.errors.push({ location: where, problem: err.message.startsWith(where) ? err.message.slice(where.length + 2) : err.message });
        else throw err;
      }
    }
    return out;
  }
}
