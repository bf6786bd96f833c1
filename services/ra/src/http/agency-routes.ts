import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { PkiError } from '@pki/kit';
import type { AgencyPrincipal, AgencySystems } from '../domain/agency-systems';
import { parseIdentityConfirmationRequest, type IdentityConfirmation, type IdentityConfirmationPolicy } from '../domain/identity-confirmation';
import { toCsv, type Statistics } from '../domain/statistics';
import { decodeSubmittedCertificate, MAX_SUBMITTED_CERTIFICATES, type CertificateValidator } from '../domain/certificate-validation';
import { toPem } from '@pki/x509';
import { decodeIdentityRequest, encodeIdentityError, encodeIdentityResult, encodingOf } from './identity-codec';
import { COMMON_ERRORS, errors } from './schemas';
import type { RouteFn } from './app';

export interface AgencyHttpDeps {
  agencies: AgencySystems;
  identityConfirmation: IdentityConfirmation;
  statistics: Statistics;
  identityPolicy: IdentityConfirmationPolicy;
  validator: CertificateValidator;
}

const STATIC = path.join(__dirname, '..', '..', 'static');

const contact = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'email'],
  properties: { name: { type: 'string', maxLength: 128 }, email: { type: 'string', maxLength: 254 }, phone: { type: 'string', maxLength: 32 } },
};

const systemSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    agency: { type: 'string' },
    name: { type: 'string' },
    sector: { type: 'string', enum: ['GOVERNMENT', 'PUBLIC'] },
    contact,
    status: { type: 'string', enum: ['ACTIVE', 'SUSPENDED', 'RETIRED'] },
    rateLimitPerMinute: { type: 'integer' },
    createdAt: { type: 'string', format: 'date-time' },
    credentials: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          serialHex: { type: 'string' }, issuerKeyId: { type: 'string' }, status: { type: 'string', enum: ['VALID', 'SUSPENDED', 'REVOKED'] },
          notBefore: { type: 'string', format: 'date-time' }, notAfter: { type: 'string', format: 'date-time' }, certificateSha256: { type: 'string' },
          certificate: { type: 'string', description: 'PEM: the system installs it with its key (mTLS and request signatures)' },
        },
        required: ['serialHex', 'issuerKeyId', 'status', 'notBefore', 'notAfter', 'certificateSha256'],
      },
    },
  },
  required: ['id', 'agency', 'name', 'sector', 'contact', 'status', 'rateLimitPerMinute', 'createdAt', 'credentials'],
};

