/** API errors: one JSON shape, `{ error: { code, message } }`, and the HTTP status for each refusal. */
import type { Response } from 'express';
import type { z } from 'zod';
import type { Refusal } from '../service/outcome.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly issues?: Array<{ path: string; message: string }>,
  ) {
    super(message);
  }
}

/** Refusals from the use cases: who you are (403), what state the task is in (409), what you asked for (404/422). */
const REFUSAL_STATUS: Readonly<Record<string, number>> = {
  not_found: 404,
  unknown_target: 422,
  unreachable_review: 422,
  no_review: 409,
  not_allowed: 403,
  not_author: 403,
  not_reviewer: 403,
  self_review: 403,
  not_pending: 409,
  already_decided: 409,
  already_stopping: 409,
  wrong_status: 409,
  not_editable: 409,
  unknown_runbook: 404,
  invalid_runbook: 422,
  invalid_arguments: 422,
  not_triggerable: 422,
  name_taken: 409,
  exists: 409,
  gone: 409,
  changed: 409,
  config_runbook: 409,
  runbook_changed: 409,
  run_step: 409,
  expired: 409,
  fixed_not_allowed: 403,
  notify_not_allowed: 403,
  too_many: 409,
};

export function fromRefusal(refusal: Refusal): ApiError {
  // Slack-flavoured markup (`#12`, backticks, <@U..>) reads fine as plain text too.
  return new ApiError(REFUSAL_STATUS[refusal.code] ?? 409, refusal.code, refusal.message);
}

export function fromZod(error: z.ZodError, where: 'body' | 'query'): ApiError {
  const issues = error.issues.map((issue) => ({
    path: issue.path.length > 0 ? issue.path.join('.') : where,
    message: issue.code === 'unrecognized_keys' ? `unknown field${issue.keys.length > 1 ? 's' : ''}: ${issue.keys.join(', ')}` : issue.message,
  }));
  const first = issues[0];
  return new ApiError(400, 'invalid_request', `Invalid ${where}: ${first ? `${first.path}: ${first.message}` : 'malformed'}`, issues);
}

export function sendError(res: Response, error: ApiError): void {
  // A handler may have set another type before failing (the log sets text/plain).
  res
    .status(error.status)
    .type('application/json')
    .json({ error: { code: error.code, message: error.message, ...(error.issues ? { issues: error.issues } : {}) } });
}
