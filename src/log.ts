/**
 * Structured JSON logs (pino). Bolt gets an adapter so its own messages land in the same
 * stream. Secret-bearing fields are redacted by path.
 */
import type { Logger as SlackLogger, LogLevel } from '@slack/logger';
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { app: 'countersign' },
      redact: { paths: ['*.privateKey', '*.token', '*.password', '*.signingSecret', 'headers.authorization'], censor: '*****' },
      serializers: { err: pino.stdSerializers.err },
    },
    destination as pino.DestinationStream | undefined,
  );
}

export function boltLogger(logger: Logger): SlackLogger {
  const child = logger.child({ component: 'bolt' });
  const text = (parts: unknown[]) => parts.map((part) => (typeof part === 'string' ? part : JSON.stringify(part))).join(' ');
  return {
    debug: (...msg: unknown[]) => child.debug(text(msg)),
    info: (...msg: unknown[]) => child.info(text(msg)),
    warn: (...msg: unknown[]) => child.warn(text(msg)),
    error: (...msg: unknown[]) => child.error(text(msg)),
    setLevel: () => undefined,
    getLevel: () => child.level as LogLevel,
    setName: () => undefined,
  };
}
