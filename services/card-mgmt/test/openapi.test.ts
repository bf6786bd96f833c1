import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cardMgmtOpenApiDocument } from '../src/openapi';

describe("card-mgmt's OpenAPI document", () => {
  it('committed in services/card-mgmt/openapi.json is the one the routes generate (run `make openapi` after changing a route)', async () => {
    const committed = JSON.parse(readFileSync(join(__dirname, '..', 'openapi.json'), 'utf8'));
    expect(await cardMgmtOpenApiDocument()).toEqual(committed);
  });

  it("is OpenAPI 3.1, every staff route needs a client certificate (citizens' mobile routes authenticate with their card and code), every route documents its errors, every POST needs an Idempotency-Key", async () => {
    const doc = (await cardMgmtOpenApiDocument()) as { openapi: string; paths: Record<string, Record<string, { parameters?: Array<{ in: string; name: string; required?: boolean }>; responses: Record<string, unknown>; security?: unknown }>> };
    expect(doc.openapi).toBe('3.1.0');
    const operations = Object.entries(doc.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => ({ path, method, op })));
    expect(operations.length).toBeGreaterThanOrEqual(15);
    for (const { path, method, op } of operations) {
      expect({ path, has400: '400' in op.responses, has401: '401' in op.responses, has503: '503' in op.responses, mutualTls: op.security !== undefined }).toEqual({ path, has400: true, has401: true, has503: true, mutualTls: !path.startsWith('/v1/mobile/') && !path.startsWith('/v1/self-service/') });
      const key = op.parameters?.find((p) => p.in === 'header' && p.name === 'idempotency-key');
      expect({ path, method, idempotencyKeyRequired: key?.required === true }).toEqual({ path, method, idempotencyKeyRequired: method === 'post' });
    }
  });
});
