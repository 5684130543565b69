/**
 * Reads countersign.yml: YAML -> zod validation -> resolved Config (keys read, known hosts
 * parsed). Every problem found is reported at once, each naming its field.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { resolve, dirname, basename, join } from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { parseDuration } from '../domain/duration.js';
import { parseRecipeJson, recipeFromBody, type Recipe } from '../domain/recipe.js';
import { compileRedactRules } from '../domain/redaction.js';
import { parseBatch } from '../domain/rollout.js';
import { parseSize } from '../domain/size.js';
import { parseKnownHosts } from '../exec/knownHosts.js';
import type { Config, Hook, HookArgument, RunnerSettings, Target } from './config.js';
import { ConfigError, describeIssues } from './errors.js';
import { toPeople } from '../domain/people.js';
import { configFileSchema, secretValueProblem, type ConfigFile, type TargetFile } from './schema.js';
import { checkRunbooks, runbookFromBody, runbookFromRecipe, type Runbook } from '../domain/runbook/index.js';
import { httpSettingsFromConfig } from '../exec/httpStep.js';

export function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): Config {
  return parseConfig(readConfigText(path), path, env);
}

export function parseConfig(text: string, path: string, env: NodeJS.ProcessEnv = process.env): Config {
  const { config, problems } = inspectConfig(text, path, env);
  if (problems.length > 0) throw new ConfigError(path, problems);
  return config;
}

/**
 * What the config resolves to so far, and every problem found, without stopping at them
 * (`countersign check` reports them all and still checks what resolved). A target is kept when
 * its SSH part resolved (key read, host keys parsed), even if its secrets did not; a hook when
 * nothing about it is wrong. Throws ConfigError only when nothing can be resolved: the YAML or
 * its shape is wrong.
 */
export interface ConfigInspection {
  config: Config;
  problems: string[];
}

export function inspectConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): ConfigInspection {
  return inspectConfig(readConfigText(path), path, env);
}

function readConfigText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(path, [`cannot read the file: ${(error as Error).message}`]);
  }
}

export function inspectConfig(text: string, path: string, env: NodeJS.ProcessEnv = process.env): ConfigInspection {
  let raw: unknown;
  try {
    raw = parseYaml(text) ?? {};
  } catch (error) {
    const where = error instanceof YAMLParseError && error.linePos ? ` (line ${error.linePos[0].line})` : '';
    throw new ConfigError(path, [`not valid YAML${where}: ${(error as Error).message.split('\n')[0]}`]);
  }
  const parsed = configFileSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(path, describeIssues(parsed.error.issues));

  const problems: string[] = [];
  const targets = new Map<string, Target>();
  for (const [name, file] of Object.entries(parsed.data.targets)) {
    const target = resolveTarget(name, file, dirname(resolve(path)), env, problems);
    if (target) targets.set(name, target);
  }
  const baseDir = dirname(resolve(path));
  const recipes = resolveRecipes(parsed.data, baseDir, problems);
  const http = httpSettingsFromConfig(parsed.data.http);
  const runbooks = resolveRunbooks(parsed.data, recipes, targets, http, problems);
  const hooks = resolveHooks(parsed.data, recipes, runbooks, baseDir, env, problems);
  const runner = parsed.data.runner;
  const settings: RunnerSettings = {
    maxConcurrentRuns: runner.maxConcurrentRuns,
    leaseMs: parseDuration(runner.leaseTimeout) ?? 30_000,
    // Below a few seconds a busy event loop or a GC pause would read as a dead runner.
    livenessMs: Math.max(3_000, parseDuration(runner.livenessTimeout) ?? 60_000),
    pollMs: parseDuration(runner.pollInterval) ?? 2_000,
    killGraceMs: parseDuration(runner.killGrace) ?? 5_000,
    shutdownGraceMs: parseDuration(runner.shutdownGrace) ?? 30_000,
    maxOutputBytes: parseSize(String(runner.maxOutput)) ?? 10 * 1024 * 1024,
  };
  const admins = parsed.data.admins ? toPeople(parsed.data.admins) : undefined;
  const links = parsed.data.links ? { ttlMs: parseDuration(parsed.data.links.ttl) ?? 24 * 3600_000 } : undefined;
  return { config: { runner: settings, targets, recipes, hooks, runbooks, http, ...(admins ? { admins } : {}), ...(links ? { links } : {}) }, problems };
}

