/**
 * Who may see which schedule, and the lists built on it (the API, `/task schedule list`, App
 * Home). A schedule is seen by whom its target's tasks would be (src/domain/access.ts): its
 * author, the target's reviewers and viewers, admins, and members of the channel its results go
 * to. Everyone else is told what they would be told about a schedule that does not exist.
 *
 * Lists read narrow rows newest first and filter them, bounded like the task lists
 * (scanVisible); "waiting for my review" selects the pending schedules of the targets the user
 * reviews in SQL; App Home reads script heads, never whole scripts.
 */
import type { Config } from '../config/config.js';
import type { AccessSubject } from '../domain/access.js';
import type { Schedule } from '../domain/schedule.js';
import type { Db } from '../store/db.js';
import {
  countSchedules,
  getSchedule,
  scheduleSubjects,
  scheduleSummaries,
  schedulesByIds,
  type ScheduleFilter,
  type ScheduleSummary,
} from '../store/schedules.js';
import type { Access, Viewer } from './access.js';
import { scanVisible, type Page } from './taskQueries.js';

/** "Schedules waiting for your review (N)" counts up to this. */
const PENDING_COUNT_CAP = 1000;

/** A channel id (not a `#name`): only a channel's id can be asked for its members. */
const CHANNEL_ID = /^[CG][A-Z0-9]{2,}$/;

export class ScheduleQueries {
  constructor(
    private readonly db: Db,
    private readonly config: Config,
    private readonly access: Access,
  ) {}

  viewer(userId: string): Viewer {
    return this.access.viewer(userId);
  }

  /** The schedule as an access subject: its channel is where its results go. */
  subject(schedule: Pick<Schedule, 'author' | 'target' | 'channelId' | 'originChannel'>): AccessSubject {
    const channel = schedule.channelId ?? this.config.targets.get(schedule.target)?.channel ?? schedule.originChannel;
    return { author: schedule.author, targets: [schedule.target], channelId: channel && CHANNEL_ID.test(channel) ? channel : null };
  }

  maySee(schedule: Pick<Schedule, 'author' | 'target' | 'channelId' | 'originChannel'>, viewer: Viewer): Promise<boolean> {
    return viewer.maySee(this.subject(schedule));
  }

  /**
   * May this user send a schedule's results to `channel`? Its members may then see the schedule,
   * so only a channel the user is in (or the target's own) may be named. A `#name` grants nothing
   * (only an id can be asked for its members), so it is allowed.
   */
  async mayNameChannel(channel: string, targetName: string, viewer: Viewer): Promise<boolean> {
    if (!CHANNEL_ID.test(channel) || channel === this.config.targets.get(targetName)?.channel) return true;
    return viewer.channelMember(channel);
  }

  /** The schedule, when it exists and the viewer may see it; null otherwise (the two look alike). */
  async visible(id: number, viewer: Viewer): Promise<Schedule | null> {
    const schedule = await getSchedule(this.db, id);
    return schedule && (await this.maySee(schedule, viewer)) ? schedule : null;
  }

  /** A page of whole schedules matching `filter` that the viewer may see, newest first. */
  async page(filter: ScheduleFilter, viewer: Viewer): Promise<Page<Schedule>> {
    let ids: Page<number>;
    if (await viewer.isAdmin()) {
      // Admins see everything: one query, no scan.
      const rows = await scheduleSubjects(this.db, { ...filter, limit: filter.limit + 1 });
      const items = rows.slice(0, filter.limit).map((row) => row.id);
      ids = { items, nextCursor: rows.length > filter.limit ? items.at(-1)! : null };
    } else {
      ids = await scanVisible(
        filter,
        (batch) => scheduleSubjects(this.db, batch),
        async (row) => ({ id: row.id, visible: await this.maySee(row, viewer), item: row.id }),
      );
    }
    return { items: await schedulesByIds(this.db, ids.items), nextCursor: ids.nextCursor };
  }

  /** The user's own schedules (not removed), newest first. */
  mine(userId: string, limit: number): Promise<{ schedules: ScheduleSummary[]; more: boolean }> {
    return scheduleSummaries(this.db, { author: userId, limit });
  }

  /** Pending schedules `userId` may review (of targets they review, not theirs), oldest first, and how many there are. */
  async pendingFor(userId: string, limit: number, viewer = this.viewer(userId)): Promise<{ schedules: ScheduleSummary[]; total: number }> {
    const targets = await viewer.reviewedTargets();
    if (targets.length === 0) return { schedules: [], total: 0 };
    const filter = { status: ['pending-review'] as const, targets, notAuthor: userId };
    const [{ schedules }, total] = await Promise.all([
      scheduleSummaries(this.db, { ...filter, limit }, 'oldest'),
      countSchedules(this.db, filter, PENDING_COUNT_CAP),
    ]);
    return { schedules, total };
  }
}
