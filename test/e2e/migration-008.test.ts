/**
 * Migration 008 on a database that already has tasks, reviews and imported recipes (real
 * Postgres): every task gets its content version, every review the version it decided on,
 * every recipe an owner and a content hash, and the columns then refuse NULLs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as migration008 from '../../migrations/008_content_versions.js';
import * as migration013 from '../../migrations/013_runbooks.js';
import * as migration018 from '../../migrations/018_run_slack.js';
import * as migration019 from '../../migrations/019_workflow_executions.js';
import * as migration020 from '../../migrations/020_recipe_writers.js';
import { contentVersion, recipeContentHash } from '../../src/domain/contentVersion.js';
import { parseRecipeJson, recipeDefinition } from '../../src/domain/recipe.js';
import { CONTENT_KEY } from '../../src/store/contentKey.js';
import { migrate } from '../../src/store/migrate.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

describe('migration 008 on existing data', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase();
    // Back to 007, as a database deployed before this change is (013 renamed recipes to runbooks,
    // 018 and 019 hang tables off its runs: undone first, newest first).
    await migration019.down(database.db);
    await migration018.down(database.db);
    await migration013.down(database.db);
    await migration008.down(database.db);
    await database.db('knex_migrations').whereIn('name', ['008_content_versions', '013_runbooks', '018_run_slack', '019_workflow_executions']).delete();
  });
  afterAll(async () => {
    await database.drop();
  });

  it('backfills content versions, review versions, recipe owners and hashes', async () => {
    const db = database.db;
    const args = [
      { name: 'token', kind: 'fixed', value: 'legacy-secret' },
      { name: 'region', kind: 'options', value: 'eu' },
    ];
    const [plain] = await db('tasks')
      .insert({ status: 'pending-review', author: 'UA', target: 'web', type: 'bash', script: 'uptime', message: 'why', source: 'slack' })
      .returning('id');
    const [withArgs] = await db('tasks')
      .insert({
        status: 'approved',
        author: 'UA',
        target: 'web',
        type: 'sh',
        script: 'echo "$1"',
        message: null,
        source: 'webhook',
        arguments: JSON.stringify(args),
      })
      .returning('id');
    await db('reviews').insert({ task_id: withArgs.id, user_id: 'UB', verdict: 'approve' });
    const definition = {
      format: 'countersign.recipe/v1',
      name: 'legacy',
      target: 'web',
      script: 'echo "$1"',
      arguments: [{ name: 'token', kind: 'fixed', value: 'legacy-secret' }],
    };
    await db('recipes').insert({ name: 'legacy', definition: JSON.stringify(definition), imported_by: 'UIMPORTER' });

    expect(await migrate(db)).toEqual(['008_content_versions', '013_runbooks', '018_run_slack', '019_workflow_executions']);

    const key = (await db('settings').where({ key: CONTENT_KEY }).first('value')).value as string;
    expect(key.length).toBeGreaterThanOrEqual(40);
    const tasks = await db('tasks').orderBy('id').select('id', 'content_version', 'recipe_name', 'recipe_hash');
    expect(tasks).toEqual([
      {
        id: plain.id,
        content_version: contentVersion({ target: 'web', type: 'bash', script: 'uptime', message: 'why', arguments: null, recipe: null }, key),
        recipe_name: null,
        recipe_hash: null,
      },
      {
        id: withArgs.id,
        content_version: contentVersion({ target: 'web', type: 'sh', script: 'echo "$1"', message: null, arguments: args as never, recipe: null }, key),
        recipe_name: null,
        recipe_hash: null,
      },
    ]);
    expect(await db('reviews').where({ task_id: withArgs.id }).first('content_version')).toEqual({ content_version: tasks[1].content_version });
    const parsed = parseRecipeJson(definition);
    if (!parsed.ok) throw new Error('fixture recipe does not parse');
    // Migration 013 moved the row to `runbooks`, keeping owner, editors and hash.
    expect(await db('runbooks').where({ reference: 'legacy' }).first('owner', 'editors', 'content_hash')).toEqual({
      owner: 'UIMPORTER',
      editors: null,
      content_hash: recipeContentHash(recipeDefinition(parsed.recipe), key),
    });

    // From now on every row names its version.
    await expect(db('tasks').insert({ status: 'created', author: 'UA', target: 'web', type: 'bash', script: 'x', source: 'api' })).rejects.toThrow(
      /content_version/,
    );
    await expect(db('reviews').insert({ task_id: plain.id, user_id: 'UC', verdict: 'approve' })).rejects.toThrow(/content_version/);
    expect(await db('events').columnInfo()).toHaveProperty('subject');
  });
  it('migration 020 names who imported the recipe version of tasks started before it', async () => {
    const db = database.db;
    await migration020.down(db);
    const { content_hash: hash } = await db('runbooks').where({ reference: 'legacy' }).first('content_hash');
    const [current, replaced] = await db('tasks').orderBy('id').limit(2).pluck('id');
    await db('tasks').where({ id: current }).update({ recipe_name: 'legacy', recipe_hash: hash });
    await db('tasks')
      .where({ id: replaced })
      .update({ recipe_name: 'legacy', recipe_hash: 'f'.repeat(64) });
    await migration020.up(db);
    // The version still stored names its importer; one replaced since is nobody's known version.
    expect(await db('tasks').whereIn('id', [current, replaced]).orderBy('id').pluck('recipe_writer')).toEqual(['UIMPORTER', null]);
  });
});
