/**
 * Review of issue 10: reads of a task's log.
 *
 * M5: every log read (API range, offset or whole log; the task page; its stream) loaded and
 * assembled the whole stored log: 25 concurrent `Range: bytes=-16` on a 9 MB log raised the heap
 * by 254 MB. Now a range or a tail reads only the chunks that hold it, the page shows the last
 * 256 KB with a download of the rest (streamed), whole-log downloads are capped per user, and NUL
 * bytes are replaced before the output cap counts them (they were stored at 3 times the cap).
 * L1: the per-user cap on task-page streams was keyed by the Authorization header the caller
 * chose; it is now keyed by the link (or the token's user), with a cap per client address too.
 * L5: an open stream kept flowing after its reader lost access; it now ends within a recheck.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningApp } from '../../src/app.js';
import { executionLogText } from '../../src/service/logs.js';
import { createApiToken, revokeApiToken } from '../../src/store/apiTokens.js';
import { latestExecution } from '../../src/store/executions.js';
import { ensureLinkKeys, revokeLinkKey } from '../../src/store/linkKeys.js';
import { ApiClient } from '../support/apiClient.js';
import { AUTHOR, Harness } from '../support/harness.js';
import { sseEvents } from '../support/sse.js';
import { waitFor } from '../support/waitFor.js';

const sha = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

/** Reads an event stream's events as they come; `close` hangs up. */
async function openStream(url: string, headers: Record<string, string> = {}) {
  const abort = new AbortController();
  const response = await fetch(url, { headers, signal: abort.signal });
  const events: Array<{ event: string; data: string }> = [];
  const done = (async () => {
    if (response.status !== 200) return;
    for await (const event of sseEvents(response.body)) events.push(event);
  })();
  return { status: response.status, events, done, close: () => abort.abort() };
}

