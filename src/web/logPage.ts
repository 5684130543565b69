/**
 * The task page as HTML, pure: a TaskView and the output text in, a document out. Everything a
 * task carries (script, message, names, output) is user text and goes through escapeHtml or
 * ansi_up's escaping; nothing here reads the database or the clock unless given `now`.
 *
 * The page has three parts the live stream can replace: `head` (message and script, which can be
 * edited before review), `live` (status, result, reviews, hosts) and the output pane, which only
 * grows.
 */
import { formatDuration } from '../domain/duration.js';
import { isTerminal, type TaskStatus } from '../domain/lifecycle.js';
import { hostLabel } from '../domain/plan.js';
import type { ExecutionStep, Task, TaskView } from '../domain/task.js';
import { ANSI_CSS, createAnsiRenderer } from './ansi.js';
import { PAGE_SCRIPT } from './pageScript.js';

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);
}

/**
 * Scripts only with this page's nonce; styles from the nonce'd sheet, plus style attributes,
 * which ansi_up needs for bold and 256/true colours (they cannot run code, and with every fetch
 * blocked by default-src 'none' they cannot load anything). The stream is same-origin.
 */
export function pageCsp(nonce: string): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src 'nonce-${nonce}'`,
    `style-src-elem 'nonce-${nonce}'`,
    "style-src-attr 'unsafe-inline'",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** People's display names by user id (src/service/people.ts); an id missing here is shown as the id. */
export type Names = ReadonlyMap<string, string>;
const NO_NAMES: Names = new Map();

/** A person as the page shows them: their name, with the id on hover; the id when no name is known. */
function person(userId: string, names: Names): string {
  const name = names.get(userId);
  return name !== undefined && name !== userId ? `<span class="person" title="${escapeHtml(userId)}">${escapeHtml(name)}</span>` : escapeHtml(userId);
}

/** Stored messages with Slack mentions (`killed by <@U0123>`), escaped, each mention shown as the person. */
const withPeople = (text: string, names: Names): string => escapeHtml(text).replace(/&lt;@([UW][A-Z0-9]+)&gt;/g, (_whole, id: string) => person(id, names));

const MENTION = /<@([UW][A-Z0-9]+)>/g;

/** Everyone the page names: the author, the reviewers, who asked for a stop, and anyone mentioned in a failure. */
export function peopleOf(view: TaskView): string[] {
  const ids = new Set<string>([view.task.author, ...view.decisions.map((d) => d.userId)]);
  if (view.execution?.stopRequestedBy) ids.add(view.execution.stopRequestedBy);
  for (const text of [view.task.result.failureMessage, ...(view.execution?.steps ?? []).map((s) => s.failureMessage)]) {
    for (const match of (text ?? '').matchAll(MENTION)) ids.add(match[1]!);
  }
  return [...ids];
}

const when = (date: Date | null): string =>
  date
    ? `<time datetime="${date.toISOString()}">${date
        .toISOString()
        .replace('T', ' ')
        .replace(/\.\d+Z$/, ' UTC')}</time>`
    : '';

const stepDuration = (step: ExecutionStep, now: Date): string => {
  if (!step.startedAt) return '';
  const end = step.finishedAt ?? now;
  return formatDuration(end.getTime() - step.startedAt.getTime()) + (step.finishedAt ? '' : ' so far');
};

function statusBadge(status: TaskStatus): string {
  return `<span id="status" class="status status-${status}">${escapeHtml(status)}</span>`;
}

/** Message, script and who asked for what where. */
export function renderHead(task: Task, names: Names = NO_NAMES): string {
  const message = task.message ? `<p class="message">${escapeHtml(task.message)}</p>` : '<p class="message muted">No message.</p>';
  return `${message}
