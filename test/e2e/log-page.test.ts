/**
 * The task page behind `log_url`, in a real browser (Debian's chromium through playwright-core):
 * a running task's output arrives live over Server-Sent Events, ANSI colours show, the final
 * status appears without a reload, and output cannot become markup. Access: a signed link (an
 * expired or tampered one gets a 403 page saying which) or an API token.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiToken } from '../../src/store/apiTokens.js';
import { ALICE, AUTHOR, Harness, MALLORY } from '../support/harness.js';
import { waitFor } from '../support/waitFor.js';

const CHROMIUM = '/usr/bin/chromium';

/** Prints a line, waits, then prints a red one: the page must show the second without a reload. */
/** The tasks' message: markup the page must show as text. */
const MESSAGE = 'look <here> & there';
/**
 * Prints its first lines, then waits for the test to create `gate` (at most 20 s) before the red
 * line: a fixed sleep let a slow page load on a busy machine find the red line already there.
 */
const liveScript = (gate: string) =>
  [
    'echo first-line',
    `echo '<script>window.pwned = 1</script>'`,
    `i=0; while [ ! -e '${gate}' ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done`,
    `printf '\\033[31mred-line\\033[0m\\n'`,
    'exit 0',
  ].join('\n');

/** Reads an event stream until `until` matches what arrived (or the server closes it). */
async function readStream(response: Response, until: RegExp, timeoutMs = 10_000): Promise<string> {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  const timer = setTimeout(() => void reader.cancel(), timeoutMs);
  try {
    while (!until.test(text)) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    clearTimeout(timer);
  }
  return text;
}

