import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One embedded Postgres for the whole run; each test file gets its own database cloned from a migrated template.
    globalSetup: ['test/support/globalSetup.ts'],
    pool: 'forks',
    // Most of the suite waits (on sshd, Postgres, timers), not computes: vitest's default of one
    // worker per core but one would run the files one at a time on a 2-core CI machine.
    maxWorkers: 3,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    teardownTimeout: 30_000,
  },
});
