import { createHmac } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import rateLimit from '@fastify/rate-limit';
import { PkiError, canonicalJson, httpStatusOf, systemClock, type Logger } from '@pki/kit';
import { ClientCertificateAuthenticator } from '@pki/client-auth';
import { authorize, type Officer, type Permission } from '../domain/access';
import type { CardStock, Command } from '../domain/card-stock';
import type { Counter } from '../domain/counter';
import type { Reconciliation } from '../domain/reconciliation';
import type { MobileCredentials } from '../domain/mobile';
import { CARD_STATES } from '../domain/card-states';

declare module 'fastify' {
  interface FastifyRequest {
    officer: Officer;
  }
  interface FastifyContextConfig {
    /** card-mgmt's own permission names (ra declares `permission` with its own). */
    cardPermission?: Permission;
    operation?: string;
  }
}

export interface OfficerDirectory {
  /** The officer a client certificate (SHA-256 of its DER) is registered to, in ra's directory. */
  resolveOfficer(certificateSha256: string): Promise<Omit<Officer, 'certificateSha256'> | undefined>;
}

export interface HttpDeps {
  stock: CardStock;
  counter: Counter;
  mobile: MobileCredentials;
  reconciliation: Reconciliation;
  officers: OfficerDirectory;
  logger: Logger;
  /** Key of the idempotency fingerprints (bodies carry subscriber codes: never stored, even hashed plainly). */
  fingerprintKey: Buffer;
  /** Absent only when the app is built to print its OpenAPI document. */
  https?: { key: Buffer; cert: Buffer; ca: Buffer[] };
  bodyLimitBytes: number;
  rateLimits: { officerPerMinute: number; citizenPerMinute: number };
}

const errorBody = {
  $id: 'Error',
  type: 'object',
  properties: {
    error: { type: 'string', description: 'PkiError code: INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION, UNAUTHENTICATED, PERMISSION_DENIED, CONFLICT, UNAVAILABLE, ...' },
    message: { type: 'string', description: 'What was wrong, starting with the operation' },
    details: { type: 'object', additionalProperties: { type: 'string' } },
  },
  required: ['error', 'message'],
} as const;

const cardSchema = {
  $id: 'Card',
  type: 'object',
  properties: {
    cardNumber: { type: 'string' },
    chipSerial: { type: 'string' },
    batchId: { type: 'string' },
    state: { type: 'string', enum: [...CARD_STATES] },
    office: { type: 'string', description: 'Who holds the card: an office code, or the card centre' },
    subscriberId: { type: 'string', format: 'uuid', description: "ra's subscriber (never personal data)" },
    replacesCard: { type: 'string' },
    replacedBy: { type: 'string' },
    signingSerial: { type: 'string' },
    encryptionSerial: { type: 'string' },
    updatedAt: { type: 'string', format: 'date-time' },
  },
  required: ['cardNumber', 'chipSerial', 'batchId', 'state', 'office', 'updatedAt'],
} as const;

const wrappedSecretSchema = {
  $id: 'WrappedSecret',
  type: 'object',
  description: "The card's administrative secret, encrypted to the workstation's one-time X25519 key (X25519, HKDF-SHA-256, AES-256-GCM; decision 0024)",
  properties: { serverPublicKey: { type: 'string' }, nonce: { type: 'string' }, ciphertext: { type: 'string' } },
  required: ['serverPublicKey', 'nonce', 'ciphertext'],
} as const;

const personalisedCardSchema = {
  $id: 'PersonalisedCard',
  type: 'object',
  properties: {
    personalisationId: { type: 'string' }, card: { $ref: 'Card#' }, applicationId: { type: 'string' }, subjectSerialNumber: { type: 'string' }, replacedCard: { $ref: 'Card#' },
    certificates: { type: 'array', items: { type: 'object', properties: { keySlot: { type: 'string' }, serialHex: { type: 'string' }, certificate: { type: 'string' }, chain: { type: 'array', items: { type: 'string' } }, notAfter: { type: 'string' } } } },
  },
  required: ['personalisationId', 'card', 'applicationId', 'subjectSerialNumber', 'certificates'],
} as const;

