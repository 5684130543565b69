/**
 * Refuses Slack requests from any workspace but ours (src/domain/workspace.ts says why a
 * signature is not enough). A Bolt global middleware, so it stands in front of every command,
 * click, view submission and event, over HTTP and Socket Mode alike.
 *
 * Our workspace is SLACK_TEAM_ID / SLACK_ENTERPRISE_ID when set, else what `auth.test` of the bot
 * token answers (asked at start, and again on a request if it failed, at most every few
 * seconds). Until it is known, requests are refused: failing open would let anyone in.
 */
import type { AnyMiddlewareArgs, Context, Middleware } from '@slack/bolt';
import { foreignOrigin, type RequestOrigin, type Workspace } from '../domain/workspace.js';
import type { Logger } from '../log.js';

export interface AuthTestAnswer {
  team_id?: string;
  enterprise_id?: string;
}

export interface WorkspaceGuardOptions {
  /** From the environment; each one given wins over what auth.test says. */
  teamId?: string | undefined;
  enterpriseId?: string | undefined;
  /** The bot token's auth.test. */
  authTest(): Promise<AuthTestAnswer>;
  log: Logger;
  /** How long a request waits for a first auth.test (Slack wants an ack within 3 s). */
  waitMs?: number;
  /** The least time between two auth.test attempts after a failure. */
  retryMs?: number;
}

const NOT_OURS = 'This countersign serves another Slack workspace, so it does nothing for requests from this one.';
const UNSURE = 'countersign cannot confirm which Slack workspace it serves right now, so it did nothing. Try again in a minute.';

export class WorkspaceGuard {
  private known: Workspace | null = null;
  private pending: Promise<Workspace | null> | null = null;
  private lastAttempt = 0;

  constructor(private readonly options: WorkspaceGuardOptions) {}

  /** Asks auth.test now, so the first request need not wait. */
  start(): void {
    void this.workspace(0);
  }

  /** Our workspace, waiting up to `waitMs` for auth.test; null when it is not known. */
  async workspace(waitMs = this.options.waitMs ?? 1500): Promise<Workspace | null> {
    if (this.known) return this.known;
    const retryMs = this.options.retryMs ?? 5000;
    if (!this.pending && Date.now() - this.lastAttempt >= retryMs) {
      this.lastAttempt = Date.now();
      this.pending = this.learn().finally(() => {
        this.pending = null;
      });
    }
    if (!this.pending) return null;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), waitMs);
    });
    try {
      return await Promise.race([this.pending, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async learn(): Promise<Workspace | null> {
    const { teamId, enterpriseId, log } = this.options;
    try {
      const answer = await this.options.authTest();
      if (!answer.team_id) throw new Error('auth.test named no team');
      if (teamId !== undefined && teamId !== answer.team_id) {
        log.error({ configured: teamId, token: answer.team_id }, "SLACK_TEAM_ID is not the bot token's workspace: requests are checked against SLACK_TEAM_ID");
      }
      this.known = { teamId: teamId ?? answer.team_id, enterpriseId: enterpriseId ?? answer.enterprise_id ?? null };
      log.info({ workspace: this.known }, 'serving this Slack workspace only');
      return this.known;
    } catch (error) {
      log.error({ err: error }, 'auth.test failed: Slack requests are refused until countersign knows its workspace');
      return null;
    }
  }

  middleware(): Middleware<AnyMiddlewareArgs> {
    return async (args) => {
      const origin = requestOrigin(args.context, args.body);
      const ours = await this.workspace();
      const reason = ours === null ? 'our workspace is not known yet' : foreignOrigin(ours, origin);
      if (reason === null) {
        await args.next();
        return;
      }
      this.options.log.warn({ origin, reason }, 'refused a Slack request from outside our workspace');
      await refuse(args, ours === null ? UNSURE : NOT_OURS);
    };
  }
}

/** Where the request comes from: Bolt's team and enterprise, and the acting user's own team. */
export function requestOrigin(context: Context, body: unknown): RequestOrigin {
  const user = (body as { user?: unknown }).user;
  const userTeamId =
    typeof user === 'object' && user !== null && typeof (user as { team_id?: unknown }).team_id === 'string' ? (user as { team_id: string }).team_id : null;
  return { teamId: context.teamId ?? null, enterpriseId: context.enterpriseId ?? null, userTeamId };
}

/** Acknowledges a refused request with a word for the user where Slack shows one. */
async function refuse(args: AnyMiddlewareArgs, text: string): Promise<void> {
  // Events have no ack here (Bolt acknowledged them already).
  const ack = (args as { ack?: (response?: unknown) => Promise<void> }).ack;
  if (!ack) return;
  const body = args.body as { command?: unknown; type?: unknown };
  if (typeof body.command === 'string') await ack({ response_type: 'ephemeral', text: `:no_entry: ${text}` });
  else if (body.type === 'view_submission') {
    await ack({
      response_action: 'update',
      view: { type: 'modal', title: { type: 'plain_text', text: 'countersign' }, blocks: [{ type: 'section', text: { type: 'plain_text', text } }] },
    });
  } else await ack();
}
