/**
 * A client for /api/v1 that checks every answer against the server's own OpenAPI document:
 * the status must be documented for that operation and a JSON body must match its schema
 * (Ajv, JSON Schema 2020-12), so the document cannot drift from what the server does.
 */
import { Ajv2020 } from 'ajv/dist/2020.js';
import * as addFormatsModule from 'ajv-formats';

// ajv-formats is CommonJS: its default export arrives wrapped under ESM.
type AddFormats = (ajv: Ajv2020) => unknown;
const addFormats = ((addFormatsModule as unknown as { default: { default?: AddFormats } & AddFormats }).default.default ??
  (addFormatsModule as unknown as { default: AddFormats }).default) as AddFormats;

type Doc = {
  paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: unknown }> }> }>>;
  components: { schemas: Record<string, unknown> };
};

export interface ApiAnswer {
  status: number;
  headers: Headers;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

export class ApiClient {
  private readonly ajv = new Ajv2020({ strict: false, allErrors: true });
  private readonly validators = new Map<string, ReturnType<Ajv2020['compile']>>();
  /** Operations and statuses seen, for a coverage check. */
  readonly seen = new Set<string>();

  private constructor(
    readonly baseUrl: string,
    readonly document: Doc,
  ) {
    addFormats(this.ajv);
    this.ajv.addSchema({ $id: 'doc', components: document.components } as never);
  }

  static async connect(appUrl: string): Promise<ApiClient> {
    const response = await fetch(`${appUrl}/api/v1/openapi.json`);
    if (response.status !== 200) throw new Error(`openapi.json answered ${response.status}`);
    return new ApiClient(`${appUrl}/api/v1`, (await response.json()) as Doc);
  }

  async call(
    method: string,
    path: string,
    options: { token?: string; body?: unknown; rawBody?: string; headers?: Record<string, string> } = {},
  ): Promise<ApiAnswer> {
    const headers: Record<string, string> = { ...options.headers };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    let body: string | undefined = options.rawBody;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] = 'application/json';
    }
    const response = await fetch(`${this.baseUrl}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
    const text = await response.text();
    const isJson = (response.headers.get('content-type') ?? '').includes('application/json');
    const answer: ApiAnswer = { status: response.status, headers: response.headers, text, body: isJson ? JSON.parse(text) : text };
    this.check(method.toLowerCase(), path, answer, isJson);
    if (options.body !== undefined) this.checkRequest(method.toLowerCase(), path, options.body, answer);
    return answer;
  }

  /**
   * The document and the server must agree on requests too: a body the server accepted must be
   * valid by the documented schema, and one it refused as invalid must not be.
   */
  checkRequest(method: string, path: string, body: unknown, answer: ApiAnswer): void {
    const bare = path.split('?')[0]!;
    const template = Object.keys(this.document.paths).find((t) => new RegExp(`^${t.replace(/\{\w+\}/g, '[^/]+')}$`).test(bare));
    const operation = template
      ? (this.document.paths[template]![method] as { requestBody?: { content: Record<string, { schema: unknown }> } } | undefined)
      : undefined;
    const schema = operation?.requestBody?.content['application/json']?.schema;
    if (!schema) return;
    const validate = this.ajv.compile(JSON.parse(JSON.stringify(schema).replaceAll('"#/components/', '"doc#/components/')));
    const valid = validate(body);
    if (answer.status < 300 && !valid)
      throw new Error(`${method} ${template}: the server accepted a body the document rejects: ${this.ajv.errorsText(validate.errors)}`);
    if (answer.status === 400 && answer.body?.error?.code === 'invalid_request' && answer.body.error.issues && valid) {
      throw new Error(`${method} ${template}: the server refused a body the document accepts: ${answer.text.slice(0, 300)}`);
    }
  }

  /** Throws unless the answer is documented for the operation this path and method match. */
  check(method: string, path: string, answer: ApiAnswer, isJson: boolean): void {
    const bare = path.split('?')[0]!;
    const template = Object.keys(this.document.paths).find((t) => new RegExp(`^${t.replace(/\{\w+\}/g, '[^/]+')}$`).test(bare));
    // Unknown routes are documented by nothing; they must still answer the error shape.
    if (!template || !this.document.paths[template]![method]) {
      if (answer.status !== 404 || !isJson || typeof answer.body?.error?.code !== 'string')
        throw new Error(`${method} ${path}: undocumented route answered ${answer.status}`);
      return;
    }
    const response = this.document.paths[template]![method]!.responses[String(answer.status)];
    if (!response) throw new Error(`${method} ${template}: status ${answer.status} is not in the OpenAPI document (body: ${answer.text.slice(0, 300)})`);
    this.seen.add(`${method} ${template} ${answer.status}`);
    const contentType = answer.headers.get('content-type')?.split(';')[0]?.trim() ?? '';
    const media = response.content?.[contentType];
    if (response.content && !media) throw new Error(`${method} ${template} ${answer.status}: content type ${contentType} is not documented`);
    if (isJson && media) {
      const key = `${method} ${template} ${answer.status}`;
      let validate = this.validators.get(key);
      if (!validate) {
        validate = this.ajv.compile(JSON.parse(JSON.stringify(media.schema).replaceAll('"#/components/', '"doc#/components/')));
        this.validators.set(key, validate);
      }
      if (!validate(answer.body))
        throw new Error(`${key}: body does not match the OpenAPI schema: ${this.ajv.errorsText(validate.errors)}\n${answer.text.slice(0, 500)}`);
    }
  }
}
