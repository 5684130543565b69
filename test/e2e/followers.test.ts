/**
 * Bounded reads: live log followers (the API's `?follow=1`, the task page's stream) are capped per
 * user and per process (429 beyond), share one reader per task woken by NOTIFY instead of polling
 * the database per connection, and end when their task ends (or after a time limit, saying where
 * to resume). The runner has its own pool: readers and views cannot starve it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningApp } from '../../src/app.js';
import { createApiToken } from '../../src/store/apiTokens.js';
import { createDb } from '../../src/store/db.js';
import { ALICE, AUTHOR, BOB, Harness } from '../support/harness.js';
import { waitFor } from '../support/waitFor.js';
import { sseEvents } from '../support/sse.js';

interface SseEvent {
  event: string;
  data: Record<string, unknown>;
  at: number;
}

/** An open follow stream: its events as they arrive, and a way to hang up. */
interface Follow {
  status: number;
  body: string;
  events: SseEvent[];
  done: Promise<void>;
  close(): void;
}

async function follow(url: string, headers: Record<string, string>): Promise<Follow> {
  const abort = new AbortController();
  const response = await fetch(url, { headers, signal: abort.signal });
  const events: SseEvent[] = [];
  if (response.status !== 200) return { status: response.status, body: await response.text(), events, done: Promise.resolve(), close: () => undefined };
  const done = (async () => {
    for await (const { event, data } of sseEvents(response.body)) {
      if (data) events.push({ event, data: JSON.parse(data) as Record<string, unknown>, at: Date.now() });
    }
  })();
  return { status: 200, body: '', events, done, close: () => abort.abort() };
}

