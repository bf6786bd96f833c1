import { verify as verifySignature, X509Certificate } from 'node:crypto';
import { HASH_SIZE } from '@pki/merkle';

/** The format ca-signer writes (services/ca-signer/src/domain/audit-checkpoint.ts). */
export const CHECKPOINT_FORMAT = 'pki-audit-checkpoint v2';
/** RFC 9336 id-kp-documentSigning: the EKU of the audit checkpoint key's certificate. */
export const ID_KP_DOCUMENT_SIGNING = '1.3.6.1.5.5.7.3.36';

export interface CheckpointBody {
  origin: string;
  treeSize: number;
  rootHash: Buffer;
  signedAt: Date;
  signerKeyId: string;
  /** Last sequence number per producer at treeSize. */
  producerHeads: Map<string, number>;
}

/** A signed checkpoint as stored, served and exported. */
export interface SignedCheckpoint {
  /** The signed bytes. */
  checkpoint: Buffer;
  signature: Buffer;
  signatureAlgorithm: string;
  signerCertificate: Buffer;
}

export class CheckpointError extends Error {
  override readonly name = 'CheckpointError';
}

/** Parses the signed text strictly: every line in its place, nothing else. */
export function parseCheckpoint(bytes: Uint8Array): CheckpointBody {
  const text = Buffer.from(bytes).toString('utf8');
  if (!text.endsWith('\n')) throw new CheckpointError('checkpoint: does not end with a newline');
  const lines = text.slice(0, -1).split('\n');
  const [origin, size, root, format, signedAtLine, signerLine, ...producers] = lines;
  if (!origin || !/^[A-Za-z0-9][A-Za-z0-9._/:-]{0,199}$/.test(origin)) throw new CheckpointError('checkpoint: bad origin line');
  if (!size || !/^(0|[1-9][0-9]{0,15})$/.test(size) || !Number.isSafeInteger(Number(size))) throw new CheckpointError('checkpoint: bad tree size line');
  const rootHash = Buffer.from(root ?? '', 'base64');
  if (rootHash.length !== HASH_SIZE || rootHash.toString('base64') !== root) throw new CheckpointError('checkpoint: bad root hash line');
  if (format !== CHECKPOINT_FORMAT) throw new CheckpointError(`checkpoint: format line is not '${CHECKPOINT_FORMAT}'`);
  const signedAt = /^signed-at (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)$/.exec(signedAtLine ?? '');
  if (!signedAt || Number.isNaN(Date.parse(signedAt[1]!))) throw new CheckpointError('checkpoint: bad signed-at line');
  const signer = /^signer-key-id ([0-9a-f]{2,128})$/.exec(signerLine ?? '');
  if (!signer) throw new CheckpointError('checkpoint: bad signer-key-id line');
  const producerHeads = new Map<string, number>();
  let previous = '';
  for (const line of producers) {
    const m = /^producer ([a-z0-9][a-z0-9._-]{0,99}) ([1-9][0-9]{0,15})$/.exec(line);
    if (!m) throw new CheckpointError(`checkpoint: bad producer line '${line.slice(0, 120)}'`);
    if (m[1]! <= previous) throw new CheckpointError('checkpoint: producer lines are not sorted and unique');
    previous = m[1]!;
    producerHeads.set(m[1]!, Number(m[2]));
  }
  return { origin, treeSize: Number(size), rootHash, signedAt: new Date(signedAt[1]!), signerKeyId: signer[1]!, producerHeads };
}

/**
 * Checks a checkpoint's signature and that its signer is the CA's audit checkpoint key: the
 * signer certificate must be issued by one of the given CA certificates (which must chain to a
 * self-signed one among them), carry id-kp-documentSigning, name the key id the text names, and
 * be valid when the checkpoint was signed. Throws CheckpointError saying what failed.
 */
export function verifyCheckpointSignature(signed: SignedCheckpoint, trustAnchors: readonly X509Certificate[]): CheckpointBody {
  const body = parseCheckpoint(signed.checkpoint);
  let signer: X509Certificate;
  try {
    signer = new X509Certificate(signed.signerCertificate);
  } catch {
    throw new CheckpointError('checkpoint: the signer certificate is not a certificate');
  }
  const issuer = trustAnchors.find((ca) => signer.checkIssued(ca) && signer.verify(ca.publicKey));
  if (!issuer) throw new CheckpointError('checkpoint: the signer certificate is not issued by any of the given CA certificates');
  if (!chainsToSelfSigned(issuer, trustAnchors)) throw new CheckpointError('checkpoint: the issuing CA does not chain to a root among the given CA certificates');
  if (!(signer.keyUsage ?? []).includes(ID_KP_DOCUMENT_SIGNING)) throw new CheckpointError('checkpoint: the signer certificate is not an audit checkpoint key (no id-kp-documentSigning)');
  const ski = subjectKeyId(signer);
  if (ski !== undefined && ski !== body.signerKeyId) throw new CheckpointError('checkpoint: the signer-key-id line does not name the signer certificate');
  if (body.signedAt < signer.validFromDate || body.signedAt > signer.validToDate) throw new CheckpointError('checkpoint: signed outside the signer certificate validity');
  const digest = signed.signatureAlgorithm === 'sha256WithRSAEncryption' || signed.signatureAlgorithm === 'ecdsa-with-SHA256' ? 'sha256' : undefined;
  if (!digest) throw new CheckpointError(`checkpoint: unknown signature algorithm '${signed.signatureAlgorithm.slice(0, 40)}'`);
  const expectedKeyType = signed.signatureAlgorithm === 'sha256WithRSAEncryption' ? 'rsa' : 'ec';
  if (signer.publicKey.asymmetricKeyType !== expectedKeyType) throw new CheckpointError('checkpoint: the signature algorithm does not match the signer key');
  if (!verifySignature(digest, signed.checkpoint, signer.publicKey, signed.signature)) throw new CheckpointError('checkpoint: the signature does not verify');
  return body;
}

function chainsToSelfSigned(ca: X509Certificate, anchors: readonly X509Certificate[], depth = 0): boolean {
  if (depth > 8) return false;
  if (ca.checkIssued(ca) && ca.verify(ca.publicKey)) return true;
  const parent = anchors.find((p) => p !== ca && ca.checkIssued(p) && ca.verify(p.publicKey));
  return parent !== undefined && chainsToSelfSigned(parent, anchors, depth + 1);
}

/** The subjectKeyIdentifier in hex, from the certificate's text form (Node has no direct accessor). */
function subjectKeyId(cert: X509Certificate): string | undefined {
  const der = cert.raw;
  // id-ce-subjectKeyIdentifier 2.5.29.14, then OCTET STRING { OCTET STRING keyid }
  const oid = Buffer.from([0x06, 0x03, 0x55, 0x1d, 0x0e]);
  const at = der.indexOf(oid);
  if (at < 0) return undefined;
  let p = at + oid.length;
  if (der[p] === 0x01) p += 3; // critical BOOLEAN
  if (der[p] !== 0x04) return undefined;
  p += 2;
  if (der[p] !== 0x04) return undefined;
  const len = der[p + 1]!;
  return der.subarray(p + 2, p + 2 + len).toString('hex');
}

/** Reads PEM files holding one or more certificates. */
export function certificatesFromPem(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new X509Certificate(b));
}