const idempotencyHeader = {
  type: 'object',
  properties: {
    'idempotency-key': { type: 'string', minLength: 8, maxLength: 100, pattern: '^[A-Za-z0-9._:-]+$', description: 'Required on every mutating call: a retry with the same key returns the first result; the same key with another body is refused' },
  },
  required: ['idempotency-key'],
} as const;

const cardNumberSchema = { type: 'string', pattern: '^[A-Z0-9]{8,20}$' } as const;
const cardParam = { type: 'object', properties: { cardNumber: cardNumberSchema }, required: ['cardNumber'] } as const;
const cardList = { type: 'array', minItems: 1, maxItems: 5000, items: cardNumberSchema } as const;
const ERRORS = [400, 401, 403, 404, 409, 412, 503];

interface RouteSpec {
  method: 'GET' | 'POST';
  url: string;
  /** Absent: a citizen's route, authenticated by what the request carries (card signature, subscriber code). */
  permission?: Permission;
  operation: string;
  summary: string;
  tags: string[];
  mutating?: boolean;
  body?: Record<string, unknown>;
  params?: Record<string, unknown>;
  query?: Record<string, unknown>;
  response: Record<number, unknown>;
}

/**
 * card-mgmt's REST API for the card centre and the counters (HTTPS, officers by client
 * certificate resolved in ra's directory). Authentication and the route's permission are checked
 * in an onRequest hook, before the body is read.
 */
export function buildHttpApp(deps: HttpDeps): FastifyInstance {
  const app = Fastify({
    // Behind the counters' network the peer address is the client's; no proxy headers are trusted.
    loggerInstance: deps.logger as FastifyBaseLogger,
    bodyLimit: deps.bodyLimitBytes,
    ...(deps.https ? { https: { key: deps.https.key, cert: deps.https.cert, ca: deps.https.ca, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' as const } } : {}),
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  }) as unknown as FastifyInstance;
  const authenticator = new ClientCertificateAuthenticator({
    // Client certificates are checked against the wall clock, whatever clock stamps the records.
    clock: systemClock,
    lookup: async (sha256) => {
      const officer = await deps.officers.resolveOfficer(sha256);
      return officer ? { ...officer, active: true } : undefined;
    },
  });
  for (const schema of [errorBody, cardSchema, wrappedSecretSchema, personalisedCardSchema]) app.addSchema(schema);
  void app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'card-mgmt: citizen card stock, personalisation and counter operations',
        version: '1',
        description:
          'Physical cards of the citizen certificate programme (自然人憑證) from the supplier to the card cut, personalisation at the counter through the workstation client, ' +
          "activation, loss, replacement and PIN unlock. Officers authenticate with a client certificate registered in ra. Every POST requires an Idempotency-Key header.",
      },
      components: { securitySchemes: { clientCertificate: { type: 'mutualTLS', description: 'A client certificate registered to an officer in ra' } as never } },
    },
  });

  app.decorateRequest('officer', null as never);
  app.addHook('onRequest', async (request) => {
    const config = request.routeOptions.config;
    if (!config.cardPermission) return;
    const operation = config.operation ?? `${request.method} ${request.routeOptions.url}`;
    const { certificate, principal } = await authenticator.authenticate(request.raw.socket as TLSSocket, operation);
    request.officer = { id: principal.id, office: principal.office, role: principal.role, certificateSha256: certificate.sha256 };
    authorize(request.officer, config.cardPermission, operation);
  });

  // After authentication: officers are limited each on their own, citizens by address.
  void app.register(rateLimit, {
    global: true,
    hook: 'preValidation',
    keyGenerator: (request) => (request.officer ? `officer:${request.officer.id}` : `citizen:${request.ip}`),
    max: (request) => (request.officer ? deps.rateLimits.officerPerMinute : deps.rateLimits.citizenPerMinute),
    timeWindow: 60_000,
    errorResponseBuilder: (_request, context) => ({ statusCode: 429, error: 'RESOURCE_EXHAUSTED', message: `rate limit: at most ${context.max} requests a minute; retry after ${Math.ceil(context.ttl / 1000)} s` }),
  });

  app.setErrorHandler((err: FastifyError | PkiError, request, reply) => respondWithError(err, request, reply));
  app.setNotFoundHandler((request, reply) => reply.status(404).send({ error: 'NOT_FOUND', message: `no route ${request.method} ${request.url.split('?')[0]}` }));
  void app.register(async (api) => declareRoutes(api, deps));
  app.get('/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  return app;
}

