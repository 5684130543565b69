/**
 * `/task start <reference>` (the form, runbookForm.ts) and `/task runbook list [--tag t] | show
 * <ref> | export <ref> | import [--replace] | remove <ref>`. Every answer is ephemeral (only the
 * user sees it) and inside Slack's limits; a long export goes to the user's own DM as a file.
 * Who may import, replace or remove what is RunbookService's rule (owner, editors, admins; fixed
 * arguments by admins only); its refusals say what to do instead.
 */
import type { AckFn, App, RespondArguments, RespondFn, SlashCommand } from '@slack/bolt';
import { shortHash } from '../domain/contentVersion.js';
import { parseRunbookCommand, type RunbookCommand } from '../domain/runbookCommand.js';
import { escapeSlackText } from '../domain/slackText.js';
import { answerWithin, OUR_FAULT } from './answerWithin.js';
import type { SlackMessage } from './render/blocks.js';
import { renderRunbookList, renderRunbookShow } from './render/runbookList.js';
import { openRunbookForm, type RunbookFormDeps } from './runbookForm.js';

/** An export longer than this (escaped) goes to the user's DM as a file. */
export const INLINE_EXPORT_CHARS = 3500;

type Answer = SlackMessage | { text: string };

/**
 * Handles `/task start …` and `/task runbook …`; answers false (having done nothing) for every
 * other /task command.
 */
export async function handleRunbookCommand(
  app: App,
  deps: RunbookFormDeps,
  command: SlashCommand,
  ack: AckFn<string | RespondArguments>,
  respond: RespondFn,
): Promise<boolean> {
  const parsed = parseRunbookCommand(command.text);
  if (!parsed) return false;
  const user = command.user_id;
  if (parsed.kind === 'start') {
    // The trigger is good for 3 s: ack at once and open the form's loading view right away.
    await ack();
    try {
      await openRunbookForm(app, deps, command.trigger_id, parsed.reference, { reference: parsed.reference, channel: command.channel_id });
    } catch (error) {
      deps.log.error({ err: error, user, reference: parsed.reference }, 'opening a runbook form failed');
      await respond({ response_type: 'ephemeral', replace_original: false, text: `:x: ${OUR_FAULT}` }).catch(() => undefined);
    }
    return true;
  }
  await answerWithin(ack, respond, answer(app, deps, parsed, command).then(bounded), deps.log, ':hourglass: Working on it…').catch((error) =>
    deps.log.warn({ err: error, user, command: parsed.kind }, 'answering a /task runbook command failed'),
  );
  return true;
}

async function answer(app: App, deps: RunbookFormDeps, parsed: Exclude<RunbookCommand, { kind: 'start' }>, command: SlashCommand): Promise<Answer> {
  const user = command.user_id;
  switch (parsed.kind) {
    case 'error':
      return { text: `:warning: ${parsed.message}` };
    case 'list':
      return renderRunbookList(await deps.runbooks.list(parsed.tag === null ? {} : { tags: [parsed.tag] }), parsed.tag);
    case 'show': {
      const entry = await deps.runbooks.find(parsed.reference);
      if (!entry) return { text: `:warning: There is no runbook \`${escapeSlackText(parsed.reference)}\`. \`/task runbook list\` shows them.` };
      return renderRunbookShow(entry);
    }
    case 'export':
      return exportAnswer(app, deps, parsed.reference, user);
    case 'import': {
      let json: unknown;
      try {
        json = JSON.parse(parsed.json);
      } catch (error) {
        return {
          text: `:warning: That is not JSON (${escapeSlackText((error as Error).message).slice(0, 200)}). Paste the runbook as a \`\`\`json block\`\`\`; \`/task runbook export &lt;reference&gt;\` shows the format.`,
        };
      }
      const imported = await deps.runbooks.import(json, user, parsed.replace);
      if (!imported.ok) return { text: `:warning: ${imported.message}` };
      const { runbook } = imported.entry;
      const version = imported.previousHash ? `\`${shortHash(imported.previousHash)}\` → \`${shortHash(imported.hash)}\`` : `\`${shortHash(imported.hash)}\``;
      const steps = runbook.steps.flat().length;
      return {
        text: `:white_check_mark: ${imported.replaced ? 'Replaced' : 'Imported'} the runbook \`${escapeSlackText(runbook.reference)}\` @ ${version} (${steps} step${steps === 1 ? '' : 's'}). You own it${runbook.editors ? ' with its editors' : ''}; \`/task runbook show ${escapeSlackText(runbook.reference)}\` shows it, \`/task start ${escapeSlackText(runbook.reference)}\` starts it.`,
      };
    }
    case 'remove': {
      const removed = await deps.runbooks.remove(parsed.reference, user);
      if (!removed.ok) return { text: `:warning: ${removed.message}` };
      return {
        text: `:wastebasket: Removed the runbook \`${escapeSlackText(removed.name)}\` (it was \`${shortHash(removed.hash)}\`). Runs started from it keep their plan and say which version they came from.`,
      };
    }
  }
}

/** Inline when it fits; else a file in the user's own DM (never in the channel: the answer is the user's). */
async function exportAnswer(app: App, deps: RunbookFormDeps, reference: string, user: string): Promise<Answer> {
  const exported = await deps.runbooks.export(reference);
  if (!exported.ok) return { text: `:warning: ${exported.message}` };
  const ref = escapeSlackText(reference);
  // Fixed values never leave the server: whoever imports this fills them in.
  const fixedNote =
    exported.fixed.length > 0
      ? `\n:lock: Fixed values are left out (${exported.fixed.map((n) => `\`${escapeSlackText(n)}\``).join(', ')}): add \`"value"\` to ${exported.fixed.length > 1 ? 'each' : 'it'} before importing (only admins may import fixed values), or the import is refused.`
      : '';
  const version = shortHash(exported.entry.hash);
  // Escaped for Slack (&, <, >), shown as typed; `/task runbook import` reads it back the same.
  const shown = escapeSlackText(exported.json);
  // A fence inside would end the code block early and the copy would not import: such a one goes as a file too.
  if (shown.length <= INLINE_EXPORT_CHARS && !exported.json.includes('```')) {
    return { text: `Runbook \`${ref}\` @ \`${version}\` (import it with \`/task runbook import\` and this block):${fixedNote}\n\`\`\`${shown}\`\`\`` };
  }
  const dm = await app.client.conversations.open({ users: user });
  const channel = dm.channel?.id;
  if (!channel) return { text: ':warning: I could not open a direct message with you to send the export. Try again in a minute.' };
  await app.client.filesUploadV2({
    channel_id: channel,
    file: Buffer.from(exported.json, 'utf8'),
    filename: `${reference}.runbook.json`,
    title: `Runbook ${reference}`,
    initial_comment: `The runbook \`${ref}\` @ \`${version}\`, exported.${fixedNote}`,
  });
  return {
    text: `:outbox_tray: The runbook \`${ref}\` @ \`${version}\` does not fit in a message here: I sent it to you as a file in our direct messages.${fixedNote}`,
  };
}

/** Slack shows a message's text up to 40,000 characters; a refusal listing many problems stays well under. */
const MAX_TEXT = 3900;
function bounded(answer: Answer): Answer {
  return answer.text.length <= MAX_TEXT ? answer : { ...answer, text: `${answer.text.slice(0, MAX_TEXT - 60)}\n… (cut: fix the first problems and try again)` };
}
