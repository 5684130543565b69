/**
 * The environment contract (design.md), validated at start. Slack tokens are optional: without
 * them the app serves its HTTP side and says what is missing.
 */
import { z } from 'zod';
import { ConfigError, describeIssues } from './errors.js';

const optionalText = z
  .string()
  .optional()
  .transform((value) => (value === undefined || value.trim() === '' ? undefined : value.trim()));

const url = (name: string) => optionalText.refine((value) => value === undefined || /^https?:\/\/[^\s]+$/.test(value), `${name} must be an http(s) URL`);

const envSchema = z.object({
  DATABASE_URL: optionalText.refine((v) => v === undefined || /^postgres(ql)?:\/\//.test(v), 'expected postgres://user:pass@host:port/db'),
  SLACK_SIGNING_SECRET: optionalText,
  SLACK_BOT_TOKEN: optionalText.refine((v) => v === undefined || v.startsWith('xoxb-'), 'a bot token starts with xoxb-'),
  SLACK_APP_TOKEN: optionalText.refine((v) => v === undefined || v.startsWith('xapp-'), 'an app-level token starts with xapp-'),
  SLACK_API_URL: url('SLACK_API_URL'),
  SLACK_TEAM_ID: optionalText.refine((v) => v === undefined || /^T[A-Z0-9]{2,}$/.test(v), 'expected a Slack team id like T0123ABC'),
  SLACK_ENTERPRISE_ID: optionalText.refine((v) => v === undefined || /^E[A-Z0-9]{2,}$/.test(v), 'expected a Slack enterprise id like E0123ABC'),
  COUNTERSIGN_CONFIG: optionalText,
  COUNTERSIGN_DATA_DIR: optionalText,
  PUBLIC_URL: url('PUBLIC_URL'),
  PORT: optionalText
    .refine((v) => v === undefined || (/^\d+$/.test(v) && Number(v) <= 65535), 'expected a port number 0-65535')
    .transform((v) => (v === undefined ? 3000 : Number(v))),
  /** /metrics on its own listener (e.g. a port only Prometheus reaches). */
  METRICS_PORT: optionalText
    .refine((v) => v === undefined || (/^\d+$/.test(v) && Number(v) >= 1 && Number(v) <= 65535), 'expected a port number 1-65535')
    .transform((v) => (v === undefined ? undefined : Number(v))),
  /** /metrics on the main port behind `Authorization: Bearer <METRICS_TOKEN>`. */
  METRICS_TOKEN: optionalText.refine((v) => v === undefined || v.length >= 16, 'use at least 16 characters (e.g. openssl rand -hex 24)'),
  LOG_LEVEL: optionalText.pipe(z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info')),
});

export interface Env {
  databaseUrl: string | undefined;
  slack: { signingSecret: string; botToken: string } | null;
  slackMissing: string[];
  slackAppToken: string | undefined;
  slackApiUrl: string | undefined;
  /** The only workspace (and organisation) whose requests are served; from auth.test when unset. */
  slackTeamId: string | undefined;
  slackEnterpriseId: string | undefined;
  configPath: string;
  configPathExplicit: boolean;
  dataDir: string;
  publicUrl: string | undefined;
  port: number;
  /** Serve /metrics on this port (a separate listener), if set. */
  metricsPort: number | undefined;
  /** Serve /metrics on the main port to requests bearing this token, if set. */
  metricsToken: string | undefined;
  logLevel: string;
}

export function readEnv(source: NodeJS.ProcessEnv = process.env): Env {
  const parsed = envSchema.safeParse(source);
  if (!parsed.success) throw new ConfigError('the environment', describeIssues(parsed.error.issues));
  const env = parsed.data;
  // Socket Mode (an app token) needs no signing secret: nothing arrives over HTTP from Slack.
  const socketMode = env.SLACK_APP_TOKEN !== undefined;
  const slackMissing = [
    env.SLACK_SIGNING_SECRET === undefined && !socketMode ? 'SLACK_SIGNING_SECRET' : null,
    env.SLACK_BOT_TOKEN === undefined ? 'SLACK_BOT_TOKEN' : null,
  ].filter((name): name is string => name !== null);
  return {
    databaseUrl: env.DATABASE_URL,
    slack:
      slackMissing.length === 0 && env.SLACK_BOT_TOKEN !== undefined ? { signingSecret: env.SLACK_SIGNING_SECRET ?? '', botToken: env.SLACK_BOT_TOKEN } : null,
    slackMissing,
    slackAppToken: env.SLACK_APP_TOKEN,
    slackApiUrl: env.SLACK_API_URL === undefined ? undefined : env.SLACK_API_URL.replace(/\/?$/, '/'),
    slackTeamId: env.SLACK_TEAM_ID,
    slackEnterpriseId: env.SLACK_ENTERPRISE_ID,
    configPath: env.COUNTERSIGN_CONFIG ?? 'countersign.yml',
    configPathExplicit: env.COUNTERSIGN_CONFIG !== undefined,
    dataDir: env.COUNTERSIGN_DATA_DIR ?? '.data',
    publicUrl: env.PUBLIC_URL,
    port: env.PORT,
    metricsPort: env.METRICS_PORT,
    metricsToken: env.METRICS_TOKEN,
    logLevel: env.LOG_LEVEL,
  };
}
