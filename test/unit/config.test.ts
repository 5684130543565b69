// countersign.yml and the environment: what a valid config resolves to, and that every mistake
// stops the start with a message naming its field.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readEnv } from '../../src/config/env.js';
import { ConfigError } from '../../src/config/errors.js';
import { loadConfigFile, parseConfig } from '../../src/config/load.js';
import { MIN_SECRET_LENGTH, secretValueProblem } from '../../src/config/schema.js';
import { RESERVED_SECRET_NAMES } from '../support/reservedNames.js';

const KEY_TEXT = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n';
const ED25519 = 'AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl';
const RSA = 'AAAAB3NzaC1yc2EAAAADAQABAAABAQC7';

let dir: string;
let configPath: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'countersign-config-'));
  configPath = join(dir, 'countersign.yml');
  writeFileSync(join(dir, 'id_ed25519'), KEY_TEXT, { mode: 0o600 });
  writeFileSync(join(dir, 'not_a_key'), 'hello\n');
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A valid config; `review`, `ssh` and `extra` are spliced in as YAML text. */
function yaml(opts: { hosts?: string; ssh?: string; extra?: string; review?: string } = {}): string {
  return `
targets:
  web-prod:
    description: Production web servers
    hosts:
${
  opts.hosts ??
  `      - host: 10.0.0.5
        user: deploy
      - host: 10.0.0.6
        port: 2222
        user: deploy`
}
    ssh:
${
  opts.ssh ??
  `      privateKeyFile: id_ed25519
      knownHosts: "10.0.0.5 ssh-ed25519 ${ED25519}"`
}
${opts.extra ?? ''}
${opts.review ?? ''}
`;
}

const REVIEW = `    review:
      channel: C0REVIEW
      groups:
        - name: sre
          users: [U0123, W0456]`;

/** The problems parseConfig reports; fails the test when it accepts the config. */
function problems(text: string, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseConfig(text, configPath, env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    const configError = error as ConfigError;
    // The message lists every problem, and names the file.
    expect(configError.message).toContain(configPath);
    for (const problem of configError.problems) expect(configError.message).toContain(`  - ${problem}`);
    return configError.problems;
  }
  throw new Error('expected a ConfigError');
}

/** The one problem reported, which must start with `field: `. */
function problemAt(text: string, field: string, env: NodeJS.ProcessEnv = {}): string {
  const found = problems(text, env);
  expect(found, JSON.stringify(found)).toHaveLength(1);
  expect(found[0]!.startsWith(`${field}: `), `${found[0]} names ${field}`).toBe(true);
  return found[0]!;
}

