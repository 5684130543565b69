/**
 * The OpenAPI 3.1 document, generated from the operations table and the zod schemas (zod 4
 * emits JSON Schema 2020-12, which is OpenAPI 3.1's dialect). Named schemas (`.meta({ id })`)
 * become components and are referenced from each operation.
 */
import { z } from 'zod';
import { STRING_PARAMETERS, type Operation, type ResponseSpec } from './routes.js';
import { ErrorBody } from './schemas.js';

type JsonSchema = Record<string, unknown>;

const COMPONENT = '#/components/schemas/';

/** A schema with its named parts as component refs; the named parts collected into `components`. */
function toSchema(schema: z.ZodType, io: 'input' | 'output', components: Record<string, JsonSchema>): JsonSchema {
  const json = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' }) as JsonSchema;
  const rewritten = JSON.parse(JSON.stringify(json).replaceAll('"#/$defs/', `"${COMPONENT}`)) as JsonSchema;
  const defs = (rewritten.$defs ?? {}) as Record<string, JsonSchema>;
  for (const [name, def] of Object.entries(defs)) components[name] = def;
  delete rewritten.$defs;
  delete rewritten.$schema;
  // A named root comes back as a $ref to its own definition (collected above); else, if the
  // schema is named, file it under its name so the document shows one definition.
  const id = (z.globalRegistry.get(schema) as { id?: string } | undefined)?.id;
  if (id && typeof rewritten.$ref !== 'string') {
    delete rewritten.id;
    components[id] = rewritten;
    return { $ref: `${COMPONENT}${id}` };
  }
  return rewritten;
}

const STANDARD_ERRORS: Record<number, string> = {
  400: 'Invalid input: malformed JSON, unknown fields, wrong types.',
  401: 'Missing or bad API token.',
  403: "The token's user may not do this.",
  404: 'No such task, execution, runbook or run.',
  409: 'Not possible in the current state.',
  413: 'Request body too large.',
};

export function openApiDocument(operations: readonly Operation[]): JsonSchema {
  const components: Record<string, JsonSchema> = {};
  const errorRef = toSchema(ErrorBody, 'output', components);
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of operations) {
    const parameters: unknown[] = [];
    for (const name of op.path.match(/\{(\w+)\}/g) ?? []) {
      const param = name.slice(1, -1);
      const pattern = STRING_PARAMETERS[param];
      parameters.push({
        name: param,
        in: 'path',
        required: true,
        schema: pattern ? { type: 'string', pattern: pattern.source } : { type: 'integer', minimum: 1 },
      });
    }
    if (op.query) {
      const query = toSchema(op.query, 'input', components) as { properties?: Record<string, JsonSchema>; required?: string[] };
      for (const [name, schema] of Object.entries(query.properties ?? {})) {
        const { description, ...rest } = schema;
        parameters.push({ name, in: 'query', required: query.required?.includes(name) ?? false, schema: rest, ...(description ? { description } : {}) });
      }
    }
    for (const header of op.headers ?? [])
      parameters.push({ name: header.name, in: 'header', required: header.required ?? false, description: header.description, schema: header.schema });

    const responses: Record<string, unknown> = {};
    for (const [status, spec] of Object.entries(op.responses)) responses[status] = responseObject(spec, components);
    for (const [status, description] of Object.entries(STANDARD_ERRORS)) {
      if (status === '413' && !op.body) continue;
      responses[status] ??= { description, content: { 'application/json': { schema: errorRef } } };
    }
    paths[op.path] ??= {};
    paths[op.path]![op.method] = {
      operationId: op.operationId,
      summary: op.summary,
      ...(op.description ? { description: op.description } : {}),
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(op.body
        ? {
            requestBody: {
              required: op.bodyRequired ?? (op.path === '/tasks' || op.method === 'patch'),
              content: { 'application/json': { schema: toSchema(op.body, 'input', components) } },
            },
          }
        : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'countersign API',
      version: '1.0.0',
      description: 'Reviewed scripts on production hosts. Every call acts as the Slack user its token belongs to, with the same rules as in Slack.',
    },
    servers: [{ url: '/api/v1' }],
    security: [{ bearer: [] }],
    paths,
    components: {
      schemas: components,
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'A token from `npm run token -- create`.' } },
    },
  };
}

function responseObject(spec: ResponseSpec, components: Record<string, JsonSchema>): unknown {
  const headers = spec.headers
    ? Object.fromEntries(Object.entries(spec.headers).map(([name, description]) => [name, { description, schema: { type: 'string' } }]))
    : undefined;
  const content = spec.schema
    ? { 'application/json': { schema: toSchema(spec.schema, 'output', components) } }
    : spec.content
      ? Object.fromEntries(Object.entries(spec.content).map(([type, extra]) => [type, { schema: { type: 'string' }, ...extra }]))
      : undefined;
  return { description: spec.description, ...(headers ? { headers } : {}), ...(content ? { content } : {}) };
}
