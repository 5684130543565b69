/**
 * Runs one http step: a request with every reference already filled in (HttpRequestSpec, from
 * resolveHttpStep in src/domain/runbook/values.ts), under config `http.allow`
 * (src/domain/netAllow.ts). Built on node:http/https: their per-request `lookup` option pins
 * the checked address, with no new dependency. Node 20's global fetch (undici inside) could
 * only do that through a custom dispatcher, which needs the undici package added.
 *
 * What it guarantees:
 * - Only allowed destinations: before every connection, the first and each redirect hop, the
 *   URL's host is checked as written, then (for a name) every DNS answer is checked, and the
 *   connection goes to the checked address: the socket's lookup is replaced by one that
 *   answers that address, so a second DNS answer cannot rebind the name to another one. TLS
 *   still verifies the certificate against the name. A refusal says why.
 * - Redirects are followed by hand, at most `maxRedirects` (default 5), each hop checked as
 *   above. 303 (and 301/302 after a POST) turn into a GET without body, as browsers do; 307/308
 *   keep method and body. A hop to another origin drops Authorization, Cookie and every header
 *   whose value came from a secret, and is refused when it would carry a body holding a secret:
 *   a secret is sent only where the runbook sent it.
 * - Bounded: one deadline (the step's timeout) covers DNS, connecting, every hop and the body;
 *   the body is decoded (gzip, deflate, br) and kept up to `maxBodyBytes` decoded bytes
 *   (default 1 MiB), then the transfer is cut: a compression bomb costs at most that much.
 * - The step's output (request line, redirect hops, status line, body) and its `body` value
 *   have the mask values (the target's secrets, fixed argument values) masked and the
 *   redaction rules applied, as script output has (src/runner/outputFilter.ts). The success
 *   pattern is tested on that filtered body, so a pattern cannot probe a secret's value, and
 *   `json` is parsed from it.
 * - Kill: `signal` aborts the request at once (phase `killed`).
 * - It never throws: every failure is a result with a failure message.
 *
 * Config (WP8 adds it to configFileSchema as `http:`; absent means nothing may be called):
 *   http:
 *     allow: [api.example.com, "*.internal.example", 10.20.0.0/16, "fd00::/8"]
 *     maxRedirects: 5        # default 5
 *     maxBody: 1MB           # decoded bytes kept of an answer; default 1MB, at most 64MB
 *
 * Interface:
 *   httpConfigSchema (zod), httpSettingsFromConfig(parsed) -> HttpSettings
 *   runHttpStep(request: HttpRequestSpec, options: HttpStepOptions): Promise<HttpStepResult>
 *   httpStepValues(result): StepValues  (what later steps may reference)
 *   types HttpStepOptions, HttpStepResult, HostResolver
 *   DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_REDIRECTS
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { rootCertificates } from 'node:tls';
import zlib from 'node:zlib';
import { z } from 'zod';
import { formatDuration } from '../domain/duration.js';
import { checkResolvedAddress, checkUrlHost, netAllowEntryProblem, parseNetAllow, EMPTY_NET_ALLOW, type NetAllow } from '../domain/netAllow.js';
import type { RedactRule } from '../domain/redaction.js';
import { compileSuccessPattern, describeSuccessStatus, statusSucceeds, type HttpRequestSpec, type JsonValue } from '../domain/runbook/httpRequest.js';
import type { StepValues } from '../domain/runbook/values.js';
import { SecretMasker } from '../domain/secretMasker.js';
import { parseSize } from '../domain/size.js';
import { OutputFilter } from '../runner/outputFilter.js';

export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
export const DEFAULT_MAX_REDIRECTS = 5;

const MAX_CONFIGURED_BODY = 64 * 1024 * 1024;

/** The `http:` block of countersign.yml. */
export const httpConfigSchema = z.strictObject({
  allow: z
    .array(
      z.string().superRefine((entry, ctx) => {
        const problem = netAllowEntryProblem(entry);
        if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
      }),
    )
    .max(1000)
    .default([]),
  maxRedirects: z.number().int().min(0).max(20).default(DEFAULT_MAX_REDIRECTS),
  maxBody: z
    .union([z.string(), z.number()])
    .refine((value) => parseSize(String(value)) !== null, 'expected a size like 1MB or 256KB')
    .refine((value) => (parseSize(String(value)) ?? 0) >= 1024, 'must be at least 1KB')
    .refine((value) => (parseSize(String(value)) ?? 0) <= MAX_CONFIGURED_BODY, 'must be at most 64MB')
    .default('1MB'),
});