/**
 * `runbooks:` with the recipes joined as one-step runbooks for the graph checks (dependsOn,
 * after, targets, secrets, http.allow): a reference may not also be a recipe's name. The map
 * returned holds the runbooks only; recipes stay in `recipes`.
 */
function resolveRunbooks(
  file: ConfigFile,
  recipes: ReadonlyMap<string, Recipe>,
  targets: ReadonlyMap<string, Target>,
  http: ReturnType<typeof httpSettingsFromConfig>,
  problems: string[],
): Map<string, Runbook> {
  const runbooks = new Map<string, Runbook>();
  for (const [reference, body] of Object.entries(file.runbooks ?? {})) {
    if (recipes.has(reference))
      problems.push(`runbooks.${reference}: ${reference} is also a recipe's name (recipes are one-step runbooks: one name, one definition)`);
    else runbooks.set(reference, runbookFromBody(reference, body, 'config'));
  }
  if (runbooks.size === 0) return runbooks;
  const all = new Map<string, Runbook>([...[...recipes.values()].map((r) => [r.name, runbookFromRecipe(r)] as const), ...runbooks]);
  // Only the runbooks' problems: recipes are checked above in their own terms.
  const checked = checkRunbooks(all, { targets, allow: http.allow });
  problems.push(...checked.filter((p) => [...runbooks.keys()].some((ref) => p.startsWith(`runbooks.${ref}.`) || p.startsWith(`runbooks.${ref}:`))));
  return runbooks;
}

/** The files `recipeFiles` names: a file, a directory's *.json, or `dir/*.json`. */
function recipeFilePaths(entry: string, baseDir: string): string[] {
  const full = resolve(baseDir, entry);
  const glob = /^\*(\.json)?$/.exec(basename(full));
  const dir = glob ? dirname(full) : statSync(full).isDirectory() ? full : null;
  if (dir === null) return [full];
  return readdirSync(dir)
    .filter((name) => name.endsWith('.json'))
    .sort()
    .map((name) => join(dir, name));
}

