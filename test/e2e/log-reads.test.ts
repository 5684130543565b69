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
import { executionLogText, READ_BUDGET_BYTES } from '../../src/service/logs.js';
import { createApiToken, revokeApiToken } from '../../src/store/apiTokens.js';
import { latestExecution } from '../../src/store/executions.js';
import { ensureLinkKeys, revokeLinkKey } from '../../src/store/linkKeys.js';
import { PAGE_TAIL_BYTES } from '../../src/web/taskStream.js';
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
  /** Bytes of each of the big log's chunks, newest first. */
  let chunkSizes: number[] = [];
  beforeAll(async () => {
    h = await Harness.start({ runnerYaml: '  maxOutput: 10MB' });
    api = await ApiClient.connect(h.app.url);
    token = (await createApiToken(h.database.db, AUTHOR, 'author')).token;
    // ~9 MB of output, stored in chunks of up to 256 KB.
    bigTask = await h.createTask('run sandbox -m big yes aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa | head -c 9000000');
    await h.waitForStatus(bigTask, ['success', 'failure'], 60_000);
    const execution = await latestExecution(h.database.db, bigTask);
    bigLog = Buffer.from(await executionLogText(h.database.db, execution!.id), 'utf8');
    chunkSizes = (
      await h.database
        .db('output_chunks')
        .where({ execution_id: execution!.id })
        .orderBy('id', 'desc')
        .select<{ bytes: number }[]>(h.database.db.raw('octet_length(data)::int AS bytes'))
    ).map((row) => row.bytes);
    // One host: the assembled log is the chunks' text, unlabelled.
    expect(chunkSizes.reduce((sum, bytes) => sum + bytes, 0)).toBe(bigLog.length);
    // The thread streamer reads the whole log once, after the run, to upload it into the card's
    // thread: that read is done before the reads below are counted.
    await h.fake.waitFor(() => h.fake.files.find((f) => f.filename === `task-${bigTask}.log`), 60_000, "the whole log uploaded into the card's thread");
  }, 120_000);
  afterAll(async () => {
    await h?.stop();
  });

  /**
   * What the app reads of the log while `work` runs: the bytes of output text (the rows' `data`,
   * output_chunks' text column, however cut) answered to the app's queries on output_chunks, in
   * all and in the largest single answer. Counted on the app's own pool (knex's query-response
   * event), not sampled from the heap: the same figure however loaded the machine.
   */
  async function logBytesRead(work: () => Promise<void>): Promise<{ total: number; largest: number; queries: number }> {
    const read = { total: 0, largest: 0, queries: 0 };
    const count = (response: unknown, query: { sql?: string }) => {
      if (!query.sql?.includes('output_chunks')) return;
      const rows = Array.isArray(response) ? response : ((response as { rows?: unknown[] } | null)?.rows ?? []);
      let bytes = 0;
      for (const row of rows as Array<{ data?: unknown } | null>) {
        if (typeof row?.data === 'string') bytes += Buffer.byteLength(row.data);
        else if (Buffer.isBuffer(row?.data)) bytes += row.data.length;
      }
      read.total += bytes;
      read.largest = Math.max(read.largest, bytes);
      read.queries++;
    };
    h.database.db.on('query-response', count);
    try {
      await work();
    } finally {
      h.database.db.off('query-response', count);
    }
    return read;
  }
  /** Bytes of the fewest newest chunks holding the log's last `bytes` bytes: what a read of that tail needs. */
  const holdingLast = (bytes: number): number => {
    let held = 0;
    for (const size of chunkSizes) {
      if (held >= bytes) break;
      held += size;
    }
    return held;
  };

  it('answers 25 concurrent `Range: bytes=-16` on a 9 MB log from its last chunk: right bytes, only the chunks holding them read (main: all of it, +254 MB of heap)', async () => {
    expect(bigLog.length).toBeGreaterThan(8_000_000);
    let answers: Awaited<ReturnType<ApiClient['call']>>[] = [];
    const started = Date.now();
    const read = await logBytesRead(async () => {
      answers = await Promise.all(Array.from({ length: 25 }, () => api.call('GET', `/tasks/${bigTask}/log`, { token, headers: { range: 'bytes=-16' } })));
    });
    console.log(
      `25 requests for the last 16 bytes of ${bigLog.length}: ${Date.now() - started} ms, ${read.total} bytes of log read in ${read.queries} queries (the chunks holding the last 16 bytes: ${holdingLast(16)})`,
    );
    for (const answer of answers) {
      expect(answer.status).toBe(206);
      expect(answer.headers.get('content-range')).toBe(`bytes ${bigLog.length - 16}-${bigLog.length - 1}/${bigLog.length}`);
      expect(answer.headers.get('x-log-size')).toBe(String(bigLog.length));
      expect(answer.text).toBe(bigLog.subarray(bigLog.length - 16).toString('utf8'));
    }
    // Each request reads only the chunk(s) holding its 16 bytes (here the last one, ~64 KB): 25 of
    // them stay far below one copy of the log (main read all of it, 25 times: 225 MB).
    expect(read.total).toBeLessThanOrEqual(25 * holdingLast(16));
    expect(read.total).toBeLessThan(bigLog.length / 2);
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
    const read = await logBytesRead(async () => {
      const response = await fetch(`${h.app.url}/api/v1/tasks/${bigTask}/log`, { headers: { authorization: `Bearer ${token}` } });
      expect(response.headers.get('content-length')).toBe(String(bigLog.length));
      whole = Buffer.from(await response.arrayBuffer());
    });
    expect(sha(whole)).toBe(sha(bigLog));
    console.log(`the whole ${bigLog.length}-byte log streamed: ${read.total} bytes read in ${read.queries} queries, at most ${read.largest} in one`);
    // Streamed batch by batch: the log is read once, and no one answer holds more than a batch
    // (READ_BUDGET_BYTES of text, plus the chunk that crosses it).
    expect(read.total).toBeLessThanOrEqual(bigLog.length);
    expect(read.largest).toBeLessThanOrEqual(READ_BUDGET_BYTES + Math.max(...chunkSizes));
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
    const partial = await fetch(`${h.app.url}/api/v1/tasks/${bigTask}/log`, { headers: { authorization: `Bearer ${token}`, range: 'bytes=0-2000000' } });
    expect(partial.status).toBe(206);
    // Read to the end: the server is done reading it before the next test counts what is read.
    expect((await partial.arrayBuffer()).byteLength).toBe(2_000_001);
  }, 30_000);

  it('renders the last 256 KB on the task page with a download of the whole log, and many page loads stay bounded', async () => {
    const link = new URL(h.app.signer.taskUrl(bigTask));
    let pages: string[] = [];
    const read = await logBytesRead(async () => {
      pages = await Promise.all(Array.from({ length: 10 }, async () => (await fetch(link)).text()));
    });
    const page = pages[0]!;
    console.log(`10 page loads of a ${bigLog.length}-byte log: ${page.length} characters each, ${read.total} bytes of log read in ${read.queries} queries`);
    expect(page.length).toBeLessThan(400_000);
    expect(page).toMatch(/<p id="omitted" class="muted">The first [\d.]+ MB of output are not shown here: download the whole log to read them\.<\/p>/);
    expect(page).toContain(bigLog.subarray(bigLog.length - 200).toString('utf8'));
    // Each load reads only the chunks holding the last PAGE_TAIL_BYTES (256 KB), not the whole log
    // (10 loads of all of it would be 90 MB).
    expect(read.total).toBeLessThanOrEqual(10 * holdingLast(PAGE_TAIL_BYTES));
    expect(read.total).toBeLessThan(bigLog.length / 2);
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