describe('parseConfig: a valid config', () => {
  it('resolves targets with defaults, the key read, known hosts parsed', () => {
    const config = parseConfig(yaml({ review: REVIEW }), configPath, {});
    const target = config.targets.get('web-prod');
    expect(target).toBeDefined();
    expect(target).toMatchObject({
      name: 'web-prod',
      description: 'Production web servers',
      type: 'bash',
      privateKey: KEY_TEXT,
      channel: null,
      timeoutMs: 15 * 60_000,
      review: { channel: 'C0REVIEW', autoRun: false, groups: [{ name: 'sre', users: ['U0123', 'W0456'], approvals: 1 }] },
    });
    expect(target!.hosts).toEqual([
      { host: '10.0.0.5', port: 22, user: 'deploy' },
      { host: '10.0.0.6', port: 2222, user: 'deploy' },
    ]);
    expect(target!.knownHosts).toEqual([{ patterns: ['10.0.0.5'], keyType: 'ssh-ed25519', keyBase64: ED25519 }]);
  });

  it('converts durations to milliseconds and keeps explicit settings', () => {
    const config = parseConfig(
      yaml({
        extra: '    type: python3\n    timeout: 1h30m\n    channel: C0OPS',
        review: `    review:
      channel: G0PRIVATE
      autoRun: true
      groups:
        - name: sre
          users: [U0123, U0456, U0789]
          approvals: 3`,
      }),
      configPath,
      {},
    );
    const target = config.targets.get('web-prod')!;
    expect(target.timeoutMs).toBe(90 * 60_000);
    expect(target.type).toBe('python3');
    expect(target.channel).toBe('C0OPS');
    expect(target.review).toEqual({ channel: 'G0PRIVATE', autoRun: true, groups: [{ name: 'sre', users: ['U0123', 'U0456', 'U0789'], approvals: 3 }] });
  });

  it('has no review when the target has no review section', () => {
    expect(parseConfig(yaml(), configPath, {}).targets.get('web-prod')!.review).toBeNull();
  });

  it('takes knownHosts as one string of lines or as a list', () => {
    const asList = parseConfig(
      yaml({
        ssh: `      privateKeyFile: id_ed25519\n      knownHosts:\n        - "10.0.0.5 ssh-ed25519 ${ED25519}"\n        - "[10.0.0.6]:2222 ssh-rsa ${RSA}"`,
      }),
      configPath,
      {},
    );
    const asBlock = parseConfig(
      yaml({
        ssh: `      privateKeyFile: id_ed25519\n      knownHosts: |\n        # pinned\n        10.0.0.5 ssh-ed25519 ${ED25519}\n        [10.0.0.6]:2222 ssh-rsa ${RSA}`,
      }),
      configPath,
      {},
    );
    const expected = [
      { patterns: ['10.0.0.5'], keyType: 'ssh-ed25519', keyBase64: ED25519 },
      { patterns: ['[10.0.0.6]:2222'], keyType: 'ssh-rsa', keyBase64: RSA },
    ];
    expect(asList.targets.get('web-prod')!.knownHosts).toEqual(expected);
    expect(asBlock.targets.get('web-prod')!.knownHosts).toEqual(expected);
  });

  it('reads the key from an environment variable', () => {
    const config = parseConfig(yaml({ ssh: `      privateKeyEnv: WEB_KEY\n      knownHosts: "10.0.0.5 ssh-ed25519 ${ED25519}"` }), configPath, {
      WEB_KEY: KEY_TEXT,
    });
    expect(config.targets.get('web-prod')!.privateKey).toBe(KEY_TEXT);
  });

  it('resolves a relative key file against the config file’s directory, wherever the process runs', () => {
    const elsewhere = join(dir, 'sub', 'countersign.yml');
    const text = yaml({ ssh: `      privateKeyFile: ../id_ed25519\n      knownHosts: "10.0.0.5 ssh-ed25519 ${ED25519}"` });
    expect(parseConfig(text, elsewhere, {}).targets.get('web-prod')!.privateKey).toBe(KEY_TEXT);
  });

  it('loads a config file from disk, and names the file it cannot read', () => {
    writeFileSync(configPath, yaml());
    expect(loadConfigFile(configPath, {}).targets.has('web-prod')).toBe(true);
    const missing = join(dir, 'nope.yml');
    expect(() => loadConfigFile(missing, {})).toThrow(ConfigError);
    expect(() => loadConfigFile(missing, {})).toThrow(missing);
  });

  it('accepts an empty targets map and several targets', () => {
    expect(parseConfig('targets: {}\n', configPath, {}).targets.size).toBe(0);
    const two = `${yaml()}  db-prod:\n    hosts: [{ host: db1, user: postgres }]\n    ssh:\n      privateKeyFile: id_ed25519\n      knownHosts: "db1 ssh-ed25519 ${ED25519}"\n`;
    expect([...parseConfig(two, configPath, {}).targets.keys()]).toEqual(['web-prod', 'db-prod']);
  });
});

