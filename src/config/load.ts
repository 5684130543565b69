/**
 * Reads countersign.yml: YAML -> zod validation -> resolved Config (keys read, known hosts
 * parsed). Every problem found is reported at once, each naming its field.
 */
import { readFileSync } from 'node:fs';
import { resolve, dirname } from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { parseDuration } from '../domain/duration.js';
import { compileRedactRules } from '../domain/redaction.js';
import { parseBatch } from '../domain/rollout.js';
import { parseSize } from '../domain/size.js';
import { parseKnownHosts } from '../exec/knownHosts.js';
import type { Config, RunnerSettings, Target } from './config.js';
import { ConfigError, describeIssues } from './errors.js';
import { configFileSchema, secretValueProblem, type TargetFile } from './schema.js';

export function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(path, [`cannot read the file: ${(error as Error).message}`]);
  }
  return parseConfig(text, path, env);
}

export function parseConfig(text: string, path: string, env: NodeJS.ProcessEnv = process.env): Config {
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
  if (problems.length > 0) throw new ConfigError(path, problems);
  const runner = parsed.data.runner;
  const settings: RunnerSettings = {
    maxConcurrentRuns: runner.maxConcurrentRuns,
    leaseMs: parseDuration(runner.leaseTimeout) ?? 30_000,
    pollMs: parseDuration(runner.pollInterval) ?? 2_000,
    killGraceMs: parseDuration(runner.killGrace) ?? 5_000,
    shutdownGraceMs: parseDuration(runner.shutdownGrace) ?? 30_000,
    maxOutputBytes: parseSize(String(runner.maxOutput)) ?? 10 * 1024 * 1024,
  };
  return { runner: settings, targets };
}

function resolveTarget(name: string, file: TargetFile, baseDir: string, env: NodeJS.ProcessEnv, problems: string[]): Target | null {
  const field = `targets.${name}`;
  const before = problems.length;

  let privateKey = '';
  if (file.ssh.privateKeyFile !== undefined) {
    try {
      privateKey = readFileSync(resolve(baseDir, file.ssh.privateKeyFile), 'utf8');
    } catch (error) {
      problems.push(`${field}.ssh.privateKeyFile: cannot read ${file.ssh.privateKeyFile}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
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
    if (value !== undefined && value.includes('\u0000')) problems.push(`${where}: the value contains a NUL byte, which an environment variable cannot hold`);
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

  if (problems.length > before) return null;
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
          ...(file.review.expiresAfter !== undefined ? { expiresAfter: { ms: parseDuration(file.review.expiresAfter) ?? 0, text: file.review.expiresAfter.trim() } } : {}),
        }
      : null,
  };
}
