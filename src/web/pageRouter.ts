/**
 * The task page behind `log_url`: GET /tasks/:id shows a task and the last PAGE_TAIL_BYTES of its
 * output, updated live over Server-Sent Events from GET /tasks/:id/stream; GET /tasks/:id/log
 * downloads the whole log as text, streamed in bounded batches. Access: a signed, expiring link
 * (the one in the Slack card; it is valid for its task until it expires or its key is revoked),
 * or an API token whose user may see the task (src/domain/access.ts). A task the token's user may
 * not see answers as a task that does not exist. An open stream checks its access again every
 * STREAM_RECHECK_MS and ends when it is gone.
 *
 * Caps: live streams per link (or per token user), per client address and per process; whole-log
 * downloads per link (or user) and per process (TaskFeed).
 */
import { createHash, randomBytes } from 'node:crypto';
import { Router, type Request, type Response } from 'express';
import { sendBytes, STREAM_RECHECK_MS } from '../api/log.js';
import { taskSubject } from '../domain/access.js';
import { isTerminal } from '../domain/lifecycle.js';
import type { Logger } from '../log.js';
import type { Access } from '../service/access.js';
import { RunLog } from '../service/logs.js';
import type { TaskFeed } from '../service/taskFeed.js';
import type { Db } from '../store/db.js';
import { bearerToken } from '../api/router.js';
import { findApiToken } from '../store/apiTokens.js';
import { latestExecution } from '../store/executions.js';
import { getTask } from '../store/tasks.js';
import { loadTaskView } from '../store/taskView.js';
import type { PeopleDirectory } from '../service/people.js';
import { pageCsp, peopleOf, renderErrorPage, renderTaskPage } from './logPage.js';
import type { LinkCheck, LinkSigner } from './signedLinks.js';
import { PAGE_TAIL_BYTES, streamTask } from './taskStream.js';

export interface TaskPageDeps {
  db: Db;
  signer: LinkSigner;
  access: Access;
  log: Logger;
  /** Live pages follow their task through this shared reader, which also caps followers and downloads. */
  feed: TaskFeed;
  /** How often an open stream checks its access again (STREAM_RECHECK_MS). */
  recheckMs?: number;
  /** People's names (users.info, cached, a bounded wait): without it the page shows user ids. */
  people?: PeopleDirectory | null;
}

/** 'hidden': an API token whose user may not see the task, or no such task; answered like a missing task. */
export type PageAccess = LinkCheck | 'hidden';

/**
 * Who may see task `taskId`: a valid link for it, or a live API token whose user may see it. `who`
 * names the holder for the caps: the token's user, or the link itself (task, key version, expiry
 * and signature); any other Authorization header is ignored.
 */
export async function pageAccess(deps: TaskPageDeps, req: Request, taskId: number): Promise<{ check: PageAccess; who: string }> {
  const bearer = bearerToken(req);
  if (bearer) {
    const token = await findApiToken(deps.db, bearer);
    if (!token) return { check: 'invalid', who: '' };
    const task = await getTask(deps.db, taskId);
    const visible = task !== null && (await deps.access.maySee(token.userId, taskSubject(task)));
    return { check: visible ? 'ok' : 'hidden', who: `user:${token.userId}` };
  }
  const link = { expires: queryString(req, 'expires'), sig: queryString(req, 'sig'), kv: queryString(req, 'kv') };
  const who = `link:${createHash('sha256')
    .update(JSON.stringify([taskId, link.kv ?? '', link.expires ?? '', link.sig ?? '']))
    .digest('hex')
    .slice(0, 32)}`;
  return { check: await deps.signer.verify(taskId, link), who };
}

/** Ids are bigserials: anything else is no task (and never reaches SQL). */
function taskIdOf(raw: unknown): number | null {
  if (typeof raw !== 'string' || !/^[1-9]\d{0,14}$/.test(raw)) return null;
  return Number(raw);
}

const queryString = (req: Request, name: string): string | undefined => {
  const value = (req.query as Record<string, unknown>)[name];
  return typeof value === 'string' ? value : undefined;
};

