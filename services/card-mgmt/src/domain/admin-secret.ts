import { createCipheriv, createDecipheriv, createHmac, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import { PkiError } from '@pki/kit';

/**
 * The card's administrative secret (the token's SO PIN, the unblock key): unique per card, never
 * stored and never sent in clear (decision 0024).
 *
 * - It is derived when needed, HMAC-SHA-256 under card-mgmt's admin-secret key over the card
 *   number, so no table of secrets exists to leak. The supplier initialises each chip with a
 *   transport secret derived the same way under the transport key agreed with it; personalisation
 *   replaces the transport secret with the administrative secret.
 * - It leaves card-mgmt only inside an authenticated operation on that card (personalisation,
 *   PIN unlock), encrypted to a one-time X25519 key the workstation generated for that call:
 *   ECDH, HKDF-SHA-256 bound to the card number, AES-256-GCM. TLS protects it on the wire, and
 *   this keeps it out of any proxy, log or replay of the response body.
 */
export function deriveAdminSecret(key: Buffer, cardNumber: string): string {
  return derive(key, 'card-admin-secret', cardNumber);
}

/** The SO PIN a chip leaves the supplier with, until personalisation replaces it. */
export function deriveTransportSecret(key: Buffer, cardNumber: string): string {
  return derive(key, 'card-transport-secret', cardNumber);
}

function derive(key: Buffer, purpose: string, cardNumber: string): string {
  const mac = createHmac('sha256', key).update(`${purpose}\0${cardNumber}`).digest();
  // 20 characters from a 32-letter alphabet: 100 bits, and printable for any PKCS#11 stack.
  const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';
  return Array.from(mac.subarray(0, 20), (b) => alphabet[b & 31]).join('');
}

export interface WrappedSecret {
  /** The server's one-time X25519 public key (SPKI DER, base64). */
  serverPublicKey: string;
  /** AES-GCM nonce, ciphertext and tag (base64). */
  nonce: string;
  ciphertext: string;
}

const INFO = 'citizen-pki card admin secret v1';

function keyOf(shared: Buffer, cardNumber: string): Buffer {
  return Buffer.from(hkdfSync('sha256', shared, Buffer.alloc(0), `${INFO}\0${cardNumber}`, 32));
}

/** Parses the workstation's one-time key; INVALID_ARGUMENT unless it is an X25519 SPKI in base64. */
export function parseTransportKey(base64: unknown, operation: string): KeyObject {
  if (typeof base64 !== 'string' || !/^[A-Za-z0-9+/=]{40,120}$/.test(base64)) throw new PkiError('INVALID_ARGUMENT', `${operation}: transportKey must be an X25519 public key (SPKI DER, base64)`);
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(base64, 'base64'), format: 'der', type: 'spki' });
  } catch (err) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: transportKey is not a public key (SPKI DER, base64)`, { cause: err });
  }
  if (key.asymmetricKeyType !== 'x25519') throw new PkiError('INVALID_ARGUMENT', `${operation}: transportKey must be an X25519 key, not ${key.asymmetricKeyType}`);
  return key;
}

export function wrapSecret(secret: string, recipient: KeyObject, cardNumber: string): WrappedSecret {
  const ephemeral = generateKeyPairSync('x25519');
  const key = keyOf(diffieHellman({ privateKey: ephemeral.privateKey, publicKey: recipient }), cardNumber);
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(Buffer.from(cardNumber));
  const ciphertext = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final(), cipher.getAuthTag()]);
  return { serverPublicKey: ephemeral.publicKey.export({ format: 'der', type: 'spki' }).toString('base64'), nonce: nonce.toString('base64'), ciphertext: ciphertext.toString('base64') };
}

/** The workstation's side: opens a secret wrapped to its one-time key for this card. */
export function unwrapSecret(wrapped: WrappedSecret, privateKey: KeyObject, cardNumber: string): string {
  const server = createPublicKey({ key: Buffer.from(wrapped.serverPublicKey, 'base64'), format: 'der', type: 'spki' });
  const key = keyOf(diffieHellman({ privateKey, publicKey: server }), cardNumber);
  const data = Buffer.from(wrapped.ciphertext, 'base64');
  const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(wrapped.nonce, 'base64'));
  decipher.setAAD(Buffer.from(cardNumber));
  decipher.setAuthTag(data.subarray(data.length - 16));
  return Buffer.concat([decipher.update(data.subarray(0, data.length - 16)), decipher.final()]).toString('utf8');
}
