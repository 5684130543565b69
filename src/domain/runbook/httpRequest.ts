/**
 * The rules of an http step, shared by the definition (checked at load), the resolver (values
 * filled in at run time) and the executor (src/exec/httpStep.ts).
 *
 * - The URL's scheme and authority are written out literally: references may fill its path,
 *   query or fragment (percent-encoded), never its host or port, so the host reviewers read and
 *   http.allow checks is the host called. No user:password@ in URLs (it would show in every log).
 * - A filled-in URL may not have a `.` or `..` path segment (also as %2e): URL parsers remove
 *   them, so a value such as `..` would climb the path instead of filling one segment.
 * - Header names are HTTP tokens; framing and hop-by-hop headers (Host, Content-Length,
 *   Transfer-Encoding, Connection, ...) are ours to set. Values never hold CR, LF or NUL (no
 *   header injection), checked again after references are filled in.
 * - successStatus: a code or a list of codes; absent means any 2xx.
 * - successPattern: `/regex/` or `/regex/i` runs in the linear-time engine (RE2 syntax); any
 *   other text must appear in the body as written. It is matched against the body after secrets
 *   are masked, so a pattern cannot probe a secret's value.
 *
 * Interface (pure):
 *   HTTP_METHODS, type HttpMethod
 *   HttpRequestSpec                         what the executor sends (values filled in)
 *   urlTemplateProblem(url) / literalUrlHost(url)
 *   headerNameProblem(name), headerValueProblem(value)
 *   compileSuccessPattern(text)             -> { ok, test(body) } | { ok: false, error }
 *   statusSucceeds(status, successStatus)
 *   describeSuccessStatus(successStatus)
 */
import { compileLinear } from '../linearRegex.js';
import { parseTemplate } from './template.js';

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** An http step with every reference filled in: what src/exec/httpStep.ts sends. */
export interface HttpRequestSpec {
  url: string;
  method: HttpMethod;
  /** In written order; names as written. */
  headers: Array<{ name: string; value: string }>;
  /** JSON text, or null for no body. */
  body: string | null;
  /** Ask for gzip/deflate/br (Accept-Encoding); a compressed answer is decoded either way. */
  compress: boolean;
  timeoutMs: number;
  /** Codes that count as success; null: any 2xx. */
  successStatus: readonly number[] | null;
  successPattern: string | null;
  /** Headers whose value came from a secret: never sent on to another origin by a redirect. */
  secretHeaders: readonly string[];
  /** The body holds a secret's value: a redirect that would carry the body to another origin is refused. */
  secretBody: boolean;
}

export const MAX_URL_LENGTH = 8192;

/** Headers countersign sets or that would change how the message is framed or routed. */
const FORBIDDEN_HEADERS = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'te',
  'trailer',
  'expect',
  'proxy-connection',
]);
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/;

export function headerNameProblem(name: string): string | null {
  if (!TOKEN.test(name)) return `"${name}" is not a header name (letters, digits and !#$%&'*+.^_\`|~-)`;
  if (FORBIDDEN_HEADERS.has(name.toLowerCase())) return `${name} is set by countersign (framing and routing headers cannot be given)`;
  return null;
}

export function headerValueProblem(value: string): string | null {
  if (/[\r\n\u0000]/.test(value)) return 'a header value cannot contain CR, LF or NUL';
  // What HTTP/1.1 (and Node) accept in a field value: tab, visible ASCII, and Latin-1 bytes.
  if (/[^\t\x20-\x7e\x80-\xff]/.test(value)) return 'a header value holds only tab, printable ASCII and Latin-1 characters (no control characters)';
  if (value.length > 8192) return 'a header value is at most 8192 characters';
  return null;
}

const AUTHORITY_ONLY = /^(https?):\/\/([^/?#]+)/i;
const AUTHORITY_THEN_MORE = /^(https?):\/\/([^/?#]+)[/?#]/i;

/** Why `url` (a template) cannot be an http step's URL, or null when it can. */
export function urlTemplateProblem(url: string): string | null {
  if (url.length > MAX_URL_LENGTH) return `a URL is at most ${MAX_URL_LENGTH} characters`;
  const template = parseTemplate(url);
  if (!template.ok) return template.error;
  const firstReference = template.parts.findIndex((part) => 'reference' in part);
  const literalPrefix = template.parts
    .slice(0, firstReference < 0 ? undefined : firstReference)
    .map((part) => ('text' in part ? part.text : ''))
    .join('');
  if (!/^https?:\/\//i.test(literalPrefix)) return 'expected an http:// or https:// URL';
  // With a reference, the literal text must reach past the authority (to its / ? or #).
  const authority = (firstReference >= 0 ? AUTHORITY_THEN_MORE : AUTHORITY_ONLY).exec(literalPrefix);
  if (!authority) return 'the scheme, host and port must be written out: references may fill the path, query or fragment, not the host';
  const sample = template.parts.map((part) => ('text' in part ? part.text : 'x')).join('');
  let parsed: URL;
  try {
    parsed = new URL(sample);
  } catch {
    return 'not a valid URL';
  }
  if (parsed.username !== '' || parsed.password !== '' || (authority[2] ?? '').includes('@'))
    return 'a URL cannot carry a user or password (send credentials in a header, from a secret)';
  if (parsed.hostname === '') return 'the URL has no host';
  if (hasDotSegment(sample)) return 'a URL path has no . or .. segments (write the path it means)';
  return null;
}

/** Does the URL text (before any parser normalises it) have a `.` or `..` path segment? */
export function hasDotSegment(url: string): boolean {
  const rest = url.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, '');
  const path = rest.split(/[?#]/, 1)[0] ?? '';
  return path.split(/[/\\]/).some((segment) => /^(?:\.|%2e){1,2}$/i.test(segment));
}

/** The host a valid URL template calls (as URL.hostname gives it: lowercased, IPv6 in brackets). */
export function literalUrlHost(url: string): string | null {
  if (urlTemplateProblem(url) !== null) return null;
  const template = parseTemplate(url);
  if (!template.ok) return null;
  try {
    return new URL(template.parts.map((part) => ('text' in part ? part.text : 'x')).join('')).hostname;
  } catch {
    return null;
  }
}

export interface SuccessPattern {
  readonly source: string;
  /** Does the (masked) body satisfy the pattern? */
  test(body: string): boolean;
}

const REGEX_LITERAL = /^\/([\s\S]+)\/(i?)$/;

export function compileSuccessPattern(text: string): { ok: true; pattern: SuccessPattern } | { ok: false; error: string } {
  if (text === '') return { ok: false, error: 'the pattern is empty' };
  const literal = REGEX_LITERAL.exec(text);
  if (!literal) return { ok: true, pattern: { source: text, test: (body) => body.includes(text) } };
  const compiled = compileLinear(literal[1] ?? '', { caseInsensitive: literal[2] === 'i' });
  if (!compiled.ok) return { ok: false, error: compiled.error };
  return { ok: true, pattern: { source: text, test: (body) => compiled.regex.test(body) } };
}

export function statusSucceeds(status: number, successStatus: readonly number[] | null): boolean {
  return successStatus === null ? status >= 200 && status <= 299 : successStatus.includes(status);
}

export function describeSuccessStatus(successStatus: readonly number[] | null): string {
  return successStatus === null ? '2xx' : successStatus.join(' or ');
}
