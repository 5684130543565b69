/**
 * Incoming webhooks: `POST /hooks/<id>` starts the hook's runbook (a recipe as a task, as before;
 * any other runbook as a run, answered as `{ run: { id, status }, statusUrl }`). How a delivery proves it knows
 * the hook's secret is the hook's `signature` (compared in constant time):
 *
 *   countersign (default)  X-Countersign-Timestamp: <unix seconds>, within 5 minutes of our clock,
 *                          and X-Countersign-Signature: sha256=<hex HMAC of "<timestamp>.<body>">
 *   github                 X-Hub-Signature-256: sha256=<hex HMAC of the body>, X-GitHub-Delivery
 *   bearer                 Authorization: Bearer <secret>
 *
 * A signed delivery is accepted once: its signature is its key (the task's source_key, unique in
 * Postgres, so every replica agrees), and sending it again answers the task the first one made
 * and starts nothing, whatever Idempotency-Key comes with it: only signed bytes count. The
 * timestamp bounds how long a captured delivery is worth anything at all; GitHub sends none, so
 * there the signature (over a body GitHub never repeats) is the whole defence. X-GitHub-Delivery
 * is not signed, so it is logged, never trusted as a key. A bearer token is the whole secret:
 * whoever sees one request can send others, so `Idempotency-Key` (or `X-Request-Id`) only saves a
 * well-meaning sender from doubles.
 *
 * The body (`{ "arguments": {...}, "message": "..." }`) is checked against the recipe's
 * arguments before anything is created; the task then follows its target's review rules like
 * any other. Every refusal answers `{ error: { code, message } }` and creates nothing.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import express, { Router, type NextFunction, type Request, type Response } from 'express';
import type { Config, Hook, HookSignature } from '../config/config.js';
import type { Logger } from '../log.js';
import type { RunbookService } from '../service/runbooks.js';

export const HOOK_MAX_BODY = '512kb';
/** How far a signed timestamp may be from our clock. */
export const HOOK_TIMESTAMP_TOLERANCE_MS = 5 * 60_000;
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,200}$/;
const GITHUB_DELIVERY = /^[\x21-\x7e]{1,200}$/;

export interface HooksDeps {
  config: Config;
  runbooks: RunbookService;
  /** The API's URL of a task (`/api/v1/tasks/{id}`). */
  statusUrl(taskId: number): string;
  /** The API's URL of a run (`/api/v1/runs/{id}`). */
  runStatusUrl(runId: number): string;
  log: Logger;
  now?: () => number;
}

class HookError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Array<{ argument: string; message: string }>,
  ) {
    super(message);
  }
}

/** The author a hook's tasks are recorded with (never a Slack user, so no reviewer is its author). */
export const hookAuthor = (id: string): string => `webhook:${id}`;

