// countersign.yml hardening: user-written patterns (recipe inputs, custom redaction rules) are
// checked for the linear-time engine when the config is loaded, and hooks take a timestamped
// signature unless they say otherwise; each refusal names its field.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import { parseConfig } from '../../src/config/load.js';

const KEY_TEXT = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n';
const ED25519 = 'AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl';

let dir: string;
let configPath: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'countersign-config-linear-'));
  configPath = join(dir, 'countersign.yml');
  writeFileSync(join(dir, 'id_ed25519'), KEY_TEXT, { mode: 0o600 });
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A config with one target; `targetExtra` goes under the target, `extra` at the top level. */
function configYaml(opts: { targetExtra?: string; extra?: string } = {}): string {
  return `
targets:
  web-prod:
    hosts:
      - { host: 10.0.0.5, user: deploy }
    ssh:
      privateKeyFile: id_ed25519
      knownHosts: "10.0.0.5 ssh-ed25519 ${ED25519}"
${opts.targetExtra ?? ''}
${opts.extra ?? ''}
`;
}

function configProblems(text: string, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseConfig(text, configPath, env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('patterns in countersign.yml', () => {
  it('refuses a recipe input pattern RE2 cannot run, or a default it takes seconds to refuse elsewhere', () => {
    const recipe = (argument: string) =>
      configYaml({ extra: `recipes:\n  restart:\n    target: web-prod\n    script: echo "$1"\n    arguments:\n      - ${argument}` });
    expect(configProblems(recipe('{ name: unit, kind: input, pattern: "(?!x)[a-z]+" }'))).toEqual([
      expect.stringMatching(/^recipes\.restart\.arguments\[0\]\.pattern: not a valid pattern for the linear-time engine/),
    ]);
    const started = performance.now();
    expect(configProblems(recipe(`{ name: unit, kind: input, pattern: "(a+)+b", default: "${'a'.repeat(30)}" }`))).toEqual([
      expect.stringMatching(/^recipes\.restart\.arguments\[0\]\.default: the default does not match the pattern/),
    ]);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(configProblems(recipe('{ name: unit, kind: input, pattern: "[a-z][a-z0-9-]*", default: nginx }'))).toEqual([]);
  });

  it('refuses a custom redact rule RE2 cannot run, naming the target', () => {
    expect(configProblems(configYaml({ targetExtra: '    redact: [email, "(?<=password=)\\\\S+"]' }))).toEqual([
      expect.stringMatching(/^targets\.web-prod\.redact: .*linear-time engine/),
    ]);
    expect(configProblems(configYaml({ targetExtra: '    redact: [email, "password=\\\\S+", "(a+)+b"]' }))).toEqual([]);
  });
});

describe('hooks in countersign.yml', () => {
  const hooks = (hook: string) =>
    configYaml({
      extra: `recipes:\n  restart:\n    target: web-prod\n    script: systemctl restart app\nhooks:\n  deploy:\n    recipe: restart\n    secret: { env: HOOK_SECRET }\n${hook}`,
    });
  const env = { HOOK_SECRET: 'a-long-enough-hook-secret' };

  it('take a timestamped countersign signature by default; github and bearer are explicit', () => {
    expect(parseConfig(hooks(''), configPath, env).hooks?.get('deploy')?.signature).toBe('countersign');
    expect(parseConfig(hooks('    signature: github'), configPath, env).hooks?.get('deploy')?.signature).toBe('github');
    expect(parseConfig(hooks('    signature: bearer'), configPath, env).hooks?.get('deploy')?.signature).toBe('bearer');
    expect(configProblems(hooks('    signature: none'), env)).toEqual([expect.stringMatching(/^hooks\.deploy\.signature: /)]);
  });
});
