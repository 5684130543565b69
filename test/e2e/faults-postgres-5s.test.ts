/**
 * Fault: the Postgres server crashes (every server process SIGKILLed) while ten tasks run on two
 * replicas, and is back 5 s later. Results that could not be stored meanwhile are retried until
 * they are; nothing is run twice, lost, misreported or killed.
 */
import { afterAll, beforeAll, describe, it } from 'vitest';
import { crashWhileRunning, startCrashSetup, type CrashSetup } from '../support/postgresCrash.js';

describe('fault: Postgres crashed for 5 s', () => {
  let setup: CrashSetup;
  beforeAll(async () => {
    setup = await startCrashSetup();
  }, 120_000);
  afterAll(async () => {
    await setup?.stop();
  }, 60_000);

  it('ends every task with its real result', async () => {
    // Scripts of 3-12 s: the first ones end while the server is down.
    await crashWhileRunning(setup, 5_000, [3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  }, 180_000);
});