export function hooksRouter(deps: HooksDeps): Router {
  const router = Router();
  const now = deps.now ?? Date.now;
  // The raw bytes: the signature is over the body exactly as sent.
  router.post('/:id', express.raw({ type: () => true, limit: HOOK_MAX_BODY }), async (req: Request, res: Response) => {
    const id = String(req.params.id ?? '');
    const hook = deps.config.hooks?.get(id);
    if (!hook) throw new HookError(404, 'unknown_hook', `There is no hook ${id}.`);
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const sourceKey = deliveryKey(hook, authenticate(hook, req, raw, now()), req);
    if (hook.signature === 'github')
      ((res.locals.log as Logger | undefined) ?? deps.log).info({ hook: hook.id, delivery: req.get('x-github-delivery') }, 'GitHub delivery');

    const body = parseBody(raw, hook);
    const values = argumentValues(hook, body);

    const entry = await deps.runbooks.find(hook.runbook);
    if (!entry) throw new HookError(500, 'internal', `The hook's runbook ${hook.runbook} is missing.`);
    const firstTarget = entry.runbook.steps.flat().find((step) => step.kind === 'script');
    const target = firstTarget?.kind === 'script' ? deps.config.targets.get(firstTarget.script.target) : undefined;
    const started = await deps.runbooks.start(hook.runbook, {
      starter: hookAuthor(hook.id),
      values,
      message: hook.message ?? (typeof body.message === 'string' ? body.message : null),
      trigger: { kind: 'webhook', hook: hook.id },
      source: 'webhook',
      sourceKey,
      channelId: hook.channel ?? target?.channel ?? null,
    });
    if (!started.ok) {
      if (started.code === 'invalid_arguments') {
        throw new HookError(
          422,
          'invalid_arguments',
          `Invalid arguments: ${started.message}`,
          (started.errors ?? []).map((e) => ({ argument: e.name, message: e.message })),
        );
      }
      throw new HookError(422, started.code, started.message.replace(/[`*]/g, ''));
    }
    if (started.kind === 'run') {
      const { run } = started;
      res.status(202).json({ run: { id: run.id, status: run.status }, statusUrl: deps.runStatusUrl(run.id), created: started.created });
      return;
    }
    const { task } = started;
    res.status(202).json({ task: { id: task.id, status: task.status }, statusUrl: deps.statusUrl(task.id), created: started.created });
  });

  router.all('/:id', (req: Request) => {
    throw new HookError(405, 'method_not_allowed', `Hooks take POST, not ${req.method}.`);
  });

  router.use((error: unknown, req: Request, res: Response, _next: NextFunction) => {
    let hookError: HookError;
    if (error instanceof HookError) hookError = error;
    else if (isBodyError(error) && error.type === 'entity.too.large') hookError = new HookError(413, 'too_large', `The body is larger than ${HOOK_MAX_BODY}.`);
    else hookError = new HookError(500, 'internal', 'Something went wrong on our side; it has been logged.');
    if (hookError.status >= 500) ((res.locals.log as Logger | undefined) ?? deps.log).error({ err: error, path: req.path }, 'hook request failed');
    if (res.headersSent) {
      res.end();
      return;
    }
    res
      .status(hookError.status)
      .type('application/json')
      .json({ error: { code: hookError.code, message: hookError.message, ...(hookError.details ? { arguments: hookError.details } : {}) } });
  });
  return router;
}

const isBodyError = (error: unknown): error is { type: string } =>
  typeof error === 'object' && error !== null && typeof (error as { type?: unknown }).type === 'string';

/** Equal in time independent of where they differ (and of their lengths: both are hashed first). */
function sameSecret(a: string | Buffer, b: string | Buffer): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

const SIGNED_BY: Record<HookSignature, string> = {
  countersign: 'X-Countersign-Timestamp: <unix seconds> and X-Countersign-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">',
  github: 'X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body> and X-GitHub-Delivery (as GitHub sends them)',
  bearer: 'Authorization: Bearer <secret>',
};

/**
 * Checks the delivery against the hook's `signature` scheme; answers the verified signature's
 * hex digest (the delivery's identity), or null for a bearer hook (nothing in it is signed).
 */
function authenticate(hook: Hook, req: Request, raw: Buffer, nowMs: number): string | null {
  const bearer = req.get('authorization');
  const countersign = req.get('x-countersign-signature');
  const github = req.get('x-hub-signature-256');
  const refuse = (why: string): never => {
    throw new HookError(401, 'unauthenticated', `${why} This hook takes ${SIGNED_BY[hook.signature]}.`);
  };
  switch (hook.signature) {
    case 'bearer': {
      const token = /^Bearer\s+(\S+)\s*$/i.exec(bearer ?? '')?.[1];
      if (token === undefined)
        return refuse(countersign !== undefined || github !== undefined ? 'This hook is not set up for signatures.' : 'No secret was sent.');
      if (sameSecret(token, hook.secret)) return null;
      return refuse("The bearer token is not this hook's secret.");
    }
    case 'countersign': {
      if (countersign === undefined) {
        if (bearer !== undefined)
          refuse(
            'A bearer token can be replayed by anyone who sees one request, so this hook does not take one (set `signature: bearer` on the hook to allow it).',
          );
        if (github !== undefined) refuse('For GitHub, set `signature: github` on the hook.');
        return refuse('No signature was sent.');
      }
      const timestamp = req.get('x-countersign-timestamp');
      if (timestamp === undefined)
        return refuse('X-Countersign-Timestamp is missing: the signature must cover a timestamp, or a captured delivery could be sent again forever.');
      if (!/^\d{1,12}$/.test(timestamp)) return refuse('X-Countersign-Timestamp must be Unix seconds.');
      if (Math.abs(nowMs - Number(timestamp) * 1000) > HOOK_TIMESTAMP_TOLERANCE_MS) {
        throw new HookError(401, 'stale_timestamp', 'X-Countersign-Timestamp is more than 5 minutes from our clock: a replayed or delayed request.');
      }
      return verifyHmac(hook, countersign, Buffer.concat([Buffer.from(`${timestamp}.`), raw]), refuse);
    }
    case 'github': {
      if (github === undefined) return refuse(bearer !== undefined || countersign !== undefined ? 'This hook is set up for GitHub.' : 'No signature was sent.');
      const delivery = req.get('x-github-delivery');
      if (delivery === undefined || !GITHUB_DELIVERY.test(delivery)) return refuse('X-GitHub-Delivery is missing or malformed.');
      return verifyHmac(hook, github, raw, refuse);
    }
  }
}

/** The hex digest of `signature` when it is `sha256=<HMAC of signed>` under the hook's secret. */
function verifyHmac(hook: Hook, signature: string, signed: Buffer, refuse: (why: string) => never): string {
  const hex = /^sha256=([0-9a-fA-F]{64})$/.exec(signature.trim())?.[1];
  if (!hex) return refuse('The signature must read sha256=<64 hex digits>.');
  const expected = createHmac('sha256', hook.secret).update(signed).digest();
  if (timingSafeEqual(expected, Buffer.from(hex, 'hex'))) return expected.toString('hex');
  return refuse("The signature does not match the request and this hook's secret.");
}

/**
 * The key a delivery's task is created under (tasks.source_key, unique): the same delivery sent
 * again finds the task the first one made. Signed deliveries are keyed by their signature alone;
 * a bearer hook's by the sender's Idempotency-Key, when it sends one. Scoped to the hook: another
 * hook's deliveries are other tasks.
 */
function deliveryKey(hook: Hook, signature: string | null, req: Request): string | null {
  if (signature !== null) return `hook:${hook.id}#sha256=${signature}`;
  const key = req.get('idempotency-key') ?? req.get('x-request-id');
  if (key === undefined) return null;
  if (!IDEMPOTENCY_KEY.test(key)) throw new HookError(400, 'invalid_request', 'Idempotency-Key must be 1 to 200 printable ASCII characters.');
  return `hook:${hook.id}:${key}`;
}

interface HookBody {
  arguments?: Record<string, unknown>;
  message?: string;
  [field: string]: unknown;
}

function parseBody(raw: Buffer, hook: Hook): HookBody {
  const text = raw.toString('utf8');
  if (text.trim() === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new HookError(400, 'invalid_json', `The body is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new HookError(400, 'invalid_request', 'The body must be a JSON object: { "arguments": { ... }, "message": "..." }.');
  const body = value as HookBody;
  if (body.arguments !== undefined) {
    if (typeof body.arguments !== 'object' || body.arguments === null || Array.isArray(body.arguments))
      throw new HookError(400, 'invalid_request', 'arguments must be an object of names to values.');
    for (const [name, v] of Object.entries(body.arguments)) {
      if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean')
        throw new HookError(400, 'invalid_request', `arguments.${name}: expected a string.`);
    }
  }
  if (body.message !== undefined && (typeof body.message !== 'string' || body.message.length > 2000))
    throw new HookError(400, 'invalid_request', 'message must be a string of at most 2000 characters.');
  // A hook that maps fields of someone else's payload (GitHub, Alertmanager) takes any object;
  // otherwise an unknown field is most likely a mistake.
  const maps = [...hook.arguments.values()].some((a) => 'from' in a);
  if (!maps) {
    const unknown = Object.keys(body).filter((k) => k !== 'arguments' && k !== 'message');
    if (unknown.length > 0)
      throw new HookError(
        400,
        'invalid_request',
        `Unknown field${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}. The body is { "arguments": { ... }, "message": "..." }.`,
      );
  }
  return body;
}

function argumentValues(hook: Hook, body: HookBody): Record<string, unknown> {
  const values: Record<string, unknown> = { ...(body.arguments ?? {}) };
  for (const [name, source] of hook.arguments) {
    if (name in values)
      throw new HookError(422, 'invalid_arguments', `Invalid arguments: ${name} is set by the hook and cannot be given.`, [
        { argument: name, message: 'set by the hook' },
      ]);
    if ('value' in source) values[name] = source.value;
    else {
      const found = source.from
        .split('.')
        .reduce<unknown>((at, key) => (typeof at === 'object' && at !== null ? (at as Record<string, unknown>)[key] : undefined), body);
      if (found !== undefined && found !== null && typeof found !== 'string' && typeof found !== 'number' && typeof found !== 'boolean') {
        throw new HookError(422, 'invalid_arguments', `Invalid arguments: ${name} comes from ${source.from}, which is not a string.`, [
          { argument: name, message: `${source.from} is not a string` },
        ]);
      }
      if (found !== undefined && found !== null) values[name] = String(found);
    }
  }
  return values;
}