describe('parseConfig: every error names its field', () => {
  it('a port that is not a number', () => {
    const problem = problemAt(yaml({ hosts: '      - host: 10.0.0.5\n        port: "22"\n        user: deploy' }), 'targets.web-prod.hosts[0].port');
    expect(problem).toContain('expected number');
  });

  it('a port out of range', () => {
    problemAt(yaml({ hosts: '      - host: a\n        user: u\n      - host: b\n        port: 70000\n        user: u' }), 'targets.web-prod.hosts[1].port');
    problemAt(yaml({ hosts: '      - host: a\n        port: 0\n        user: u' }), 'targets.web-prod.hosts[0].port');
  });

  it('a host without a user, and a target without hosts', () => {
    problemAt(yaml({ hosts: '      - host: a' }), 'targets.web-prod.hosts[0].user');
    problemAt(yaml({ hosts: '      []' }), 'targets.web-prod.hosts');
  });

  it('approvals that is not a positive whole number', () => {
    const review = (approvals: string) => `${REVIEW}\n          approvals: ${approvals}`;
    problemAt(yaml({ review: review('0') }), 'targets.web-prod.review.groups[0].approvals');
    problemAt(yaml({ review: review('1.5') }), 'targets.web-prod.review.groups[0].approvals');
    problemAt(yaml({ review: review('two') }), 'targets.web-prod.review.groups[0].approvals');
  });

  it('more approvals than the group has users', () => {
    const problem = problemAt(yaml({ review: `${REVIEW}\n          approvals: 3` }), 'targets.web-prod.review.groups[0].approvals');
    expect(problem).toContain('approvals is larger than the number of users');
  });

  it('an unknown key, so a typo cannot silently weaken review', () => {
    const inGroup = problemAt(yaml({ review: `${REVIEW}\n          aprovals: 2` }), 'targets.web-prod.review.groups[0]');
    expect(inGroup).toContain('aprovals');
    const inTarget = problemAt(yaml({ extra: `    reveiw:\n      channel: C0REVIEW` }), 'targets.web-prod');
    expect(inTarget).toContain('reveiw');
    const inHost = problemAt(yaml({ hosts: '      - host: a\n        user: u\n        prot: 2222' }), 'targets.web-prod.hosts[0]');
    expect(inHost).toContain('prot');
    const atTop = problems(`${yaml()}\nextra: 1\n`);
    expect(atTop).toHaveLength(1);
    expect(atTop[0]).toContain('extra');
  });

  it('bad Slack ids', () => {
    expect(problemAt(yaml({ extra: '    channel: ops' }), 'targets.web-prod.channel')).toContain('Slack channel id');
    expect(problemAt(yaml({ review: REVIEW.replace('C0REVIEW', 'review-requests') }), 'targets.web-prod.review.channel')).toContain('Slack channel id');
    expect(problemAt(yaml({ review: REVIEW.replace('W0456', 'alice') }), 'targets.web-prod.review.groups[0].users[1]')).toContain('Slack user id');
    expect(problemAt(yaml({ review: REVIEW.replace('U0123', 'C0123') }), 'targets.web-prod.review.groups[0].users[0]')).toContain('Slack user id');
  });

  it('a review group without users', () => {
    const found = problems(yaml({ review: REVIEW.replace('[U0123, W0456]', '[]') }));
    expect(
      found.some((p) => p.startsWith('targets.web-prod.review.groups[0].users: ')),
      JSON.stringify(found),
    ).toBe(true);
  });

  it('a group name used twice', () => {
    const review = `${REVIEW}\n        - name: sre\n          users: [U0999]`;
    expect(problemAt(yaml({ review }), 'targets.web-prod.review.groups[1].name')).toContain('sre');
  });

  it('a timeout written in words', () => {
    expect(problemAt(yaml({ extra: '    timeout: 15 minutes' }), 'targets.web-prod.timeout')).toContain('expected a duration');
    problemAt(yaml({ extra: '    timeout: 15' }), 'targets.web-prod.timeout');
  });

  it('a timeout of zero, which would stop every run the moment it starts', () => {
    problemAt(yaml({ extra: '    timeout: 0s' }), 'targets.web-prod.timeout');
  });

  it('a timeout longer than a Node timer can wait (2^31-1 ms, ~24.8 days), which Node fires after 1 ms', () => {
    problemAt(yaml({ extra: '    timeout: 30d' }), 'targets.web-prod.timeout');
  });

  it('an unknown script type', () => {
    problemAt(yaml({ extra: '    type: perl' }), 'targets.web-prod.type');
  });

  it('a bad target name, saying what names may be', () => {
    const found = problems(yaml().replace('web-prod:', '"web prod!":'));
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(/^targets\.web prod!: /);
    // schema.ts gives the rule as the key's message; the operator should see it.
    expect(found[0]).toContain('target names use letters, digits, -, _ and .');
  });

  it('a missing private key file, naming the file', () => {
    const problem = problemAt(
      yaml({ ssh: `      privateKeyFile: missing_key\n      knownHosts: "a ssh-ed25519 ${ED25519}"` }),
      'targets.web-prod.ssh.privateKeyFile',
    );
    expect(problem).toContain('missing_key');
    expect(problem).toContain('ENOENT');
  });

  it('a private key env var that is not set (or empty)', () => {
    const text = yaml({ ssh: `      privateKeyEnv: WEB_PROD_KEY\n      knownHosts: "a ssh-ed25519 ${ED25519}"` });
    expect(problemAt(text, 'targets.web-prod.ssh.privateKeyEnv', {})).toContain('WEB_PROD_KEY is not set');
    expect(problemAt(text, 'targets.web-prod.ssh.privateKeyEnv', { WEB_PROD_KEY: '' })).toContain('WEB_PROD_KEY');
  });

  it('a key that is not a private key', () => {
    expect(problemAt(yaml({ ssh: `      privateKeyFile: not_a_key\n      knownHosts: "a ssh-ed25519 ${ED25519}"` }), 'targets.web-prod.ssh')).toContain(
      'PRIVATE KEY',
    );
  });

  it('both or neither of privateKeyFile and privateKeyEnv', () => {
    const both = problemAt(
      yaml({ ssh: `      privateKeyFile: id_ed25519\n      privateKeyEnv: K\n      knownHosts: "a ssh-ed25519 ${ED25519}"` }),
      'targets.web-prod.ssh',
    );
    expect(both).toContain('exactly one of privateKeyFile or privateKeyEnv');
    problemAt(yaml({ ssh: `      knownHosts: "a ssh-ed25519 ${ED25519}"` }), 'targets.web-prod.ssh');
  });

  it('known hosts that are missing, empty, malformed or use markers', () => {
    problemAt(yaml({ ssh: '      privateKeyFile: id_ed25519' }), 'targets.web-prod.ssh.knownHosts');
    expect(problemAt(yaml({ ssh: '      privateKeyFile: id_ed25519\n      knownHosts: ""' }), 'targets.web-prod.ssh.knownHosts')).toContain(
      'pin at least one host key',
    );
    expect(problemAt(yaml({ ssh: '      privateKeyFile: id_ed25519\n      knownHosts: "10.0.0.5 ssh-ed25519"' }), 'targets.web-prod.ssh.knownHosts')).toContain(
      'line 1',
    );
    const marker = `      privateKeyFile: id_ed25519\n      knownHosts:\n        - "10.0.0.5 ssh-ed25519 ${ED25519}"\n        - "@cert-authority *.example.com ssh-ed25519 ${ED25519}"`;
    expect(problemAt(yaml({ ssh: marker }), 'targets.web-prod.ssh.knownHosts')).toContain('line 2: markers like @cert-authority');
  });

  it('bad YAML, with its line number', () => {
    const found = problems('targets:\n  web-prod:\n    hosts: [\n      - host: a\n');
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(/^not valid YAML \(line \d+\)/);
    const tab = problems('targets:\n  web-prod:\n\thosts: []\n');
    expect(tab[0]).toMatch(/^not valid YAML \(line 3\)/);
  });

  it('a target defined twice', () => {
    const found = problems(`${yaml()}  web-prod:\n    hosts: []\n`);
    expect(found[0]).toMatch(/^not valid YAML \(line \d+\)/);
  });

  it('a file without targets', () => {
    problemAt('', 'targets');
    problemAt('targets: [web-prod]\n', 'targets');
  });

  it('lists every problem at once', () => {
    const text = yaml({
      hosts: '      - host: a\n        port: "22"\n        user: u',
      extra: '    channel: ops\n    timeout: 15 minutes',
      review: `${REVIEW}\n          aprovals: 2`,
    });
    const found = problems(text);
    const fields = ['targets.web-prod.hosts[0].port: ', 'targets.web-prod.channel: ', 'targets.web-prod.timeout: ', 'targets.web-prod.review.groups[0]: '];
    for (const field of fields)
      expect(
        found.some((p) => p.startsWith(field)),
        field,
      ).toBe(true);
    expect(found).toHaveLength(fields.length);
  });

  it('a secret name the wrapper, the shell or the dynamic loader depends on', () => {
    const secret = (name: string) => yaml({ extra: `    secrets:\n      ${name}: { env: SECRET_SOURCE }` });
    const env = { SECRET_SOURCE: 'a-long-enough-value' };
    for (const name of RESERVED_SECRET_NAMES) {
      problemAt(secret(name), `targets.web-prod.secrets.${name}`, env);
    }
    expect(problemAt(secret('__cs_f'), 'targets.web-prod.secrets.__cs_f', env)).toContain('__cs_');
    expect(problemAt(secret('LD_PRELOAD'), 'targets.web-prod.secrets.LD_PRELOAD', env)).toContain('dynamic loader');
    // Ordinary names, short ones included, are fine.
    const ok = parseConfig(yaml({ extra: '    secrets:\n      DB_PASSWORD: { env: SECRET_SOURCE }\n      f: { env: SECRET_SOURCE }' }), configPath, env);
    expect([...ok.targets.get('web-prod')!.secrets.keys()]).toEqual(['DB_PASSWORD', 'f']);
  });

  it('a secret value under 4 characters, from the environment or a file (masking it would mask ordinary text)', () => {
    writeFileSync(join(dir, 'short-secret'), 'abc\n');
    writeFileSync(join(dir, 'ok-secret'), 'abcd\n');
    const fromEnv = yaml({ extra: '    secrets:\n      API_KEY: { env: SHORT }' });
    expect(problemAt(fromEnv, 'targets.web-prod.secrets.API_KEY', { SHORT: 'abc' })).toContain('shorter than 4 characters');
    const fromFile = yaml({ extra: '    secrets:\n      API_KEY: { file: short-secret }' });
    expect(problemAt(fromFile, 'targets.web-prod.secrets.API_KEY')).toContain('shorter than 4 characters');
    const ok = parseConfig(yaml({ extra: '    secrets:\n      API_KEY: { file: ok-secret }\n      TOKEN: { env: SHORT }' }), configPath, { SHORT: 'abcd' });
    expect([...ok.targets.get('web-prod')!.secrets.values()]).toEqual(['abcd', 'abcd']);
  });

  it('runAs with sudo that may ask for a password (no -n among sudo’s own options)', () => {
    const runAs = (value: string) => yaml({ extra: `    runAs: "${value}"` });
    for (const value of ['sudo -u app', '/usr/bin/sudo -u app', 'sudo -u app nice -n 5', 'sudo -u -n']) {
      expect(problemAt(runAs(value), 'targets.web-prod.runAs'), value).toContain('-n');
    }
    for (const value of ['sudo -n -u app', 'sudo -u app -n', '/usr/bin/sudo --non-interactive -u app', 'env LANG=C', 'nice -n 5']) {
      expect(parseConfig(runAs(value), configPath, {}).targets.get('web-prod')!.runAs, value).toEqual(value.split(' '));
    }
  });

  it('lists every problem found while resolving, across targets', () => {
    const text = `
targets:
  a:
    hosts: [{ host: a, user: u }]
    ssh: { privateKeyFile: missing_a, knownHosts: "a ssh-ed25519 ${ED25519}" }
  b:
    hosts: [{ host: b, user: u }]
    ssh: { privateKeyEnv: B_KEY, knownHosts: "b ssh-ed25519" }
`;
    const found = problems(text, {});
    expect(found.some((p) => p.startsWith('targets.a.ssh.privateKeyFile: '))).toBe(true);
    expect(found.some((p) => p.startsWith('targets.b.ssh.privateKeyEnv: '))).toBe(true);
    expect(found.some((p) => p.startsWith('targets.b.ssh.knownHosts: line 1'))).toBe(true);
    expect(found).toHaveLength(3);
  });
});