/** The page is a capability (its URL is the permission): keep it out of caches, frames and Referer headers. */
function pageHeaders(res: Response, nonce: string): void {
  res.set({
    'Content-Security-Policy': pageCsp(nonce),
    'Referrer-Policy': 'no-referrer',
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'DENY',
    'Cache-Control': 'no-store',
  });
}

function errorPage(res: Response, nonce: string, status: number, title: string, message: string): void {
  res
    .status(status)
    .type('html')
    .send(renderErrorPage(title, message, nonce));
}

const REFUSED: Readonly<Record<Exclude<LinkCheck, 'ok'>, { title: string; message: string; stream: string }>> = {
  expired: { title: 'Link expired', message: 'This link is expired. Open the task again from its Slack card for a fresh link.', stream: 'link expired' },
  invalid: { title: 'Link not valid', message: 'This link is not valid. Open the task again from its Slack card for a fresh link.', stream: 'link not valid' },
  revoked: { title: 'Link revoked', message: 'This link was revoked: open the task again from Slack for a fresh link.', stream: 'link revoked' },
};

function forbidden(res: Response, nonce: string, access: Exclude<LinkCheck, 'ok'>): void {
  errorPage(res, nonce, 403, REFUSED[access].title, REFUSED[access].message);
}

/** The stream's URL, relative to the page so it works behind a path prefix; it carries the page's own permission. */
function streamUrl(deps: TaskPageDeps, req: Request, taskId: number, after: number): string {
  let expires = queryString(req, 'expires');
  let sig = queryString(req, 'sig');
  let kv = queryString(req, 'kv');
  if (!expires || !sig) {
    // Opened with an API token, which EventSource cannot send: sign a link for the stream instead.
    const signed = new URL(deps.signer.taskUrl(taskId), 'http://localhost');
    expires = signed.searchParams.get('expires') ?? '';
    sig = signed.searchParams.get('sig') ?? '';
    kv = signed.searchParams.get('kv') ?? undefined;
  }
  // `/tasks/7/` (trailing slash) is the same page; its stream is then one level down.
  const base = req.path.endsWith('/') ? '' : `${taskId}/`;
  return `${base}stream?${new URLSearchParams({ expires, sig, ...(kv ? { kv } : {}), after: String(after) }).toString()}`;
}

/** The whole log's URL, relative to the page, with the page's own permission. */
function downloadUrl(req: Request, taskId: number): string | null {
  const expires = queryString(req, 'expires');
  const sig = queryString(req, 'sig');
  const kv = queryString(req, 'kv');
  // Opened with an API token: the download takes the same header, which a plain link cannot carry.
  if (!expires || !sig) return null;
  const base = req.path.endsWith('/') ? '' : `${taskId}/`;
  return `${base}log?${new URLSearchParams({ expires, sig, ...(kv ? { kv } : {}) }).toString()}`;
}

