/**
 * The API's operations as data: path, method, input schemas, answers and handler. The express
 * router and the OpenAPI document are both built from this one table, so a route cannot exist
 * in one and not the other.
 */
import type { Request, Response } from 'express';
import type { z } from 'zod';

export type Answer = { status: number; body: unknown } | 'handled';

export interface ApiContext {
  req: Request;
  res: Response;
  /** The Slack user the token acts as. */
  userId: string;
  params: Record<string, number>;
  query: unknown;
  body: unknown;
}

export interface ResponseSpec {
  description: string;
  /** JSON body schema; or a non-JSON body described by its media types. */
  schema?: z.ZodType;
  content?: Record<string, { description?: string }>;
  headers?: Record<string, string>;
}

export interface Operation {
  method: 'get' | 'post' | 'patch' | 'delete';
  /** OpenAPI style: /tasks/{id}. Path parameters are positive integers. */
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  query?: z.ZodObject;
  body?: z.ZodType;
  /** The body must be sent (else it may be left out and counts as `{}`); POST /tasks and PATCHes always. */
  bodyRequired?: boolean;
  /** Extra request headers this operation reads. */
  headers?: Array<{ name: string; description: string; schema: Record<string, unknown>; required?: boolean }>;
  /** False for the document itself. */
  auth?: boolean;
  responses: Record<number, ResponseSpec>;
  handle(ctx: ApiContext): Promise<Answer>;
}