const systemParam = { properties: { systemId: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' } }, required: ['systemId'] };
const yearQuery = { properties: { year: { type: 'integer', minimum: 2000, maximum: 2200 } }, required: ['year'] };
const csr = { type: 'string', maxLength: 16384, description: 'PKCS#10 (PEM) made with the system\'s own key (RSA-2048/3072/4096 or EC P-256/P-384)' };
const notAfter = { type: 'string', format: 'date-time', description: 'Earlier than the agencyClient profile\'s longest validity (2 years)' };

const yearlyRow = {
  type: 'object',
  properties: { year: { type: 'integer' }, systemsGovernment: { type: 'integer' }, systemsPublic: { type: 'integer' }, usesGovernment: { type: 'integer' }, usesPublic: { type: 'integer' }, unattributedOcsp: { type: 'integer' } },
  required: ['year', 'systemsGovernment', 'systemsPublic', 'usesGovernment', 'usesPublic', 'unattributedOcsp'],
};
const genderRow = { type: 'object', properties: { year: { type: 'integer' }, male: { type: 'integer' }, female: { type: 'integer' }, total: { type: 'integer' } }, required: ['year', 'male', 'female', 'total'] };

/** The agency APIs: the registry of application systems, identity confirmation, statistics and open data. */
export function declareAgencyRoutes(app: FastifyInstance, route: RouteFn, deps: AgencyHttpDeps): void {
  const { agencies, statistics } = deps;
  type P = Record<string, string>;
  type B = Record<string, unknown>;
  type Q = Record<string, unknown>;

  // --- the registry (officers with agency.manage / agency.read) ------------------------------
  route(
    { method: 'POST', url: '/v1/agency-systems', access: 'officer', permission: 'agency.manage', operation: 'onboard system', summary: "Onboard an agency's application system: ca-signer issues its client certificate (agencyClient profile)", tags: ['agency systems'], mutating: true,
      body: {
        required: ['id', 'agency', 'name', 'sector', 'contact', 'csr'],
        properties: {
          id: { type: 'string', maxLength: 64, description: "The system id, also the certificate's CN (ASCII letters, digits, . _ -)" },
          agency: { type: 'string', maxLength: 128 }, name: { type: 'string', maxLength: 128 }, sector: { type: 'string', enum: ['GOVERNMENT', 'PUBLIC'] },
          contact, rateLimitPerMinute: { type: 'integer', minimum: 1, maximum: 1000000 }, csr, notAfter,
        },
      },
      response: { 201: systemSchema } },
    async (request, reply, command) => reply.status(201).send(await agencies.onboard(command!, request.body as never)),
  );
  route(
    { method: 'GET', url: '/v1/agency-systems', access: 'officer', permission: 'agency.read', operation: 'list systems', summary: 'Every registered application system', tags: ['agency systems'], response: { 200: { type: 'array', items: systemSchema } } },
    async (request) => agencies.list(request.principal),
  );
  route(
    { method: 'GET', url: '/v1/agency-systems/:systemId', access: 'officer', permission: 'agency.read', operation: 'get system', summary: 'One application system and its certificates', tags: ['agency systems'], params: systemParam, response: { 200: systemSchema } },
    async (request) => agencies.get(request.principal, (request.params as P).systemId!),
  );
  for (const [to, pathName, summary] of [['SUSPENDED', 'suspension', 'Suspend a system: its calls are refused until it is resumed'], ['ACTIVE', 'resumption', 'Resume a suspended system']] as const) {
    route(
      { method: 'POST', url: `/v1/agency-systems/:systemId/${pathName}`, access: 'officer', permission: 'agency.manage', operation: to === 'SUSPENDED' ? 'suspend system' : 'resume system', summary, tags: ['agency systems'], mutating: true, params: systemParam,
        body: { properties: { comment: { type: 'string', maxLength: 500 } } }, response: { 200: systemSchema } },
      async (request, _reply, command) => agencies.changeStatus(command!, (request.params as P).systemId!, to, (request.body as B | undefined)?.comment as string | undefined),
    );
  }
  route(
    { method: 'POST', url: '/v1/agency-systems/:systemId/certificate-renewal', access: 'officer', permission: 'agency.manage', operation: 'renew system certificate', summary: "A new certificate for the system's new key; the previous ones are revoked (superseded) unless keepPrevious", tags: ['agency systems'], mutating: true, params: systemParam,
      body: { required: ['csr'], properties: { csr, notAfter, keepPrevious: { type: 'boolean', description: 'Keep the previous certificates valid to their own notAfter (a roll-over)' } } }, response: { 201: systemSchema } },
    async (request, reply, command) => reply.status(201).send(await agencies.renew(command!, (request.params as P).systemId!, request.body as never)),
  );
  route(
    { method: 'POST', url: '/v1/agency-systems/:systemId/retirement', access: 'officer', permission: 'agency.manage', operation: 'retire system', summary: 'The system leaves the programme: its certificates are revoked (cessationOfOperation)', tags: ['agency systems'], mutating: true, params: systemParam,
      body: { properties: { comment: { type: 'string', maxLength: 500 } } }, response: { 200: systemSchema } },
    async (request, _reply, command) => agencies.retire(command!, (request.params as P).systemId!, (request.body as B | undefined)?.comment as string | undefined),
  );

  // --- statistics (officers with statistics.read) ---------------------------------------------
  const usageSchema = {
    type: 'object',
    properties: {
      year: { type: 'integer' },
      totals: { type: 'object', properties: { systems: { type: 'object', properties: { government: { type: 'integer' }, public: { type: 'integer' } } }, uses: { type: 'object', properties: { government: { type: 'integer' }, public: { type: 'integer' } } } } },
      months: { type: 'array', items: { type: 'object', properties: { month: { type: 'integer' }, government: { type: 'integer' }, public: { type: 'integer' } } } },
      systems: {
        type: 'array',
        items: {
          type: 'object',
          properties: {
            systemId: { type: 'string' }, agency: { type: 'string' }, name: { type: 'string' }, sector: { type: 'string' }, total: { type: 'integer' },
            months: { type: 'array', items: { type: 'integer' } },
            byChannel: { type: 'object', properties: { 'identity-confirmation': { type: 'integer' }, 'certificate-validation': { type: 'integer' }, ocsp: { type: 'integer' } } },
          },
        },
      },
      unattributedOcsp: { type: 'array', items: { type: 'object', properties: { month: { type: 'integer' }, identification: { type: 'string' }, requests: { type: 'integer' } } } },
    },
    required: ['year', 'totals', 'months', 'systems', 'unattributedOcsp'],
  };
  route(
    { method: 'GET', url: '/v1/statistics/usage', access: 'officer', permission: 'statistics.read', operation: 'usage statistics', summary: 'Uses per application system per month of a year (identity confirmation, certificate validation, OCSP), government / public', tags: ['statistics'], query: yearQuery, response: { 200: usageSchema } },
    async (request) => statistics.usageOfYear(request.principal, Number((request.query as Q).year)),
  );
  route(
    { method: 'GET', url: '/v1/statistics/usage.csv', access: 'officer', permission: 'statistics.read', operation: 'usage statistics', summary: 'The same, as CSV: one row per system and month', tags: ['statistics'], query: yearQuery, response: { 200: { type: 'string' } } },
    async (request, reply) => {
      const usage = await statistics.usageOfYear(request.principal, Number((request.query as Q).year));
      const rows = usage.systems.flatMap((s) => s.months.map((uses, i) => [usage.year, i + 1, s.systemId, s.agency, s.name, s.sector, uses]));
      return reply.type('text/csv; charset=utf-8').header('content-disposition', `attachment; filename="usage-${usage.year}.csv"`).send(toCsv(['year', 'month', 'system', 'agency', 'name', 'sector', 'uses'], rows));
    },
  );

  // --- open data (public): the yearly table, issuance by gender, the chart page ---------------
  route(
    { method: 'GET', url: '/v1/public/open-data/usage-by-year.json', access: 'public', permission: 'public.read', operation: 'open data', summary: "The programme's yearly table: application systems in use and their uses, government / public", tags: ['open data'],
      response: { 200: { type: 'object', properties: { rows: { type: 'array', items: yearlyRow } }, required: ['rows'] } } },
    async () => ({ rows: await statistics.yearlyTable() }),
  );
  route(
    { method: 'GET', url: '/v1/public/open-data/usage-by-year.csv', access: 'public', permission: 'public.read', operation: 'open data', summary: 'The yearly table as CSV', tags: ['open data'], response: { 200: { type: 'string' } } },
    async (_request, reply) => {
      const rows = await statistics.yearlyTable();
      return reply.type('text/csv; charset=utf-8').send(toCsv(['year', 'systems_government', 'systems_public', 'uses_government', 'uses_public', 'unattributed_ocsp'], rows.map((r) => [r.year, r.systemsGovernment, r.systemsPublic, r.usesGovernment, r.usesPublic, r.unattributedOcsp])));
    },
  );
  route(
    { method: 'GET', url: '/v1/public/open-data/issuance-by-gender.json', access: 'public', permission: 'public.read', operation: 'open data', summary: 'Cards issued per year (Taiwan time) by the holder\'s gender (from the ID\'s second character)', tags: ['open data'],
      response: { 200: { type: 'object', properties: { rows: { type: 'array', items: genderRow } }, required: ['rows'] } } },
    async () => ({ rows: await statistics.issuanceByGender() }),
  );
  route(
    { method: 'GET', url: '/v1/public/open-data/issuance-by-gender.csv', access: 'public', permission: 'public.read', operation: 'open data', summary: 'Cards issued per year by gender, as CSV', tags: ['open data'], response: { 200: { type: 'string' } } },
    async (_request, reply) => {
      const rows = await statistics.issuanceByGender();
      return reply.type('text/csv; charset=utf-8').send(toCsv(['year', 'male', 'female', 'total'], rows.map((r) => [r.year, r.male, r.female, r.total])));
    },
  );
  const page = readFileSync(path.join(STATIC, 'charts.html'), 'utf8');
  const script = readFileSync(path.join(STATIC, 'charts.js'), 'utf8');
  const security = { 'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:", 'x-content-type-options': 'nosniff' };
  route(
    { method: 'GET', url: '/v1/public/statistics/charts.html', access: 'public', permission: 'public.read', operation: 'chart page', summary: "The programme managers' chart page (drawn from the open data)", tags: ['open data'], response: { 200: { type: 'string' } } },
    async (_request, reply) => reply.type('text/html; charset=utf-8').headers(security).send(page),
  );
  route(
    { method: 'GET', url: '/v1/public/statistics/charts.js', access: 'public', permission: 'public.read', operation: 'chart page', summary: "The chart page's script", tags: ['open data'], response: { 200: { type: 'string' } } },
    async (_request, reply) => reply.type('text/javascript; charset=utf-8').headers(security).send(script),
  );

  // --- certificate validation (agency systems; decision 0034) ---------------------------------
  // A query, not a change: no idempotency key; every call answers afresh and is metered.
  route(
    { method: 'POST', url: '/v1/certificate-validations', access: 'agency-system', permission: 'certificate.validate', operation: 'validate certificate',
      summary: 'Validate a certificate now: RFC 5280 path to our roots across CA generations (issuer by key identifier), policy, status in the registry; the answer is signed by the validation receipt key, to keep as evidence',
      tags: ['agencies'],
      body: {
        required: ['certificates'],
        properties: {
          certificates: { type: 'array', minItems: 1, maxItems: MAX_SUBMITTED_CERTIFICATES, items: { type: 'string', maxLength: 24_000 }, description: 'The certificate to validate first, then any intermediates the caller holds (PEM or base64 DER)' },
          reference: { type: 'string', maxLength: 128, description: "The caller's own case reference, echoed in the signed receipt" },
        },
      },
      response: {
        200: {
          type: 'object',
          properties: {
            result: { type: 'object', additionalProperties: true, description: 'valid, verdict (VALID, UNTRUSTED, INVALID_CHAIN, REVOKED, SUSPENDED, EXPIRED, NOT_YET_VALID, POLICY_MISMATCH, NOT_IN_REGISTRY), problems, certificate, generation, path, status, validatedAt' },
            receipt: {
              type: 'object',
              properties: {
                body: { type: 'string', description: 'base64 of the exact bytes signed: `result` as JSON' },
                signature: { type: 'string', description: 'base64; openssl dgst -sha256 -verify <signer public key> -signature <sig> <body>' },
                signatureAlgorithm: { type: 'string' },
                signerCertificate: { type: 'string', description: 'PEM of the validation receipt key, certified by the CA' },
              },
              required: ['body', 'signature', 'signatureAlgorithm', 'signerCertificate'],
            },
          },
          required: ['result', 'receipt'],
        },
      },
    },
    async (request) => {
      const principal = request.principal as AgencyPrincipal;
      const body = request.body as { certificates: string[]; reference?: string };
      const answer = await deps.validator.validate({
        certificates: body.certificates.map((text, i) => decodeSubmittedCertificate(text, i)),
        ...(body.reference !== undefined ? { reference: body.reference } : {}),
        requestedBy: principal.id,
      });
      await agencies.meter(principal.id, 'certificate-validation');
      return {
        result: answer.result,
        receipt: { body: answer.receipt.toString('base64'), signature: answer.signature.toString('base64'), signatureAlgorithm: answer.signatureAlgorithm, signerCertificate: toPem(answer.signerCertificateDer, 'CERTIFICATE') },
      };
    },
  );

  // --- identity confirmation (agency systems) -------------------------------------------------
  // Its own plugin: the body is kept as the exact bytes that were signed, JSON or XML.
  void app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser(['application/json', 'application/xml', 'text/xml'], { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
    scope.addHook('onSend', async (request, reply, payload) => {
      // An XML client gets its errors in XML too.
      if (reply.statusCode >= 400 && encodingOf(request.headers['content-type']) === 'xml' && typeof payload === 'string') {
        reply.type('application/xml; charset=utf-8');
        try {
          return encodeIdentityError(JSON.parse(payload));
        } catch {
          return payload;
        }
      }
      return payload;
    });
    scope.route({
      method: 'POST',
      url: '/v1/identity-confirmations',
      config: { access: 'agency-system', permission: 'identity.confirm', operation: 'identity confirmation' },
      schema: {
        summary: '用戶身分確認服務: whether each certificate (subject serialNumber) belongs to the person with the national ID; a code 0-5 per record',
        description:
          'The body (application/json or application/xml, same fields: nonce, requestTime, records[seq, serialNumber, nationalId, birthDate?]) is signed with the key of one of the ' +
          "system's registered certificates: header Pki-Signer: <issuer key id hex>:<serial hex>, header Pki-Signature: base64 of an RSASSA-PKCS1-v1_5 or ECDSA signature with SHA-256 " +
          'over the exact body bytes. Result codes: 0 match and card activated (valid or suspended), 1 no such (serialNumber, ID) pair, 2 this ID has no certificate, 3 match but card not activated, ' +
          '4 match but expired, 5 match but revoked. Request errors carry details.code: UNKNOWN_CLIENT, BAD_SIGNATURE, CLIENT_CERTIFICATE_NOT_VALID, SYSTEM_NOT_ACTIVE, MALFORMED_FIELD, ' +
          'MALFORMED_XML, BATCH_TOO_LARGE, STALE_REQUEST, REPLAYED_NONCE; 503 with Retry-After when the registry is unavailable.',
        tags: ['identity confirmation'],
        security: [{ clientCertificate: [] }],
        headers: {
          type: 'object',
          properties: { 'pki-signer': { type: 'string', maxLength: 200 }, 'pki-signature': { type: 'string', maxLength: 2048 } },
        },
        response: {
          200: {
            type: 'object',
            properties: { nonce: { type: 'string' }, responseTime: { type: 'string', format: 'date-time' }, results: { type: 'array', items: { type: 'object', properties: { seq: { type: 'integer' }, code: { type: 'integer', enum: [0, 1, 2, 3, 4, 5] } }, required: ['seq', 'code'] } } },
            required: ['nonce', 'responseTime', 'results'],
          },
          ...errors(...COMMON_ERRORS, 409, 415),
        },
      },
      handler: async (request: FastifyRequest, reply: FastifyReply) => {
        const operation = 'identity confirmation';
        const encoding = encodingOf(request.headers['content-type']);
        if (!encoding || !Buffer.isBuffer(request.body)) throw new PkiError('INVALID_ARGUMENT', `${operation}: send the request as application/json or application/xml`, { details: { code: 'MALFORMED_FIELD' } });
        const principal = request.principal as AgencyPrincipal;
        const headers = request.headers as Record<string, string | undefined>;
        let result;
        try {
          await deps.agencies.verifyRequestSignature(principal, headers['pki-signer'], headers['pki-signature'], request.body, operation);
          const parsed = parseIdentityConfirmationRequest(decodeIdentityRequest(request.body, encoding, operation), deps.identityPolicy, operation);
          result = await deps.identityConfirmation.confirm(principal, parsed);
        } catch (err) {
          await deps.identityConfirmation.recordRefusal(principal, err);
          throw err;
        }
        if (encoding === 'xml') return reply.type('application/xml; charset=utf-8').send(encodeIdentityResult(result));
        return result;
      },
    });
  });
}
