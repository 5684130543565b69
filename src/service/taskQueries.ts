/**
 * What a user may list: their tasks, tasks waiting for their review, what runs now, recent
 * tasks, audit events. Everything here shows only what the user may see (src/domain/access.ts).
 *
 * "Waiting for my review" is a query for the pending tasks of the targets the user reviews.
 * Other lists are a bounded scan: narrow rows (id, author, target, card channel) are read
 * newest first in batches and filtered, until the page is full or SCAN_LIMIT rows were looked
 * at; only then are the page's rows themselves read. A page cut short by the bound comes with a
 * cursor to go on from, so a user who sees little of a large table pages through it without
 * any request reading more than the bound.
 */
import type { ListScope } from '../domain/command.js';
import { taskSubject, type AccessSubject } from '../domain/access.js';
import { runAccessSubject } from '../domain/run.js';
import { getRun } from '../store/runs.js';
import type { Task } from '../domain/task.js';
import type { Db } from '../store/db.js';
import type { EventRow } from '../store/events.js';
import {
  countTasks,
  eventsWithSubjects,
  summariesByIds,
  taskSubjects,
  taskSummaries,
  tasksByIds,
  type EventFilter,
  type EventWithSubject,
  type TaskFilter,
  type TaskSummary,
} from '../store/queries.js';
import type { Access, Viewer } from './access.js';

/** Rows looked at per request, at most. */
export const SCAN_LIMIT = 2000;
const SCAN_BATCH = 250;
/** "Waiting for your review (N)" counts up to this. */
const PENDING_COUNT_CAP = 1000;

export interface Page<T> {
  items: T[];
  /** Where the next page starts (ids below it), or null when nothing more matches. */
  nextCursor: number | null;
}

/** A schedule's access subject (ScheduleQueries.subject): its events are seen by whom it is. */
export type ScheduleSubjectOf = (schedule: NonNullable<EventWithSubject['schedule']>) => AccessSubject;

export class TaskQueries {
  constructor(
    private readonly db: Db,
    private readonly access: Access,
    private readonly scheduleSubject: ScheduleSubjectOf | null = null,
  ) {}

  viewer(userId: string): Viewer {
    return this.access.viewer(userId);
  }

  /** `/task list <scope>` and App Home's lists. */
  async list(scope: ListScope, userId: string, limit: number, viewer = this.viewer(userId)): Promise<{ tasks: TaskSummary[]; more: boolean }> {
    switch (scope) {
      case 'mine':
        return taskSummaries(this.db, { author: userId, limit });
      case 'pending': {
        const { tasks, total } = await this.pendingFor(userId, limit, viewer);
        return { tasks, more: total > tasks.length };
      }
      case 'running':
      case 'all': {
        const page = await this.visibleIds({ ...(scope === 'running' ? { status: ['ready', 'running'] as const } : {}), limit }, viewer);
        return { tasks: await summariesByIds(this.db, page.items), more: page.nextCursor !== null };
      }
    }
  }

  /** Pending tasks `userId` may review (of targets they review, not theirs), oldest first, and how many there are. */
  async pendingFor(userId: string, limit: number, viewer = this.viewer(userId)): Promise<{ tasks: TaskSummary[]; total: number }> {
    const targets = await viewer.reviewedTargets();
    if (targets.length === 0) return { tasks: [], total: 0 };
    const filter = { status: ['pending-review'] as const, targets, notAuthor: userId };
    const [{ tasks }, total] = await Promise.all([taskSummaries(this.db, { ...filter, limit }, 'oldest'), countTasks(this.db, filter, PENDING_COUNT_CAP)]);
    return { tasks, total };
  }

  /** The API's task list: a page of whole tasks the user may see. */
  async visibleTasks(filter: TaskFilter, userId: string): Promise<Page<Task>> {
    const page = await this.visibleIds(filter, this.viewer(userId));
    return { items: await tasksByIds(this.db, page.items), nextCursor: page.nextCursor };
  }

  /** The API's audit trail: events of tasks (and schedules) the user may see; events about neither for admins only. */
  async visibleEvents(filter: EventFilter, userId: string): Promise<Page<EventRow>> {
    const viewer = this.viewer(userId);
    // An event about a run (subject run:<id>) is visible when its run is.
    const runs = new Map<number, Promise<AccessSubject | null>>();
    const runOf = (subject: string | null): Promise<AccessSubject | null> | null => {
      const id = /^run:(\d+)$/.exec(subject ?? '')?.[1];
      if (id === undefined) return null;
      if (!runs.has(Number(id)))
        runs.set(
          Number(id),
          getRun(this.db, Number(id)).then((run) => (run ? runAccessSubject(run) : null)),
        );
      return runs.get(Number(id))!;
    };
    const subjectOf = (row: EventWithSubject): AccessSubject | null =>
      row.task ? taskSubject(row.task) : row.schedule && this.scheduleSubject ? this.scheduleSubject(row.schedule) : null;
    return scanVisible(
      filter,
      (batch) => eventsWithSubjects(this.db, batch),
      async (row) => {
        const run = row.task || row.schedule ? null : runOf(row.event.subject);
        // A run that no longer exists shows nobody its events (not even as an event about nothing).
        const subject = run ? await run : subjectOf(row);
        return { id: row.event.id, visible: run && subject === null ? false : await viewer.maySeeEvent(subject), item: row.event };
      },
    );
  }

  /** Ids of tasks matching `filter` that the viewer may see, newest first. */
  private async visibleIds(filter: TaskFilter, viewer: Viewer): Promise<Page<number>> {
    // Admins see everything: one query, no scan.
    if (await viewer.isAdmin()) {
      const rows = await taskSubjects(this.db, { ...filter, limit: filter.limit + 1 });
      const items = rows.slice(0, filter.limit).map((row) => row.id);
      return { items, nextCursor: rows.length > filter.limit ? items.at(-1)! : null };
    }
    return scanVisible(
      filter,
      (batch) => taskSubjects(this.db, batch),
      async (row) => ({ id: row.id, visible: await viewer.maySee(taskSubject(row)), item: row.id }),
    );
  }
}

/**
 * Reads rows newest first in batches and keeps the visible ones, until `filter.limit` are
 * kept (and one more visible row shows there are more), the rows run out, or SCAN_LIMIT rows
 * were read. The cursor then says where to go on.
 */
export async function scanVisible<F extends { limit: number; beforeId?: number }, R, T>(
  filter: F,
  read: (batch: F) => Promise<R[]>,
  judge: (row: R) => Promise<{ id: number; visible: boolean; item: T }>,
): Promise<Page<T>> {
  const items: T[] = [];
  let lastKept: number | null = null;
  let beforeId = filter.beforeId;
  let scanned = 0;
  for (;;) {
    const size = Math.min(SCAN_BATCH, SCAN_LIMIT - scanned);
    const rows = await read({ ...filter, limit: size, ...(beforeId !== undefined ? { beforeId } : {}) });
    for (const row of rows) {
      const { id, visible, item } = await judge(row);
      if (visible) {
        // One visible row past a full page: there is a next page, starting below the last kept.
        if (items.length === filter.limit) return { items, nextCursor: lastKept };
        items.push(item);
        lastKept = id;
      }
      beforeId = id;
    }
    scanned += rows.length;
    if (rows.length < size) return { items, nextCursor: null };
    // The bound: go on below the last row read (or below the last kept, if the page is full).
    if (scanned >= SCAN_LIMIT) return { items, nextCursor: items.length === filter.limit ? lastKept : (beforeId ?? null) };
  }
}
