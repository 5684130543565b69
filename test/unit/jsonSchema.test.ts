// countersign.schema.json: generated from the zod config schema (the committed file must be what
// `npm run schema` writes), the example config points editors at it and validates, and the schema
// and the loader agree: every bad config below is refused by both, each naming the same field.
// The refinements JSON Schema cannot express are listed in LOADER_ONLY: the schema lets them
// through, the loader refuses them.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { stringify as toYaml, parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configJsonSchemaText, FIELD_DOCS } from '../../src/config/jsonSchema.js';
import { ConfigError } from '../../src/config/errors.js';
import { parseConfig } from '../../src/config/load.js';

const ROOT = new URL('../../', import.meta.url);
const committed = readFileSync(new URL('countersign.schema.json', ROOT), 'utf8');
const schema = JSON.parse(committed) as Record<string, unknown>;
// Union types (["string", "number"]) are valid draft-07; Ajv's strict mode only asks to allow them.
const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
const validate = ajv.compile(schema);

const ED25519 = 'AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl';
type Config = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** A valid config using most fields; each case below breaks one thing in a copy of it. */
function base(): Config {
  return {
    admins: { users: ['U0ADMIN'] },
    runner: { maxConcurrentRuns: 4, shutdownGrace: '45s', maxOutput: '1MB' },
    targets: {
      'web-prod': {
        description: 'web',
        type: 'bash',
        hosts: [{ host: '10.0.0.5', port: 22, user: 'deploy' }],
        ssh: { privateKeyFile: 'id_ed25519', knownHosts: `10.0.0.5 ssh-ed25519 ${ED25519}` },
        channel: 'C0OPS',
        timeout: '15m',
        rollout: { batch: '50%', stopOnFailure: true },
        runAs: 'sudo -n -u app',
        secrets: { DB_PASSWORD: { env: 'PROD_DB_PASSWORD' } },
        redact: ['email'],
        review: { channel: 'C0REVIEW', groups: [{ name: 'sre', users: ['U0123', 'U0456'], approvals: 1 }] },
        viewers: { usergroup: 'S0VIEW' },
      },
    },
    recipes: {
      restart: { target: 'web-prod', script: 'systemctl restart "$1"', arguments: [{ name: 'service', kind: 'input', pattern: '[a-z]+' }] },
    },
    hooks: { deploy: { recipe: 'restart', secret: { env: 'HOOK_SECRET' }, arguments: { service: 'nginx' } } },
  };
}
const ENV = { PROD_DB_PASSWORD: 'a-long-secret', HOOK_SECRET: '0123456789abcdef0123' };

interface BadCase {
  why: string;
  change: (config: Config) => void;
  /** The field both name: the loader's message starts with it; the schema's error is at it (as a JSON pointer). */
  field: string;
}

const target = (config: Config) => config.targets['web-prod'];

/** Refused by both. */
const BOTH: BadCase[] = [
  { why: 'an unknown top-level key (a typo)', change: (c) => (c.target = {}), field: '' },
  { why: 'a typo in a review group (aprovals)', change: (c) => (target(c).review.groups[0].aprovals = 2), field: 'targets.web-prod.review.groups[0]' },
  { why: 'a target without hosts', change: (c) => (target(c).hosts = []), field: 'targets.web-prod.hosts' },
  { why: 'a port given as text', change: (c) => (target(c).hosts[0].port = '22'), field: 'targets.web-prod.hosts[0].port' },
  { why: 'a port out of range', change: (c) => (target(c).hosts[0].port = 70000), field: 'targets.web-prod.hosts[0].port' },
  { why: 'a host without a user', change: (c) => delete target(c).hosts[0].user, field: 'targets.web-prod.hosts[0]' },
  { why: 'an unknown script type', change: (c) => (target(c).type = 'ruby'), field: 'targets.web-prod.type' },
  { why: 'no pinned host keys at all', change: (c) => delete target(c).ssh.knownHosts, field: 'targets.web-prod.ssh' },
  { why: 'a channel name instead of an id', change: (c) => (target(c).review.channel = '#ops'), field: 'targets.web-prod.review.channel' },
  { why: 'a user name instead of an id', change: (c) => (target(c).review.groups[0].users = ['alice']), field: 'targets.web-prod.review.groups[0].users[0]' },
  { why: 'a review without groups', change: (c) => (target(c).review.groups = []), field: 'targets.web-prod.review.groups' },
  { why: 'zero approvals', change: (c) => (target(c).review.groups[0].approvals = 0), field: 'targets.web-prod.review.groups[0].approvals' },
  { why: 'a target name with a space', change: (c) => (c.targets['web prod'] = target(c)), field: 'targets' },
  { why: 'maxSessions below 2', change: (c) => (target(c).maxSessions = 1), field: 'targets.web-prod.maxSessions' },
  { why: 'maxConcurrentRuns of 0', change: (c) => (c.runner.maxConcurrentRuns = 0), field: 'runner.maxConcurrentRuns' },
  {
    why: 'a secret source that is neither env nor file',
    change: (c) => (target(c).secrets.DB_PASSWORD = { envv: 'X' }),
    field: 'targets.web-prod.secrets.DB_PASSWORD',
  },
  {
    why: 'an env variable name with a dash',
    change: (c) => (target(c).ssh = { privateKeyEnv: 'MY-KEY', knownHosts: target(c).ssh.knownHosts }),
    field: 'targets.web-prod.ssh.privateKeyEnv',
  },
  { why: 'a hook id with a dot', change: (c) => (c.hooks['de.ploy'] = c.hooks.deploy), field: 'hooks' },
  { why: 'an unknown argument kind', change: (c) => (c.recipes.restart.arguments[0].kind = 'secret'), field: 'recipes.restart.arguments[0]' },
  { why: 'a recipe without a script', change: (c) => delete c.recipes.restart.script, field: 'recipes.restart' },
  {
    why: 'a webhook path that is not a dotted path',
    change: (c) => (c.hooks.deploy.arguments.service = { from: 'a..b' }),
    field: 'hooks.deploy.arguments.service',
  },
  { why: 'a viewers block naming users as a string', change: (c) => (target(c).viewers = { users: 'U0123' }), field: 'targets.web-prod.viewers.users' },
];