export interface HttpSettings {
  allow: NetAllow;
  maxRedirects: number;
  maxBodyBytes: number;
}

/** Settings from a parsed `http:` block (entries were validated by the schema); absent: nothing allowed. */
export function httpSettingsFromConfig(file: z.infer<typeof httpConfigSchema> | undefined): HttpSettings {
  if (file === undefined) return { allow: EMPTY_NET_ALLOW, maxRedirects: DEFAULT_MAX_REDIRECTS, maxBodyBytes: DEFAULT_MAX_BODY_BYTES };
  const parsed = parseNetAllow(file.allow);
  // The schema checked every entry with the same function; a failure here is a bug, not a user error.
  if (!parsed.ok) throw new Error(`http.allow: ${parsed.problems.join('; ')}`);
  return { allow: parsed.allow, maxRedirects: file.maxRedirects, maxBodyBytes: parseSize(String(file.maxBody)) ?? DEFAULT_MAX_BODY_BYTES };
}

/** Answers a host name's addresses (default: the system resolver, as `getaddrinfo` sees it). */
export type HostResolver = (hostname: string) => Promise<Array<{ address: string; family: number }>>;

export interface HttpStepOptions {
  allow: NetAllow;
  /** Values masked in everything the step shows: the target's secrets and resolveHttpStep's maskValues. */
  maskValues?: readonly string[];
  /** The target's redaction rules, if the step names a target. */
  redact?: readonly RedactRule[];
  maxBodyBytes?: number;
  maxRedirects?: number;
  resolve?: HostResolver;
  /** Kill: aborting it stops the request at once. */
  signal?: AbortSignal;
  /** Extra trusted CA certificates (PEM) for https, on top of Node's bundled roots. */
  ca?: string | readonly string[];
}

export interface HttpStepResult {
  phase: 'succeeded' | 'failed' | 'killed';
  failureMessage: string | null;
  /** The final answer's status; null when none came. */
  status: number | null;
  statusLine: string | null;
  /** Decoded, capped, masked and redacted. */
  body: string;
  bodyTruncated: boolean;
  /** The filtered body parsed as JSON, when it parses (and was not cut). */
  json?: JsonValue;
  /** What the step's log shows, filtered like the body. */
  output: string;
  hops: Array<{ method: string; url: string; status: number }>;
  /** The address the last connection went to. */
  address: string | null;
  durationMs: number;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const CROSS_ORIGIN_DROPPED = ['authorization', 'cookie', 'proxy-authorization'];

class Refused extends Error {}
class BodyCapReached extends Error {}

const systemResolver: HostResolver = async (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

export async function runHttpStep(request: HttpRequestSpec, options: HttpStepOptions): Promise<HttpStepResult> {
  const started = Date.now();
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const maxRedirects = options.maxRedirects ?? DEFAULT_MAX_REDIRECTS;
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), request.timeoutMs);
  const signal = options.signal ? AbortSignal.any([deadline.signal, options.signal]) : deadline.signal;
  const log: string[] = [];
  const hops: HttpStepResult['hops'] = [];
  let address: string | null = null;
  let final: { response: IncomingMessage; statusLine: string } | null = null;

