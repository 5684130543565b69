/**
 * The fetch function our Slack clients are given (WebClient's and Bolt's `fetch` option): undici's
 * `request` on one keep-alive Agent, answering with what WebClient and Bolt's respond() read of a
 * response (status, headers, the body as text, JSON or bytes).
 *
 * Why not Node's global fetch, their default: every card, review request, redraw and permalink
 * is a Web API call, and fetch's WHATWG machinery (web streams, Request and Response objects)
 * took about 0.26 ms of CPU per call more than this does (bench/slack-calls.ts), as much as
 * the rest of the call; on a 2-core machine that is time the command acks wait for.
 *
 * Two differences from fetch, both on purpose:
 * - redirects are never followed (WebClient asks for that anyway; a response_url that redirects
 *   is answered as the failure it is, not followed elsewhere);
 * - a response body over MAX_RESPONSE_BYTES is refused: every read is bounded.
 */
import { STATUS_CODES } from 'node:http';
import type { FetchFunction } from '@slack/web-api';
import { Agent, request } from 'undici';

type FetchResponse = Awaited<ReturnType<FetchFunction>>;

/** Slack's largest answers (a page of a list, a view) are well under a megabyte. */
export const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

export interface SlackFetch {
  fetch: FetchFunction;
  /** Closes the kept-alive connections (at shutdown). */
  close(): Promise<void>;
}

export function createSlackFetch(options: { maxResponseBytes?: number } = {}): SlackFetch {
  const maxBytes = options.maxResponseBytes ?? MAX_RESPONSE_BYTES;
  const dispatcher = new Agent({ keepAliveTimeout: 30_000 });
  const fetch: FetchFunction = async (url, init = {}) => {
    const { body, headers } = await encodeBody(init.body, init.headers);
    const response = await request(url, { method: (init.method ?? 'GET') as 'GET' | 'POST', headers, body, signal: init.signal, dispatcher });
    const answer = await readBounded(response.body, maxBytes, String(url));
    return slackResponse(String(url), response.statusCode, response.headers, answer);
  };
  return { fetch, close: () => dispatcher.close() };
}

/**
 * A string goes as it is. The FormData WebClient builds for a file's bytes is encoded as fetch
 * encodes it (multipart, with its boundary in the content type): it is the global FormData, which
 * this undici's own encoder does not take, and uploads are rare enough for fetch's cost.
 */
async function encodeBody(
  body: string | FormData | undefined,
  headers: Record<string, string> | undefined,
): Promise<{ body: string | Buffer | null; headers: Record<string, string> | undefined }> {
  if (body === undefined || typeof body === 'string') return { body: body ?? null, headers };
  const encoded = new Response(body);
  return {
    body: Buffer.from(await encoded.arrayBuffer()),
    headers: { ...headers, 'content-type': encoded.headers.get('content-type') ?? 'multipart/form-data' },
  };
}

async function readBounded(stream: AsyncIterable<Buffer> & { destroy(error?: Error): unknown }, maxBytes: number, url: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += chunk.length;
    if (size > maxBytes) {
      const error = new Error(`the answer from ${new URL(url).origin} is over ${maxBytes} bytes`);
      stream.destroy(error);
      throw error;
    }
    chunks.push(chunk);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
}

function slackResponse(url: string, status: number, raw: Record<string, string | string[] | undefined>, body: Buffer): FetchResponse {
  // Header names arrive lower-cased; a repeated header is joined as fetch's Headers joins it.
  const headers = new Map<string, string>();
  for (const [name, value] of Object.entries(raw)) if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(', ') : value);
  return {
    ok: status >= 200 && status < 300,
    status,
    statusText: STATUS_CODES[status] ?? '',
    url,
    headers: { get: (name) => headers.get(name.toLowerCase()) ?? null, entries: () => headers.entries() },
    arrayBuffer: async () => body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength) as ArrayBuffer,
    json: async () => JSON.parse(body.toString('utf8')) as unknown,
    text: async () => body.toString('utf8'),
  };
}