describe("reads of a task's log", () => {
  let h: Harness;
  let api: ApiClient;
  let token: string;
  let bigTask = 0;
  let bigLog: Buffer;
  beforeAll(async () => {
    h = await Harness.start({ runnerYaml: '  maxOutput: 10MB' });
    api = await ApiClient.connect(h.app.url);
    token = (await createApiToken(h.database.db, AUTHOR, 'author')).token;
    // ~9 MB of output, stored in chunks of up to 256 KB.
    bigTask = await h.createTask('run sandbox -m big yes aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa | head -c 9000000');
    await h.waitForStatus(bigTask, ['success', 'failure'], 60_000);
    const execution = await latestExecution(h.database.db, bigTask);
    bigLog = Buffer.from(await executionLogText(h.database.db, execution!.id), 'utf8');
  }, 120_000);
  afterAll(async () => {
    await h?.stop();
  });

  /** Peak heap growth while `work` runs, sampled every 5 ms. */
  async function heapGrowth(work: () => Promise<void>): Promise<number> {
    global.gc?.();
    const before = process.memoryUsage().heapUsed;
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().heapUsed)), 5);
    try {
      await work();
    } finally {
      clearInterval(sampler);
    }
    return peak - before;
  }

  it('answers 25 concurrent `Range: bytes=-16` on a 9 MB log from its last chunk: right bytes, heap barely moves (main: +254 MB)', async () => {
    expect(bigLog.length).toBeGreaterThan(8_000_000);
    let answers: Awaited<ReturnType<ApiClient['call']>>[] = [];
    const started = Date.now();
    const growth = await heapGrowth(async () => {
      answers = await Promise.all(Array.from({ length: 25 }, () => api.call('GET', `/tasks/${bigTask}/log`, { token, headers: { range: 'bytes=-16' } })));
    });
    console.log(`25 requests for the last 16 bytes of ${bigLog.length}: ${Date.now() - started} ms, heap +${Math.round(growth / 1e6)} MB at peak`);
    for (const answer of answers) {
      expect(answer.status).toBe(206);
      expect(answer.headers.get('content-range')).toBe(`bytes ${bigLog.length - 16}-${bigLog.length - 1}/${bigLog.length}`);
      expect(answer.headers.get('x-log-size')).toBe(String(bigLog.length));
      expect(answer.text).toBe(bigLog.subarray(bigLog.length - 16).toString('utf8'));
    }
    // Each request reads one chunk (at most ~256 KB): 25 of them stay far below one copy of the log.
    expect(growth).toBeLessThan(40_000_000);
  }, 60_000);

  it('serves ranges and offsets in the middle, and the whole log streamed, byte for byte', async () => {
    const middle = await api.call('GET', `/tasks/${bigTask}/log`, { token, headers: { range: 'bytes=4000000-4000099' } });
    expect(middle.status).toBe(206);
    expect(middle.text).toBe(bigLog.subarray(4_000_000, 4_000_100).toString('utf8'));
    const offset = await api.call('GET', `/tasks/${bigTask}/log?offset=${bigLog.length - 1000}`, { token });
    expect(offset.status).toBe(200);
    expect(offset.text).toBe(bigLog.subarray(bigLog.length - 1000).toString('utf8'));
    expect((await api.call('GET', `/tasks/${bigTask}/log`, { token, headers: { range: `bytes=${bigLog.length}-` } })).status).toBe(416);
    let whole = Buffer.alloc(0);
    const growth = await heapGrowth(async () => {
      const response = await fetch(`${h.app.url}/api/v1/tasks/${bigTask}/log`, { headers: { authorization: `Bearer ${token}` } });
      expect(response.headers.get('content-length')).toBe(String(bigLog.length));
      whole = Buffer.from(await response.arrayBuffer());
    });
    expect(sha(whole)).toBe(sha(bigLog));
    console.log(`the whole ${bigLog.length}-byte log streamed: heap +${Math.round(growth / 1e6)} MB at peak (the test holds its own copy)`);
  }, 60_000);

  it('caps concurrent whole-log downloads per user with a 429 that says what to do; small ranges stay open', async () => {
    const held = [h.app.feed.admitDownload(`user:${AUTHOR}`), h.app.feed.admitDownload(`user:${AUTHOR}`)];
    try {
      const refused = await api.call('GET', `/tasks/${bigTask}/log`, { token });
      expect(refused.status).toBe(429);
      expect(refused.body).toMatchObject({ error: { code: 'too_many_downloads', message: expect.stringMatching(/already downloading 2 logs/) } });
      expect((await api.call('GET', `/tasks/${bigTask}/log`, { token, headers: { range: 'bytes=-100' } })).status).toBe(206);
    } finally {
      for (const slot of held) if (slot.ok) slot.release();
    }
    expect((await fetch(`${h.app.url}/api/v1/tasks/${bigTask}/log`, { headers: { authorization: `Bearer ${token}`, range: 'bytes=0-2000000' } })).status).toBe(
      206,
    );
  }, 30_000);

  it('renders the last 256 KB on the task page with a download of the whole log, and many page loads stay bounded', async () => {
    const link = new URL(h.app.signer.taskUrl(bigTask));
    let pages: string[] = [];
    const growth = await heapGrowth(async () => {
      pages = await Promise.all(Array.from({ length: 10 }, async () => (await fetch(link)).text()));
    });
    const page = pages[0]!;
    console.log(`10 page loads of a ${bigLog.length}-byte log: ${page.length} characters each, heap +${Math.round(growth / 1e6)} MB at peak`);
    expect(page.length).toBeLessThan(400_000);
    expect(page).toMatch(/<p id="omitted" class="muted">The first [\d.]+ MB of output are not shown here: download the whole log to read them\.<\/p>/);
    expect(page).toContain(bigLog.subarray(bigLog.length - 200).toString('utf8'));
    expect(growth).toBeLessThan(60_000_000);
    const download = /<a id="download" class="muted" href="([^"]+)"/.exec(page)?.[1]?.replace(/&amp;/g, '&');
    expect(download).toBeDefined();
    const response = await fetch(new URL(download!, link));
    expect(response.status).toBe(200);
    expect(response.headers.get('content-disposition')).toBe(`attachment; filename="task-${bigTask}.log"`);
    expect(sha(Buffer.from(await response.arrayBuffer()))).toBe(sha(bigLog));
    // The download needs the page's permission.
    const forged = new URL(download!, link);
    forged.searchParams.set('sig', 'A'.repeat(43));
    expect((await fetch(forged)).status).toBe(403);
  }, 60_000);

  it('stores NUL bytes as U+FFFD within maxOutput, counting them as stored (main stored 3 times the cap)', async () => {
    const id = await h.createTask('run sandbox -m nul head -c 12000000 /dev/zero');
    const task = await h.waitForStatus(id, ['success', 'failure'], 60_000);
    const size = Number((await api.call('GET', `/tasks/${id}/log`, { token, headers: { range: 'bytes=-16' } })).headers.get('x-log-size'));
    const execution = await h.database.db('executions').where({ task_id: id }).first('output_bytes');
    console.log(`maxOutput 10 MB; ${task.status}; stored log of ${size} bytes (output_bytes ${execution.output_bytes})`);
    expect(size).toBeLessThanOrEqual(10 * 1024 * 1024 + 4096);
    expect(size).toBeGreaterThan(9_000_000);
  }, 90_000);

  it('keys the cap on page streams by the link, not by a made-up Authorization header, and caps a client address', async () => {
    const id = await h.createTask('run sandbox -m "long" sleep 60');
    await h.waitForStatus(id, 'running');
    const link = new URL(h.app.signer.taskUrl(id));
    const streamUrl = `${link.origin}/tasks/${id}/stream${link.search}`;
    const cap = h.app.feed.maxFollowersPerUser;
    const open: Array<Awaited<ReturnType<typeof openStream>>> = [];
    try {
      for (let i = 0; i < cap; i++) open.push(await openStream(streamUrl, i % 2 === 0 ? { authorization: `Nope ${i}` } : {}));
      expect(open.map((s) => s.status)).toEqual(Array.from({ length: cap }, () => 200));
      // main: each made-up header was a new "user", with no cap but the process's.
      const dodged = await Promise.all(Array.from({ length: 5 }, (_, i) => openStream(streamUrl, { authorization: `Nope extra-${i}` })));
      open.push(...dodged);
      expect(dodged.map((s) => s.status)).toEqual([429, 429, 429, 429, 429]);
      expect(h.app.feed.followers).toBe(cap);
    } finally {
      for (const s of open) s.close();
    }
    await waitFor(async () => h.app.feed.followers === 0, 5000, 'the streams to close');

    // One address, many links (one per task here): capped at maxFollowersPerAddress.
    const replica = await h.startReplica({ followers: { maxFollowersPerUser: 3, maxFollowersPerAddress: 5 } });
    try {
      const tasks = [id, bigTask];
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) {
        const taskId = tasks[i % 2]!;
        const url = new URL(replica.signer.taskUrl(taskId));
        const s = await openStream(`${replica.url}/tasks/${taskId}/stream${url.search}`);
        open.push(s);
        statuses.push(s.status);
      }
      expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
    } finally {
      for (const s of open) s.close();
      await replica.stop(2000);
    }
  }, 60_000);

  describe('streams end when their reader loses access', () => {
    let replica: RunningApp;
    beforeAll(async () => {
      replica = await h.startReplica({ streamRecheckMs: 300 });
    });
    afterAll(async () => {
      await replica?.stop(2000);
    });

    it('ends an API follow once its token is revoked, and a page stream once its link key is revoked', async () => {
      const id = await h.createTask('run sandbox -m "long" sleep 60');
      await h.waitForStatus(id, 'running');
      const own = await createApiToken(h.database.db, AUTHOR, 'short-lived');
      const follow = await openStream(`${replica.url}/api/v1/tasks/${id}/log?follow=1`, { authorization: `Bearer ${own.token}` });
      expect(follow.status).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 800));
      expect(follow.events.filter((e) => e.event === 'end')).toEqual([]);
      await revokeApiToken(h.database.db, own.record.id);
      const revokedAt = Date.now();
      await follow.done;
      console.log(`API follow ended ${Date.now() - revokedAt} ms after its token was revoked (recheck every 300 ms)`);
      expect(follow.events.at(-1)).toEqual({ event: 'end', data: JSON.stringify({ status: 'running', revoked: true }) });

      const link = new URL(replica.signer.taskUrl(id));
      const page = await openStream(`${replica.url}/tasks/${id}/stream${link.search}`);
      expect(page.status).toBe(200);
      const version = Number(link.searchParams.get('kv'));
      await ensureLinkKeys(h.database.db);
      await revokeLinkKey(h.database.db, version);
      const linkRevokedAt = Date.now();
      await page.done;
      console.log(`page stream ended ${Date.now() - linkRevokedAt} ms after its link key was revoked (keys re-read every few seconds)`);
      expect(page.events.at(-1)).toEqual({ event: 'end', data: JSON.stringify({ revoked: true }) });
    }, 60_000);
  });
});
