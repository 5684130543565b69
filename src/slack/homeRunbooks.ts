/**
 * What App Home shows of runbooks, per user: the runbooks they can start (those started by hand:
 * `manual` in triggeredBy), and the runs waiting for them: a run's review where they review one
 * of its targets (not their own run), an approval step that names them (not their own run, not
 * decided by them yet), an input step they are asked to fill in. Being asked is what lets them
 * see the run (RunService.isAskedOf / isReviewerOf); nobody else's Home shows it.
 *
 * Reads are bounded: at most SCAN_RUNS of the newest runs waiting on anybody (pending review, or
 * running with a paused step) are looked at per redraw.
 */
import type { Run } from '../domain/run.js';
import type { PlannedStep } from '../domain/runbook/plan.js';
import { isReviewer } from '../domain/review.js';
import type { Db } from '../store/db.js';
import { getRun } from '../store/runs.js';
import type { RunbookService } from '../service/runbooks.js';
import type { RunService } from '../service/runs.js';
import type { HomeMyRun, HomeRunbook, HomeWaitingRun } from './render/homeRunbooks.js';
import { safePermalink } from './render/reviewRequest.js';

/** Runs waiting on anybody looked at per redraw, newest first. */
const SCAN_RUNS = 200;

export class HomeRunbooks {
  constructor(
    private readonly db: Db,
    private readonly runbooks: RunbookService,
    private readonly runs: RunService,
  ) {}

  /** The runbooks anyone may start by hand, by reference, and how many there are. */
  async startable(limit: number): Promise<{ runbooks: HomeRunbook[]; total: number }> {
    const all = (await this.runbooks.list()).filter((e) => e.runbook.triggeredBy.some((t) => t.kind === 'manual'));
    return {
      runbooks: all.slice(0, limit).map((e) => ({
        reference: e.runbook.reference,
        name: e.runbook.name,
        description: e.runbook.description,
        steps: e.runbook.steps.flat().length,
        hash: e.hash,
      })),
      total: all.length,
    };
  }

  /** The runs waiting for `userId` (oldest first, as reviews are), the first `limit` of them, and how many in all. */
  async waitingFor(userId: string, limit: number): Promise<{ runs: HomeWaitingRun[]; total: number }> {
    const ids = (await this.db('runs')
      .where((q) => {
        q.where('status', 'pending-review').orWhere((running) => {
          running.where('status', 'running').whereExists(this.db('run_steps').whereRaw('run_steps.run_id = runs.id').where('phase', 'paused'));
        });
      })
      .orderBy('id', 'desc')
      .limit(SCAN_RUNS)
      .pluck('id')) as number[];
    if (ids.length === 0) return { runs: [], total: 0 };
    // Three reads for the whole scan: the runs (what Home needs of them: their plan's targets and
    // its approval and input steps, never its scripts), their paused steps, and the user's
    // decisions on those steps.
    const runs = (
      (await this.db('runs').whereIn('id', ids).orderBy('id').select(
        'id',
        'status',
        'creator',
        'reference',
        'message',
        'content_version',
        'card_permalink',
        'review_permalink',
        this.db.raw("plan->'targets' AS targets"),
        // `\\?` is knex's escape for the jsonpath filter's literal `?`.
        this.db.raw(`jsonb_path_query_array(plan, '$.groups[*][*] \\? (@.kind == "approval" || @.kind == "input")') AS asked_steps`),
      )) as ScannedRunRow[]
    ).map(toScannedRun);
    const paused = (await this.db('run_steps')
      .whereIn('run_id', ids)
      .where('phase', 'paused')
      .orderBy('id')
      .select('id', 'run_id', 'step_id', 'message_permalink')) as PausedStepRow[];
    const decidedSteps = new Set(
      (
        (await this.db('run_step_decisions')
          .whereIn(
            'run_step_id',
            paused.map((step) => step.id),
          )
          .where({ user_id: userId })
          .distinct('run_step_id')) as Array<{ run_step_id: number }>
      ).map((d) => d.run_step_id),
    );
    // A reviewer who approved the run as it is now has nothing more to do for it.
    const decided = (await this.db('run_reviews')
      .whereIn(
        'run_id',
        runs.filter((r) => r.status === 'pending-review').map((r) => r.id),
      )
      .where({ user_id: userId })
      .select('run_id', 'content_version')) as Array<{ run_id: number; content_version: string }>;
    const waiting: HomeWaitingRun[] = [];
    for (const run of runs) {
      if (run.status === 'pending-review' && decided.some((d) => d.run_id === run.id && d.content_version === run.contentVersion)) continue;
      waiting.push(
        ...(await this.askedOf(
          run,
          paused.filter((step) => step.run_id === run.id),
          decidedSteps,
          userId,
        )),
      );
    }
    return { runs: waiting.slice(0, limit), total: waiting.length };
  }

