/**
 * The idempotency key of a Run again click (runs and tasks): one start per click on one drawing
 * of a card. A double click, or Slack redelivering a click it thinks went unanswered, sends the
 * same (original, user, message, drawn view version) and finds the run or task the first one
 * made. Starting a run again bumps the original's view version, so its card is redrawn with a new
 * version on the button: a deliberate click on the redrawn card is a new start.
 */
import type { BlockButtonAction } from '@slack/bolt';

/** The clicked message's ts (or, on App Home, the view's id): what Slack says was clicked. */
function clickedWhere(body: BlockButtonAction): string {
  const container = body.container as { message_ts?: unknown } | undefined;
  const ts = String(container?.message_ts ?? body.message?.ts ?? '');
  if (/^\d{1,12}\.\d{1,10}$/.test(ts)) return ts;
  const viewId = String(body.view?.id ?? '');
  return /^[A-Z0-9]{1,40}$/.test(viewId) ? `view-${viewId}` : 'unknown';
}

/**
 * `slack:again:<kind>:<original id>:<user>:<where>:<drawn version>`. Only well-formed parts go in
 * (a forged value cannot make the key long); a button without a version counts as version `-`.
 */
export function againSourceKey(kind: 'run' | 'task', originalId: number, body: BlockButtonAction, drawnWith: string | null): string {
  const version = drawnWith !== null && /^\d{1,15}$/.test(drawnWith) ? drawnWith : '-';
  // Slack's user ids are letters and digits (and signed by Slack); cleaned all the same.
  const user = body.user.id.replace(/[^A-Za-z0-9]/g, '_').slice(0, 40);
  return `slack:again:${kind}:${originalId}:${user}:${clickedWhere(body)}:${version}`;
}
