// Which requests are ours (src/domain/workspace.ts), and the guard's knowledge of our workspace
// (src/slack/workspaceGuard.ts): configured ids win over auth.test, and while neither is known
// every request is refused, then auth.test is asked again.
import { describe, expect, it } from 'vitest';
import { foreignOrigin } from '../../src/domain/workspace.js';
import { createLogger } from '../../src/log.js';
import { WorkspaceGuard } from '../../src/slack/workspaceGuard.js';

const log = createLogger('silent');
const OURS = { teamId: 'T0OURS', enterpriseId: null };
const IN_ORG = { teamId: 'T0OURS', enterpriseId: 'E0ORG' };

describe('foreignOrigin', () => {
  it('accepts our workspace, with or without the acting user named', () => {
    expect(foreignOrigin(OURS, { teamId: 'T0OURS', enterpriseId: null, userTeamId: null })).toBeNull();
    expect(foreignOrigin(OURS, { teamId: 'T0OURS', enterpriseId: null, userTeamId: 'T0OURS' })).toBeNull();
    expect(foreignOrigin(IN_ORG, { teamId: 'T0OURS', enterpriseId: 'E0ORG', userTeamId: 'T0OURS' })).toBeNull();
  });

  it('refuses another workspace, another organisation, and a user from elsewhere', () => {
    expect(foreignOrigin(OURS, { teamId: 'T0OTHER', enterpriseId: null, userTeamId: 'T0OTHER' })).toMatch(/workspace T0OTHER is not T0OURS/);
    expect(foreignOrigin(OURS, { teamId: null, enterpriseId: 'E0ORG', userTeamId: null })).toMatch(/workspace \(none\)/);
    expect(foreignOrigin(OURS, { teamId: 'T0OURS', enterpriseId: 'E0ORG', userTeamId: null })).toMatch(/organisation E0ORG is not \(none\)/);
    expect(foreignOrigin(IN_ORG, { teamId: 'T0OURS', enterpriseId: 'E0ELSE', userTeamId: null })).toMatch(/organisation E0ELSE is not E0ORG/);
    expect(foreignOrigin(IN_ORG, { teamId: 'T0OURS', enterpriseId: null, userTeamId: null })).toMatch(/organisation \(none\) is not E0ORG/);
    // A Slack Connect channel: the click comes through our workspace, the user is someone else's.
    expect(foreignOrigin(OURS, { teamId: 'T0OURS', enterpriseId: null, userTeamId: 'T0STRANGER' })).toMatch(/user belongs to workspace T0STRANGER/);
  });
});

describe('WorkspaceGuard', () => {
  it('learns the workspace from auth.test; configured ids win', async () => {
    const learned = new WorkspaceGuard({ authTest: async () => ({ team_id: 'T0TOKEN', enterprise_id: 'E0TOKEN' }), log });
    expect(await learned.workspace()).toEqual({ teamId: 'T0TOKEN', enterpriseId: 'E0TOKEN' });
    const configured = new WorkspaceGuard({ teamId: 'T0SET', authTest: async () => ({ team_id: 'T0TOKEN' }), log });
    expect(await configured.workspace()).toEqual({ teamId: 'T0SET', enterpriseId: null });
  });

  it('knows nothing (so refuses everything) while auth.test fails, and asks again after retryMs', async () => {
    let calls = 0;
    let up = false;
    const guard = new WorkspaceGuard({
      authTest: async () => {
        calls += 1;
        if (!up) throw new Error('slack is down');
        return { team_id: 'T0OURS' };
      },
      log,
      retryMs: 50,
    });
    expect(await guard.workspace()).toBeNull();
    expect(await guard.workspace()).toBeNull();
    expect(calls).toBe(1);
    up = true;
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(await guard.workspace()).toEqual(OURS);
    expect(calls).toBe(2);
    expect(await guard.workspace()).toEqual(OURS);
    expect(calls).toBe(2);
  });

  it('gives up waiting for a slow auth.test within waitMs (Slack wants its ack in 3 s)', async () => {
    const guard = new WorkspaceGuard({ authTest: () => new Promise(() => undefined), log, waitMs: 20 });
    const started = performance.now();
    expect(await guard.workspace()).toBeNull();
    expect(performance.now() - started).toBeLessThan(1000);
  });
});
