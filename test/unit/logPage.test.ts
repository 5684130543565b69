// The task page's pure render (src/web/logPage.ts, src/web/ansi.ts): everything a task carries is
// escaped, ANSI colours become ansi_up spans without letting output turn into markup, and the
// page holds up for a 40-host run and for a task that never got a run.
import { describe, expect, it } from 'vitest';
import type { TaskStatus } from '../../src/domain/lifecycle.js';
import type { Execution, ExecutionStep, StepPhase, Task, TaskView } from '../../src/domain/task.js';
import { createAnsiRenderer } from '../../src/web/ansi.js';
import { escapeHtml, pageCsp, renderErrorPage, renderTaskPage, statusSummary } from '../../src/web/logPage.js';

const T0 = new Date('2025-03-04T05:06:07.000Z');
const later = (seconds: number) => new Date(T0.getTime() + seconds * 1000);
const NONCE = 'bm9uY2Utbm9uY2Utbm9uY2U=';
const EVIL = `<script>alert(1)</script><img src=x onerror="alert('x')">&amp;`;

function makeTask(status: TaskStatus, over: Partial<Task> = {}): Task {
  const finished = status === 'success' || status === 'failure' || status === 'killed';
  return {
    id: 42,
    createdAt: T0,
    statusChangedAt: later(120),
    status,
    author: 'U0123',
    target: 'web-prod',
    type: 'bash',
    script: 'df -h /var\nuptime',
    message: 'disk full on web-3?',
    source: 'slack',
    channelId: 'CCHAN0001',
    cardTs: null,
    reviewChannel: null,
    reviewTs: null,
    viewVersion: 7,
    reviewScriptPosted: false,
    result: {
      exitCode: status === 'success' ? 0 : status === 'failure' ? 1 : null,
      signal: null,
      durationMs: finished ? 4_321 : null,
      failureMessage: status === 'failure' ? 'the script exited with code 1' : null,
      lastLine: null,
    },
    startedAt: finished || status === 'running' ? later(200) : null,
    finishedAt: finished ? later(205) : null,
    runAfter: null,
    contentVersion: 'c'.repeat(64),
    recipe: null,
    ...over,
  };
}

function makeStep(index: number, phase: StepPhase, over: Partial<ExecutionStep> = {}): ExecutionStep {
  return {
    id: 1000 + index,
    groupIndex: 0,
    host: `10.0.0.${index}`,
    port: 22,
    user: 'deploy',
    runToken: 'token',
    phase,
    exitCode: phase === 'succeeded' ? 0 : phase === 'failed' ? 1 : null,
    signal: null,
    failureMessage: phase === 'failed' ? 'the script exited with code 1' : null,
    startedAt: phase === 'pending' ? null : later(200),
    finishedAt: phase === 'pending' || phase === 'running' ? null : later(203.5),
    ...over,
  };
}

function withRun(task: Task, steps: ExecutionStep[], over: Partial<Execution> = {}): TaskView {
  return {
    task,
    decisions: [],
    execution: {
      id: 7,
      taskId: task.id,
      phase: 'running',
      desiredPhase: null,
      stopRequestedBy: null,
      statusVersion: 1,
      plan: [steps.map(({ host, port, user }) => ({ host, port, user }))],
      runnerId: 'r1',
      leaseUntil: later(300),
      startedAt: later(200),
      finishedAt: null,
      exitCode: null,
      failureMessage: null,
      outputBytes: 0,
      ...over,
      steps,
    },
  };
}

const page = (view: TaskView, output = '', streamUrl: string | null = '42/stream?expires=1&sig=s&after=0') =>
  renderTaskPage(view, { nonce: NONCE, streamUrl, output, now: later(210) });

/** The page's text between two ids' tags, roughly: enough to look at one section. */
const section = (html: string, id: string) => html.slice(html.indexOf(`id="${id}"`), html.indexOf('</section>', html.indexOf(`id="${id}"`)));
const outputPane = (html: string) => /<pre id="output"[^>]*>([\s\S]*?)<\/pre>/.exec(html)?.[1] ?? '';