function declareRoutes(app: FastifyInstance, deps: HttpDeps): void {
  type Handler = (request: FastifyRequest, reply: FastifyReply, command: Command | undefined) => Promise<unknown>;
  const route = (spec: RouteSpec, handler: Handler) => {
    app.route({
      method: spec.method,
      url: spec.url,
      config: { ...(spec.permission ? { cardPermission: spec.permission } : {}), operation: spec.operation },
      schema: {
        summary: spec.summary,
        tags: spec.tags,
        ...(spec.permission ? { security: [{ clientCertificate: [] }] } : {}),
        ...(spec.mutating ? { headers: idempotencyHeader } : {}),
        ...(spec.body ? { body: { type: 'object', additionalProperties: false, ...spec.body } } : {}),
        ...(spec.params ? { params: spec.params } : {}),
        ...(spec.query ? { querystring: { type: 'object', additionalProperties: false, ...spec.query } } : {}),
        response: { ...spec.response, ...Object.fromEntries(ERRORS.map((s) => [s, { $ref: 'Error#' }])) },
      },
      handler: async (request, reply) => {
        const command = spec.mutating
          ? {
              officer: request.officer ?? undefined,
              idempotencyKey: (request.headers as Record<string, string>)['idempotency-key']!,
              fingerprint: createHmac('sha256', deps.fingerprintKey).update(`${spec.operation}\n${canonicalJson(request.params ?? {})}\n${canonicalJson(request.body ?? {})}`).digest(),
            }
          : undefined;
        return handler(request, reply, command);
      },
    });
  };
  const { stock, counter, reconciliation } = deps;
  type P = Record<string, string>;
  type B = Record<string, unknown>;
  const cards = { type: 'object', properties: { cards: { type: 'array', items: { $ref: 'Card#' } } }, required: ['cards'] };

  route(
    { method: 'POST', url: '/v1/batches', permission: 'stock.receive', operation: 'receive batch', summary: "Receive a supplier's batch of blank cards into the card centre's stock (all or none)", tags: ['stock'], mutating: true,
      body: {
        required: ['batchId', 'supplier', 'cards'],
        properties: {
          batchId: { type: 'string', maxLength: 64 },
          supplier: { type: 'string', maxLength: 100 },
          cards: { type: 'array', minItems: 1, maxItems: 5000, items: { type: 'object', additionalProperties: false, required: ['cardNumber', 'chipSerial', 'attestationKey'], properties: { cardNumber: { type: 'string', maxLength: 20 }, chipSerial: { type: 'string', maxLength: 32 }, attestationKey: { type: 'string', maxLength: 600, description: "The chip's attestation public key (SPKI DER, base64)" } } } },
        },
      },
      response: { 201: { type: 'object', properties: { batchId: { type: 'string' }, received: { type: 'integer' } }, required: ['batchId', 'received'] } } },
    async (request, reply, command) => reply.status(201).send(await stock.receiveBatch(command!, request.body as never)),
  );
  route(
    { method: 'POST', url: '/v1/assignments', permission: 'stock.assign', operation: 'assign cards', summary: 'Supply an office with blank cards from the card centre', tags: ['stock'], mutating: true,
      body: { required: ['office', 'cardNumbers'], properties: { office: { type: 'string', maxLength: 32 }, cardNumbers: cardList } }, response: { 200: cards } },
    async (request, _reply, command) => stock.assign(command!, request.body as never),
  );
  route(
    { method: 'POST', url: '/v1/transfers', permission: 'stock.transfer', operation: 'transfer cards', summary: "Move blank cards from one office's stock to another's", tags: ['stock'], mutating: true,
      body: { required: ['toOffice', 'cardNumbers'], properties: { toOffice: { type: 'string', maxLength: 32 }, cardNumbers: cardList } }, response: { 200: cards } },
    async (request, _reply, command) => stock.transfer(command!, request.body as never),
  );
  route(
    { method: 'POST', url: '/v1/returns', permission: 'stock.return', operation: 'return cards', summary: 'Send blank cards back to the card centre', tags: ['stock'], mutating: true,
      body: { required: ['cardNumbers'], properties: { cardNumbers: cardList, reason: { type: 'string', maxLength: 200 } } }, response: { 200: cards } },
    async (request, _reply, command) => stock.returnToCentre(command!, request.body as never),
  );
  route(
    { method: 'POST', url: '/v1/cards/:cardNumber/damage', permission: 'card.report-damaged', operation: 'report damaged card', summary: 'A card spoiled in stock or at the counter, or broken in use', tags: ['cards'], mutating: true, params: cardParam,
      body: { required: ['reason'], properties: { reason: { type: 'string', maxLength: 200 } } }, response: { 200: { $ref: 'Card#' } } },
    async (request, _reply, command) => stock.reportDamaged(command!, (request.params as P).cardNumber!, (request.body as B).reason),
  );
  route(
    { method: 'POST', url: '/v1/cards/:cardNumber/destruction', permission: 'stock.destroy', operation: 'destroy card', summary: 'The card cut: a card that will never be used again', tags: ['cards'], mutating: true, params: cardParam,
      body: { required: ['reason'], properties: { reason: { type: 'string', maxLength: 200 } } }, response: { 200: { $ref: 'Card#' } } },
    async (request, _reply, command) => stock.destroy(command!, (request.params as P).cardNumber!, (request.body as B).reason),
  );
  route(
    { method: 'GET', url: '/v1/cards/:cardNumber', permission: 'stock.read', operation: 'get card', summary: 'One card and its history (every transition with its actor and time)', tags: ['cards'], params: cardParam,
      response: {
        200: {
          type: 'object',
          properties: {
            ...cardSchema.properties,
            history: { type: 'array', items: { type: 'object', properties: { action: { type: 'string' }, fromState: { type: 'string' }, toState: { type: 'string' }, fromOffice: { type: 'string' }, toOffice: { type: 'string' }, actor: { type: 'string' }, reason: { type: 'string' }, at: { type: 'string' } } } },
          },
          required: [...cardSchema.required, 'history'],
        },
      } },
    async (request) => stock.get(request.officer, (request.params as P).cardNumber!),
  );
  route(
    { method: 'GET', url: '/v1/inventory', permission: 'stock.read', operation: 'inventory', summary: "Cards by office and state (the officer's office; every office for the card centre and auditors)", tags: ['stock'],
      query: { properties: { office: { type: 'string', maxLength: 32 } } },
      response: { 200: { type: 'object', properties: { offices: { type: 'array', items: { type: 'object', properties: { office: { type: 'string' }, states: { type: 'object', additionalProperties: { type: 'integer' } }, onHand: { type: 'integer' } } } } }, required: ['offices'] } } },
    async (request) => stock.inventory(request.officer, (request.query as P).office),
  );
  route(
    { method: 'GET', url: '/v1/reports/daily', permission: 'report.read', operation: 'daily reconciliation', summary: 'Per office: received, personalised, issued, spoiled, destroyed and on hand for one day, with the certificates issued', tags: ['reports'],
      query: { required: ['date'], properties: { date: { type: 'string', maxLength: 10 }, office: { type: 'string', maxLength: 32 } } },
      response: {
        200: {
          type: 'object',
          properties: {
            date: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' },
            offices: {
              type: 'array',
              items: {
                type: 'object',
                properties: {
                  office: { type: 'string' }, openingOnHand: { type: 'integer' }, received: { type: 'integer' }, transferredOut: { type: 'integer' }, personalised: { type: 'integer' }, issued: { type: 'integer' },
                  spoiled: { type: 'integer' }, damagedInUse: { type: 'integer' }, destroyed: { type: 'integer' }, closingOnHand: { type: 'integer' }, balanced: { type: 'boolean' }, certificatesIssued: { type: 'array', items: { type: 'string' } },
                },
              },
            },
          },
          required: ['date', 'from', 'to', 'offices'],
        },
      } },
    async (request) => reconciliation.dailyReport(request.officer, (request.query as P).date, (request.query as P).office),
  );

  // --- the counter ----------------------------------------------------------------------------
  route(
    { method: 'POST', url: '/v1/personalisations', permission: 'card.personalise', operation: 'start personalisation', summary: "Reserve a blank card of the office for a subscriber; returns the attestation challenge and the chip's transport and administrative secrets wrapped to the workstation", tags: ['counter'], mutating: true,
      body: {
        required: ['cardNumber', 'subscriberId', 'transportKey'],
        properties: {
          cardNumber: { type: 'string', maxLength: 20 },
          subscriberId: { type: 'string', maxLength: 36 },
          kind: { type: 'string', enum: ['NEW', 'REPLACEMENT'] },
          replacesCard: { type: 'string', maxLength: 20 },
          transportKey: { type: 'string', maxLength: 200, description: "The workstation's one-time X25519 public key (SPKI DER, base64)" },
        },
      },
      response: { 201: { type: 'object', properties: { personalisationId: { type: 'string' }, cardNumber: { type: 'string' }, challenge: { type: 'string' }, cardSecrets: { $ref: 'WrappedSecret#' } }, required: ['personalisationId', 'cardNumber', 'challenge', 'cardSecrets'] } } },
    async (request, reply, command) => reply.status(201).send(await counter.startPersonalisation(command!, request.body as never)),
  );
  route(
    { method: 'POST', url: '/v1/personalisations/:id/certificates', permission: 'card.personalise', operation: 'complete personalisation', summary: "Hand over the card keys' CSRs and the chip's attestations of them; ra issues both certificates (a replacement supersedes the old card's in the same operation)", tags: ['counter'], mutating: true,
      params: { type: 'object', properties: { id: { type: 'string', maxLength: 36 } }, required: ['id'] },
      body: {
        required: ['signingCsr', 'encryptionCsr', 'signingAttestation', 'encryptionAttestation', 'tokenSerial'],
        properties: { signingCsr: { type: 'string', maxLength: 16384 }, encryptionCsr: { type: 'string', maxLength: 16384 }, signingAttestation: { type: 'string', maxLength: 1024 }, encryptionAttestation: { type: 'string', maxLength: 1024 }, tokenSerial: { type: 'string', maxLength: 32 } },
      },
      response: { 201: { $ref: 'PersonalisedCard#' } } },
    async (request, reply, command) => reply.status(201).send(await counter.completePersonalisation(command!, (request.params as P).id!, request.body as never)),
  );
  route(
    { method: 'POST', url: '/v1/personalisations/:id/resumption', permission: 'card.personalise', operation: 'resume personalisation', summary: "Finish a personalisation whose answer from ra never came back (the same request again); returns the certificates to write to the card", tags: ['counter'], mutating: true,
      params: { type: 'object', properties: { id: { type: 'string', maxLength: 36 } }, required: ['id'] }, response: { 200: { $ref: 'PersonalisedCard#' } } },
    async (request, _reply, command) => counter.resumePersonalisation(command!, (request.params as P).id!),
  );
  route(
    { method: 'POST', url: '/v1/personalisations/:id/cancellation', permission: 'card.personalise', operation: 'cancel personalisation', summary: 'Abandon a personalisation that has not reached ra: the card goes back to the stock', tags: ['counter'], mutating: true,
      params: { type: 'object', properties: { id: { type: 'string', maxLength: 36 } }, required: ['id'] }, response: { 200: { $ref: 'Card#' } } },
    async (request, _reply, command) => counter.cancelPersonalisation(command!, (request.params as P).id!),
  );
  for (const [path, permission, operation, summary, run] of [
    ['hand-over', 'card.hand-over', 'hand over card', 'The personalised card is handed to the citizen', (c: Command, n: string) => counter.handOver(c, n)],
    ['activation', 'card.activate', 'activate card', "The citizen confirmed receipt: ra activates the card's certificates", (c: Command, n: string) => counter.activate(c, n)],
    ['loss', 'card.report-lost', 'report lost card', "A lost card: ra suspends its certificates at once", (c: Command, n: string) => counter.reportLost(c, n)],
  ] as const) {
    route(
      { method: 'POST', url: `/v1/cards/:cardNumber/${path}`, permission, operation, summary, tags: ['counter'], mutating: true, params: cardParam, response: { 200: { $ref: 'Card#' } } },
      async (request, _reply, command) => run(command!, (request.params as P).cardNumber!),
    );
  }
  route(
    { method: 'POST', url: '/v1/cards/:cardNumber/pin-unlock', permission: 'card.unlock', operation: 'pin unlock', summary: "The citizen's subscriber code, checked by ra (wrong codes count towards its lock), releases the card's administrative secret to reset the PIN", tags: ['counter'], mutating: true, params: cardParam,
      body: { required: ['subscriberCode', 'transportKey', 'tokenSerial'], properties: { subscriberCode: { type: 'string', maxLength: 256 }, transportKey: { type: 'string', maxLength: 200 }, tokenSerial: { type: 'string', maxLength: 32 } } },
      response: { 200: { type: 'object', properties: { cardNumber: { type: 'string' }, adminSecret: { $ref: 'WrappedSecret#' } }, required: ['cardNumber', 'adminSecret'] } } },
    async (request, _reply, command) => counter.releaseForPinUnlock(command!, (request.params as P).cardNumber!, request.body as never),
  );
  route(
    { method: 'POST', url: '/v1/self-service/loss', operation: 'self-service loss', summary: "The citizen reports their card lost with its number and their subscriber code: ra suspends its certificates at once", tags: ['self-service'], mutating: true,
      body: { required: ['cardNumber', 'subscriberCode'], properties: { cardNumber: { type: 'string', maxLength: 20 }, subscriberCode: { type: 'string', maxLength: 256 } } },
      response: { 200: { type: 'object', properties: { cardNumber: { type: 'string' }, state: { type: 'string' } }, required: ['cardNumber', 'state'] } } },
    async (request, _reply, command) => counter.reportLostBySelfService(command!, request.body as never),
  );
  declareMobileRoutes(app, deps, route);
}

