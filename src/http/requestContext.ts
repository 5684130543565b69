/**
 * Gives every HTTP request an id (the caller's `X-Request-Id` when it is sane, else a new one),
 * echoes it back, and puts a child logger carrying it in `res.locals.log`; one access line per
 * request when it ends. Query strings are left out of the log: signed links carry their
 * signature there.
 *
 * The child logger is made when first asked for: most requests (Slack's) never log through it,
 * and making one for each cost about as much as the rest of this middleware.
 */
import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from '../log.js';

const SANE_ID = /^[\w.:-]{1,100}$/;

export function requestContext(log: Logger) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const given = req.get('x-request-id');
    const requestId = given && SANE_ID.test(given) ? given : randomUUID();
    res.setHeader('X-Request-Id', requestId);
    const started = process.hrtime.bigint();
    let child: Logger | null = null;
    const requestLog = (): Logger => {
      child ??= log.child({ requestId });
      return child;
    };
    Object.defineProperty(res.locals, 'log', {
      get: requestLog,
      // A handler may still put a logger of its own there.
      set: (logger: Logger) => {
        child = logger;
      },
      enumerable: true,
      configurable: true,
    });
    res.locals.requestId = requestId;
    res.on('finish', () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      // Slack's endpoint is busy and its bodies are not ours to log; health checks are noise.
      // Routers rewrite req.path while routing: take the path as it arrived.
      const path = req.originalUrl.split('?')[0] ?? req.originalUrl;
      if (path === '/healthz' || path === '/metrics' || !log.isLevelEnabled('info')) return;
      const taskId = /^\/(?:api\/v1\/)?tasks\/(\d+)/.exec(path)?.[1];
      requestLog().info(
        {
          method: req.method,
          path,
          status: res.statusCode,
          ms: Math.round(ms * 10) / 10,
          ...(taskId ? { taskId: Number(taskId) } : {}),
          ...(res.locals.userId ? { userId: res.locals.userId } : {}),
        },
        'request',
      );
    });
    next();
  };
}
