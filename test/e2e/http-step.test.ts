// The http step's executor against real HTTP(S) servers on 127.0.0.x: success, status and
// pattern checks, timeouts, kill, the allowlist (URL, redirects, DNS answers, rebinding),
// decoding with a cap (compression bombs), secrets masked and kept to their origin, and the
// pure half (definition -> plan -> references) driving it end to end.
import { readFileSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseNetAllow, type NetAllow } from '../../src/domain/netAllow.js';
import { compileRedactRules } from '../../src/domain/redaction.js';
import type { HttpRequestSpec } from '../../src/domain/runbook/httpRequest.js';
import {
  checkRunbooks,
  planRun,
  resolveHttpStep,
  resolveScriptStep,
  runbookFromBody,
  runbooksConfigSchema,
  type RunValues,
} from '../../src/domain/runbook/index.js';
import { httpStepValues, runHttpStep, type HostResolver } from '../../src/exec/httpStep.js';

const ALLOWED_IP = '127.0.0.2';
const FORBIDDEN_IP = '127.0.0.3';
const SECRET = 's3cr3t-token-value-42';
const TLS_DIR = join(import.meta.dirname, '../fixtures/tls');

let port = 0;
let tlsPort = 0;
let v6Port = 0;
const forbiddenHits: string[] = [];
const allowedHits: Array<{ url: string; host: string | undefined }> = [];
const servers: Array<http.Server | https.Server> = [];
/** Served gzip/br bombs: 64 MiB of zeros, compressed to a few KiB. */
let gzipBomb: Buffer;
let brotliBomb: Buffer;

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

async function readAll(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function handleAllowed(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://x');
  allowedHits.push({ url: url.pathname + url.search, host: req.headers.host });
  const body = await readAll(req);
  switch (url.pathname) {
    case '/ok':
      return json(res, 200, { ok: true, items: [{ id: 7, name: 'web-1' }] });
    case '/status':
      return json(res, Number(url.searchParams.get('code') ?? 500), { ok: false, reason: 'maintenance' });
    case '/echo':
      return json(res, 200, { method: req.method, path: req.url, headers: req.headers, body });
    case '/redirect':
      res.writeHead(Number(url.searchParams.get('code') ?? 302), { location: url.searchParams.get('to') ?? '/' });
      // A redirect's body is never read: this one would go on for ever.
      res.write('x'.repeat(1024));
      return;
    case '/loop':
      res.writeHead(302, { location: `/loop?n=${Number(url.searchParams.get('n') ?? 0) + 1}` });
      return void res.end();
    case '/slow':
      return; // never answers
    case '/trickle':
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('started\n');
      return; // the body never ends
    case '/gzip':
      res.writeHead(200, { 'content-encoding': 'gzip', 'content-type': 'application/json' });
      return void res.end(zlib.gzipSync(JSON.stringify({ encoded: 'gzip', ok: true })));
    case '/deflate':
      res.writeHead(200, { 'content-encoding': 'deflate', 'content-type': 'application/json' });
      return void res.end(zlib.deflateSync(JSON.stringify({ encoded: 'deflate', ok: true })));
    case '/br':
      res.writeHead(200, { 'content-encoding': 'br', 'content-type': 'application/json' });
      return void res.end(zlib.brotliCompressSync(JSON.stringify({ encoded: 'br', ok: true })));
    case '/gzip-bomb':
      res.writeHead(200, { 'content-encoding': 'gzip', 'content-type': 'text/plain' });
      return void res.end(gzipBomb);
    case '/br-bomb':
      res.writeHead(200, { 'content-encoding': 'br', 'content-type': 'text/plain' });
      return void res.end(brotliBomb);
    case '/bad-gzip':
      res.writeHead(200, { 'content-encoding': 'gzip' });
      return void res.end('this is not gzip');
    case '/weird-encoding':
      res.writeHead(200, { 'content-encoding': 'zstd' });
      return void res.end('???');
    case '/personal':
      res.writeHead(200, { 'content-type': 'text/plain' });
      return void res.end(`contact alice@example.com about ${SECRET}\n`);
    default:
      return json(res, 404, { error: 'not found' });
  }
}

function listen(server: http.Server | https.Server, host: string, wanted = 0): Promise<number> {
  servers.push(server);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(wanted, host, () => resolve((server.address() as AddressInfo).port));
  });
}

