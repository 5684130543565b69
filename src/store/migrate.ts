/**
 * Migrations are imported statically instead of read from a folder at run time, so the same
 * list works from TypeScript sources (tests, tsx) and from the compiled dist/.
 */
import type { Knex } from 'knex';
import * as initial from '../../migrations/001_initial.js';
import * as api from '../../migrations/002_api.js';
import * as slackSurface from '../../migrations/003_slack_surface.js';
import * as permalinks from '../../migrations/004_permalinks.js';
import * as listIndexes from '../../migrations/005_list_indexes.js';
import * as recipes from '../../migrations/006_recipes.js';
import * as schedules from '../../migrations/007_schedules.js';
import * as contentVersions from '../../migrations/008_content_versions.js';
import * as pendingReviewIndex from '../../migrations/009_pending_review_index.js';
import * as runnerLiveness from '../../migrations/010_runner_liveness.js';
import * as scheduleReviews from '../../migrations/012_schedule_reviews.js';
import * as runbooks from '../../migrations/013_runbooks.js';
import * as runbookSchedules from '../../migrations/014_runbook_schedules.js';
import * as scheduleSurfaces from '../../migrations/016_schedule_surfaces.js';
import * as runSlack from '../../migrations/018_run_slack.js';
import * as workflowExecutions from '../../migrations/019_workflow_executions.js';
import * as recipeWriters from '../../migrations/020_recipe_writers.js';

interface Migration {
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

const MIGRATIONS: ReadonlyArray<[string, Migration]> = [
  ['001_initial', initial],
  ['002_api', api],
  ['003_slack_surface', slackSurface],
  ['004_permalinks', permalinks],
  ['005_list_indexes', listIndexes],
  ['006_recipes', recipes],
  ['007_schedules', schedules],
  ['008_content_versions', contentVersions],
  ['009_pending_review_index', pendingReviewIndex],
  ['010_runner_liveness', runnerLiveness],
  ['012_schedule_reviews', scheduleReviews],
  ['013_runbooks', runbooks],
  ['014_runbook_schedules', runbookSchedules],
  ['016_schedule_surfaces', scheduleSurfaces],
  ['018_run_slack', runSlack],
  ['019_workflow_executions', workflowExecutions],
  ['020_recipe_writers', recipeWriters],
];

const source: Knex.MigrationSource<[string, Migration]> = {
  getMigrations: async () => [...MIGRATIONS],
  getMigrationName: ([name]) => name,
  getMigration: async ([, migration]) => migration,
};

export async function migrate(db: Knex): Promise<string[]> {
  const [, applied] = (await db.migrate.latest({ migrationSource: source })) as [number, string[]];
  return applied;
}