describe('readEnv', () => {
  const tokens = { SLACK_SIGNING_SECRET: 'secret', SLACK_BOT_TOKEN: 'xoxb-1-2-abc' };

  function envProblems(env: NodeJS.ProcessEnv): string[] {
    try {
      readEnv(env);
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).message).toContain('the environment');
      return (error as ConfigError).problems;
    }
    throw new Error('expected a ConfigError');
  }

  it('defaults: port 3000, countersign.yml, .data, info, no Slack with both tokens missing', () => {
    const env = readEnv({});
    expect(env).toMatchObject({
      port: 3000,
      configPath: 'countersign.yml',
      configPathExplicit: false,
      dataDir: '.data',
      logLevel: 'info',
      databaseUrl: undefined,
      slack: null,
      slackApiUrl: undefined,
    });
    expect(env.slackMissing).toEqual(['SLACK_SIGNING_SECRET', 'SLACK_BOT_TOKEN']);
  });

  it('Slack is set up only with both tokens; the missing one is named', () => {
    expect(readEnv(tokens)).toMatchObject({ slack: { signingSecret: 'secret', botToken: 'xoxb-1-2-abc' }, slackMissing: [] });
    expect(readEnv({ SLACK_SIGNING_SECRET: 'secret' })).toMatchObject({ slack: null, slackMissing: ['SLACK_BOT_TOKEN'] });
    expect(readEnv({ SLACK_BOT_TOKEN: 'xoxb-1' })).toMatchObject({ slack: null, slackMissing: ['SLACK_SIGNING_SECRET'] });
    // Blank counts as missing.
    expect(readEnv({ SLACK_SIGNING_SECRET: '  ', SLACK_BOT_TOKEN: 'xoxb-1' }).slackMissing).toEqual(['SLACK_SIGNING_SECRET']);
  });

  it('reads the port and refuses a bad one, naming PORT', () => {
    expect(readEnv({ PORT: '8080' }).port).toBe(8080);
    expect(readEnv({ PORT: ' 8081 ' }).port).toBe(8081);
    expect(readEnv({ PORT: '' }).port).toBe(3000);
    for (const bad of ['http', '80a', '-1', '65536', '3.5']) {
      const found = envProblems({ PORT: bad });
      expect(found, bad).toHaveLength(1);
      expect(found[0]!.startsWith('PORT: '), found[0]).toBe(true);
    }
  });

  it('refuses a bot token that is not a bot token, naming SLACK_BOT_TOKEN', () => {
    const found = envProblems({ ...tokens, SLACK_BOT_TOKEN: 'xoxp-user-token' });
    expect(found).toEqual(['SLACK_BOT_TOKEN: a bot token starts with xoxb-']);
  });

  it('refuses an app token that is not an app token', () => {
    expect(envProblems({ SLACK_APP_TOKEN: 'xoxb-1' })[0]).toMatch(/^SLACK_APP_TOKEN: /);
    expect(readEnv({ SLACK_APP_TOKEN: 'xapp-1-2' }).slackAppToken).toBe('xapp-1-2');
  });

  it('gives SLACK_API_URL exactly one trailing slash', () => {
    expect(readEnv({ SLACK_API_URL: 'http://127.0.0.1:4000/api' }).slackApiUrl).toBe('http://127.0.0.1:4000/api/');
    expect(readEnv({ SLACK_API_URL: 'http://127.0.0.1:4000/api/' }).slackApiUrl).toBe('http://127.0.0.1:4000/api/');
    expect(envProblems({ SLACK_API_URL: 'slack.com/api' })[0]).toMatch(/^SLACK_API_URL: /);
  });

  it('checks DATABASE_URL, PUBLIC_URL and LOG_LEVEL, and lists every problem', () => {
    expect(readEnv({ DATABASE_URL: 'postgres://u:p@h:5432/db' }).databaseUrl).toBe('postgres://u:p@h:5432/db');
    expect(readEnv({ COUNTERSIGN_CONFIG: '/etc/cs.yml' })).toMatchObject({ configPath: '/etc/cs.yml', configPathExplicit: true });
    const found = envProblems({ DATABASE_URL: 'mysql://x', PUBLIC_URL: 'example.com', LOG_LEVEL: 'loud', PORT: 'x', SLACK_BOT_TOKEN: 'abc' });
    const names = found.map((p) => p.split(':')[0]).sort();
    expect(names).toEqual(['DATABASE_URL', 'LOG_LEVEL', 'PORT', 'PUBLIC_URL', 'SLACK_BOT_TOKEN']);
  });
});

