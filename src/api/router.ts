/**
 * /api/v1: JSON over HTTP, authenticated by bearer tokens that act as a Slack user. Built from
 * the operations table; input is validated before any handler runs, and every error, ours or
 * the caller's, answers `{ error: { code, message } }`.
 */
import express, { Router, type NextFunction, type Request, type Response } from 'express';
import type { Logger } from '../log.js';
import type { Db } from '../store/db.js';
import { findApiToken } from '../store/apiTokens.js';
import { ApiError, fromZod, sendError } from './errors.js';
import { openApiDocument } from './openapi.js';
import { STRING_PARAMETERS, type Operation } from './routes.js';

export const API_PREFIX = '/api/v1';
/** The largest request body: a 64 KiB script, JSON-escaped, fits with room to spare. */
export const MAX_BODY = '512kb';

export function apiRouter(deps: { db: Db; operations: Operation[]; log: Logger }): Router {
  const router = Router();
  const document = openApiDocument(deps.operations);
  router.get('/openapi.json', (_req, res) => {
    res.json(document);
  });
  router.use(express.json({ limit: MAX_BODY, strict: true, type: () => true }));

  for (const op of deps.operations) {
    const path = op.path.replace(/\{(\w+)\}/g, ':$1');
    router[op.method](path, async (req: Request, res: Response) => {
      const userId = await authenticate(deps.db, req);
      const params: Record<string, number> = {};
      const names: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.params)) {
        const pattern = STRING_PARAMETERS[name];
        if (pattern) {
          if (typeof value !== 'string' || !pattern.test(value)) throw new ApiError(404, 'not_found', `No such ${name}: ${String(value).slice(0, 80)}.`);
          names[name] = value;
          continue;
        }
        const n = typeof value === 'string' && /^\d{1,15}$/.test(value) ? Number(value) : NaN;
        if (!(n >= 1)) throw new ApiError(404, 'not_found', `No such ${name}: ${String(value)}.`);
        params[name] = n;
      }
      let query: unknown = {};
      if (op.query) {
        const parsed = op.query.safeParse(req.query);
        if (!parsed.success) throw fromZod(parsed.error, 'query');
        query = parsed.data;
      } else if (Object.keys(req.query as object).length > 0) {
        throw new ApiError(400, 'invalid_request', `Invalid query: ${op.operationId} takes no query parameters.`);
      }
      let body: unknown;
      if (op.body) {
        const parsed = op.body.safeParse(req.body === undefined ? {} : req.body);
        if (!parsed.success) throw fromZod(parsed.error, 'body');
        body = parsed.data;
      }
      res.locals.userId = userId;
      const answer = await op.handle({ req, res, userId, params, names, query, body });
      if (answer !== 'handled') res.status(answer.status).json(answer.body);
    });
  }

  router.use((req: Request) => {
    throw new ApiError(404, 'not_found', `No API route ${req.method} ${API_PREFIX}${req.path}.`);
  });
  router.use((error: unknown, req: Request, res: Response, _next: NextFunction) => {
    const apiError = toApiError(error);
    if (apiError.status >= 500)
      ((res.locals.log as Logger | undefined) ?? deps.log).error({ err: error, method: req.method, path: req.path }, 'API request failed');
    if (res.headersSent) {
      res.end();
      return;
    }
    sendError(res, apiError);
  });
  return router;
}

/** The API token an `Authorization: Bearer <token>` header carries (the scheme in any case), or undefined. */
export function bearerToken(req: Pick<Request, 'get'>): string | undefined {
  return /^Bearer\s+(\S+)$/i.exec(req.get('authorization') ?? '')?.[1];
}

async function authenticate(db: Db, req: Request): Promise<string> {
  const token = bearerToken(req);
  if (!token)
    throw new ApiError(
      401,
      'unauthenticated',
      'Send an API token: `Authorization: Bearer <token>`. An admin creates one with `npm run token -- create --user <Slack user id> --name <name>`.',
    );
  const found = await findApiToken(db, token);
  if (!found) throw new ApiError(401, 'unauthenticated', 'This API token is not valid (unknown or revoked).');
  return found.userId;
}

/** Body-parser errors carry a `type`; everything unknown is ours (500) and is logged. */
function toApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  const type = (error as { type?: string }).type;
  if (type === 'entity.too.large') return new ApiError(413, 'body_too_large', `The request body is over ${MAX_BODY}.`);
  if (type === 'entity.parse.failed') return new ApiError(400, 'malformed_json', `The request body is not valid JSON: ${(error as Error).message}`);
  if (type === 'encoding.unsupported' || type === 'charset.unsupported') return new ApiError(415, 'unsupported_encoding', (error as Error).message);
  return new ApiError(500, 'internal', 'Something went wrong on our side; it has been logged.');
}