/**
 * Refused by the loader only: zod refinements and checks made while resolving, which the
 * generated JSON Schema cannot express. An editor accepts these; `npm start` and `npm run check`
 * refuse them, naming the field.
 */
const LOADER_ONLY: BadCase[] = [
  { why: 'a duration that does not parse (refine: parseDuration)', change: (c) => (target(c).timeout = 'soon'), field: 'targets.web-prod.timeout' },
  { why: 'a duration over 24 days (refine: Node timers)', change: (c) => (c.runner.shutdownGrace = '30d'), field: 'runner.shutdownGrace' },
  { why: 'a size under 4KB (refine: parseSize)', change: (c) => (c.runner.maxOutput = '1KB'), field: 'runner.maxOutput' },
  { why: 'a rollout batch of 0% (refine: parseBatch)', change: (c) => (target(c).rollout.batch = '0%'), field: 'targets.web-prod.rollout.batch' },
  { why: 'runAs with sudo but without -n (refine)', change: (c) => (target(c).runAs = 'sudo -u app'), field: 'targets.web-prod.runAs' },
  { why: 'runAs with shell syntax (refine: plain words)', change: (c) => (target(c).runAs = 'sudo -n -u app; rm'), field: 'targets.web-prod.runAs' },
  {
    why: 'a reserved secret name (superRefine on the record key)',
    change: (c) => (target(c).secrets = { LD_PRELOAD: { env: 'PROD_DB_PASSWORD' } }),
    field: 'targets.web-prod.secrets.LD_PRELOAD',
  },
  { why: 'both privateKeyFile and privateKeyEnv (refine: exactly one)', change: (c) => (target(c).ssh.privateKeyEnv = 'KEY'), field: 'targets.web-prod.ssh' },
  {
    why: 'a review group with neither users nor a usergroup (refine)',
    change: (c) => delete target(c).review.groups[0].users,
    field: 'targets.web-prod.review.groups[0]',
  },
  {
    why: 'more approvals than users (refine)',
    change: (c) => (target(c).review.groups[0].approvals = 3),
    field: 'targets.web-prod.review.groups[0].approvals',
  },
  { why: 'admins naming nobody (refine: users or usergroup)', change: (c) => (c.admins = {}), field: 'admins' },
  {
    why: 'options listed twice (refine)',
    change: (c) => (c.recipes.restart.arguments = [{ name: 'mode', kind: 'options', options: ['a', 'a'] }]),
    field: 'recipes.restart.arguments[0].options',
  },
  {
    why: 'a default that is not an option (refine)',
    change: (c) => (c.recipes.restart.arguments = [{ name: 'mode', kind: 'options', options: ['a'], default: 'b' }]),
    field: 'recipes.restart.arguments[0].default',
  },
  {
    why: 'a host key line that does not parse (resolved at load)',
    change: (c) => (target(c).ssh.knownHosts = '10.0.0.5 ssh-ed25519'),
    field: 'targets.web-prod.ssh.knownHosts',
  },
  {
    why: 'a review group name used twice (resolved at load)',
    change: (c) => target(c).review.groups.push({ name: 'sre', users: ['U0789'] }),
    field: 'targets.web-prod.review.groups[1].name',
  },
  { why: 'a recipe on a target that does not exist (a reference)', change: (c) => (c.recipes.restart.target = 'gone'), field: 'recipes.restart.target' },
  { why: 'a hook on a recipe that does not exist (a reference)', change: (c) => (c.hooks.deploy.recipe = 'gone'), field: 'hooks.deploy.recipe' },
  {
    why: 'a secret whose variable is not set (the environment)',
    change: (c) => (target(c).secrets.DB_PASSWORD = { env: 'NOT_SET_ANYWHERE' }),
    field: 'targets.web-prod.secrets.DB_PASSWORD',
  },
];

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'countersign-schema-'));
  writeFileSync(join(dir, 'id_ed25519'), '-----BEGIN OPENSSH PRIVATE KEY-----\nnot used\n-----END OPENSSH PRIVATE KEY-----\n');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function loaderProblems(config: Config): string[] {
  try {
    parseConfig(toYaml(config), join(dir, 'countersign.yml'), ENV);
    return [];
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return error.problems;
  }
}