describe('secretValueProblem (applied where secret values are read)', () => {
  it(`refuses values shorter than ${MIN_SECRET_LENGTH} characters, which masking would turn into holes all over the output`, () => {
    for (const value of ['a', 'ab', 'abc', '☃☃☃']) expect(secretValueProblem(value), value).toMatch(/shorter than 4 characters/);
    for (const value of ['abcd', '☃☃☃☃', 'a long passphrase']) expect(secretValueProblem(value), value).toBeNull();
  });
});

describe('parseConfig: review groups with Slack user groups, DMs and expiry', () => {
  const group = (lines: string) => `    review:\n      channel: C0REVIEW\n      groups:\n        - name: sre\n${lines}`;

  it('takes a usergroup instead of users, or both, with dm and expiresAfter', () => {
    const onlyGroup = parseConfig(yaml({ review: group('          usergroup: S0789\n          approvals: 3\n          dm: true') }), configPath, {});
    expect(onlyGroup.targets.get('web-prod')!.review).toEqual({
      channel: 'C0REVIEW',
      autoRun: false,
      groups: [{ name: 'sre', users: [], usergroup: 'S0789', approvals: 3, dm: true }],
    });
    const both = parseConfig(yaml({ review: `${group('          users: [U0123]\n          usergroup: S0789AB')}\n      expiresAfter: 24h` }), configPath, {});
    expect(both.targets.get('web-prod')!.review).toEqual({
      channel: 'C0REVIEW',
      autoRun: false,
      groups: [{ name: 'sre', users: ['U0123'], usergroup: 'S0789AB', approvals: 1 }],
      expiresAfter: { ms: 24 * 3600_000, text: '24h' },
    });
  });

  it('refuses a group with neither users nor usergroup', () => {
    expect(problemAt(yaml({ review: group('          approvals: 1') }), 'targets.web-prod.review.groups[0]')).toContain('needs users, a usergroup, or both');
  });

  it('refuses a usergroup id that is not one', () => {
    for (const id of ['s0789', 'U0789', 'S07-89', '@sre', 'S']) {
      expect(problemAt(yaml({ review: group(`          usergroup: "${id}"`) }), 'targets.web-prod.review.groups[0].usergroup'), id).toContain(
        'Slack user group id',
      );
    }
  });

  it('checks approvals against a plain list only: a user group’s size is known at run time', () => {
    problemAt(yaml({ review: group('          users: [U0123]\n          approvals: 2') }), 'targets.web-prod.review.groups[0].approvals');
    expect(
      parseConfig(yaml({ review: group('          users: [U0123]\n          usergroup: S0789\n          approvals: 2') }), configPath, {}).targets.size,
    ).toBe(1);
  });

  it('refuses an expiresAfter that is not a duration, or too short, and a dm that is not a boolean', () => {
    expect(problemAt(yaml({ review: `${REVIEW}\n      expiresAfter: one day` }), 'targets.web-prod.review.expiresAfter')).toContain('expected a duration');
    expect(problemAt(yaml({ review: `${REVIEW}\n      expiresAfter: 500ms` }), 'targets.web-prod.review.expiresAfter')).toContain('at least 1s');
    problemAt(yaml({ review: `${REVIEW}\n          dm: "yes"` }), 'targets.web-prod.review.groups[0].dm');
  });
});

