/**
 * Task-page links (issue 10, point 6): they expire after `links.ttl`, carry the version of the
 * key that signed them, and `npm run links` rotates keys (old links keep working until they
 * expire) and revokes them (old links stop on every replica within seconds).
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningApp } from '../../src/app.js';
import { DEFAULT_KEY_CACHE_MS } from '../../src/web/signedLinks.js';
import { Harness } from '../support/harness.js';
import { waitFor } from '../support/waitFor.js';

const ROOT = new URL('../..', import.meta.url).pathname;

/** `npm run links -- <args>` as its own process (through tsx: no build needed), on the test's database. */
function linksCli(databaseUrl: string, ...args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/links.ts', ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', DATABASE_URL: databaseUrl },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('exit', (code) => resolve({ code, output }));
  });
}

describe('task-page links', () => {
  let h: Harness;
  let replica: RunningApp;
  let task = 0;

  beforeAll(async () => {
    h = await Harness.start({ extraYaml: () => 'links:\n  ttl: 2h\n' });
    replica = await h.startReplica();
    task = await h.createTask('run sandbox -m "linked" echo linked-output');
    await h.waitForStatus(task, 'success');
  });
  afterAll(async () => {
    await replica?.stop(2000);
    await h.stop();
  });

  /** The same path and query on another app (a replica). */
  const on = (app: { url: string }, link: string) => `${app.url}${new URL(link).pathname}${new URL(link).search}`;
  const status = async (url: string) => (await fetch(url)).status;

  it('carry their key version and expire after links.ttl', async () => {
    const before = Date.now();
    const link = new URL(h.app.signer.taskUrl(task));
    expect(link.searchParams.get('kv')).toBe('1');
    const expires = Number(link.searchParams.get('expires')) * 1000;
    expect(expires).toBeGreaterThanOrEqual(before + 2 * 3600_000 - 1000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 2 * 3600_000);
    // The card's link is one of them.
    const card = await h.card(task, 'success');
    expect(JSON.stringify(card.blocks)).toMatch(new RegExp(`/tasks/${task}\\?expires=\\d+&sig=[A-Za-z0-9_-]+&kv=1`));
    expect(await status(link.href)).toBe(200);

    const past = await fetch(h.app.signer.taskUrl(task, Date.now() - 2 * 3600_000 - 60_000));
    expect(past.status).toBe(403);
    expect(await past.text()).toContain('This link is expired');
  });

  it('rotate: new links use the new key, old ones still work; revoke: old links stop on every replica within seconds', async () => {
    const old = h.app.signer.taskUrl(task);
    const legacy = old.replace(/&kv=1$/, ''); // as links were signed before the key ring: key 1
    for (const app of [h.app, replica]) {
      expect(await status(on(app, old))).toBe(200);
      expect(await status(on(app, legacy))).toBe(200);
    }

    const rotated = await linksCli(h.database.url, 'rotate');
    expect(rotated, rotated.output).toMatchObject({ code: 0 });
    expect(rotated.output).toContain('key 2 signs new links');
    expect(rotated.output).not.toMatch(/"secret"|[A-Za-z0-9_-]{43}/); // no key material printed
    const fresh = await waitFor(
      async () => {
        const link = h.app.signer.taskUrl(task);
        return link.endsWith('&kv=2') ? link : null;
      },
      10_000,
      'new links to be signed with key 2',
      200,
    );
    expect(await status(on(replica, fresh))).toBe(200);
    expect(await status(on(replica, old))).toBe(200);

    const revoked = await linksCli(h.database.url, 'revoke', '1');
    // From the command's end, not its start: the CLI's own start-up (1-3 s on a busy machine)
    // is not the replicas' delay.
    const revokedAt = Date.now();
    expect(revoked, revoked.output).toMatchObject({ code: 0 });
    expect(revoked.output).toContain('key 1 revoked');
    for (const app of [h.app, replica]) await waitFor(async () => (await status(on(app, old))) === 403, 10_000, 'the old link to be refused', 100);
    const took = Date.now() - revokedAt;
    console.log(`[links] revoked key refused on both replicas ${took} ms after the revoke command ended (key cache ${DEFAULT_KEY_CACHE_MS} ms)`);
    // Within the key cache's lifetime, and a margin for the polling and a loaded machine.
    expect(took).toBeLessThan(DEFAULT_KEY_CACHE_MS + 3_000);
    const refused = await fetch(on(replica, old));
    expect(await refused.text()).toContain('This link was revoked: open the task again from Slack');
    const stream = await fetch(on(replica, old).replace('?', '/stream?'));
    expect(stream.status).toBe(403);
    expect(await stream.text()).toBe('link revoked');
    expect(await status(on(replica, legacy))).toBe(403);
    // Links signed with the new key are untouched.
    expect(await status(on(replica, fresh))).toBe(200);
    expect(await status(fresh)).toBe(200);

    // A key nobody has is dead; a kv that is not a version is no link at all.
    expect(await (await fetch(fresh.replace(/kv=2$/, 'kv=99'))).text()).toContain('revoked');
    expect(await status(fresh.replace(/kv=2$/, 'kv=two'))).toBe(403);

    const listed = await linksCli(h.database.url, 'list');
    expect(listed.output).toMatch(/^1\tcreated \S+\trevoked /m);
    expect(listed.output).toMatch(/^2\tcreated \S+\tsigns new links$/m);

    // Revoking the key in use makes a new one at once: new links keep working.
    const again = await linksCli(h.database.url, 'revoke', '2');
    expect(again.output).toContain('key 3 signs new links now');
    const third = await waitFor(
      async () => {
        const link = h.app.signer.taskUrl(task);
        return link.endsWith('&kv=3') ? link : null;
      },
      10_000,
      'new links to be signed with key 3',
      200,
    );
    expect(await status(third)).toBe(200);
    expect((await linksCli(h.database.url, 'revoke', 'x')).code).toBe(2);
  });
});