function schemaErrors(config: Config): ErrorObject[] {
  return validate(config) ? [] : [...(validate.errors ?? [])];
}

/** `targets.web-prod.hosts[0].port` -> `/targets/web-prod/hosts/0/port`, as Ajv reports where. */
function pointer(field: string): string {
  return field === ''
    ? ''
    : `/${field
        .replace(/\[(\d+)\]/g, '.$1')
        .split('.')
        .join('/')}`;
}

function broken(change: (config: Config) => void): Config {
  const config = base();
  change(config);
  return config;
}

describe('countersign.schema.json', () => {
  it('is what `npm run schema` generates from the config schema', () => {
    expect(committed === configJsonSchemaText(), 'countersign.schema.json is stale: run `npm run schema` and commit it').toBe(true);
  });

  it('documents fields for editors, and every documented path exists (generation would fail otherwise)', () => {
    const targetNode = ((schema.properties as Record<string, any>).targets.additionalProperties as Record<string, any>).properties; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(targetNode.runAs.description).toContain('sudo -n');
    expect(targetNode.hosts.items.properties.port.description).toBe('The SSH port (22).');
    expect(Object.keys(FIELD_DOCS).length).toBeGreaterThan(40);
  });

  it('is pointed at by countersign.example.yml, which validates against it and loads', () => {
    const text = readFileSync(new URL('countersign.example.yml', ROOT), 'utf8');
    expect(text.split('\n')[0]).toBe('# yaml-language-server: $schema=./countersign.schema.json');
    expect(schemaErrors(parseYaml(text) as Config)).toEqual([]);
    const keyed = text.replace('/etc/countersign/id_ed25519', join(dir, 'id_ed25519'));
    expect(() => parseConfig(keyed, join(dir, 'countersign.yml'), {})).not.toThrow();
  });

  it('and the loader both accept the base config of these cases', () => {
    expect(schemaErrors(base())).toEqual([]);
    expect(loaderProblems(base())).toEqual([]);
  });

  describe.each(BOTH)('both refuse $why', ({ change, field }) => {
    it(`naming ${field || 'the top level'}`, () => {
      const config = broken(change);
      const errors = schemaErrors(config);
      expect(errors.length, 'the schema accepted it').toBeGreaterThan(0);
      expect(
        errors.some((error) => error.instancePath === pointer(field) || error.instancePath.startsWith(`${pointer(field)}/`)),
        `schema errors at ${errors.map((e) => e.instancePath || '(top)').join(', ')}, expected ${pointer(field) || '(top)'}`,
      ).toBe(true);
      const problems = loaderProblems(config);
      expect(problems.length, 'the loader accepted it').toBeGreaterThan(0);
      // A top-level problem has no field before its message: `Unrecognized key: "target"`.
      expect(
        problems.some((problem) => (field === '' ? problem.startsWith('Unrecognized key') : problem.startsWith(field))),
        problems.join('\n'),
      ).toBe(true);
    });
  });

  describe.each(LOADER_ONLY)('only the loader refuses $why', ({ change, field }) => {
    it(`naming ${field}`, () => {
      const config = broken(change);
      expect(schemaErrors(config), 'the schema refuses this now: move the case to BOTH').toEqual([]);
      const problems = loaderProblems(config);
      expect(
        problems.some((problem) => problem.startsWith(`${field}: `)),
        problems.join('\n') || 'the loader accepted it',
      ).toBe(true);
    });
  });
});