describe('parseConfig: recipes and hooks', () => {
  const RECIPES = `recipes:
  restart:
    target: web-prod
    script: systemctl restart "$1"
    arguments:
      - { name: token, kind: fixed, value: abc }
      - { name: service, kind: input, pattern: "[a-z]+", required: true }
      - { name: mode, kind: options, options: [soft, hard], default: soft }
`;
  const HOOK_SECRET = 'a-hook-secret-of-24-chars';

  it('resolves recipes and hooks (secret read, arguments mapped)', () => {
    const config = parseConfig(
      `${yaml()}${RECIPES}hooks:\n  ci:\n    recipe: restart\n    secret: { env: HOOK }\n    channel: C0HOOKS\n    arguments:\n      mode: hard\n      service: { from: repo.name }\n`,
      configPath,
      { HOOK: HOOK_SECRET },
    );
    const recipe = config.recipes?.get('restart');
    expect(recipe).toMatchObject({ name: 'restart', target: 'web-prod', type: null, origin: 'config' });
    expect(recipe?.arguments).toEqual([
      { name: 'token', kind: 'fixed', value: 'abc' },
      { name: 'service', kind: 'input', pattern: '[a-z]+', required: true },
      { name: 'mode', kind: 'options', options: ['soft', 'hard'], default: 'soft' },
    ]);
    const hook = config.hooks?.get('ci');
    expect(hook).toMatchObject({ id: 'ci', runbook: 'restart', secret: HOOK_SECRET, channel: 'C0HOOKS' });
    expect([...(hook?.arguments ?? [])]).toEqual([
      ['mode', { value: 'hard' }],
      ['service', { from: 'repo.name' }],
    ]);
  });

  it('names the field of a bad recipe', () => {
    problemAt(
      `${yaml()}recipes:\n  r:\n    target: web-prod\n    script: "true"\n    arguments:\n      - { name: x, kind: input, pattern: "(" }\n`,
      'recipes.r.arguments[0].pattern',
    );
    problemAt(
      `${yaml()}recipes:\n  r:\n    target: web-prod\n    script: "true"\n    arguments:\n      - { name: x, kind: options, options: [a, b], default: c }\n`,
      'recipes.r.arguments[0].default',
    );
    problemAt(
      `${yaml()}recipes:\n  r:\n    target: web-prod\n    script: "true"\n    arguments:\n      - { name: 1x, kind: fixed, value: v }\n`,
      'recipes.r.arguments[0].name',
    );
    problemAt(
      `${yaml()}recipes:\n  r:\n    target: web-prod\n    script: "true"\n    arguments:\n      - { name: x, kind: fixed, value: a }\n      - { name: X, kind: fixed, value: b }\n`,
      'recipes.r.arguments[1].name',
    );
    problemAt(`${yaml()}recipes:\n  r:\n    target: nowhere\n    script: "true"\n`, 'recipes.r.target');
    problemAt(
      `${yaml()}recipes:\n  r:\n    target: web-prod\n    script: "true"\n    arguments:\n      - { name: x, kind: guess }\n`,
      'recipes.r.arguments[0].kind',
    );
  });

  it('reads recipeFiles (a directory or dir/*.json) and names the file of a bad one', () => {
    const recipesDir = join(dir, 'recipes');
    rmSync(recipesDir, { recursive: true, force: true });
    mkdirSync(recipesDir);
    writeFileSync(
      join(recipesDir, 'a.json'),
      JSON.stringify({ name: 'a', target: 'web-prod', script: 'echo "$1"', arguments: [{ name: 'who', kind: 'input' }] }),
    );
    const config = parseConfig(`${yaml()}recipeFiles: recipes/*.json\n`, configPath);
    expect(config.recipes?.get('a')).toMatchObject({ name: 'a', origin: 'config', arguments: [{ name: 'who', kind: 'input', required: false }] });
    expect(parseConfig(`${yaml()}recipeFiles: [recipes]\n`, configPath).recipes?.has('a')).toBe(true);
    writeFileSync(join(recipesDir, 'b.json'), JSON.stringify({ name: 'b', target: 'web-prod', script: '', arguments: [] }));
    const found = problems(`${yaml()}recipeFiles: recipes\n`);
    expect(found).toEqual(['recipeFiles: b.json: script: the script is empty']);
    rmSync(join(recipesDir, 'b.json'));
    expect(problems(`${yaml()}recipeFiles: recipes\n${RECIPES.replace('restart', 'a')}`)).toEqual(['recipeFiles: a.json: name: the recipe a is defined twice']);
    problemAt(`${yaml()}recipeFiles: missing-dir\n`, 'recipeFiles');
  });

  it('names the field of a bad hook', () => {
    problemAt(`${yaml()}${RECIPES}hooks:\n  ci:\n    recipe: nope\n    secret: { env: HOOK }\n`, 'hooks.ci.recipe', { HOOK: HOOK_SECRET });
    problemAt(`${yaml()}${RECIPES}hooks:\n  ci:\n    recipe: restart\n    secret: { env: HOOK }\n`, 'hooks.ci.secret', {});
    problemAt(`${yaml()}${RECIPES}hooks:\n  ci:\n    recipe: restart\n    secret: { env: HOOK }\n`, 'hooks.ci.secret', { HOOK: 'short' });
    problemAt(
      `${yaml()}${RECIPES}hooks:\n  ci:\n    recipe: restart\n    secret: { env: HOOK }\n    arguments:\n      token: x\n`,
      'hooks.ci.arguments.token',
      { HOOK: HOOK_SECRET },
    );
    problemAt(
      `${yaml()}${RECIPES}hooks:\n  ci:\n    recipe: restart\n    secret: { env: HOOK }\n    arguments:\n      other: x\n`,
      'hooks.ci.arguments.other',
      { HOOK: HOOK_SECRET },
    );
    problemAt(`${yaml()}${RECIPES}hooks:\n  ci:\n    recipe: restart\n    secret: { env: HOOK }\n    sekret: 1\n`, 'hooks.ci', { HOOK: HOOK_SECRET });
  });
});