function resolveRecipes(file: ConfigFile, baseDir: string, problems: string[]): Map<string, Recipe> {
  const recipes = new Map<string, Recipe>();
  for (const [name, body] of Object.entries(file.recipes ?? {})) {
    if (!(body.target in file.targets)) problems.push(`recipes.${name}.target: there is no target ${body.target}`);
    recipes.set(name, { ...recipeFromBody(name, body, 'config') });
  }
  const entries = file.recipeFiles === undefined ? [] : Array.isArray(file.recipeFiles) ? file.recipeFiles : [file.recipeFiles];
  entries.forEach((entry, index) => {
    const field = Array.isArray(file.recipeFiles) ? `recipeFiles[${index}]` : 'recipeFiles';
    let paths: string[];
    try {
      paths = recipeFilePaths(entry, baseDir);
    } catch (error) {
      problems.push(`${field}: cannot read ${entry}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
      return;
    }
    for (const path of paths) {
      let json: unknown;
      try {
        json = JSON.parse(readFileSync(path, 'utf8'));
      } catch (error) {
        problems.push(`${field}: ${path}: ${(error as Error).message}`);
        continue;
      }
      const parsed = parseRecipeJson(json);
      if (!parsed.ok) {
        problems.push(...parsed.problems.map((problem) => `${field}: ${basename(path)}: ${problem}`));
        continue;
      }
      const recipe = { ...parsed.recipe, origin: 'config' as const };
      if (recipes.has(recipe.name)) problems.push(`${field}: ${basename(path)}: name: the recipe ${recipe.name} is defined twice`);
      else if (!(recipe.target in file.targets)) problems.push(`${field}: ${basename(path)}: target: there is no target ${recipe.target}`);
      recipes.set(recipe.name, recipe);
    }
  });
  return recipes;
}

/** A hook secret this short could be guessed. */
export const MIN_HOOK_SECRET_LENGTH = 16;

function resolveHooks(
  file: ConfigFile,
  recipes: ReadonlyMap<string, Recipe>,
  runbooks: ReadonlyMap<string, Runbook>,
  baseDir: string,
  env: NodeJS.ProcessEnv,
  problems: string[],
): Map<string, Hook> {
  const hooks = new Map<string, Hook>();
  for (const [id, hook] of Object.entries(file.hooks ?? {})) {
    const field = `hooks.${id}`;
    const before = problems.length;
    const reference = hook.runbook ?? hook.recipe ?? '';
    const recipeOnly = recipes.get(reference);
    const runbook = runbooks.get(reference);
    // Only config runbooks and recipes: an imported one can be replaced from Slack, which would change what the hook runs.
    if (!recipeOnly && !runbook)
      problems.push(`${field}.${hook.runbook !== undefined ? 'runbook' : 'recipe'}: there is no runbook ${reference} in runbooks, recipes or recipeFiles`);
    else if (runbook && !runbook.triggeredBy.some((t) => t.kind === 'webhook'))
      problems.push(`${field}.runbook: ${reference} is not started by webhooks (add webhook to its triggeredBy)`);
    const recipe = recipeOnly ?? (runbook ? { name: runbook.reference, arguments: runbook.arguments } : undefined);
    let secret = '';
    if ('env' in hook.secret) {
      secret = env[hook.secret.env] ?? '';
      if (secret === '') problems.push(`${field}.secret: environment variable ${hook.secret.env} is not set`);
    } else {
      try {
        secret = readFileSync(resolve(baseDir, hook.secret.file), 'utf8').replace(/\r?\n$/, '');
      } catch (error) {
        problems.push(`${field}.secret: cannot read ${hook.secret.file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
      }
    }
    if (secret !== '' && [...secret].length < MIN_HOOK_SECRET_LENGTH)
      problems.push(`${field}.secret: the secret is shorter than ${MIN_HOOK_SECRET_LENGTH} characters`);
    const args = new Map<string, HookArgument>();
    for (const [name, source] of Object.entries(hook.arguments ?? {})) {
      const declared = recipe?.arguments.find((a) => a.name === name);
      if (recipe && !declared) problems.push(`${field}.arguments.${name}: the runbook ${recipe.name} has no argument ${name}`);
      else if (declared?.kind === 'fixed') problems.push(`${field}.arguments.${name}: ${name} is fixed by the runbook`);
      args.set(name, typeof source === 'string' ? { value: source } : source);
    }
    if (problems.length > before) continue;
    hooks.set(id, { id, runbook: reference, secret, signature: hook.signature, channel: hook.channel ?? null, message: hook.message ?? null, arguments: args });
  }
  return hooks;
}

function resolveTarget(name: string, file: TargetFile, baseDir: string, env: NodeJS.ProcessEnv, problems: string[]): Target | null {
  const field = `targets.${name}`;
  const before = problems.length;

  let privateKey = '';
  if (file.ssh.privateKeyFile !== undefined) {
    try {
      privateKey = readFileSync(resolve(baseDir, file.ssh.privateKeyFile), 'utf8');
    } catch (error) {
      problems.push(
        `${field}.ssh.privateKeyFile: cannot read ${file.ssh.privateKeyFile}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      );
    }
  } else if (file.ssh.privateKeyEnv !== undefined) {
    privateKey = env[file.ssh.privateKeyEnv] ?? '';
    if (privateKey === '') problems.push(`${field}.ssh.privateKeyEnv: environment variable ${file.ssh.privateKeyEnv} is not set`);
  }
  if (privateKey !== '' && !privateKey.includes('PRIVATE KEY')) {
    problems.push(`${field}.ssh: the private key is not in PEM/OpenSSH format (no "PRIVATE KEY" header)`);
  }

  const knownHostsText = Array.isArray(file.ssh.knownHosts) ? file.ssh.knownHosts.join('\n') : file.ssh.knownHosts;
  const knownHosts = parseKnownHosts(knownHostsText);
  for (const error of knownHosts.errors) problems.push(`${field}.ssh.knownHosts: ${error}`);
  if (knownHosts.entries.length === 0 && knownHosts.errors.length === 0) {
    problems.push(`${field}.ssh.knownHosts: pin at least one host key ("host ssh-ed25519 AAAA..."; ssh-keyscan prints them)`);
  }
  // Without a key and pinned host keys the target is unusable; any other problem still leaves it checkable.
  const sshResolved = problems.length === before;

  const secrets = new Map<string, string>();
  for (const [secretName, source] of Object.entries(file.secrets ?? {})) {
    const where = `${field}.secrets.${secretName}`;
    let value: string | undefined;
    if ('env' in source) {
      value = env[source.env];
      if (value === undefined || value === '') problems.push(`${where}: environment variable ${source.env} is not set`);
    } else {
      try {
        // A file's final newline is an editor's, not part of the secret.
        value = readFileSync(resolve(baseDir, source.file), 'utf8').replace(/\r?\n$/, '');
        if (value === '') problems.push(`${where}: ${source.file} is empty`);
      } catch (error) {
        problems.push(`${where}: cannot read ${source.file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
      }
    }
    if (value?.includes('\u0000')) problems.push(`${where}: the value contains a NUL byte, which an environment variable cannot hold`);
    else if (value) {
      const problem = secretValueProblem(value);
      if (problem !== null) problems.push(`${where}: ${problem}`);
      else secrets.set(secretName, value);
    }
  }

  const redact = compileRedactRules(file.redact ?? []);
  if (!redact.ok) problems.push(`${field}.redact: ${redact.error}`);

  if (file.review) {
    file.review.groups.forEach((group, index) => {
      if (file.review!.groups.findIndex((other) => other.name === group.name) !== index) {
        problems.push(`${field}.review.groups[${index}].name: the group name ${group.name} is used twice`);
      }
    });
  }

  // Unusable without a key and pinned host keys; other problems still leave it checkable.
  if (!sshResolved) return null;
  return {
    name,
    description: file.description ?? null,
    type: file.type,
    hosts: file.hosts.map((h) => ({ host: h.host, port: h.port, user: h.user })),
    privateKey,
    knownHosts: knownHosts.entries,
    channel: file.channel ?? null,
    timeoutMs: parseDuration(file.timeout) ?? 15 * 60_000,
    connectTimeoutMs: parseDuration(file.connectTimeout) ?? 10_000,
    maxSessions: file.maxSessions,
    rollout: file.rollout ? { batch: parseBatch(file.rollout.batch) ?? 1, stopOnFailure: file.rollout.stopOnFailure } : null,
    runAs: file.runAs ? file.runAs.trim().split(/\s+/) : null,
    secrets,
    redact: redact.ok ? redact.rules : [],
    viewers: file.viewers ? toPeople(file.viewers) : null,
    review: file.review
      ? {
          channel: file.review.channel,
          autoRun: file.review.autoRun,
          groups: file.review.groups.map((g) => ({
            name: g.name,
            users: [...(g.users ?? [])],
            approvals: g.approvals,
            // Only set when given, so a plain group stays { name, users, approvals }.
            ...(g.usergroup !== undefined ? { usergroup: g.usergroup } : {}),
            ...(g.dm ? { dm: true } : {}),
          })),
          ...(file.review.expiresAfter !== undefined
            ? { expiresAfter: { ms: parseDuration(file.review.expiresAfter) ?? 0, text: file.review.expiresAfter.trim() } }
            : {}),
        }
      : null,
  };
}