<dl class="facts">
<dt>Target</dt><dd>${escapeHtml(task.target)}</dd>
<dt>Author</dt><dd>${person(task.author, names)}</dd>
<dt>Type</dt><dd>${escapeHtml(task.type)}</dd>
<dt>Source</dt><dd>${escapeHtml(task.source)}</dd>
<dt>Created</dt><dd>${when(task.createdAt)}</dd>
</dl>
<h2>Script</h2>
<pre class="script">${escapeHtml(task.script)}</pre>`;
}

function resultLine(task: Task, names: Names): string {
  if (!isTerminal(task.status)) return '';
  const r = task.result;
  const parts: string[] = [];
  if (r.exitCode !== null) parts.push(`exit code ${r.exitCode}`);
  if (r.signal) parts.push(`signal ${escapeHtml(r.signal)}`);
  if (r.durationMs !== null) parts.push(`took ${formatDuration(r.durationMs)}`);
  const failure = r.failureMessage ? `<p class="failure">${withPeople(r.failureMessage, names)}</p>` : '';
  return (parts.length ? `<p class="result">${parts.join(', ')}</p>` : '') + failure;
}

function decisionsTable(view: TaskView, names: Names): string {
  if (view.decisions.length === 0) return '<p class="muted">No review decisions.</p>';
  const rows = view.decisions
    .map(
      (d) =>
        `<tr><td>${person(d.userId, names)}</td><td class="verdict-${d.verdict}">${d.verdict === 'approve' ? 'approved' : 'rejected'}</td><td>${escapeHtml(d.reason ?? '')}</td><td>${when(d.at)}</td></tr>`,
    )
    .join('\n');
  return `<table><thead><tr><th>Who</th><th>Verdict</th><th>Reason</th><th>When</th></tr></thead><tbody>\n${rows}\n</tbody></table>`;
}

function stepsTable(view: TaskView, now: Date, names: Names): string {
  const steps = view.execution?.steps ?? [];
  if (steps.length === 0) return `<p class="muted">${view.execution ? 'No hosts in this run.' : 'Not started on any host yet.'}</p>`;
  const batches = new Set(steps.map((s) => s.groupIndex)).size > 1;
  const counts = new Map<string, number>();
  for (const step of steps) counts.set(step.phase, (counts.get(step.phase) ?? 0) + 1);
  const tally = [...counts].map(([phase, n]) => `${n} ${phase}`).join(', ');
  const rows = steps
    .map(
      (s) =>
        `<tr><td>${escapeHtml(hostLabel(s))}</td>${batches ? `<td>${s.groupIndex + 1}</td>` : ''}<td class="phase phase-${s.phase}">${s.phase}</td><td>${s.exitCode ?? ''}${s.signal ? ` (${escapeHtml(s.signal)})` : ''}</td><td>${withPeople(s.failureMessage ?? '', names)}</td><td>${stepDuration(s, now)}</td></tr>`,
    )
    .join('\n');
  return `<p class="tally">${steps.length} host${steps.length === 1 ? '' : 's'}: ${tally}</p>
<table><thead><tr><th>Host</th>${batches ? '<th>Batch</th>' : ''}<th>Phase</th><th>Exit</th><th>Failure</th><th>Duration</th></tr></thead><tbody>
${rows}
</tbody></table>`;
}

/** The parts that change while a task moves: status, result, reviews and hosts. */
export function renderLive(view: TaskView, now = new Date(), names: Names = NO_NAMES): string {
  const { task, execution } = view;
  const stop =
    execution?.desiredPhase === 'stopped' && execution.stopRequestedBy
      ? `<p class="stop">Stop requested by ${person(execution.stopRequestedBy, names)}</p>`
      : '';
  return `<p>Status: ${statusBadge(task.status)} <span class="muted">since ${when(task.statusChangedAt)}</span></p>