export function taskPageRouter(deps: TaskPageDeps): Router {
  const router = Router();

  router.get('/tasks/:id', async (req: Request, res: Response) => {
    const nonce = randomBytes(16).toString('base64');
    pageHeaders(res, nonce);
    try {
      const taskId = taskIdOf(req.params.id);
      if (taskId === null) return errorPage(res, nonce, 404, 'No such task', 'There is no task with this id.');
      const { check } = await pageAccess(deps, req, taskId);
      if (check === 'hidden') return errorPage(res, nonce, 404, 'No such task', `There is no task #${taskId}.`);
      if (check !== 'ok') return forbidden(res, nonce, check);
      const view = await loadTaskView(deps.db, taskId);
      if (!view) return errorPage(res, nonce, 404, 'No such task', `There is no task #${taskId}.`);
      let output = '';
      let after = 0;
      let omittedBytes = 0;
      if (view.execution) {
        // Read after the view: a task seen terminal has all its output stored by now. Only the
        // tail is read and shown; the stream replays the same tail (ending at `after`) to carry on.
        const tail = await (await RunLog.open(deps.db, view.execution.id)).tail(PAGE_TAIL_BYTES);
        ({ text: output, omittedBytes, lastId: after } = tail);
      }
      const live = isTerminal(view.task.status) ? null : streamUrl(deps, req, taskId, after);
      const download = view.execution ? downloadUrl(req, taskId) : null;
      // Names Slack does not give within a moment are shown as ids: the page never waits on Slack.
      const names = deps.people ? await deps.people.names(peopleOf(view)) : undefined;
      res
        .status(200)
        .type('html')
        .send(renderTaskPage(view, { nonce, streamUrl: live, output, omittedBytes, downloadUrl: download, ...(names ? { names } : {}) }));
    } catch (error) {
      deps.log.error({ err: error }, 'task page failed');
      if (!res.headersSent) errorPage(res, nonce, 500, 'Something went wrong', 'The task could not be shown. Try again in a moment.');
    }
  });

  router.get('/tasks/:id/log', async (req: Request, res: Response) => {
    res.set({ 'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-store', 'Referrer-Policy': 'no-referrer' });
    try {
      const taskId = taskIdOf(req.params.id);
      if (taskId === null) return void res.status(404).type('text').send('no such task');
      const { check, who } = await pageAccess(deps, req, taskId);
      if (check === 'hidden') return void res.status(404).type('text').send('no such task');
      if (check !== 'ok') return void res.status(403).type('text').send(REFUSED[check].stream);
      const execution = await latestExecution(deps.db, taskId);
      const log = execution ? await RunLog.open(deps.db, execution.id) : null;
      const layout = log ? await log.layout({ from: 0 }) : null;
      const size = layout?.size ?? 0;
      const slot = deps.feed.admitDownload(who);
      if (!slot.ok) return void res.status(429).type('text').send(slot.message);
      try {
        res.status(200).type('text/plain; charset=utf-8').set('Content-Disposition', `attachment; filename="task-${taskId}.log"`);
        await sendBytes(res, size, log && layout?.at ? log.bytes(layout.at, 0, size) : null);
      } finally {
        slot.release();
      }
    } catch (error) {
      deps.log.error({ err: error }, 'task log download failed');
      if (!res.headersSent) res.status(500).type('text').send('the download failed');
      else res.destroy();
    }
  });

  router.get('/tasks/:id/stream', async (req: Request, res: Response) => {
    res.set({ 'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-cache' });
    try {
      const taskId = taskIdOf(req.params.id);
      if (taskId === null) return void res.status(404).type('text').send('no such task');
      const { check, who } = await pageAccess(deps, req, taskId);
      if (check === 'hidden') return void res.status(404).type('text').send('no such task');
      if (check !== 'ok') return void res.status(403).type('text').send(REFUSED[check].stream);
      if (!(await deps.db('tasks').where({ id: taskId }).first('id'))) return void res.status(404).type('text').send('no such task');
      if (req.method === 'HEAD') return void res.status(200).type('text/event-stream').end();
      // A reconnecting EventSource says where it got to; the page's `after` is where the page got to.
      const resumeAt = Math.max(Number(queryString(req, 'after') ?? 0) || 0, Number(req.get('last-event-id') ?? 0) || 0);
      const people = deps.people;
      await streamTask(deps.db, deps.log, taskId, resumeAt, res, {
        feed: deps.feed,
        who,
        address: req.socket.remoteAddress ?? 'unknown',
        heartbeatMs: 15_000,
        maxMs: 10 * 60_000,
        // The link may be revoked or expire, the token revoked, its user's access withdrawn.
        stillAllowed: async () => (await pageAccess(deps, req, taskId)).check === 'ok',
        recheckMs: deps.recheckMs ?? STREAM_RECHECK_MS,
        ...(people ? { names: (ids: string[]) => people.names(ids) } : {}),
      });
    } catch (error) {
      deps.log.error({ err: error }, 'task stream failed');
      if (!res.headersSent) res.status(500).type('text').send('the stream failed');
      else res.end();
    }
  });
  return router;
}
