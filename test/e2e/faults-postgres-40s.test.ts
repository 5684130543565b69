/**
 * Fault: the Postgres server crashes while ten tasks run on two replicas and is back 40 s later,
 * four times the lease. Whichever replica reconnects first must not fail the other's healthy
 * runs; results are retried until stored; every task ends with its real result.
 */
import { afterAll, beforeAll, describe, it } from 'vitest';
import { crashWhileRunning, startCrashSetup, type CrashSetup } from '../support/postgresCrash.js';

describe('fault: Postgres crashed for 40 s', () => {
  let setup: CrashSetup;
  beforeAll(async () => {
    setup = await startCrashSetup();
  }, 120_000);
  afterAll(async () => {
    await setup?.stop();
  }, 60_000);

  it("ends every task with its real result, and no replica fails the other's runs", async () => {
    // Scripts of 5-50 s: most end during the outage, the last ones after it.
    await crashWhileRunning(setup, 40_000, [5, 10, 15, 20, 25, 30, 35, 40, 48, 55]);
  }, 240_000);
});