  const finish = (phase: HttpStepResult['phase'], failureMessage: string | null, extra: Partial<HttpStepResult> = {}): HttpStepResult => {
    clearTimeout(timer);
    const outputFilter = collect(options);
    outputFilter.push(log.join('\n') + (log.length > 0 ? '\n' : ''));
    if (failureMessage !== null) outputFilter.push(`countersign: ${failureMessage}\n`);
    return {
      phase,
      failureMessage: failureMessage === null ? null : maskText(failureMessage, options.maskValues),
      status: final?.response.statusCode ?? null,
      statusLine: final ? maskText(final.statusLine, options.maskValues) : null,
      body: '',
      bodyTruncated: false,
      hops: hops.map((hop) => ({ ...hop, url: maskText(hop.url, options.maskValues) })),
      address,
      durationMs: Date.now() - started,
      ...extra,
      output: outputFilter.text(),
    };
  };
  const failure = (error: unknown): HttpStepResult => {
    if (options.signal?.aborted) return finish('killed', 'stopped: the run was killed');
    if (deadline.signal.aborted) return finish('failed', `timed out after ${formatDuration(request.timeoutMs)}`);
    if (error instanceof Refused) return finish('failed', `refused: ${error.message}`);
    return finish('failed', describeNetworkError(error));
  };

  let url: URL;
  try {
    url = new URL(request.url);
  } catch {
    return finish('failed', 'the URL is not valid');
  }
  let method: string = request.method;
  let body: Buffer | null = request.body === null ? null : Buffer.from(request.body, 'utf8');
  let headers = requestHeaders(request);
  log.push(`${method} ${url.href}`);

  try {
    for (let hop = 0; ; hop++) {
      if (signal.aborted) throw signal.reason;
      const target = await destination(url, options, signal);
      address = target.address;
      const response = await send(url, method, headers, body, target, signal, options.ca);
      const statusLine = `HTTP/${response.httpVersion} ${response.statusCode ?? 0} ${response.statusMessage ?? ''}`.trimEnd();
      const status = response.statusCode ?? 0;
      const location = response.headers.location;
      if (REDIRECTS.has(status) && location !== undefined) {
        // Nothing of a redirect's body is read: a hop cannot feed us an endless stream.
        response.destroy();
        hops.push({ method, url: url.href, status });
        let next: URL;
        try {
          next = new URL(location, url);
        } catch {
          throw new Refused(`the redirect to "${location.slice(0, 200)}" is not a valid URL`);
        }
        log.push(`${statusLine} -> ${next.href}`);
        if (hop >= maxRedirects) throw new Refused(`more than ${maxRedirects} redirects`);
        if (next.origin !== url.origin)
          headers = headers.filter(
            ([name]) => !CROSS_ORIGIN_DROPPED.includes(name.toLowerCase()) && !request.secretHeaders.some((s) => s.toLowerCase() === name.toLowerCase()),
          );
        if (status === 303 ? method !== 'HEAD' : (status === 301 || status === 302) && method === 'POST') {
          method = 'GET';
          body = null;
          headers = headers.filter(([name]) => name.toLowerCase() !== 'content-type');
        }
        // A 307/308 (and a 301/302 after anything but a POST) keeps the body: one holding a
        // secret goes no further than the origin the runbook sent it to.
        if (body !== null && request.secretBody && next.origin !== url.origin)
          throw new Refused(`the ${status} redirect to ${next.origin} would carry the request body, which holds a secret, to another origin`);
        url = next;
        log.push(`${method} ${url.href}`);
        continue;
      }
      final = { response, statusLine };
      log.push(statusLine);
      break;
    }
  } catch (error) {
    return failure(error);
  }

  let raw: { bytes: Buffer; truncated: boolean };
  try {
    raw = await readBody(final.response, maxBody, method === 'HEAD');
  } catch (error) {
    final.response.destroy();
    return failure(error);
  }
  const bodyFilter = collect(options);
  bodyFilter.push(raw.bytes.toString('utf8'));
  const filteredBody = bodyFilter.text();
  if (filteredBody !== '') log.push(filteredBody.endsWith('\n') ? filteredBody.slice(0, -1) : filteredBody);
  if (raw.truncated) log.push(`[the body was cut at ${maxBody} bytes]`);
  const json = raw.truncated ? undefined : parseJson(filteredBody);
  const extra = { body: filteredBody, bodyTruncated: raw.truncated, ...(json !== undefined ? { json } : {}) };