describe('the task page (log_url)', () => {
  let h: Harness;
  let browser: Browser;
  let liveTask = 0;

  beforeAll(async () => {
    // No skip: without chromium this file must fail, saying how to get it.
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium; .ci/run does this)`);
    [h, browser] = await Promise.all([Harness.start(), chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] })]);
  });
  afterAll(async () => {
    await browser?.close();
    await h?.stop();
  });

  const storedOutput = async (id: number): Promise<string> =>
    (await h.database.db('output_chunks as o').join('executions as e', 'e.id', 'o.execution_id').where('e.task_id', id).orderBy('o.id').pluck('o.data')).join(
      '',
    );

  it('follows a running task live: first line, new output without a reload, ANSI colour, final status', async () => {
    const gate = `${h.scratchDir()}/go`;
    liveTask = await h.serviceTask(liveScript(gate), { message: MESSAGE });
    await waitFor(async () => (await storedOutput(liveTask)).includes('first-line'), 10_000, 'the first line to be stored');

    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(message.text());
    });
    page.on('pageerror', (error) => problems.push(error.message));
    const response = await page.goto(h.app.signer.taskUrl(liveTask));
    expect(response?.status()).toBe(200);
    const headers = response?.headers() ?? {};
    expect(headers['content-security-policy']).toMatch(/script-src 'nonce-[A-Za-z0-9+/=]+'/);
    expect(headers['referrer-policy']).toBe('no-referrer');

    const output = page.locator('#output');
    await expect.poll(() => output.textContent(), { timeout: 5000 }).toContain('first-line');
    // Still running when the page was opened, so what follows can only arrive over the stream.
    expect(await output.textContent()).not.toContain('red-line');
    expect(await page.locator('#status').textContent()).toBe('running');
    await page.evaluate(() => Object.assign(globalThis, { sameDocument: true }));
    writeFileSync(gate, '');

    const red = page.locator('#output span.ansi-red-fg', { hasText: 'red-line' });
    await red.waitFor({ timeout: 10_000 });
    // The page's stylesheet (allowed by its nonce) colours ansi_up's class.
    // (The project's tsconfig has no DOM lib: the browser's getComputedStyle is reached through globalThis.)
    const colour = await red.evaluate(
      (element) => (globalThis as unknown as { getComputedStyle(e: unknown): { color: string } }).getComputedStyle(element).color,
    );
    expect(colour).toBe('rgb(241, 76, 76)');
    await expect.poll(() => page.locator('#status').textContent(), { timeout: 10_000 }).toBe('success');
    await expect.poll(() => page.locator('#live-note').textContent(), { timeout: 5000 }).toBe('finished');

    expect(await page.evaluate(() => (globalThis as { sameDocument?: boolean }).sameDocument)).toBe(true);
    // The printed <script> is text on the page, not a script that ran.
    expect(await page.evaluate(() => (globalThis as { pwned?: number }).pwned)).toBeUndefined();
    expect(await output.textContent()).toBe('first-line\n<script>window.pwned = 1</script>\nred-line\n');
    expect(await page.locator('#head .message').textContent()).toBe('look <here> & there');
    expect(await page.locator('#live table').last().textContent()).toContain('succeeded');
    expect(problems).toEqual([]); // no CSP violation, no script error
    await page.close();
  });

  it('refuses an expired or tampered link with a 403 page that says which', async () => {
    // Signed 25 hours ago: past the default TTL of 24 hours.
    const expired = h.app.signer.taskUrl(liveTask, Date.now() - 25 * 3600_000);
    const page = await browser.newPage();
    const response = await page.goto(expired);
    expect(response?.status()).toBe(403);
    expect(await page.locator('body').textContent()).toContain('This link is expired');
    await page.close();

    const tampered = h.app.signer.taskUrl(liveTask).replace(/sig=([^&]+)/, (_, sig: string) => `sig=${sig.startsWith('A') ? 'B' : 'A'}${sig.slice(1)}`);
    const bad = await fetch(tampered);
    expect(bad.status).toBe(403);
    expect(await bad.text()).toContain('This link is not valid');
    // A link is for one task only.
    const other = await fetch(h.app.signer.taskUrl(liveTask).replace(`/tasks/${liveTask}?`, `/tasks/${liveTask + 1000}?`));
    expect(other.status).toBe(403);
    const stream = await fetch(expired.replace('?', '/stream?'));
    expect(stream.status).toBe(403);
    expect(await stream.text()).toBe('link expired');
  });

  it('serves the page and its stream to an API token whose user may see the task, and 404s unknown tasks and bad ids', async () => {
    const { token } = await createApiToken(h.database.db, AUTHOR, 'test');
    const auth = { authorization: `Bearer ${token}` };
    const pageResponse = await fetch(`${h.app.url}/tasks/${liveTask}`, { headers: auth });
    expect(pageResponse.status).toBe(200);
    const html = await pageResponse.text();
    expect(html).toContain('<span id="status" class="status status-success">success</span>');
    expect(html).toContain('<span class="ansi-red-fg">red-line</span>');
    expect(html).toContain('&lt;script&gt;window.pwned = 1&lt;/script&gt;');
    expect(html).not.toContain('data-stream'); // finished: nothing to follow

    expect((await fetch(`${h.app.url}/tasks/${liveTask}`, { headers: { authorization: 'Bearer cst_nope' } })).status).toBe(403);
    expect((await fetch(`${h.app.url}/tasks/${liveTask}`)).status).toBe(403);
    const missing = await fetch(`${h.app.url}/tasks/987654`, { headers: auth });
    expect(missing.status).toBe(404);
    expect(await missing.text()).toContain('There is no task #987654.');
    // A token whose user may not see the task gets what a missing task gets, page and stream.
    const { token: stranger } = await createApiToken(h.database.db, MALLORY, 'stranger');
    const hidden = await fetch(`${h.app.url}/tasks/${liveTask}`, { headers: { authorization: `Bearer ${stranger}` } });
    expect(hidden.status).toBe(404);
    const hiddenText = await hidden.text();
    expect(hiddenText).toContain(`There is no task #${liveTask}.`);
    expect(hiddenText).not.toContain('red-line');
    const hiddenStream = await fetch(`${h.app.url}/tasks/${liveTask}/stream?after=0`, { headers: { authorization: `Bearer ${stranger}` } });
    expect(hiddenStream.status).toBe(404);
    expect(await hiddenStream.text()).toBe('no such task');
    expect((await fetch(`${h.app.url}/tasks/abc`, { headers: auth })).status).toBe(404);
    expect((await fetch(`${h.app.url}/tasks/1e3`, { headers: auth })).status).toBe(404);

    // The stream of a finished task: everything after `after`, its status, then end, then closed.
    const stream = await fetch(`${h.app.url}/tasks/${liveTask}/stream?after=0`, { headers: auth });
    expect(stream.status).toBe(200);
    expect(stream.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(stream.headers.get('x-accel-buffering')).toBe('no');
    expect(stream.headers.get('cache-control')).toBe('no-cache');
    const events = await readStream(stream, /event: end\n/);
    expect(events).toMatch(/^event: output\nid: \d+\ndata: "first-line\\n&lt;script&gt;/m);
    expect(events).toContain('<span class=\\"ansi-red-fg\\">red-line</span>');
    expect(events).toMatch(/event: status\ndata: \{"status":"success","terminal":true/);
    expect(events.trimEnd().endsWith('event: end\ndata: {}')).toBe(true);

    // Resuming after the last chunk sends no output again.
    const last = await h.database
      .db('output_chunks as o')
      .join('executions as e', 'e.id', 'o.execution_id')
      .where('e.task_id', liveTask)
      .max('o.id as id')
      .first();
    const resumed = await readStream(
      await fetch(`${h.app.url}/tasks/${liveTask}/stream`, { headers: { ...auth, 'last-event-id': String(last?.id) } }),
      /event: end\n/,
    );
    expect(resumed).not.toContain('event: output');
    expect(resumed).toContain('event: end');
  });

  it('streams a task that has no run yet, and ends when it is rejected', async () => {
    const id = await h.serviceTask('echo never', { target: 'web-prod', message: MESSAGE });
    const url = new URL(h.app.signer.taskUrl(id));
    const controller = new AbortController();
    const response = await fetch(`${h.app.url}/tasks/${id}/stream${url.search}&after=0`, { signal: controller.signal });
    expect(response.status).toBe(200);
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    const until = async (pattern: RegExp) => {
      const deadline = Date.now() + 10_000;
      while (!pattern.test(text)) {
        if (Date.now() > deadline) throw new Error(`stream never showed ${pattern}: ${text}`);
        const { done, value } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
      }
    };
    await until(/"status":"pending-review"/);
    expect(text).toContain('No output yet: the task has not started.');
    expect((await h.app.service.reject(id, ALICE, 'not <today>')).ok).toBe(true);
    await until(/event: end\n/);
    expect(text).toMatch(/event: status\ndata: \{"status":"rejected","terminal":true/);
    expect(text).toContain('not &lt;today&gt;');
    expect(text).not.toContain('event: output');
    controller.abort();
  });

  it('shows OSC 8 hyperlinks in output as plain text, on the page and over the stream: nothing to click', async () => {
    const link = (url: string, text: string) => `printf '\\033]8;;${url}\\033\\\\${text}\\033]8;;\\033\\\\\\n'`;
    const id = await h.serviceTask(
      [link('https://evil.example/first', 'rendered-link'), 'sleep 2', link('https://evil.example/second', 'streamed-link'), 'exit 0'].join('\n'),
      { message: MESSAGE },
    );
    await waitFor(async () => (await storedOutput(id)).includes('rendered-link'), 10_000, 'the first link to be stored');
    const page = await browser.newPage();
    await page.goto(h.app.signer.taskUrl(id));
    const output = page.locator('#output');
    await expect.poll(() => output.textContent(), { timeout: 10_000 }).toContain('streamed-link');
    await expect.poll(() => page.locator('#status').textContent(), { timeout: 10_000 }).toBe('success');
    expect(await output.textContent()).toBe('rendered-link\nstreamed-link\n');
    // The only link on the page is its own download of the whole log.
    expect(await page.locator('#output a').count()).toBe(0);
    expect(await page.locator('a').evaluateAll((links) => links.map((a) => a.id))).toEqual(['download']);
    // The script (shown above the output) names the URLs; the output does not.
    expect(await output.innerHTML()).not.toContain('evil.example');
    await page.close();
  });
});