function declareMobileRoutes(app: FastifyInstance, deps: HttpDeps, route: (spec: RouteSpec, handler: (request: FastifyRequest, reply: FastifyReply, command: Command | undefined) => Promise<unknown>) => void): void {
  const { mobile } = deps;
  type P = Record<string, string>;
  const device = { type: 'object', properties: { deviceId: { type: 'string' }, cardNumber: { type: 'string' }, name: { type: 'string' }, state: { type: 'string', enum: ['ACTIVE', 'SUSPENDED', 'REVOKED'] }, serialHex: { type: 'string' }, createdAt: { type: 'string' } }, required: ['deviceId', 'cardNumber', 'name', 'state', 'createdAt'] };
  route(
    { method: 'POST', url: '/v1/mobile/challenges', operation: 'binding challenge', summary: "A one-time challenge (5 minutes) for binding a phone through a card", tags: ['mobile credentials'], mutating: true,
      body: { required: ['cardNumber'], properties: { cardNumber: { type: 'string', maxLength: 20 } } },
      response: { 201: { type: 'object', properties: { challengeId: { type: 'string' }, challenge: { type: 'string' }, expiresAt: { type: 'string' } }, required: ['challengeId', 'challenge', 'expiresAt'] } } },
    async (request, reply, command) => reply.status(201).send(await mobile.challenge(command!, (request.body as Record<string, unknown>).cardNumber)),
  );
  route(
    { method: 'POST', url: '/v1/mobile/devices', operation: 'enrol device', summary: "Bind a phone's P-256 key: the card's SIGN key and the phone's key sign the challenge, the subscriber code confirms; at most 3 devices per person", tags: ['mobile credentials'], mutating: true,
      body: {
        required: ['challengeId', 'cardNumber', 'deviceName', 'devicePublicKey', 'deviceSignature', 'cardSignature', 'subscriberCode'],
        properties: {
          challengeId: { type: 'string', maxLength: 36 }, cardNumber: { type: 'string', maxLength: 20 }, deviceName: { type: 'string', maxLength: 64 },
          devicePublicKey: { type: 'string', maxLength: 400, description: 'SPKI DER, base64 (P-256)' }, deviceSignature: { type: 'string', maxLength: 700, description: 'ECDSA P-256 SHA-256, DER, base64' },
          cardSignature: { type: 'string', maxLength: 700, description: "The card's SIGN key, RSA PKCS#1 v1.5 SHA-256, base64" }, subscriberCode: { type: 'string', maxLength: 256 },
        },
      },
      response: { 201: { type: 'object', properties: { ...device.properties, certificate: { type: 'string' }, chain: { type: 'array', items: { type: 'string' } }, notAfter: { type: 'string' } }, required: [...device.required, 'serialHex', 'certificate', 'chain', 'notAfter'] } } },
    async (request, reply, command) => reply.status(201).send(await mobile.enrol(command!, request.body as never)),
  );
  route(
    { method: 'GET', url: '/v1/cards/:cardNumber/devices', permission: 'stock.read', operation: 'list devices', summary: "The mobile devices of the card holder", tags: ['mobile credentials'], params: cardParam,
      response: { 200: { type: 'object', properties: { devices: { type: 'array', items: device } }, required: ['devices'] } } },
    async (request) => mobile.list(request.officer, (request.params as P).cardNumber!),
  );
  for (const [path, op] of [['suspension', 'suspend'], ['resumption', 'resume'], ['revocation', 'revoke']] as const) {
    route(
      { method: 'POST', url: `/v1/devices/:id/${path}`, permission: 'card.unlock', operation: `${op} device`, summary: `${op[0]!.toUpperCase()}${op.slice(1)} one mobile device's certificate (the card and other devices are untouched)`, tags: ['mobile credentials'], mutating: true,
        params: { type: 'object', properties: { id: { type: 'string', maxLength: 36 } }, required: ['id'] }, response: { 200: device } },
      async (request, _reply, command) => mobile.changeStatus(command!, (request.params as P).id!, op),
    );
  }
}