describe('admins and viewers', () => {
  it("reads admins and a target's viewers as users and a user group", () => {
    const config = parseConfig(`admins: { users: [U0ADMIN], usergroup: S0ADMINS }\n${yaml({ extra: '    viewers: { usergroup: S0VIEW }' })}`, configPath, {});
    expect(config.admins).toEqual({ users: ['U0ADMIN'], usergroup: 'S0ADMINS' });
    expect(config.targets.get('web-prod')?.viewers).toEqual({ users: [], usergroup: 'S0VIEW' });
    expect(parseConfig(yaml(), configPath, {}).admins).toBeUndefined();
  });

  it('refuses an empty people entry and bad ids, naming the field', () => {
    expect(problems(`admins: {}\n${yaml()}`).join('\n')).toMatch(/admins: name users, a usergroup, or both/);
    expect(problems(yaml({ extra: '    viewers: { users: [alice] }' })).join('\n')).toMatch(/targets\.web-prod\.viewers\.users\[0\]/);
  });
});

describe('links', () => {
  it('reads how long task-page links stay valid, and refuses a bad duration naming the field', () => {
    expect(parseConfig(`links: { ttl: 2h }\n${yaml()}`, configPath, {}).links).toEqual({ ttlMs: 2 * 3600_000 });
    expect(parseConfig(`links: {}\n${yaml()}`, configPath, {}).links).toEqual({ ttlMs: 24 * 3600_000 });
    expect(parseConfig(yaml(), configPath, {}).links).toBeUndefined();
    expect(problems(`links: { ttl: forever }\n${yaml()}`).join('\n')).toMatch(/links\.ttl: expected a duration/);
    expect(problems(`links: { tll: 2h }\n${yaml()}`).join('\n')).toMatch(/links/);
  });
});
