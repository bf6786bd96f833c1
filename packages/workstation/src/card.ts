import * as graphene from 'graphene-pk11';
import * as pkcs11 from 'pkcs11js';
import { AsnConvert } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, SubjectPublicKeyInfo } from '@peculiar/asn1-x509';
import { Attributes, CertificationRequest, CertificationRequestInfo } from '@peculiar/asn1-csr';
import { PkiError } from '@pki/kit';
import { buildName, rsaSubjectPublicKeyInfo, toPem } from '@pki/x509';

export type KeySlot = 'SIGN' | 'KEYX';

/** CKA_ID of each of the card's key pairs and of the certificate that goes with it. */
const KEY_ID: Record<KeySlot, Buffer> = { SIGN: Buffer.from([0x01]), KEYX: Buffer.from([0x02]) };
const SHA256_WITH_RSA = '1.2.840.113549.1.1.11';

/**
 * The card in the reader, through its PKCS#11 module (a SoftHSM token in tests and `make up`,
 * never the CA's token). A blank card is an uninitialised token; personalisation initialises it
 * with the card's administrative secret as the SO PIN and the card number as its label. The keys
 * are generated on the card, private, sensitive and never extractable.
 */
export class Card {
  readonly #module: graphene.Module;

  private constructor(module: graphene.Module) {
    this.#module = module;
  }

  static open(modulePath: string): Card {
    let module: graphene.Module;
    try {
      module = graphene.Module.load(modulePath, 'card');
      module.initialize({ flags: pkcs11.CKF_OS_LOCKING_OK });
    } catch (err) {
      throw new PkiError('UNAVAILABLE', `card reader: cannot load the PKCS#11 module ${modulePath} (${(err as Error).message})`, { cause: err });
    }
    return new Card(module);
  }

  close(): void {
    try {
      this.#module.finalize();
    } catch {
      // already finalised
    }
  }

