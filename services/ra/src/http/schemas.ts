/**
 * JSON schemas of ra's REST API. Request schemas refuse unknown fields (a request carrying a field
 * we do not expect, say a national ID where none belongs, is refused, not half-processed);
 * response schemas double as an allow-list: fastify serialises only the fields listed here.
 */

export const errorBody = {
  $id: 'Error',
  type: 'object',
  properties: {
    error: { type: 'string', description: 'PkiError code: INVALID_ARGUMENT, NOT_FOUND, CONFLICT, FAILED_PRECONDITION, UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED, UNAVAILABLE, ...' },
    message: { type: 'string', description: 'What was wrong, starting with the operation' },
    details: { type: 'object', additionalProperties: { type: 'string' } },
  },
  required: ['error', 'message'],
} as const;

const isoDate = { type: 'string', format: 'date-time' } as const;

export const certificateSchema = {
  $id: 'Certificate',
  type: 'object',
  properties: {
    serialHex: { type: 'string' },
    issuerKeyId: { type: 'string', description: 'Subject key identifier of the CA generation that signed it (hex)' },
    profile: { type: 'string', enum: ['citizen-signature', 'citizen-encryption', 'citizen-mobile', 'agency-client'] },
    keySlot: { type: 'string', enum: ['SIGN', 'KEYX', 'MOBILE', 'AGENCY'], description: "SIGN and KEYX: the card's key pairs; MOBILE: a phone bound through the card; AGENCY: an application system's credential" },
    status: { type: 'string', enum: ['VALID', 'SUSPENDED', 'REVOKED'] },
    reason: { type: 'string', description: 'RFC 5280 CRLReason name (certificateHold while suspended)' },
    revocationTime: isoDate,
    invalidityDate: isoDate,
    notBefore: isoDate,
    notAfter: isoDate,
    cardNumber: { type: 'string' },
    certificate: { type: 'string', description: 'PEM' },
    chain: { type: 'array', items: { type: 'string' }, description: 'The chain of the generation that signed it, issuing CA first, root last (PEM)' },
  },
  required: ['serialHex', 'issuerKeyId', 'profile', 'keySlot', 'status', 'notBefore', 'notAfter', 'certificate'],
} as const;

export const cardSchema = {
  $id: 'Card',
  type: 'object',
  properties: {
    cardNumber: { type: 'string' },
    status: { type: 'string', enum: ['ISSUED', 'ACTIVE', 'SUSPENDED', 'REVOKED'] },
    subscriberId: { type: 'string', format: 'uuid' },
    subjectSerialNumber: { type: 'string', description: "The 16-digit serialNumber of the certificates' subject (not the national ID)" },
    office: { type: 'string' },
    activatedAt: isoDate,
    extended: { type: 'boolean' },
    certificates: { type: 'array', items: { $ref: 'Certificate#' } },
  },
  required: ['cardNumber', 'status', 'subscriberId', 'subjectSerialNumber', 'office', 'extended', 'certificates'],
} as const;

export const applicationSchema = {
  $id: 'Application',
  type: 'object',
  properties: {
    id: { type: 'string', format: 'uuid' },
    kind: { type: 'string', enum: ['NEW', 'REPLACEMENT', 'REISSUE', 'EXTENSION'] },
    state: { type: 'string', enum: ['SUBMITTED', 'PENDING_APPROVAL', 'ISSUING', 'ISSUED', 'REJECTED', 'FAILED'] },
    subscriberId: { type: 'string', format: 'uuid' },
    cardNumber: { type: 'string' },
    replacesCard: { type: 'string' },
    office: { type: 'string' },
    createdBy: { type: 'string' },
    createdAt: isoDate,
    updatedAt: isoDate,
    reason: { type: 'string' },
    approvalRequestId: { type: 'string', format: 'uuid' },
  },
  required: ['id', 'kind', 'state', 'subscriberId', 'cardNumber', 'office', 'createdBy', 'createdAt', 'updatedAt'],
} as const;

export const approvalSchema = {
  $id: 'ApprovalRequest',
  type: 'object',
  properties: {
    id: { type: 'string', format: 'uuid' },
    operation: { type: 'string', enum: ['card.revoke', 'cards.bulk-revoke', 'application.issue'] },
    state: { type: 'string', enum: ['PENDING', 'APPROVED', 'REJECTED', 'EXPIRED', 'EXECUTED'] },
    office: { type: 'string' },
    requestedBy: { type: 'string' },
    createdAt: isoDate,
    expiresAt: isoDate,
    decidedBy: { type: 'string' },
    decidedAt: isoDate,
    comment: { type: 'string' },
    target: {
      type: 'object',
      properties: {
        cardNumber: { type: 'string' },
        cardNumbers: { type: 'array', items: { type: 'string' } },
        reason: { type: 'string' },
        invalidityDate: isoDate,
        comment: { type: 'string' },
        applicationId: { type: 'string' },
      },
    },
  },
  required: ['id', 'operation', 'state', 'office', 'requestedBy', 'createdAt', 'expiresAt', 'target'],
} as const;

export const issuanceSchema = {
  $id: 'Issuance',
  type: 'object',
  properties: { application: { $ref: 'Application#' }, card: { $ref: 'Card#' } },
  required: ['application', 'card'],
} as const;

export const publishedCertificateSchema = {
  $id: 'PublishedCertificate',
  type: 'object',
  description: 'What the public repository publishes, for subscribers who consented',
  properties: {
    serialHex: { type: 'string' },
    status: { type: 'string', enum: ['VALID', 'SUSPENDED', 'REVOKED', 'EXPIRED'] },
    name: { type: 'string' },
    nationalIdLastFour: { type: 'string' },
    profile: { type: 'string' },
    notBefore: isoDate,
    notAfter: isoDate,
  },
  required: ['serialHex', 'status', 'name', 'nationalIdLastFour', 'profile', 'notBefore', 'notAfter'],
} as const;

export const issuerSchema = {
  $id: 'Issuer',
  type: 'object',
  properties: {
    keyId: { type: 'string' },
    active: { type: 'boolean' },
    certificatePem: { type: 'string' },
    chainPem: { type: 'array', items: { type: 'string' } },
  },
  required: ['keyId', 'active', 'certificatePem', 'chainPem'],
} as const;

export const SHARED_SCHEMAS = [errorBody, certificateSchema, cardSchema, applicationSchema, approvalSchema, issuanceSchema, publishedCertificateSchema, issuerSchema];

export const idempotencyHeader = {
  type: 'object',
  properties: {
    'idempotency-key': { type: 'string', minLength: 8, maxLength: 128, pattern: '^[A-Za-z0-9._:/-]+$', description: 'Required on every mutating call: a retry with the same key returns the first result; the same key with another body is refused' },
  },
  required: ['idempotency-key'],
} as const;

export const pageQuery = {
  pageToken: { type: 'string', maxLength: 512 },
  limit: { type: 'integer', minimum: 1, maximum: 500, default: 50 },
} as const;

export const pageOf = (item: string) => ({
  type: 'object',
  properties: { items: { type: 'array', items: { $ref: `${item}#` } }, nextPageToken: { type: 'string' } },
  required: ['items'],
});

export const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, { $ref: 'Error#' }]));

/** Every answer may be one of these: bad input, no or bad credentials, not allowed, rate-limited, a dependency down. */
export const COMMON_ERRORS = [400, 401, 403, 429, 503];