describe('live log followers, and the runner pool', () => {
  let h: Harness;
  const replicas: RunningApp[] = [];
  const tokens: Record<string, string> = {};
  beforeAll(async () => {
    h = await Harness.start();
    for (const user of [AUTHOR, ALICE, BOB]) tokens[user] = (await createApiToken(h.database.db, user, 'followers')).token;
  });
  afterAll(async () => {
    await Promise.all(replicas.map((replica) => replica.stop(1000)));
    await h.stop();
  });

  async function replica(options: Parameters<Harness['startReplica']>[0]): Promise<RunningApp> {
    const app = await h.startReplica(options);
    replicas.push(app);
    return app;
  }

  const logUrl = (app: RunningApp, id: number, query = 'follow=1') => `${app.url}/api/v1/tasks/${id}/log?${query}`;
  const as = (user: string) => ({ authorization: `Bearer ${tokens[user]}` });

  it('caps followers per user and per process with a 429 that says what to do, and frees a place when a stream closes', async () => {
    // This process serves followers only; the harness's process runs the tasks.
    const app = await replica({ runner: { maxConcurrent: 0 }, followers: { maxFollowersPerUser: 3, maxFollowers: 5 } });
    const mine = await h.serviceTask('sleep 30');
    const alices = await h.serviceTask('sleep 30', { author: ALICE });
    const bobs = await h.serviceTask('sleep 30', { author: BOB });
    const open: Follow[] = [];
    for (let i = 0; i < 3; i++) open.push(await follow(logUrl(app, mine), as(AUTHOR)));
    expect(open.map((f) => f.status)).toEqual([200, 200, 200]);
    const fourth = await follow(logUrl(app, mine), as(AUTHOR));
    expect(fourth.status).toBe(429);
    expect(JSON.parse(fourth.body)).toMatchObject({ error: { code: 'too_many_followers' } });
    expect(JSON.parse(fourth.body).error.message).toMatch(/You already follow 3 live logs.*close one, or read the log without follow=1/);

    for (let i = 0; i < 2; i++) open.push(await follow(logUrl(app, alices), as(ALICE)));
    expect(open.map((f) => f.status)).toEqual([200, 200, 200, 200, 200]);
    // Five in all: Bob, with none of his own, meets the server's cap.
    const bob = await follow(logUrl(app, bobs), as(BOB));
    expect(bob.status).toBe(429);
    expect(JSON.parse(bob.body).error.message).toMatch(/This server already streams 5 live logs/);
    // The task page's stream counts against the same cap.
    const link = new URL(app.signer.taskUrl(bobs));
    const page = await fetch(`${link.origin}${link.pathname}/stream?${link.searchParams.toString()}`);
    expect(page.status).toBe(429);
    expect(await page.text()).toMatch(/This server already streams 5 live logs/);

    open[0]!.close();
    await waitFor(async () => app.feed.followers === 4, 5000, 'the closed stream to free its place');
    const again = await follow(logUrl(app, bobs), as(BOB));
    expect(again.status).toBe(200);
    for (const f of [...open, again]) f.close();
    await waitFor(async () => app.feed.followers === 0, 5000, 'every stream closed');
    for (const id of [mine, alices, bobs]) await h.app.service.kill(id, AUTHOR);
  });

  it('fans one task out to 20 followers on another process from one shared reader woken by NOTIFY, and ends every stream with the task', async () => {
    const app = await replica({ runner: { maxConcurrent: 0 }, followers: { maxFollowersPerUser: 30 } });
    const gate = `${h.scratchDir()}/go`;
    const lines = Array.from({ length: 15 }, (_, i) => `line ${i + 1}`);
    const id = await h.serviceTask(`while [ ! -e ${gate} ]; do sleep 0.1; done; for i in $(seq 1 15); do echo "line $i"; sleep 0.2; done`);
    await h.waitForStatus(id, 'running');
    const followers = await Promise.all(Array.from({ length: 20 }, () => follow(logUrl(app, id), as(AUTHOR))));
    expect(followers.every((f) => f.status === 200)).toBe(true);
    await waitFor(async () => app.feed.followers === 20, 5000, '20 followers');
    const before = { ...app.feed.reads };
    const { writeFileSync } = await import('node:fs');
    writeFileSync(gate, '');
    await Promise.all(followers.map((f) => f.done));
    const task = await h.task(id);
    const reads = { shared: app.feed.reads.shared - before.shared, catchUp: app.feed.reads.catchUp - before.catchUp };
    for (const f of followers) {
      expect(
        f.events
          .filter((e) => e.event === 'output')
          .map((e) => e.data.text)
          .join(''),
      ).toBe(lines.map((line) => `${line}\n`).join(''));
      expect(f.events[f.events.length - 1]).toMatchObject({ event: 'end', data: { status: 'success' } });
    }
    const endLag = followers.map((f) => f.events[f.events.length - 1]!.at - (task?.finishedAt?.getTime() ?? 0)).sort((x, y) => x - y);
    process.stdout.write(
      `FOLLOWERS 20 API followers of one task on another process, 15 lines over 3 s\n  database reads: ${reads.shared} shared + ${reads.catchUp} catch-up (polling each connection every 250 ms would be about ${20 * 4 * 4})\n  end event after the result was stored: p50 ${endLag[10]} ms, max ${endLag[19]} ms\n`,
    );
    // One reader for all: its reads follow the output's batches, not the number of followers.
    expect(reads.shared + reads.catchUp).toBeLessThan(60);
    expect(app.feed.followers).toBe(0);
  });

  it('ends a follow stream after its time limit with the offset to resume from', async () => {
    const app = await replica({ runner: { maxConcurrent: 0 }, followMaxMs: 1500 });
    const id = await h.serviceTask('echo early; sleep 20');
    const first = await follow(logUrl(app, id), as(AUTHOR));
    await first.done;
    expect(first.events.map((e) => e.event)).toEqual(['output', 'end']);
    expect(first.events[1]!.data).toEqual({ status: 'running', timeout: true, offset: 6 });
    const resumed = await follow(logUrl(app, id, 'follow=1&offset=6'), as(AUTHOR));
    await resumed.done;
    expect(resumed.events.map((e) => e.event)).toEqual(['end']);
    await h.app.service.kill(id, AUTHOR);
  });

  it("runs and stores a task while the app's own pool is exhausted: the runner has a pool of its own", async () => {
    // Only the process under test claims from here on.
    await h.app.runner.stop(0);
    const appDb = createDb(h.database.url, 3);
    const app = await replica({ db: appDb });
    try {
      const created = await app.service.create({
        author: AUTHOR,
        target: 'sandbox',
        message: null,
        type: null,
        script: 'echo ran-anyway',
        source: 'api',
        sourceKey: null,
        channelId: null,
        delayMs: 1500,
      });
      if (!created.ok) throw new Error(created.message);
      // Every connection of the app's pool is taken (as by slow readers) until released.
      let release: () => void = () => undefined;
      const released = new Promise<void>((resolve) => (release = resolve));
      const holders = Array.from({ length: 3 }, () =>
        appDb.transaction(async (trx) => {
          await trx.raw('SELECT 1');
          await released;
        }),
      );
      try {
        // Well within knex's 10 s wait for a connection: the run did not need the app's pool.
        const task = await h.waitForStatus(created.task.id, ['success', 'failure'], 8000);
        expect(task.status).toBe('success');
        expect(task.result.lastLine).toBe('ran-anyway');
      } finally {
        release();
        await Promise.all(holders);
      }
    } finally {
      await app.stop(1000);
      replicas.splice(replicas.indexOf(app), 1);
      await appDb.destroy();
    }
  });
});
