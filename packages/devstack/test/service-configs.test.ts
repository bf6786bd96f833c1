import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseConfig, type z } from '@pki/kit';
import { caSignerConfigSchema } from '@pki/ca-signer';
import { raConfigSchema } from '@pki/ra';
import { ocspConfigSchema } from '@pki/ocsp';
import { crlConfigSchema } from '@pki/crl';
import { cardMgmtConfigSchema } from '@pki/card-mgmt';
import { auditConfigSchema } from '@pki/audit';
import { buildDevConfigs, devPorts, SERVICES, type ServiceName } from '../src';

const schemas: Record<ServiceName, z.ZodType> = {
  'ca-signer': caSignerConfigSchema,
  ra: raConfigSchema,
  ocsp: ocspConfigSchema,
  crl: crlConfigSchema,
  'card-mgmt': cardMgmtConfigSchema,
  audit: auditConfigSchema,
};
const repo = path.resolve(__dirname, '..', '..', '..');

describe('service configuration files', () => {
  let dir: string;
  let configs: ReturnType<typeof buildDevConfigs>;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'service-configs-'));
    const secret = (name: string, value: string) => {
      const file = path.join(dir, name);
      writeFileSync(file, value);
      return file;
    };
    // The responder reads its HTTPS listener's certificate and key when it loads its config.
    const certFile = path.join(dir, 's.crt');
    const keyFile = path.join(dir, 's.key');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=ocsp', '-days', '1', '-keyout', keyFile, '-out', certFile], { stdio: 'ignore' });
    const tls = { caFile: '/x/ca.crt', certFile, keyFile };
    configs = buildDevConfigs({
      ports: devPorts(20_000),
      databaseUrlFile: secret('db-url', 'postgres://postgres:pw@127.0.0.1:1/pki'),
      hsm: { modulePath: '/usr/lib/softhsm/libsofthsm2.so', tokenLabel: 'citizen-ca', pinFile: secret('pin', '1234'), softhsmConfigFile: '/x/softhsm2.conf' },
      tls: Object.fromEntries(SERVICES.map((s) => [s, tls])) as Record<ServiceName, typeof tls>,
      ra: {
        officerCaFile: '/x/officer-ca.crt',
        personalData: { encryptionKeyFile: secret('pd', 'a'.repeat(64)), lookupKeyFile: secret('lookup', 'b'.repeat(64)), referenceKeyFile: secret('ref', 'c'.repeat(64)) },
      },
      cardMgmt: { adminSecretKeyFile: secret('admin', 'd'.repeat(64)), transportKeyFile: secret('transport', 'e'.repeat(64)), fingerprintKeyFile: secret('fingerprint', 'f'.repeat(64)) },
    });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each(SERVICES)('the embedded deployment config of %s is accepted by its schema', (service) => {
    expect(() => parseConfig(schemas[service], configs[service], service)).not.toThrow();
  });

  // The real binaries, as an operator starts them: they must refuse before opening any port.
  const run = (service: ServiceName, config: unknown) => {
    const main = path.join(repo, 'services', service, 'dist', 'main.js');
    if (!existsSync(main)) throw new Error(`${main} is missing: run 'make build' (make test builds first)`);
    const file = path.join(dir, `${service}-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(file, JSON.stringify(config));
    const result = spawnSync(process.execPath, [main, file], { encoding: 'utf8', timeout: 20_000 });
    return { code: result.status, output: result.stdout + result.stderr };
  };

  it.each(SERVICES)('%s refuses to start on an unknown key and names it', (service) => {
    const { code, output } = run(service, { ...configs[service], logLevel: 'debug' });
    expect(code).toBe(78);
    expect(output).toContain(`${service} refuses to start`);
    expect(output).toContain("unknown key 'logLevel'");
  });

  it.each(SERVICES)('%s refuses to start on a missing key and names it', (service) => {
    const { database: _, ...rest } = configs[service];
    const { code, output } = run(service, rest);
    expect(code).toBe(78);
    expect(output).toContain("missing key 'database'");
  });

  it('names a nested key precisely, and never prints the secret it read', () => {
    const ca = configs['ca-signer'] as { hsm: Record<string, unknown> };
    const { code, output } = run('ca-signer', { ...ca, hsm: { ...ca.hsm, tokenLable: 'citizen-ca' } });
    expect(code).toBe(78);
    expect(output).toContain("unknown key 'hsm.tokenLable'");
    expect(output).not.toContain('pw@');
  });

  it('refuses to start without a config file', () => {
    const result = spawnSync(process.execPath, [path.join(repo, 'services', 'ra', 'dist', 'main.js')], { encoding: 'utf8', env: { ...process.env, PKI_CONFIG: '' } });
    expect(result.status).toBe(78);
    expect(result.stdout + result.stderr).toContain('no config file');
  });
});