beforeAll(async () => {
  const zeros = Buffer.alloc(64 * 1024 * 1024);
  // Level 9 / quality 1: about 64 KiB and 12 KiB, made in under a second (brotli's default takes seconds).
  gzipBomb = zlib.gzipSync(zeros, { level: 9 });
  brotliBomb = zlib.brotliCompressSync(zeros, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 1 } });
  port = await listen(
    http.createServer((req, res) => void handleAllowed(req, res)),
    ALLOWED_IP,
  );
  // The forbidden server listens on the same port, so only the address decides where a request lands.
  await listen(
    http.createServer((req, res) => {
      forbiddenHits.push(req.url ?? '');
      res.end('internal only\n');
    }),
    FORBIDDEN_IP,
    port,
  );
  const tls = { key: readFileSync(join(TLS_DIR, 'secure.test.key')), cert: readFileSync(join(TLS_DIR, 'secure.test.crt')) };
  tlsPort = await listen(
    https.createServer(tls, (req, res) => void handleAllowed(req, res)),
    ALLOWED_IP,
  );
  v6Port = await listen(
    http.createServer((req, res) => void handleAllowed(req, res)),
    '::1',
  );
});

afterAll(async () => {
  for (const server of servers) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

function allowOf(entries: string[]): NetAllow {
  const parsed = parseNetAllow(entries);
  if (!parsed.ok) throw new Error(parsed.problems.join('; '));
  return parsed.allow;
}

const ALLOW = () => allowOf([ALLOWED_IP, 'api.test', 'evil.test', 'rebind.test', 'mixed.test', 'secure.test', 'other.test']);

/** A stand-in DNS: names the test controls, counted. */
function resolver(table: Record<string, string[] | (() => string[])>): HostResolver & { calls: string[] } {
  const calls: string[] = [];
  const resolve = async (hostname: string) => {
    calls.push(hostname);
    const entry = table[hostname];
    const addresses = typeof entry === 'function' ? entry() : entry;
    if (!addresses) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  return Object.assign(resolve, { calls });
}

const DNS = () =>
  resolver({
    'api.test': [ALLOWED_IP],
    'other.test': [ALLOWED_IP],
    'evil.test': [FORBIDDEN_IP],
    'mixed.test': [ALLOWED_IP, FORBIDDEN_IP],
    'secure.test': [ALLOWED_IP],
  });

function request(url: string, extra: Partial<HttpRequestSpec> = {}): HttpRequestSpec {
  return {
    url,
    method: 'GET',
    headers: [],
    body: null,
    compress: true,
    timeoutMs: 10_000,
    successStatus: null,
    successPattern: null,
    secretHeaders: [],
    secretBody: false,
    ...extra,
  };
}

describe('runHttpStep: answers', () => {
  it('succeeds on a 2xx whose body matches the success pattern, exposing status, body and JSON', async () => {
    const dns = DNS();
    const result = await runHttpStep(request(`http://api.test:${port}/ok`, { successStatus: [200], successPattern: '/"ok":\\s*true/' }), {
      allow: ALLOW(),
      resolve: dns,
    });
    expect(result.failureMessage).toBeNull();
    expect(result.phase).toBe('succeeded');
    expect(result.status).toBe(200);
    expect(result.statusLine).toBe('HTTP/1.1 200 OK');
    expect(result.address).toBe(ALLOWED_IP);
    expect(result.json).toEqual({ ok: true, items: [{ id: 7, name: 'web-1' }] });
    expect(result.output).toContain(`GET http://api.test:${port}/ok\nHTTP/1.1 200 OK\n{"ok":true`);
    expect(httpStepValues(result)).toEqual({ phase: 'succeeded', http: { status: 200, body: result.body, json: result.json } });
    expect(dns.calls).toEqual(['api.test']);
  });

  it('fails on a status outside successStatus, keeping the status and body for later steps', async () => {
    const result = await runHttpStep(request(`http://api.test:${port}/status?code=503`), { allow: ALLOW(), resolve: DNS() });
    expect(result.phase).toBe('failed');
    expect(result.failureMessage).toBe('the answer was 503 Service Unavailable; expected 2xx');
    expect(result.status).toBe(503);
    expect(result.json).toEqual({ ok: false, reason: 'maintenance' });
    const accepted = await runHttpStep(request(`http://api.test:${port}/status?code=503`, { successStatus: [200, 503] }), { allow: ALLOW(), resolve: DNS() });
    expect(accepted.phase).toBe('succeeded');
    const notListed = await runHttpStep(request(`http://api.test:${port}/ok`, { successStatus: [204] }), { allow: ALLOW(), resolve: DNS() });
    expect(notListed.failureMessage).toBe('the answer was 200 OK; expected 204');
  });

  it('fails when the body misses the success pattern (plain text or a linear-engine regex)', async () => {
    const plain = await runHttpStep(request(`http://api.test:${port}/ok`, { successPattern: '"healthy"' }), { allow: ALLOW(), resolve: DNS() });
    expect(plain.phase).toBe('failed');
    expect(plain.failureMessage).toBe('the body does not contain "healthy"');
    const regex = await runHttpStep(request(`http://api.test:${port}/ok`, { successPattern: '/"OK":\\s*TRUE/' }), { allow: ALLOW(), resolve: DNS() });
    expect(regex.failureMessage).toBe('the body does not match /"OK":\\s*TRUE/');
    const caseless = await runHttpStep(request(`http://api.test:${port}/ok`, { successPattern: '/"OK":\\s*TRUE/i' }), { allow: ALLOW(), resolve: DNS() });
    expect(caseless.phase).toBe('succeeded');
    const plainHit = await runHttpStep(request(`http://api.test:${port}/ok`, { successPattern: '"name":"web-1"' }), { allow: ALLOW(), resolve: DNS() });
    expect(plainHit.phase).toBe('succeeded');
  });

  it('sends method, headers and a JSON body; a 303 turns the POST into a GET without body', async () => {
    const post = await runHttpStep(request(`http://api.test:${port}/echo`, { method: 'POST', body: '{"a":1}', headers: [{ name: 'X-Plain', value: 'yes' }] }), {
      allow: ALLOW(),
      resolve: DNS(),
    });
    expect(post.phase).toBe('succeeded');
    const echoed = post.json as { method: string; body: string; headers: Record<string, string> };
    expect(echoed.method).toBe('POST');
    expect(echoed.body).toBe('{"a":1}');
    expect(echoed.headers['content-type']).toBe('application/json');
    expect(echoed.headers['x-plain']).toBe('yes');
    expect(echoed.headers['user-agent']).toBe('countersign');
    const to = encodeURIComponent('/echo');
    const seeOther = await runHttpStep(request(`http://api.test:${port}/redirect?code=303&to=${to}`, { method: 'POST', body: '{"a":1}' }), {
      allow: ALLOW(),
      resolve: DNS(),
    });
    expect(seeOther.hops).toEqual([{ method: 'POST', url: `http://api.test:${port}/redirect?code=303&to=${to}`, status: 303 }]);
    expect((seeOther.json as { method: string; body: string }).method).toBe('GET');
    expect((seeOther.json as { body: string }).body).toBe('');
    const temporary = await runHttpStep(request(`http://api.test:${port}/redirect?code=307&to=${to}`, { method: 'PUT', body: '{"b":2}' }), {
      allow: ALLOW(),
      resolve: DNS(),
    });
    expect(temporary.json).toMatchObject({ method: 'PUT', body: '{"b":2}' });
  });

  it('decodes gzip, deflate and br', async () => {
    for (const encoding of ['gzip', 'deflate', 'br']) {
      const result = await runHttpStep(request(`http://api.test:${port}/${encoding}`, { successPattern: '"ok":true' }), { allow: ALLOW(), resolve: DNS() });
      expect(result.phase, encoding).toBe('succeeded');
      expect(result.json).toEqual({ encoded: encoding, ok: true });
    }
    const broken = await runHttpStep(request(`http://api.test:${port}/bad-gzip`), { allow: ALLOW(), resolve: DNS() });
    expect(broken.phase).toBe('failed');
    expect(broken.failureMessage).toMatch(/^refused: the gzip body could not be decoded/);
    const unknown = await runHttpStep(request(`http://api.test:${port}/weird-encoding`), { allow: ALLOW(), resolve: DNS() });
    expect(unknown.failureMessage).toBe("refused: the answer's Content-Encoding zstd is not one countersign decodes (gzip, deflate, br)");
  });

  it('cuts a compression bomb at the decoded-size cap', async () => {
    for (const path of ['/gzip-bomb', '/br-bomb']) {
      const before = process.memoryUsage().rss;
      const started = Date.now();
      const result = await runHttpStep(request(`http://api.test:${port}${path}`), { allow: ALLOW(), resolve: DNS(), maxBodyBytes: 256 * 1024 });
      const elapsed = Date.now() - started;
      expect(result.phase, path).toBe('succeeded');
      expect(result.bodyTruncated).toBe(true);
      expect(result.body.length).toBe(256 * 1024);
      expect(result.json).toBeUndefined();
      expect(result.output).toContain('[the body was cut at 262144 bytes]');
      // 64 MiB were on offer; far less was decoded or held.
      expect(process.memoryUsage().rss - before).toBeLessThan(48 * 1024 * 1024);
      console.log(`${path}: cut at 256 KiB of 64 MiB in ${elapsed} ms`);
    }
  });
});

describe('runHttpStep: time and kill', () => {
  it('times out when no answer comes, and when the body never ends', async () => {
    for (const path of ['/slow', '/trickle']) {
      const started = Date.now();
      const result = await runHttpStep(request(`http://api.test:${port}${path}`, { timeoutMs: 300 }), { allow: ALLOW(), resolve: DNS() });
      expect(result.phase, path).toBe('failed');
      expect(result.failureMessage).toBe('timed out after 300ms');
      expect(Date.now() - started).toBeLessThan(5000);
    }
  });

  it('stops at once when killed', async () => {
    const kill = new AbortController();
    const pending = runHttpStep(request(`http://api.test:${port}/slow`, { timeoutMs: 60_000 }), { allow: ALLOW(), resolve: DNS(), signal: kill.signal });
    setTimeout(() => kill.abort(), 100);
    const started = Date.now();
    const result = await pending;
    expect(result.phase).toBe('killed');
    expect(result.failureMessage).toBe('stopped: the run was killed');
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('reports a refused connection', async () => {
    const closed = http.createServer();
    const closedPort = await listen(closed, ALLOWED_IP);
    await new Promise((resolve) => closed.close(resolve));
    const result = await runHttpStep(request(`http://${ALLOWED_IP}:${closedPort}/`), { allow: ALLOW() });
    expect(result.phase).toBe('failed');
    expect(result.failureMessage).toBe(`the connection was refused (${ALLOWED_IP}:${closedPort})`);
  });
});

describe('runHttpStep: only allowed destinations', () => {
  it('refuses a URL whose host is not allowed, before connecting', async () => {
    const hits = forbiddenHits.length;
    const byAddress = await runHttpStep(request(`http://${FORBIDDEN_IP}:${port}/`), { allow: ALLOW(), resolve: DNS() });
    expect(byAddress.phase).toBe('failed');
    expect(byAddress.failureMessage).toBe(`refused: ${FORBIDDEN_IP} is not covered by http.allow`);
    const dns = DNS();
    const byName = await runHttpStep(request(`http://unlisted.test:${port}/`), { allow: ALLOW(), resolve: dns });
    expect(byName.failureMessage).toBe('refused: the host unlisted.test is not in http.allow');
    expect(dns.calls).toEqual([]);
    const scheme = await runHttpStep(request(`ftp://api.test:${port}/`), { allow: ALLOW(), resolve: DNS() });
    expect(scheme.failureMessage).toBe('refused: ftp: URLs cannot be called (only http and https)');
    expect(forbiddenHits.length).toBe(hits);
  });

  it('refuses a redirect to a host that is not allowed, and follows one that is', async () => {
    const hits = forbiddenHits.length;
    const away = `http://${FORBIDDEN_IP}:${port}/steal`;
    const result = await runHttpStep(request(`http://api.test:${port}/redirect?to=${encodeURIComponent(away)}`), { allow: ALLOW(), resolve: DNS() });
    expect(result.phase).toBe('failed');
    expect(result.failureMessage).toBe(`refused: ${FORBIDDEN_IP} is not covered by http.allow`);
    expect(result.hops).toHaveLength(1);
    expect(result.output).toContain(`HTTP/1.1 302 Found -> ${away}`);
    // A name that is allowed but points at a disallowed address, reached by a redirect.
    const viaName = await runHttpStep(request(`http://api.test:${port}/redirect?to=${encodeURIComponent(`http://evil.test:${port}/`)}`), {
      allow: ALLOW(),
      resolve: DNS(),
    });
    expect(viaName.failureMessage).toBe(`refused: evil.test resolves to ${FORBIDDEN_IP}, a loopback address that http.allow does not cover`);
    expect(forbiddenHits.length).toBe(hits);

    const followed = await runHttpStep(request(`http://api.test:${port}/redirect?code=301&to=${encodeURIComponent(`http://other.test:${port}/ok`)}`), {
      allow: ALLOW(),
      resolve: DNS(),
    });
    expect(followed.phase).toBe('succeeded');
    expect(followed.hops.map((h) => h.status)).toEqual([301]);
    expect(followed.json).toMatchObject({ ok: true });
  });

  it('stops after maxRedirects', async () => {
    const result = await runHttpStep(request(`http://api.test:${port}/loop`), { allow: ALLOW(), resolve: DNS(), maxRedirects: 3 });
    expect(result.phase).toBe('failed');
    expect(result.failureMessage).toBe('refused: more than 3 redirects');
    expect(result.hops).toHaveLength(4);
  });

  it('refuses an allowed name whose DNS answer is a disallowed address', async () => {
    const hits = forbiddenHits.length;
    const result = await runHttpStep(request(`http://evil.test:${port}/`), { allow: ALLOW(), resolve: DNS() });
    expect(result.phase).toBe('failed');
    expect(result.failureMessage).toBe(`refused: evil.test resolves to ${FORBIDDEN_IP}, a loopback address that http.allow does not cover`);
    // Any disallowed address among the answers refuses the name.
    const mixed = await runHttpStep(request(`http://mixed.test:${port}/`), { allow: ALLOW(), resolve: DNS() });
    expect(mixed.failureMessage).toBe(`refused: mixed.test resolves to ${FORBIDDEN_IP}, a loopback address that http.allow does not cover`);
    expect(forbiddenHits.length).toBe(hits);
  });

  it('refuses through the system resolver too: an allowed "localhost" is still loopback', async () => {
    const result = await runHttpStep(request(`http://localhost:${port}/`), { allow: allowOf(['localhost']) });
    expect(result.phase).toBe('failed');
    expect(result.failureMessage).toMatch(/^refused: localhost resolves to (127\.0\.0\.1|::1), a loopback address that http\.allow does not cover$/);
  });

  it('connects to the address it checked, whatever the name resolves to afterwards (no DNS rebinding)', async () => {
    let answers = 0;
    const dns = resolver({ 'rebind.test': () => (answers++ === 0 ? [ALLOWED_IP] : [FORBIDDEN_IP]) });
    const hits = forbiddenHits.length;
    const seen = allowedHits.length;
    const result = await runHttpStep(request(`http://rebind.test:${port}/ok`), { allow: ALLOW(), resolve: dns });
    expect(result.phase).toBe('succeeded');
    expect(result.address).toBe(ALLOWED_IP);
    expect(dns.calls).toEqual(['rebind.test']);
    expect(allowedHits.slice(seen)).toEqual([{ url: '/ok', host: `rebind.test:${port}` }]);
    expect(forbiddenHits.length).toBe(hits);
  });

  it('covers addresses by CIDR, IPv6 included', async () => {
    const v4 = await runHttpStep(request(`http://${ALLOWED_IP}:${port}/ok`), { allow: allowOf(['127.0.0.0/30']) });
    expect(v4.phase).toBe('succeeded');
    const v6 = await runHttpStep(request(`http://[::1]:${v6Port}/ok`), { allow: allowOf(['::1/128']) });
    expect(v6.phase).toBe('succeeded');
    expect(v6.address).toBe('::1');
    const v6Refused = await runHttpStep(request(`http://[::1]:${v6Port}/ok`), { allow: allowOf(['127.0.0.0/8']) });
    expect(v6Refused.failureMessage).toBe('refused: ::1 is not covered by http.allow');
    // A loopback network entry lets an allowed name resolve into it.
    const named = await runHttpStep(request(`http://evil.test:${port}/`), { allow: allowOf(['evil.test', '127.0.0.0/24']), resolve: DNS() });
    expect(named.phase).toBe('succeeded');
  });

  it('verifies TLS against the name while connecting to the pinned address', async () => {
    const ca = readFileSync(join(TLS_DIR, 'secure.test.crt'), 'utf8');
    const good = await runHttpStep(request(`https://secure.test:${tlsPort}/ok`), { allow: ALLOW(), resolve: DNS(), ca });
    expect(good.failureMessage).toBeNull();
    expect(good.json).toMatchObject({ ok: true });
    // Same server, another name: the certificate does not match it.
    const wrongName = await runHttpStep(request(`https://api.test:${tlsPort}/ok`), { allow: ALLOW(), resolve: DNS(), ca });
    expect(wrongName.phase).toBe('failed');
    expect(wrongName.failureMessage).toMatch(/^TLS: .*(altnames|api\.test)/);
    // Without the CA the self-signed certificate is not trusted.
    const untrusted = await runHttpStep(request(`https://secure.test:${tlsPort}/ok`), { allow: ALLOW(), resolve: DNS() });
    expect(untrusted.failureMessage).toMatch(/^TLS: /);
  });
});

describe('runHttpStep: secrets', () => {
  it('masks secret values and applies redaction in the body, its JSON, the output and the status', async () => {
    const redact = compileRedactRules(['email']);
    if (!redact.ok) throw new Error(redact.error);
    const secretRequest = request(`http://api.test:${port}/echo`, {
      headers: [{ name: 'Authorization', value: `Bearer ${SECRET}` }],
      secretHeaders: ['Authorization'],
    });
    const echoed = await runHttpStep(secretRequest, { allow: ALLOW(), resolve: DNS(), maskValues: [SECRET], redact: redact.rules });
    expect(echoed.phase).toBe('succeeded');
    expect(echoed.body).not.toContain(SECRET);
    expect(echoed.output).not.toContain(SECRET);
    expect((echoed.json as { headers: Record<string, string> }).headers.authorization).toBe('Bearer *****');
    const personal = await runHttpStep(request(`http://api.test:${port}/personal`), {
      allow: ALLOW(),
      resolve: DNS(),
      maskValues: [SECRET],
      redact: redact.rules,
    });
    expect(personal.body).toBe('contact [redacted:email] about *****\n');
    expect(personal.output).not.toContain('alice@example.com');
    // A masked value in the URL is masked in the hops and the output as well.
    const viaUrl = await runHttpStep(request(`http://api.test:${port}/redirect?to=${encodeURIComponent('/ok')}&k=${SECRET}`), {
      allow: ALLOW(),
      resolve: DNS(),
      maskValues: [SECRET],
    });
    expect(viaUrl.phase).toBe('succeeded');
    expect(viaUrl.hops[0]!.url).toBe(`http://api.test:${port}/redirect?to=%2Fok&k=*****`);
    expect(viaUrl.output).not.toContain(SECRET);
    // The pattern sees the masked body: it cannot probe the secret.
    const probe = await runHttpStep(request(`http://api.test:${port}/personal`, { successPattern: 's3cr3t' }), {
      allow: ALLOW(),
      resolve: DNS(),
      maskValues: [SECRET],
    });
    expect(probe.phase).toBe('failed');
  });

  it('does not carry secret headers, Authorization or Cookie across origins on a redirect', async () => {
    const headers = [
      { name: 'Authorization', value: 'Bearer plain-but-private' },
      { name: 'X-Token', value: SECRET },
      { name: 'Cookie', value: 'session=1' },
      { name: 'X-Plain', value: 'kept' },
    ];
    const sameOrigin = await runHttpStep(
      request(`http://api.test:${port}/redirect?to=${encodeURIComponent('/echo')}`, { headers, secretHeaders: ['X-Token'] }),
      { allow: ALLOW(), resolve: DNS(), maskValues: [SECRET] },
    );
    expect((sameOrigin.json as { headers: Record<string, string> }).headers).toMatchObject({
      authorization: 'Bearer plain-but-private',
      'x-token': '*****',
      cookie: 'session=1',
    });
    const crossOrigin = await runHttpStep(
      request(`http://api.test:${port}/redirect?to=${encodeURIComponent(`http://other.test:${port}/echo`)}`, { headers, secretHeaders: ['X-Token'] }),
      { allow: ALLOW(), resolve: DNS(), maskValues: [SECRET] },
    );
    const received = (crossOrigin.json as { headers: Record<string, string> }).headers;
    expect(received['x-plain']).toBe('kept');
    expect(received.authorization).toBeUndefined();
    expect(received['x-token']).toBeUndefined();
    expect(received.cookie).toBeUndefined();
  });
});

describe('runHttpStep: a body holding a secret stays with its origin', () => {
  const FIRST_IP = '127.0.0.4';
  const SECOND_IP = '127.0.0.5';
  let firstPort = 0;
  let secondPort = 0;
  const secondHits: Array<{ method: string | undefined; url: string | undefined; body: string }> = [];

  beforeAll(async () => {
    secondPort = await listen(
      http.createServer(async (req, res) => {
        secondHits.push({ method: req.method, url: req.url, body: await readAll(req) });
        json(res, 200, { ok: true });
      }),
      SECOND_IP,
    );
    // Every request is answered 307 to the second server, which keeps method and body.
    firstPort = await listen(
      http.createServer(async (req, res) => {
        await readAll(req);
        res.writeHead(307, { location: `http://${SECOND_IP}:${secondPort}/collect` });
        res.end();
      }),
      FIRST_IP,
    );
  });

  it('refuses a cross-origin 307 that would carry a body holding a secret; a body without one is followed', async () => {
    // Both servers are allowed: only the secret in the body stops the hop.
    const allow = allowOf([FIRST_IP, SECOND_IP]);
    const body = JSON.stringify({ token: SECRET, note: 'plain' });
    const refused = await runHttpStep(request(`http://${FIRST_IP}:${firstPort}/register`, { method: 'POST', body, secretBody: true }), {
      allow,
      maskValues: [SECRET],
    });
    expect(refused.phase).toBe('failed');
    expect(refused.failureMessage).toBe(
      `refused: the 307 redirect to http://${SECOND_IP}:${secondPort} would carry the request body, which holds a secret, to another origin`,
    );
    expect(refused.hops).toEqual([{ method: 'POST', url: `http://${FIRST_IP}:${firstPort}/register`, status: 307 }]);
    expect(refused.output).toContain(`countersign: ${refused.failureMessage}`);
    expect(secondHits).toEqual([]);

    // The second server is reachable: the same redirect with a body holding no secret is followed.
    const plain = await runHttpStep(request(`http://${FIRST_IP}:${firstPort}/register`, { method: 'POST', body: '{"note":"plain"}' }), { allow });
    expect(plain.phase).toBe('succeeded');
    expect(secondHits).toEqual([{ method: 'POST', url: '/collect', body: '{"note":"plain"}' }]);
  });
});

describe('the pure half drives the executor', () => {
  it('input -> http (reference in the URL, secret header, success pattern) -> script values from its JSON', async () => {
    const parsed = runbooksConfigSchema.safeParse({
      'check-web': {
        arguments: [{ name: 'env', kind: 'options', options: ['prod', 'staging'], default: 'prod' }],
        steps: [
          { id: 'why', input: { fields: [{ name: 'ticket', kind: 'input', pattern: 'INC-[0-9]+', required: true }] } },
          {
            id: 'health',
            http: {
              url: `http://api.test:${port}/echo?ticket=\${{ steps.why.ticket }}&env=\${{ args.env }}`,
              method: 'POST',
              headers: { Authorization: 'Bearer ${{ secrets.API_TOKEN }}' },
              body: { ticket: '${{ steps.why.ticket }}', note: 'for ${{ args.env }}' },
              target: 'web-prod',
              successPattern: '/"method":"POST"/',
            },
          },
          {
            id: 'restart',
            script: {
              target: 'web-prod',
              script: 'systemctl restart web',
              with: { METHOD: '${{ steps.health.json.method }}', STATUS: '${{ steps.health.status }}' },
            },
          },
        ],
      },
    });
    if (!parsed.success) throw new Error(parsed.error.message);
    const runbooks = new Map(Object.entries(parsed.data).map(([ref, body]) => [ref, runbookFromBody(ref, body, 'config')]));
    const targets = new Map([['web-prod', { type: 'bash' as const, secrets: new Map([['API_TOKEN', SECRET]]) }]]);
    expect(checkRunbooks(runbooks, { targets, allow: ALLOW() })).toEqual([]);
    const planned = planRun(runbooks, 'check-web', {}, { fixedValueKey: 'k', targets });
    if (!planned.ok) throw new Error(JSON.stringify(planned.errors));
    const [why, health, restart] = planned.plan.groups.map((g) => g[0]!);
    const values: RunValues & { steps: Record<string, unknown> } = {
      arguments: planned.plan.arguments,
      steps: { [why!.id]: { phase: 'succeeded', outputs: { ticket: 'INC-42/../x?y#z' } } },
    };
    const resolved = resolveHttpStep(health!, values, targets.get('web-prod')!.secrets);
    if (!resolved.ok) throw new Error(resolved.error);
    const result = await runHttpStep(resolved.request, {
      allow: ALLOW(),
      resolve: DNS(),
      maskValues: [...targets.get('web-prod')!.secrets.values(), ...resolved.maskValues],
    });
    expect(result.failureMessage).toBeNull();
    const echoed = result.json as { path: string; body: string; headers: Record<string, string> };
    // The input stayed inside its query parameter; the body got it as a JSON string.
    expect(echoed.path).toBe('/echo?ticket=INC-42%2F..%2Fx%3Fy%23z&env=prod');
    expect(JSON.parse(echoed.body)).toEqual({ ticket: 'INC-42/../x?y#z', note: 'for prod' });
    expect(echoed.headers.authorization).toBe('Bearer *****');
    const scriptValues = resolveScriptStep(restart!, { ...values, steps: { ...values.steps, [health!.id]: httpStepValues(result) } });
    expect(scriptValues).toEqual({
      ok: true,
      arguments: [
        { name: 'ENV', value: 'prod', fixed: false },
        { name: 'METHOD', value: 'POST', fixed: false },
        { name: 'STATUS', value: '200', fixed: false },
      ],
    });
  });
});
