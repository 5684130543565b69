/**
 * The fetch our Slack clients use (src/slack/slackFetch.ts), through WebClient and the way Bolt's
 * respond() calls it, against the fake Slack Web API and plain HTTP servers on 127.0.0.1: what
 * WebClient reads of an answer (status, headers, body), file uploads, redirects not followed,
 * bounded bodies, timeouts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import { WebClient, type WebAPIHTTPError, type WebAPIRateLimitedError } from '@slack/web-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSlackFetch, type SlackFetch } from '../src/slack/slackFetch.js';
import { startFakeSlack, type FakeSlack } from './support/fakeSlack.js';

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ server: Server; url: string; hits: string[] }> {
  const hits: string[] = [];
  const server = createServer((req, res) => {
    hits.push(`${req.method} ${req.url}`);
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits };
}
const close = (server: Server) =>
  new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });

describe('slackFetch', () => {
  let fake: FakeSlack;
  let http: SlackFetch;
  const client = (options: { timeout?: number; url?: string } = {}) =>
    new WebClient('xoxb-fetch', {
      slackApiUrl: options.url ?? fake.url,
      rejectRateLimitedCalls: true,
      retryConfig: { retries: 0 },
      timeout: options.timeout ?? 15_000,
      fetch: http.fetch,
    });

  beforeAll(async () => {
    fake = await startFakeSlack({ token: 'xoxb-fetch', postMessageBurst: 1 });
    http = createSlackFetch({ maxResponseBytes: 64 * 1024 });
  });
  afterAll(async () => {
    await http.close();
    await fake.close();
  });

  it('carries a Web API call and its answer: token, arguments and blocks in, the message out', async () => {
    const blocks = [{ type: 'section', text: { type: 'mrkdwn', text: 'héllo *world* ✓' } }];
    const answer = await client().chat.postMessage({ channel: 'CFETCH1', text: 'hi', blocks });
    expect(answer.ok).toBe(true);
    expect(answer.ts).toMatch(/^\d+\.\d+$/);
    const [call] = fake.callsTo('chat.postMessage').filter((c) => c.args.channel === 'CFETCH1');
    expect(call?.args.text).toBe('hi');
    expect(call?.args.blocks).toEqual(blocks);
    // A wrong token reaches the fake as it was sent, and its refusal comes back as WebClient's error.
    const wrong = new WebClient('xoxb-wrong', { slackApiUrl: fake.url, retryConfig: { retries: 0 }, fetch: http.fetch });
    await expect(wrong.chat.postMessage({ channel: 'CFETCH1', text: 'x' })).rejects.toMatchObject({ data: { error: 'invalid_auth' } });
  });

  it("reads Slack's Retry-After header: a rate-limited call is refused with Slack's wait", async () => {
    await client().chat.postMessage({ channel: 'CFETCH2', text: 'one' });
    const error = (await client()
      .chat.postMessage({ channel: 'CFETCH2', text: 'two' })
      .catch((e: unknown) => e)) as WebAPIRateLimitedError;
    expect(error.code).toBe('slack_webapi_rate_limited_error');
    expect(error.retryAfter).toBeGreaterThanOrEqual(1);
  });

  it('uploads a file: the bytes arrive whole at the upload URL (multipart) and the file is shared', async () => {
    const bytes = Buffer.from(Array.from({ length: 5000 }, (_, i) => i % 251));
    await client().filesUploadV2({ channel_id: 'CFETCH3', file: bytes, filename: 'out.bin', title: 'output' });
    const file = fake.files.find((f) => f.channel_id === 'CFETCH3');
    expect(file?.content.equals(bytes)).toBe(true);
  });

  it('answers an HTTP error with its status and headers, and a response_url post as Bolt makes it', async () => {
    const { server, url } = await serve((_req, res) => res.writeHead(503, { 'x-why': 'maintenance' }).end('down'));
    try {
      const error = (await client({ url: `${url}/api/` })
        .auth.test()
        .catch((e: unknown) => e)) as WebAPIHTTPError;
      expect(error.code).toBe('slack_webapi_http_error');
      expect(error.statusCode).toBe(503);
      expect(error.statusMessage).toBe('Service Unavailable');
      expect(error.headers['x-why']).toBe('maintenance');
      expect(error.body).toBe('down');
    } finally {
      await close(server);
    }
    // Bolt's respond(): a JSON POST to the response_url, judged by `ok`.
    const responseUrl = fake.newResponseUrl();
    const answer = await http.fetch(responseUrl, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"text":"done"}' });
    expect(answer.ok).toBe(true);
    expect(fake.responses.at(-1)?.body).toEqual({ text: 'done' });
  });

  it('never follows a redirect: the call fails and the other address is never asked', async () => {
    const elsewhere = await serve((_req, res) => res.end('{"ok":true}'));
    const redirecting = await serve((_req, res) => res.writeHead(302, { location: `${elsewhere.url}/api/auth.test` }).end());
    try {
      await expect(client({ url: `${redirecting.url}/api/` }).auth.test()).rejects.toMatchObject({ statusCode: 302 });
      const answer = await http.fetch(`${redirecting.url}/respond`, { method: 'POST', body: '{}' });
      expect(answer.ok).toBe(false);
      expect(redirecting.hits).toHaveLength(2);
      expect(elsewhere.hits).toEqual([]);
    } finally {
      await close(redirecting.server);
      await close(elsewhere.server);
    }
  });

  it('refuses an answer over the bound without keeping it, and goes on serving calls', async () => {
    let sent = 0;
    const { server, url } = await serve((req, res) => {
      if (req.url?.endsWith('/huge')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        // Far more than the 64 KiB bound, as fast as the socket takes it.
        const chunk = Buffer.alloc(16 * 1024, 'x');
        const more = () => {
          while (sent < 64 * 1024 * 1024 && res.write(chunk)) sent += chunk.length;
          if (sent < 64 * 1024 * 1024) res.once('drain', more);
          else res.end();
        };
        more();
      } else res.end('{"ok":true}');
    });
    try {
      await expect(http.fetch(`${url}/huge`, { method: 'POST', body: '{}' })).rejects.toThrow(/over 65536 bytes/);
      // It stopped reading: far less than the 64 MiB on offer left the server.
      expect(sent).toBeLessThan(8 * 1024 * 1024);
      const answer = await http.fetch(`${url}/small`, { method: 'POST', body: '{}' });
      expect(await answer.json()).toEqual({ ok: true });
    } finally {
      await close(server);
    }
  });

  it("gives up at WebClient's timeout when the server never answers", async () => {
    const { server, url } = await serve(() => undefined);
    try {
      const started = Date.now();
      await expect(client({ url: `${url}/api/`, timeout: 300 }).auth.test()).rejects.toMatchObject({ code: 'slack_webapi_request_error' });
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await close(server);
    }
  });

  it('reads an answer a proxy compressed unasked, and refuses one that decodes past the bound', async () => {
    const json = Buffer.from('{"ok":true,"said":"compressed"}');
    const encoders: Record<string, (b: Buffer) => Buffer> = {
      gzip: gzipSync,
      deflate: deflateSync,
      'deflate-raw': deflateRawSync,
      br: brotliCompressSync,
    };
    const bomb = gzipSync(Buffer.alloc(1024 * 1024, 'x'));
    const asked: Array<string | undefined> = [];
    const { server, url } = await serve((req, res) => {
      asked.push(req.headers['accept-encoding']);
      const name = req.url!.slice(1);
      if (name === 'bomb') return void res.writeHead(200, { 'content-encoding': 'gzip' }).end(bomb);
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': name === 'deflate-raw' ? 'deflate' : name }).end(encoders[name]!(json));
    });
    try {
      for (const name of Object.keys(encoders)) {
        const answer = await http.fetch(`${url}/${name}`, { method: 'POST', body: '{}' });
        expect(await answer.json()).toEqual({ ok: true, said: 'compressed' });
      }
      // 1 MiB of zeros is 1 KiB gzipped: under the 64 KiB bound on the wire, far over it decoded.
      expect(bomb.length).toBeLessThan(64 * 1024);
      await expect(http.fetch(`${url}/bomb`, { method: 'POST', body: '{}' })).rejects.toThrow(/could not be decoded/);
      // Compression is never asked for.
      expect(asked.every((value) => value === undefined)).toBe(true);
    } finally {
      await close(server);
    }
  });

  it('survives a call cut off mid-answer: the error reaches the caller and the next call is served', async () => {
    const { server, url } = await serve((req, res) => {
      if (req.url === '/cut') {
        res.writeHead(200, { 'content-length': '1000' });
        res.write('{"ok":tr');
        setTimeout(() => res.destroy(), 20);
      } else res.end('{"ok":true}');
    });
    try {
      await expect(http.fetch(`${url}/cut`, { method: 'POST', body: '{}' })).rejects.toThrow();
      const aborted = new AbortController();
      const pending = http.fetch(`${url}/slow`, { method: 'POST', body: '{}', signal: aborted.signal });
      aborted.abort();
      await expect(pending).rejects.toThrow();
      expect(await (await http.fetch(`${url}/fine`, { method: 'POST', body: '{}' })).json()).toEqual({ ok: true });
    } finally {
      await close(server);
    }
  });

  it('closes at shutdown within its grace even with a call the server never answers', async () => {
    const own = createSlackFetch();
    const { server, url } = await serve(() => undefined);
    try {
      // A response_url post: Bolt gives it no timeout.
      const hanging = own.fetch(`${url}/respond`, { method: 'POST', body: '{}' });
      hanging.catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 50));
      const started = Date.now();
      await own.close(300);
      expect(Date.now() - started).toBeLessThan(2_000);
      await expect(hanging).rejects.toThrow();
    } finally {
      await close(server);
    }
  });
});
