/**
 * The fetch function our Slack clients are given (WebClient's and Bolt's `fetch` option): undici's
 * `request` on one keep-alive Agent, answering with what WebClient and Bolt's respond() read of a
 * response (status, headers, the body as text, JSON or bytes).
 *
 * Why not Node's global fetch, their default: every card, review request, redraw and permalink
 * is a Web API call, and WebClient on fetch's WHATWG machinery (web streams, Request and Response
 * objects) took twice the CPU per call that it takes on this (0.70 against 0.35 ms,
 * bench/slack-calls.ts); on a 2-core machine that is time the command acks wait for.
 *
 * Differences from fetch, on purpose:
 * - redirects are never followed (WebClient asks for that anyway; a response_url that redirects
 *   is answered as the failure it is, and nothing is sent elsewhere);
 * - an answer over MAX_RESPONSE_BYTES is refused: every read is bounded, decoded ones too;
 * - no compressed answers are asked for (Slack's are small).
 */
import { STATUS_CODES } from 'node:http';
import { brotliDecompressSync, gunzipSync, inflateRawSync, inflateSync } from 'node:zlib';
import type { FetchFunction } from '@slack/web-api';
import { Agent, request } from 'undici';

type FetchResponse = Awaited<ReturnType<FetchFunction>>;

/** Slack's largest answers (a page of a list, a view) are well under a megabyte. */
export const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

export interface SlackFetch {
  fetch: FetchFunction;
  /**
   * At shutdown: lets calls in flight finish for up to `graceMs`, then cuts them (a response_url
   * post has no timeout of its own and could hold the connections for minutes).
   */
  close(graceMs?: number): Promise<void>;
}

export function createSlackFetch(options: { maxResponseBytes?: number } = {}): SlackFetch {
  const maxBytes = options.maxResponseBytes ?? MAX_RESPONSE_BYTES;
  // undici's keep-alive defaults: an idle connection is dropped after 4 s unless the server says
  // how long it keeps them, so a connection Slack's edge has already closed is not reused.
  const dispatcher = new Agent();
  const inFlight = new Set<Promise<unknown>>();
  const fetch: FetchFunction = (url, init = {}) => {
    const call = (async () => {
      const { body, headers } = await encodeBody(init.body, init.headers);
      const response = await request(url, { method: (init.method ?? 'GET') as 'GET' | 'POST', headers, body, signal: init.signal, dispatcher });
      const raw = await readBounded(response.body, maxBytes, String(url));
      const answer = decode(raw, response.headers['content-encoding'], maxBytes, String(url));
      return slackResponse(String(url), response.statusCode, response.headers, answer);
    })();
    const settled: Promise<unknown> = call.then(
      (): unknown => inFlight.delete(settled),
      (): unknown => inFlight.delete(settled),
    );
    inFlight.add(settled);
    return call;
  };
  // Not the Agent's own close(): it waits for every call in flight, and a destroy() after it no
  // longer cuts them off.
  const close = async (graceMs = 1000) => {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(inFlight), new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
    await dispatcher.destroy();
  };
  return { fetch, close };
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

/**
 * We never ask for a compressed answer (WebClient sends no Accept-Encoding, and neither does
 * this), but a proxy on the way may compress anyway: such an answer is decoded, to no more than
 * the bound, as fetch would have decoded it.
 */
function decode(body: Buffer, encoding: string | string[] | undefined, maxBytes: number, url: string): Buffer {
  const name = (Array.isArray(encoding) ? encoding.join(',') : (encoding ?? '')).trim().toLowerCase();
  if (name === '' || name === 'identity') return body;
  const options = { maxOutputLength: maxBytes };
  try {
    if (name === 'gzip' || name === 'x-gzip') return gunzipSync(body, options);
    // HTTP's deflate is zlib-wrapped, but some servers send it raw (as fetch allows for).
    if (name === 'deflate') return ((body[0] ?? 0) & 0x0f) === 0x08 ? inflateSync(body, options) : inflateRawSync(body, options);
    if (name === 'br') return brotliDecompressSync(body, options);
  } catch (error) {
    throw new Error(`the answer from ${new URL(url).origin} could not be decoded (${name}): ${(error as Error).message}`);
  }
  throw new Error(`the answer from ${new URL(url).origin} came in an encoding we cannot read (${name})`);
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
