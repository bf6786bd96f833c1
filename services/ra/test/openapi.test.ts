import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { raOpenApiDocument } from '../src/openapi';

describe('the OpenAPI document', () => {
  it('committed in services/ra/openapi.json is the one the routes generate (run `make openapi` after changing a route)', async () => {
    const committed = JSON.parse(readFileSync(join(__dirname, '..', 'openapi.json'), 'utf8'));
    expect(await raOpenApiDocument()).toEqual(committed);
  });

  it('is OpenAPI 3.1, documents every route with its errors, and requires an Idempotency-Key on every state-changing POST', async () => {
    const doc = (await raOpenApiDocument()) as { openapi: string; paths: Record<string, Record<string, { parameters?: Array<{ in: string; name: string; required?: boolean }>; responses: Record<string, unknown>; security?: unknown }>> };
    expect(doc.openapi).toBe('3.1.0');
    const operations = Object.entries(doc.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => ({ path, method, op })));
    expect(operations.length).toBeGreaterThanOrEqual(28);
    for (const { path, method, op } of operations) {
      expect({ path, method, has503: '503' in op.responses, has400: '400' in op.responses }).toEqual({ path, method, has503: true, has400: true });
      // Queries sent as POST: a search (the ID stays out of URLs), and identity confirmation, whose
      // signed nonce already makes every request unique (a replay is refused, decision 0026).
      const reads = method === 'get' || path === '/v1/subscriber-searches' || path === '/v1/identity-confirmations' || path === '/v1/certificate-validations';
      const key = op.parameters?.find((p) => p.in === 'header' && p.name === 'idempotency-key');
      expect({ path, idempotencyKeyRequired: key?.required === true }).toEqual({ path, idempotencyKeyRequired: !reads });
      const staff = !path.startsWith('/v1/public') && !path.startsWith('/v1/self-service');
      expect({ path, mutualTls: op.security !== undefined }).toEqual({ path, mutualTls: staff });
    }
  });
});
