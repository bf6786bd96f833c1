/**
 * Personal data at rest: encryption of each field, bound to its subscriber and field, under a key
 * that has an id (so keys rotate: rows carry the id of the key that sealed them), and keyed hashes
 * for lookup by national ID and for referring to a person in audit records. The domain never
 * sees a key.
 */
export interface SealedField {
  keyId: string;
  ciphertext: Buffer;
}

/** `certificate`: a certificate's DER carries the subject's name, so it is sealed at rest like the rest. */
export type PersonalField = 'nationalId' | 'name' | 'birthDate' | 'email' | 'certificate';

export interface PersonalDataVault {
  /** Encrypts under the active key; `context` (the subscriber id) binds it to its row. */
  seal(field: PersonalField, context: string, plaintext: string | Buffer): SealedField;
  /** Decrypts with the key the field was sealed with; fails if the field was moved or altered. */
  open(field: PersonalField, context: string, sealed: SealedField): string;
  openBytes(field: PersonalField, context: string, sealed: SealedField): Buffer;
  /** The lookup hash under the active lookup key (stored with the row). */
  lookupHash(nationalId: string): { keyId: string; hash: Buffer };
  /** The lookup hash under every known lookup key, so rows hashed before a rotation are found. */
  lookupHashes(nationalId: string): Array<{ keyId: string; hash: Buffer }>;
  /**
   * A person's reference in audit records and events: a keyed hash of the national ID under a key
   * that is never rotated, so an auditor holding the key finds all of a person's events, and
   * nobody without it learns anything.
   */
  personReference(nationalId: string): string;
  /** HMAC of a request, for idempotency fingerprints that must not expose secrets in the body. */
  fingerprint(data: string): Buffer;
  readonly activeKeyId: string;
}
