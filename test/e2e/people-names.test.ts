/**
 * People's names instead of user ids where a person reads them (issue 13, "Small things people
 * notice"), through real HTTP, signed Slack requests, the fake Slack (users.info), a real
 * Postgres and a real sshd:
 *
 * - the task page shows the author, the reviewers and who stopped the run by their Slack
 *   display names (escaped; the id on hover), on the page and in its live stream;
 * - names are cached: a second page asks Slack nothing;
 * - a slow or failing Slack never holds a page up: the id is shown, and the name next time;
 * - the API keeps user ids.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACTION } from '../../src/slack/render/blocks.js';
import { createApiToken } from '../../src/store/apiTokens.js';
import { ApiClient } from '../support/apiClient.js';
import { ALICE, AUTHOR, BOB, Harness } from '../support/harness.js';
import { waitFor } from '../support/waitFor.js';

const CAROL = 'UCAROL';
const DAVE = 'UDAVE';

describe("people's names", () => {
  let h: Harness;
  let killed = 0;

  beforeAll(async () => {
    h = await Harness.start();
    h.fake.setUser(AUTHOR, { displayName: 'Ada <b>Author</b>' });
    h.fake.setUser(ALICE, { displayName: 'Alice Reviewer' });
    // No display name set: Slack shows the full name, and so do we.
    h.fake.setUser(BOB, { displayName: '', realName: 'Bob Real' });
    h.fake.setUser(CAROL, { displayName: 'Carol Slow' });
    h.fake.setUser(DAVE, { displayName: 'Dave Unlucky' });

    killed = await h.createTask('run web-prod -m "named" echo started; sleep 30');
    await h.click(await h.reviewRequest(killed, 'Approve'), ACTION.approve, ALICE);
    await h.click(await h.card(killed, 'Run'), ACTION.run, AUTHOR);
    await h.waitForStatus(killed, 'running');
    expect(JSON.stringify((await h.command(`kill ${killed}`, BOB)).json)).toMatch(/Stopping/);
    await h.waitForStatus(killed, 'killed');
  }, 60_000);
  afterAll(async () => {
    await h?.stop();
  });

  const page = async (id: number) => {
    const started = Date.now();
    const response = await fetch(h.app.signer.taskUrl(id));
    return { status: response.status, html: await response.text(), ms: Date.now() - started };
  };
  const userInfoCalls = () => h.fake.callsTo('users.info').length;

  it('shows the author, reviewers and who stopped the run by name, escaped, with the id on hover', async () => {
    const { status, html } = await page(killed);
    expect(status).toBe(200);
    expect(html).toContain(`<dt>Author</dt><dd><span class="person" title="${AUTHOR}">Ada &lt;b&gt;Author&lt;/b&gt;</span></dd>`);
    expect(html).not.toContain('<b>Author');
    expect(html).toContain(`<td><span class="person" title="${ALICE}">Alice Reviewer</span></td>`);
    expect(html).toContain(`Stop requested by <span class="person" title="${BOB}">Bob Real</span>`);
    // The stored failure message ("killed by <@UBOB>") names the person too.
    expect(html).toMatch(new RegExp(`killed by <span class="person" title="${BOB}">Bob Real</span>`));
  });

  it('asks Slack once per person: a second page is drawn from the cache', async () => {
    await page(killed);
    const before = userInfoCalls();
    const again = await page(killed);
    expect(again.html).toContain('Alice Reviewer');
    expect(userInfoCalls()).toBe(before);
    // One lookup per person ever made, however many pages.
    const asked = h.fake.callsTo('users.info').map((call) => call.args.user);
    expect(new Set(asked).size).toBe(asked.length);
  });

  it('never holds a page up for a slow Slack: the id now, the name once Slack answered', async () => {
    h.fake.delay('users.info', 3000);
    try {
      const created = await h.app.service.create({
        author: CAROL,
        target: 'sandbox',
        message: null,
        type: null,
        script: 'echo carol',
        source: 'api',
        sourceKey: null,
        channelId: null,
      });
      if (!created.ok) throw new Error(created.message);
      const id = created.task.id;
      await h.waitForStatus(id, 'success');
      const slow = await page(id);
      expect(slow.status).toBe(200);
      expect(slow.ms).toBeLessThan(2000);
      expect(slow.html).toContain(`<dt>Author</dt><dd>${CAROL}</dd>`);
      const named = await waitFor(
        async () => {
          const next = await page(id);
          return next.html.includes('Carol Slow') ? next : undefined;
        },
        10_000,
        'the name once Slack answered',
        250,
      );
      expect(named.html).toContain(`title="${CAROL}">Carol Slow</span>`);
    } finally {
      h.fake.delay('users.info', 0);
    }
  });

  it('shows the id when Slack fails, and does not fail the page', async () => {
    h.fake.failNext('users.info', { status: 500 }, 5);
    const created = await h.app.service.create({
      author: DAVE,
      target: 'sandbox',
      message: null,
      type: null,
      script: 'echo dave',
      source: 'api',
      sourceKey: null,
      channelId: null,
    });
    if (!created.ok) throw new Error(created.message);
    await h.waitForStatus(created.task.id, 'success');
    const shown = await page(created.task.id);
    expect(shown.status).toBe(200);
    expect(shown.html).toContain(`<dt>Author</dt><dd>${DAVE}</dd>`);
    h.fake.clearFailures('users.info');
  });

  it('names people in the live stream too', async () => {
    const created = await h.app.service.create({
      author: AUTHOR,
      target: 'sandbox',
      message: null,
      type: null,
      script: 'echo live; sleep 3',
      source: 'api',
      sourceKey: null,
      channelId: null,
    });
    if (!created.ok) throw new Error(created.message);
    const id = created.task.id;
    await h.waitForStatus(id, 'running');
    const signed = new URL(h.app.signer.taskUrl(id));
    const response = await fetch(`${signed.origin}${signed.pathname}/stream${signed.search}`);
    expect(response.status).toBe(200);
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    const timer = setTimeout(() => void reader.cancel(), 10_000);
    try {
      while (!/event: status\ndata: .*\n\n/.test(text)) {
        const { done, value } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
      }
    } finally {
      clearTimeout(timer);
      await reader.cancel().catch(() => undefined);
    }
    const status = JSON.parse(/event: status\ndata: (.*)\n\n/.exec(text)![1]!) as { head?: string };
    expect(status.head).toContain(`title="${AUTHOR}">Ada &lt;b&gt;Author&lt;/b&gt;</span>`);
  });

  it('keeps user ids in the API', async () => {
    const api = await ApiClient.connect(h.app.url);
    const token = (await createApiToken(h.database.db, ALICE, 'alice')).token;
    const answer = await api.call('GET', `/tasks/${killed}`, { token });
    expect(answer.status).toBe(200);
    expect(answer.body.task.author).toBe(AUTHOR);
    expect(answer.body.task.reviews).toMatchObject([{ userId: ALICE, verdict: 'approve' }]);
    expect(answer.text).not.toContain('Alice Reviewer');
    expect(answer.body.task.result.failureMessage).toBe(`killed by <@${BOB}>`);
  });
});