  const status = final.response.statusCode ?? 0;
  if (!statusSucceeds(status, request.successStatus))
    return finish('failed', `the answer was ${final.statusLine.replace(/^HTTP\/\S+ /, '')}; expected ${describeSuccessStatus(request.successStatus)}`, extra);
  if (request.successPattern !== null) {
    const pattern = compileSuccessPattern(request.successPattern);
    if (!pattern.ok) return finish('failed', `the success pattern cannot be used: ${pattern.error}`, extra);
    if (!pattern.pattern.test(filteredBody))
      return finish(
        'failed',
        `the body does not ${request.successPattern.startsWith('/') ? 'match' : 'contain'} ${request.successPattern}${raw.truncated ? ` (only its first ${maxBody} bytes were read)` : ''}`,
        extra,
      );
  }
  return finish('succeeded', null, extra);
}

/** What later steps may reference (`steps.<id>.status`, `.body`, `.json`, `.phase`). */
export function httpStepValues(result: HttpStepResult): StepValues {
  return { phase: result.phase, http: { status: result.status, body: result.body, ...(result.json !== undefined ? { json: result.json } : {}) } };
}

function requestHeaders(request: HttpRequestSpec): Array<[string, string]> {
  const given = new Set(request.headers.map((h) => h.name.toLowerCase()));
  const headers: Array<[string, string]> = [];
  if (!given.has('user-agent')) headers.push(['User-Agent', 'countersign']);
  if (!given.has('accept')) headers.push(['Accept', '*/*']);
  if (!given.has('accept-encoding')) headers.push(['Accept-Encoding', request.compress ? 'gzip, deflate, br' : 'identity']);
  if (request.body !== null && !given.has('content-type')) headers.push(['Content-Type', 'application/json']);
  for (const { name, value } of request.headers) headers.push([name, value]);
  return headers;
}