  #slots(): graphene.Slot[] {
    const slots = this.#module.getSlots(true);
    const all: graphene.Slot[] = [];
    for (let i = 0; i < slots.length; i++) all.push(slots.items(i));
    return all;
  }

  /** The slot of the personalised card `cardNumber` (its token label). */
  slotOf(cardNumber: string): graphene.Slot {
    const slot = this.#slots().find((s) => (s.getToken().flags & graphene.TokenFlag.TOKEN_INITIALIZED) !== 0 && s.getToken().label.trim() === cardNumber);
    if (!slot) throw new PkiError('NOT_FOUND', `card reader: card ${cardNumber} is not in the reader`);
    return slot;
  }

  /** The blank card in the reader (an uninitialised token). */
  blankSlot(): graphene.Slot {
    const slot = this.#slots().find((s) => (s.getToken().flags & graphene.TokenFlag.TOKEN_INITIALIZED) === 0);
    if (!slot) throw new PkiError('NOT_FOUND', 'card reader: no blank card in the reader');
    return slot;
  }

  tokenSerial(cardNumber: string): string {
    return this.slotOf(cardNumber).getToken().serialNumber.trim();
  }

  /**
   * Initialises a blank card: SO PIN = the card's administrative secret, label = card number,
   * user PIN = the initial PIN. Returns the token serial.
   */
  initialise(cardNumber: string, adminSecret: string, initialPin: string): string {
    const slot = this.blankSlot();
    slot.initToken(adminSecret, cardNumber);
    const initialised = this.slotOf(cardNumber);
    withSession(initialised, (session) => {
      session.login(adminSecret, graphene.UserType.SO);
      session.initPin(initialPin);
      session.logout();
    });
    return initialised.getToken().serialNumber.trim();
  }

  /** Generates the card's key pair for `slot` on the card; returns its SubjectPublicKeyInfo (DER). */
  generateKeyPair(cardNumber: string, pin: string, slot: KeySlot): Buffer {
    return withUser(this.slotOf(cardNumber), pin, (session) => {
      const id = KEY_ID[slot];
      const label = `${cardNumber} ${slot}`;
      const keys = session.generateKeyPair(
        graphene.KeyGenMechanism.RSA,
        { token: true, private: false, id, label, keyType: graphene.KeyType.RSA, modulusBits: 2048, publicExponent: Buffer.from([1, 0, 1]), verify: true, encrypt: slot === 'KEYX', wrap: false },
        // SIGN signs; KEYX decrypts and unwraps. Neither ever leaves the card.
        { token: true, private: true, id, label, keyType: graphene.KeyType.RSA, sign: slot === 'SIGN', decrypt: slot === 'KEYX', unwrap: slot === 'KEYX', sensitive: true, extractable: false },
      );
      return spkiOf(keys.publicKey);
    });
  }

  publicKey(cardNumber: string, pin: string, slot: KeySlot): Buffer {
    return withUser(this.slotOf(cardNumber), pin, (session) => spkiOf(find(session, graphene.ObjectClass.PUBLIC_KEY, slot, cardNumber).toType<graphene.PublicKey>()));
  }

  /** RSA PKCS#1 v1.5 SHA-256 signature by the card's key `slot`, made on the card. */
  sign(cardNumber: string, pin: string, slot: KeySlot, data: Buffer): Buffer {
    return withUser(this.slotOf(cardNumber), pin, (session) => session.createSign('SHA256_RSA_PKCS', find(session, graphene.ObjectClass.PRIVATE_KEY, slot, cardNumber).toType<graphene.PrivateKey>()).once(data));
  }

  /** A PKCS#10 request for the key `slot`, signed on the card (proof of possession). */
  certificationRequest(cardNumber: string, pin: string, slot: KeySlot): string {
    const spki = this.publicKey(cardNumber, pin, slot);
    const info = new CertificationRequestInfo({
      version: 0,
      // ra builds the subject from its own record; the request's subject only names the card.
      subject: buildName([{ type: 'CN', value: `${cardNumber} ${slot}` }]),
      subjectPKInfo: AsnConvert.parse(spki, SubjectPublicKeyInfo),
      attributes: new Attributes(),
    });
    const infoDer = Buffer.from(AsnConvert.serialize(info));
    const signature = this.sign(cardNumber, pin, slot, infoDer);
    const csr = new CertificationRequest({
      certificationRequestInfo: info,
      signatureAlgorithm: new AlgorithmIdentifier({ algorithm: SHA256_WITH_RSA, parameters: null }),
      signature: new Uint8Array(signature).buffer,
    });
    return toPem(new Uint8Array(AsnConvert.serialize(csr)), 'CERTIFICATE REQUEST');
  }

  /** Writes the certificate of key `slot` to the card, next to its key pair (same CKA_ID). */
  writeCertificate(cardNumber: string, pin: string, slot: KeySlot, certificateDer: Buffer, subjectDer: Buffer): void {
    withUser(this.slotOf(cardNumber), pin, (session) => {
      for (const old of collect(session.find({ class: graphene.ObjectClass.CERTIFICATE, id: KEY_ID[slot] }))) old.destroy();
      session.create({ class: graphene.ObjectClass.CERTIFICATE, certType: graphene.CertificateType.X_509, token: true, private: false, id: KEY_ID[slot], label: `${cardNumber} ${slot}`, subject: subjectDer, value: certificateDer });
    });
  }

  /** The certificate of key `slot` on the card (DER), readable without the PIN. */
  certificate(cardNumber: string, slot: KeySlot): Buffer | undefined {
    return withSession(this.slotOf(cardNumber), (session) => {
      const found = collect(session.find({ class: graphene.ObjectClass.CERTIFICATE, id: KEY_ID[slot] }));
      return found[0] ? (found[0].getAttribute({ value: null }).value as Buffer) : undefined;
    });
  }

  /** The private key attributes that show it cannot leave the card. */
  privateKeyAttributes(cardNumber: string, pin: string, slot: KeySlot): { sensitive: boolean; extractable: boolean; alwaysSensitive: boolean; neverExtractable: boolean; local: boolean } {
    return withUser(this.slotOf(cardNumber), pin, (session) => {
      const key = find(session, graphene.ObjectClass.PRIVATE_KEY, slot, cardNumber);
      const a = key.getAttribute({ sensitive: null, extractable: null, alwaysSensitive: null, neverExtractable: null, local: null });
      return { sensitive: !!a.sensitive, extractable: !!a.extractable, alwaysSensitive: !!a.alwaysSensitive, neverExtractable: !!a.neverExtractable, local: !!a.local };
    });
  }

  /** The citizen changes their PIN (C_SetPIN): the old PIN must be right. */
  changePin(cardNumber: string, oldPin: string, newPin: string): void {
    withUser(this.slotOf(cardNumber), oldPin, (session) => session.setPin(oldPin, newPin));
  }

  /** PIN unlock: the SO (the card's administrative secret) sets a new user PIN (C_InitPIN). */
  resetPin(cardNumber: string, adminSecret: string, newPin: string): void {
    withSession(this.slotOf(cardNumber), (session) => {
      session.login(adminSecret, graphene.UserType.SO);
      try {
        session.initPin(newPin);
      } finally {
        session.logout();
      }
    });
  }

  /** Whether `pin` opens the card (a user login that is immediately closed). */
  pinWorks(cardNumber: string, pin: string): boolean {
    try {
      withUser(this.slotOf(cardNumber), pin, () => undefined);
      return true;
    } catch (err) {
      if (/CKR_PIN_INCORRECT|CKR_PIN_LOCKED/.test((err as Error).message)) return false;
      throw err;
    }
  }
}

function withSession<T>(slot: graphene.Slot, work: (session: graphene.Session) => T): T {
  const session = slot.open(graphene.SessionFlag.SERIAL_SESSION | graphene.SessionFlag.RW_SESSION);
  try {
    return work(session);
  } finally {
    session.close();
  }
}

function withUser<T>(slot: graphene.Slot, pin: string, work: (session: graphene.Session) => T): T {
  return withSession(slot, (session) => {
    session.login(pin, graphene.UserType.USER);
    try {
      return work(session);
    } finally {
      session.logout();
    }
  });
}

function collect(objects: graphene.SessionObjectCollection): graphene.SessionObject[] {
  const all: graphene.SessionObject[] = [];
  for (let i = 0; i < objects.length; i++) all.push(objects.items(i));
  return all;
}

function find(session: graphene.Session, cls: graphene.ObjectClass, slot: KeySlot, cardNumber: string): graphene.SessionObject {
  const found = collect(session.find({ class: cls, id: KEY_ID[slot] }));
  if (!found[0]) throw new PkiError('NOT_FOUND', `card reader: card ${cardNumber} has no ${slot} key`);
  return found[0];
}

function spkiOf(key: graphene.PublicKey): Buffer {
  const { modulus, publicExponent } = key.getAttribute({ modulus: null, publicExponent: null });
  return rsaSubjectPublicKeyInfo(modulus as Buffer, publicExponent as Buffer);
}