/** One mapping from errors to answers: what was wrong for bad input, 503 with a retry hint for a dependency, nothing internal. */
function respondWithError(err: FastifyError | PkiError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const operation = request.routeOptions.config?.operation ?? `${request.method} ${request.routeOptions.url ?? request.url.split('?')[0]}`;
  if (err instanceof PkiError) {
    if (err.code === 'UNAVAILABLE' || err.code === 'DEADLINE_EXCEEDED') {
      request.log.warn({ err }, 'dependency unavailable');
      return reply.status(503).header('retry-after', '5').send({ error: 'UNAVAILABLE', message: `${operation}: a service card-mgmt depends on is unavailable; retry in 5 s` });
    }
    if (err.code === 'INTERNAL') {
      request.log.error({ err }, 'request failed');
      return reply.status(500).send({ error: 'INTERNAL', message: `${operation}: internal error` });
    }
    return reply.status(httpStatusOf(err.code)).send({ error: err.code, message: err.message, ...(Object.keys(err.details).length > 0 ? { details: err.details } : {}) });
  }
  if (err.statusCode === 429) return reply.status(429).send(err);
  if (err.validation) return reply.status(400).send({ error: 'INVALID_ARGUMENT', message: `${operation}: ${err.message}` });
  if (err.statusCode && err.statusCode < 500) return reply.status(err.statusCode).send({ error: err.statusCode === 413 ? 'RESOURCE_EXHAUSTED' : 'INVALID_ARGUMENT', message: `${operation}: ${err.message}` });
  request.log.error({ err }, 'request failed with an unexpected error');
  return reply.status(500).send({ error: 'INTERNAL', message: `${operation}: internal error` });
}