/** Checks the URL's host and, for a name, every address it resolves to; answers the one to connect to. */
async function destination(url: URL, options: HttpStepOptions, signal: AbortSignal): Promise<{ address: string; family: 4 | 6 }> {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Refused(`${url.protocol} URLs cannot be called (only http and https)`);
  if (url.username !== '' || url.password !== '') throw new Refused('a URL with a user or password cannot be called');
  const host = checkUrlHost(options.allow, url.hostname);
  if (!host.ok) throw new Refused(host.reason);
  if (host.kind === 'address') return { address: host.host, family: host.host.includes(':') ? 6 : 4 };
  const answers = await abortable((options.resolve ?? systemResolver)(host.host), signal).catch((error: unknown) => {
    if (signal.aborted) throw error;
    throw new Refused(`${host.host} could not be resolved: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  });
  if (answers.length === 0) throw new Refused(`${host.host} has no address`);
  for (const answer of answers) {
    const check = checkResolvedAddress(options.allow, host.host, answer.address);
    if (!check.ok) throw new Refused(check.reason);
  }
  const first = answers[0]!;
  return { address: first.address, family: first.family === 6 ? 6 : 4 };
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function send(
  url: URL,
  method: string,
  headers: Array<[string, string]>,
  body: Buffer | null,
  target: { address: string; family: 4 | 6 },
  signal: AbortSignal,
  ca: HttpStepOptions['ca'],
): Promise<IncomingMessage> {
  // The checked address, whatever the name resolves to by now.
  const pinned: LookupFunction = (_hostname, lookupOptions, callback) => {
    if ((lookupOptions as { all?: boolean }).all)
      (callback as unknown as (e: null, a: Array<{ address: string; family: number }>) => void)(null, [{ address: target.address, family: target.family }]);
    else callback(null, target.address, target.family);
  };
  const flat: Record<string, string | string[]> = {};
  for (const [name, value] of headers) {
    const existing = flat[name];
    flat[name] = existing === undefined ? value : [...(Array.isArray(existing) ? existing : [existing]), value];
  }
  if (body !== null) flat['Content-Length'] = String(body.length);
  const common = {
    method,
    host: url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname,
    port: url.port === '' ? undefined : Number(url.port),
    path: `${url.pathname}${url.search}`,
    headers: flat,
    lookup: pinned,
    agent: false as const,
    signal,
  };
  return new Promise<IncomingMessage>((resolve, reject) => {
    const request =
      url.protocol === 'https:'
        ? https.request({ ...common, ...(ca !== undefined ? { ca: [...rootCertificates, ...(typeof ca === 'string' ? [ca] : ca)] } : {}) }, resolve)
        : http.request(common, resolve);
    request.on('error', reject);
    request.end(body ?? undefined);
  });
}

async function readBody(response: IncomingMessage, maxBytes: number, headOnly: boolean): Promise<{ bytes: Buffer; truncated: boolean }> {
  if (headOnly || response.statusCode === 204 || response.statusCode === 304) {
    response.destroy();
    return { bytes: Buffer.alloc(0), truncated: false };
  }
  const encoding = String(response.headers['content-encoding'] ?? 'identity')
    .trim()
    .toLowerCase();
  const decoders: Record<string, () => Readable & NodeJS.WritableStream> = {
    gzip: () => zlib.createGunzip(),
    'x-gzip': () => zlib.createGunzip(),
    deflate: () => zlib.createInflate(),
    br: () => zlib.createBrotliDecompress(),
  };
  const decoder = encoding === 'identity' || encoding === '' ? null : decoders[encoding];
  if (decoder === undefined) {
    response.destroy();
    throw new Refused(`the answer's Content-Encoding ${encoding.slice(0, 50)} is not one countersign decodes (gzip, deflate, br)`);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  let truncated = false;
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      if (total + chunk.length > maxBytes) {
        chunks.push(chunk.subarray(0, maxBytes - total));
        total = maxBytes;
        truncated = true;
        callback(new BodyCapReached());
        return;
      }
      chunks.push(chunk);
      total += chunk.length;
      callback();
    },
  });
  try {
    if (decoder === null) await pipeline(response, sink);
    else await pipeline(response, decoder(), sink);
  } catch (error) {
    if (!(error instanceof BodyCapReached)) {
      if (decoder !== null && (error as NodeJS.ErrnoException).code?.startsWith('Z_'))
        throw new Refused(`the ${encoding} body could not be decoded: ${(error as Error).message}`);
      throw error;
    }
    response.destroy();
  }
  return { bytes: Buffer.concat(chunks, total), truncated };
}

function parseJson(text: string): JsonValue | undefined {
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as JsonValue;
  } catch {
    return undefined;
  }
}

function describeNetworkError(error: unknown): string {
  const e = error as NodeJS.ErrnoException & { address?: string; port?: number };
  const where = e.address ? ` (${e.address}${e.port ? `:${e.port}` : ''})` : '';
  switch (e.code) {
    case 'ECONNREFUSED':
      return `the connection was refused${where}`;
    case 'ECONNRESET':
      return `the connection was reset${where}`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `the host cannot be reached${where}`;
    case 'HPE_HEADER_OVERFLOW':
      return "the answer's headers are too large";
    default:
      if (
        typeof e.code === 'string' &&
        (e.code.startsWith('ERR_TLS') || e.code.includes('CERT') || e.code.startsWith('DEPTH_ZERO') || e.code.startsWith('SELF_SIGNED'))
      )
        return `TLS: ${e.message}`;
      return `the request failed: ${e.message ?? String(error)}`;
  }
}

/** An OutputFilter that collects what it lets through. */
function collect(options: HttpStepOptions): { push(text: string): void; text(): string } {
  const parts: string[] = [];
  const filter = new OutputFilter(options.maskValues ?? [], options.redact ?? [], (text) => parts.push(text));
  let ended = false;
  return {
    push: (text) => filter.push(text),
    text() {
      if (!ended) filter.end();
      ended = true;
      return parts.join('');
    },
  };
}

function maskText(text: string, values: readonly string[] | undefined): string {
  const masker = new SecretMasker(values ?? []);
  return masker.push(text) + masker.end();
}
