import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { databaseConfig, loadConfigFile, logConfig, parseConfig, secretFile, z } from './config';
import { PkiError } from './errors';

const schema = z.strictObject({
  log: logConfig,
  database: databaseConfig,
  hsm: z.strictObject({ tokenLabel: z.string().min(1), pinFile: secretFile }),
});

describe('service configuration', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'config-test-'));
  const pinFile = path.join(dir, 'pin');
  writeFileSync(pinFile, '123456\n');
  const valid = { log: { level: 'info' }, database: { url: 'postgres://x@localhost/db', schema: 'ca_signer' }, hsm: { tokenLabel: 'ca', pinFile } };

  it('accepts a valid config, applies defaults and reads secrets from files', () => {
    const config = parseConfig(schema, valid);
    expect(config.database.maxConnections).toBe(10);
    expect(config.hsm.pinFile.reveal()).toBe('123456');
  });

  it('never prints a secret when the config is logged or serialised', () => {
    const config = parseConfig(schema, valid);
    expect(JSON.stringify(config)).not.toContain('123456');
    expect(inspect(config, { depth: 5 })).not.toContain('123456');
  });

  it('refuses an unknown key and names it', () => {
    expect(() => parseConfig(schema, { ...valid, hsm: { ...valid.hsm, tokenLable: 'typo' } })).toThrow("unknown key 'hsm.tokenLable'");
  });

  it('refuses a missing key and names it', () => {
    const { tokenLabel: _, ...hsm } = valid.hsm;
    expect(() => parseConfig(schema, { ...valid, hsm })).toThrow("missing key 'hsm.tokenLabel'");
  });

  it('names every bad key at once, with the rule it breaks', () => {
    let error: unknown;
    try {
      parseConfig(schema, { ...valid, database: { url: 'mysql://x', schema: 'Bad-Name' } }, 'ca-signer.json');
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(PkiError);
    expect((error as PkiError).message).toMatch(/^load config ca-signer.json: /);
    expect((error as PkiError).message).toContain("'database.url': must be a postgres:// URL");
    expect((error as PkiError).message).toContain("'database.schema': must be a lower-case SQL identifier");
  });

  it('refuses a secret file that cannot be read, naming the key', () => {
    expect(() => parseConfig(schema, { ...valid, hsm: { tokenLabel: 'ca', pinFile: path.join(dir, 'absent') } })).toThrow(/'hsm.pinFile': cannot read secret file .*absent: ENOENT/);
  });

  it('reports unreadable and malformed config files clearly', () => {
    expect(() => loadConfigFile(schema, path.join(dir, 'nope.json'))).toThrow(/cannot read file \(ENOENT\)/);
    const bad = path.join(dir, 'bad.json');
    writeFileSync(bad, '{ "log": ');
    expect(() => loadConfigFile(schema, bad)).toThrow(/not valid JSON/);
  });
});