${stop}${resultLine(task, names)}
<h2>Reviews</h2>
${decisionsTable(view, names)}
<h2>Hosts</h2>
${stepsTable(view, now, names)}`;
}

/** What the output pane says while it is empty. */
export function emptyOutputNote(view: TaskView): string {
  if (view.execution) return isTerminal(view.task.status) ? 'The run printed nothing.' : 'No output yet.';
  return isTerminal(view.task.status) ? 'This task never ran, so it has no output.' : 'No output yet: the task has not started.';
}

export interface StatusSummary {
  status: TaskStatus;
  terminal: boolean;
  viewVersion: number;
  steps: Array<{ host: string; phase: string; exitCode: number | null; failureMessage: string | null; durationMs: number | null }>;
  emptyNote: string;
  /** renderLive's HTML, so the page need not know how to draw a task. */
  live: string;
}

/** The `status` event of the live stream. */
export function statusSummary(view: TaskView, now = new Date(), names: Names = NO_NAMES): StatusSummary {
  return {
    status: view.task.status,
    terminal: isTerminal(view.task.status),
    viewVersion: view.task.viewVersion,
    steps: (view.execution?.steps ?? []).map((s) => ({
      host: hostLabel(s),
      phase: s.phase,
      exitCode: s.exitCode,
      failureMessage: s.failureMessage,
      durationMs: s.startedAt && s.finishedAt ? s.finishedAt.getTime() - s.startedAt.getTime() : null,
    })),
    emptyNote: emptyOutputNote(view),
    live: renderLive(view, now, names),
  };
}

export interface PageOptions {
  nonce: string;
  /** The stream's URL (relative, with the link's signature), or null when nothing can change any more. */
  streamUrl: string | null;
  /** The stored output so far, ANSI codes included (LogAssembler's text): its last part when `omittedBytes` > 0. */
  output: string;
  /** Bytes of output before `output` that the page leaves out (they are in the download). */
  omittedBytes?: number;
  /** Where the whole log can be downloaded as text (relative, with the link's signature). */
  downloadUrl?: string | null;
  now?: Date;
  /** People's names (peopleOf the view); ids are shown for those missing. */
  names?: Names;
}

/** "12.3 MB", "512 KB", "900 bytes". */
function sizeText(bytes: number): string {
  if (bytes >= 1_000_000) return `${(bytes / 1_000_000).toFixed(1)} MB`;
  if (bytes >= 1_000) return `${Math.round(bytes / 1_000)} KB`;
  return `${bytes} bytes`;
}

export function renderTaskPage(view: TaskView, options: PageOptions): string {
  const { task } = view;
  const stream = options.streamUrl ? ` data-stream="${escapeHtml(options.streamUrl)}"` : '';
  const live = options.streamUrl ? '<span id="live-note" class="muted">live</span>' : '';
  return htmlDocument(
    `Task #${task.id} (${task.status})`,
    options.nonce,
    `<main id="task"${stream}>
<h1>Task #${task.id} on ${escapeHtml(task.target)}</h1>
<section id="head">
${renderHead(task, options.names)}
</section>
<section id="live">
${renderLive(view, options.now, options.names)}
</section>
<h2>Output ${live}${options.downloadUrl ? ` <a id="download" class="muted" href="${escapeHtml(options.downloadUrl)}" download>download the whole log</a>` : ''}</h2>
${options.omittedBytes ? `<p id="omitted" class="muted">The first ${sizeText(options.omittedBytes)} of output are not shown here${options.downloadUrl ? ': download the whole log to read them' : ''}.</p>\n` : ''}<pre id="output" class="output" data-empty="${escapeHtml(emptyOutputNote(view))}">${createAnsiRenderer().render(options.output)}</pre>
</main>`,
    // Nothing to follow on a finished task: no script at all.
    options.streamUrl !== null,
  );
}

/** The 403 and 404 pages: one sentence that says what is wrong. */
export function renderErrorPage(title: string, message: string, nonce: string): string {
  return htmlDocument(title, nonce, `<main><h1>${escapeHtml(title)}</h1><p>${escapeHtml(message)}</p></main>`, false);
}

const CSS = `
body{font:15px/1.5 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d1f23}
main{max-width:72rem;margin:0 auto;padding:1rem 1.5rem 3rem}
h1{font-size:1.4rem;margin:.5rem 0}h2{font-size:1.05rem;margin:1.4rem 0 .4rem}
.muted{color:#5c6370}
.message{font-size:1.05rem;white-space:pre-wrap}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:.1rem 1rem;margin:.5rem 0}
.facts dt{font-weight:600}.facts dd{margin:0}
pre{font:13px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;white-space:pre-wrap;overflow-wrap:anywhere;margin:0}
.script{background:#fff;border:1px solid #d5d9e0;padding:.6rem .8rem;max-height:24rem;overflow:auto}
.output{background:#15171c;color:#d7dae0;padding:.8rem 1rem;min-height:6rem;max-height:75vh;overflow:auto;border-radius:4px}
.output:empty::before{content:attr(data-empty);color:#8b929e}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:.25rem .6rem;border-bottom:1px solid #e2e5ea;vertical-align:top}
th{font-weight:600;background:#eef0f3}
.status{display:inline-block;padding:0 .5rem;border-radius:3px;font-weight:600;border:1px solid currentColor}
.status-success,.phase-succeeded,.verdict-approve{color:#17753a}
.status-failure,.status-killed,.status-rejected,.phase-failed,.phase-killed,.verdict-reject{color:#b42318}
.status-running,.status-ready,.phase-running{color:#1d5fbf}
.status-pending-review,.status-approved,.status-created{color:#8a5a00}
.status-cancelled,.phase-skipped,.phase-pending{color:#5c6370}
.failure{color:#b42318;white-space:pre-wrap}
.stop{color:#b42318;font-weight:600}
.person{border-bottom:1px dotted #8b929e}
${ANSI_CSS}
`;

function htmlDocument(title: string, nonce: string, body: string, withScript = true): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)} · countersign</title>
<style nonce="${nonce}">${CSS}</style>
</head>
<body>
${body}
${withScript ? `<script nonce="${nonce}">${PAGE_SCRIPT}</script>` : ''}
</body>
</html>
`;
}