describe('task page render', () => {
  it('escapes everything a task carries: script, message, names, reasons, failures, output', () => {
    const task = makeTask('failure', {
      script: EVIL,
      message: EVIL,
      target: `t${EVIL}`,
      author: `U1${EVIL}`,
      result: { ...makeTask('failure').result, failureMessage: EVIL },
    });
    const view = withRun(task, [makeStep(1, 'failed', { failureMessage: EVIL, host: `h${EVIL}` })]);
    view.decisions = [{ userId: `U2${EVIL}`, verdict: 'reject', reason: EVIL, at: later(60) }];
    const html = page(view, `${EVIL}\n`);
    // The only script element is the page's own, with its nonce; no output or task text became markup.
    expect(html.match(/<script/g)).toHaveLength(1);
    expect(html).toContain(`<script nonce="${NONCE}">`);
    expect(html).not.toContain('<img');
    expect(html).not.toMatch(/onerror="/);
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).toContain('&amp;amp;');
    expect(outputPane(html)).toBe('&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&quot;alert(&#x27;x&#x27;)&quot;&gt;&amp;amp;\n');
    expect(escapeHtml(`"'<>&`)).toBe('&quot;&#39;&lt;&gt;&amp;');
  });

  it('renders ANSI colours as ansi_up spans, output still escaped inside them', () => {
    const html = page(
      withRun(makeTask('running'), [makeStep(1, 'running')]),
      'plain\n\x1b[31mred-line\x1b[0m\n\x1b[1;32m<b>bold green</b>\x1b[0m\n\x1b[38;2;1;2;3mtrue\x1b[0m\n',
    );
    const pane = outputPane(html);
    expect(pane).toContain('plain\n<span class="ansi-red-fg">red-line</span>\n');
    expect(pane).toContain('<span style="font-weight:bold" class="ansi-green-fg">&lt;b&gt;bold green&lt;/b&gt;</span>');
    expect(pane).toContain('<span style="color:rgb(1,2,3)">true</span>');
    expect(pane).not.toContain('\x1b');
    // The stylesheet colours the classes ansi_up emits.
    expect(html).toMatch(/\.ansi-red-fg\{color:#[0-9a-f]{6}\}/);
  });

  it('continues colours and cut escape sequences across pieces of output, as the stream feeds them', () => {
    const whole = createAnsiRenderer().render('a\x1b[31mred\nstill red\x1b[0m b');
    const pieces = createAnsiRenderer();
    const split = ['a\x1b[3', '1mred\n', 'still red\x1b', '[0m b'].map((piece) => pieces.render(piece)).join('');
    expect(split.replace(/<\/span><span class="ansi-red-fg">/g, '')).toBe(whole);
    expect(createAnsiRenderer().render('<script>x</script>')).toBe('&lt;script&gt;x&lt;/script&gt;');
  });

  it('shows a 40-host run: one row per host, a tally, batches, durations', () => {
    const steps = Array.from({ length: 40 }, (_, i) =>
      makeStep(i + 1, i < 37 ? 'succeeded' : i < 39 ? 'failed' : 'running', { groupIndex: Math.floor(i / 10), port: i === 5 ? 2222 : 22 }),
    );
    const view = withRun(makeTask('running'), steps);
    const html = page(view, '[deploy@10.0.0.1] ok\n');
    const hosts = section(html, 'live');
    expect(hosts.match(/<tr><td>/g)).toHaveLength(40);
    expect(hosts).toContain('40 hosts: 37 succeeded, 2 failed, 1 running');
    expect(hosts).toContain('<th>Batch</th>');
    expect(hosts).toContain('deploy@10.0.0.6:2222');
    expect(hosts).toContain('deploy@10.0.0.40');
    expect(hosts).toContain('3.5s');
    expect(hosts).toContain('10.0s so far'); // the running host, at `now`
    expect(hosts).toContain('the script exited with code 1');
    const summary = statusSummary(view, later(210));
    expect(summary.steps).toHaveLength(40);
    expect(summary.steps[0]).toEqual({ host: 'deploy@10.0.0.1', phase: 'succeeded', exitCode: 0, failureMessage: null, durationMs: 3500 });
    expect(summary.terminal).toBe(false);
    expect(summary.live).toContain('id="status"');
  });

  it('shows a task with no run yet: reviews, an empty output pane that says why, and a live stream', () => {
    const view: TaskView = {
      task: makeTask('pending-review'),
      decisions: [{ userId: 'UALICE', verdict: 'approve', reason: null, at: later(30) }],
      execution: null,
    };
    const html = page(view);
    expect(html).toContain('<span id="status" class="status status-pending-review">pending-review</span>');
    expect(html).toContain('<td>UALICE</td><td class="verdict-approve">approved</td>');
    expect(html).toContain('2025-03-04 05:06:37 UTC');
    expect(html).toContain('Not started on any host yet.');
    expect(outputPane(html)).toBe('');
    expect(html).toContain('data-empty="No output yet: the task has not started."');
    expect(html).toContain('data-stream="42/stream?expires=1&amp;sig=s&amp;after=0"');
    expect(statusSummary(view).steps).toEqual([]);
  });

  it('shows a task that ended without running, with no stream, and Slack ids as they are', () => {
    const task = makeTask('rejected', { result: { ...makeTask('rejected').result, failureMessage: 'rejected by <@U0999>' } });
    const view: TaskView = { task, decisions: [{ userId: 'U0999', verdict: 'reject', reason: 'not now', at: later(30) }], execution: null };
    const html = page(view, '', null);
    expect(html).not.toContain('data-stream');
    expect(html).not.toContain('<script');
    expect(html).toContain('data-empty="This task never ran, so it has no output."');
    expect(html).toContain('rejected by U0999');
    expect(html).toContain('<td class="verdict-reject">rejected</td><td>not now</td>');
    expect(html).toContain('<dt>Author</dt><dd>U0123</dd>');
    expect(statusSummary(view).terminal).toBe(true);
  });

  it('sends a strict CSP: scripts and the stylesheet by nonce only, nothing external', () => {
    const csp = pageCsp(NONCE);
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain(`script-src 'nonce-${NONCE}'`);
    expect(csp).not.toMatch(/script-src[^;]*unsafe/);
    expect(csp).not.toMatch(/https?:/);
    const html = page(withRun(makeTask('success'), [makeStep(1, 'succeeded')]), 'done\n', null);
    expect(html).toContain(`<style nonce="${NONCE}">`);
    expect(html).not.toMatch(/<(link|img|iframe)\b/);
    expect(html).not.toMatch(/src="http/);
    expect(html).toContain('exit code 0, took 4.3s');
  });

  it('renders error pages without script and escaped', () => {
    const html = renderErrorPage('Link expired', `This link is expired. ${EVIL}`, NONCE);
    expect(html).toContain('This link is expired.');
    expect(html).not.toContain('<script');
    expect(html).toContain('&lt;script&gt;');
  });
});

describe('terminal control strings in output (OSC 8 hyperlinks and friends)', () => {
  const LINK = '\x1b]8;;https://evil.example/approve?task=1\x1b\\Approve here\x1b]8;;\x1b\\';
  const BEL_LINK = '\x1b]8;id=7;javascript:alert(1)\x07run me\x1b]8;;\x07';
  const noLink = (html: string) => {
    expect(html).not.toMatch(/<a[\s>]/);
    expect(html).not.toContain('href');
    expect(html).not.toContain('evil.example');
    expect(html).not.toContain('javascript:');
  };

  it('renders OSC 8 hyperlinks as their text only: no <a>, no URL, nothing to click', () => {
    const html = page(withRun(makeTask('success'), [makeStep(1, 'succeeded')]), `see ${LINK} or ${BEL_LINK}.\n`);
    noLink(html);
    expect(outputPane(html)).toBe('see Approve here or run me.\n');
  });

  it('keeps links inert whatever the chunk boundaries of the stream', () => {
    const text = `a ${LINK} b \x1b[31m${BEL_LINK}\x1b[0m c\n`;
    const whole = createAnsiRenderer().render(text);
    noLink(whole);
    for (let cut = 0; cut <= text.length; cut++) {
      const renderer = createAnsiRenderer();
      const split = renderer.render(text.slice(0, cut)) + renderer.render(text.slice(cut));
      noLink(split);
      expect(split.replace(/<[^>]+>/g, ''), `cut at ${cut}`).toBe(whole.replace(/<[^>]+>/g, ''));
    }
    const oneByOne = createAnsiRenderer();
    const chars = [...text].map((c) => oneByOne.render(c)).join('');
    noLink(chars);
    expect(chars.replace(/<[^>]+>/g, '')).toBe('a Approve here b run me c\n');
  });

  it('drops titles, clipboard writes, DCS/APC/PM/SOS strings and 8-bit forms; colours still work', () => {
    const text =
      'A\x1b]0;pwned title\x07B\x1b]52;c;ZXZpbA==\x1b\\C\x1bPq#0;2;0\x1b\\D\x1b_apc\x1b\\E\x1b^pm\x1b\\F\x1bXsos\x1b\\G\x9d8;;https://evil.example\x9ctext\x9d8;;\x9c\x9b31mred\x1b[0m\n';
    const html = createAnsiRenderer().render(text);
    noLink(html);
    expect(html).toBe('ABCDEFGtext<span class="ansi-red-fg">red</span>\n');
  });

  it('cannot hide later output behind a control string that never ends', () => {
    // Broken by a newline: only the introducer goes, the rest shows.
    expect(createAnsiRenderer().render('x\x1b]8;;https://evil.example\nvisible\n')).toBe('x8;;https://evil.example\nvisible\n');
    // No end in sight for longer than any real one: shown as text once past the limit.
    const renderer = createAnsiRenderer();
    let out = renderer.render(`y\x1b]2;${'z'.repeat(3000)}`);
    expect(out).toBe('y');
    out += renderer.render(`${'z'.repeat(3000)} visible`);
    expect(out).toBe(`y2;${'z'.repeat(6000)} visible`);
    expect(out).not.toContain('\x1b');
  });
});