  /** The user's own newest runs (a creator always sees their runs). */
  async mine(userId: string, limit: number): Promise<HomeMyRun[]> {
    const rows = (await this.db('runs')
      .where({ creator: userId })
      .orderBy('id', 'desc')
      .limit(limit)
      .select('id', 'reference', 'status', 'created_at', 'card_permalink')) as Array<{
      id: number;
      reference: string;
      status: Run['status'];
      created_at: Date;
      card_permalink: string | null;
    }>;
    return rows.map((row) => ({
      runId: row.id,
      reference: row.reference,
      status: row.status,
      createdAt: row.created_at,
      cardPermalink: safePermalink(row.card_permalink),
    }));
  }

  /** Of `users`, those whose Home a change of this run concerns: its creator, its reviewers, those its steps ask. */
  async concerned(runId: number, users: readonly string[]): Promise<string[]> {
    const run = await getRun(this.db, runId);
    if (!run) return [];
    const policy = await this.runs.resolvedPolicy(run);
    const concerned: string[] = [];
    for (const userId of users) {
      if (run.creator === userId || isReviewer(policy, userId) || (await this.runs.isAskedOf(run, userId))) concerned.push(userId);
    }
    return concerned;
  }

  private async askedOf(run: ScannedRun, paused: readonly PausedStepRow[], decidedSteps: ReadonlySet<number>, userId: string): Promise<HomeWaitingRun[]> {
    // The run card's, review request's or step request's link, where Slack gave one.
    const base = { runId: run.id, reference: run.reference, creator: run.creator, message: run.message, cardPermalink: run.cardPermalink, permalink: null };
    if (run.status === 'pending-review') {
      if (run.creator === userId || !(await this.runs.isReviewerOf({ targets: run.targets }, userId))) return [];
      return [{ ...base, kind: 'review', stepId: null, permalink: run.reviewPermalink }];
    }
    if (run.status !== 'running') return [];
    const found: HomeWaitingRun[] = [];
    for (const step of paused) {
      const planned = run.askedSteps.find((s) => s.id === step.step_id);
      if (!planned) continue;
      const permalink = safePermalink(step.message_permalink);
      if (planned.kind === 'approval' && (await this.runs.mayDecideStep(run, planned, userId))) {
        // Decided already (one of several approvals): nothing more is asked of them.
        if (decidedSteps.has(step.id)) continue;
        found.push({ ...base, kind: 'approval', stepId: step.step_id, permalink });
      } else if (planned.kind === 'input' && (await this.runs.mayGiveInput(run, planned, userId))) {
        found.push({ ...base, kind: 'input', stepId: step.step_id, permalink });
      }
    }
    return found;
  }
}

/** What Home reads of a run it scans: no script, no arguments. */
interface ScannedRunRow {
  id: number;
  status: Run['status'];
  creator: string;
  reference: string;
  message: string | null;
  content_version: string;
  card_permalink: string | null;
  review_permalink: string | null;
  targets: string[];
  asked_steps: PlannedStep[];
}

interface ScannedRun {
  id: number;
  status: Run['status'];
  creator: string;
  reference: string;
  message: string | null;
  contentVersion: string;
  cardPermalink: string | null;
  reviewPermalink: string | null;
  targets: string[];
  /** The plan's approval and input steps (a paused step is one of them). */
  askedSteps: PlannedStep[];
}

interface PausedStepRow {
  id: number;
  run_id: number;
  step_id: string;
  message_permalink: string | null;
}

function toScannedRun(row: ScannedRunRow): ScannedRun {
  return {
    id: row.id,
    status: row.status,
    creator: row.creator,
    reference: row.reference,
    message: row.message,
    contentVersion: row.content_version,
    cardPermalink: safePermalink(row.card_permalink),
    reviewPermalink: safePermalink(row.review_permalink),
    targets: row.targets,
    askedSteps: row.asked_steps,
  };
}
