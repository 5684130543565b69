/**
 * `/task runbook list` and `/task runbook show`: ephemeral answers inside Slack's limits for a
 * message (50 blocks, sections of 3000, blocks' JSON under ~12k: fitBlocks shrinks the parts).
 * A fixed argument shows its name only, never its value. Everything the runbooks' authors wrote
 * is escaped.
 */
import { shortHash } from '../../domain/contentVersion.js';
import type { RecipeArgument } from '../../domain/recipe.js';
import type { Runbook } from '../../domain/runbook/index.js';
import { context, fitBlocks, section, type Block, type SlackMessage } from './blocks.js';
import { safeText } from './format.js';
import { codeCharsFor, packTexts, stepTexts, withinBudget } from './runbookSteps.js';

/** What a list line or the show answer needs of a catalog entry (RunbookEntry fits). */
export interface RunbookListEntry {
  runbook: Runbook;
  hash: string;
  kind: 'recipe' | 'runbook';
  source: 'config' | 'imported';
  owner: string | null;
}

/** Lines a list shows at most; the rest are counted. */
export const LIST_LINES = 40;
const MAX_MESSAGE_BLOCKS = 50;

/** `region: eu|us`, `version`, `note?`: what the start form asks for. Fixed ones are named, not shown. */
export function argumentSummary(args: readonly RecipeArgument[], max: number): string {
  const parts = args.map((a) =>
    a.kind === 'fixed' ? `${a.name} (fixed)` : a.kind === 'options' ? `${a.name}: ${a.options.slice(0, 8).join('|')}` : `${a.name}${a.required ? '' : '?'}`,
  );
  return safeText(parts.join(', '), max);
}

const startable = (runbook: Runbook): boolean => runbook.triggeredBy.some((t) => t.kind === 'manual');

function listLine(entry: RunbookListEntry, scale: number): string {
  const { runbook } = entry;
  const steps = runbook.steps.flat().length;
  const args = runbook.arguments.length > 0 ? ` (${argumentSummary(runbook.arguments, Math.max(40, Math.round(200 * scale)))})` : '';
  const description = runbook.description ? ` — ${safeText(runbook.description, Math.max(30, Math.round(200 * scale)))}` : '';
  const tags =
    runbook.tags.length > 0
      ? ` ${runbook.tags
          .slice(0, 8)
          .map((t) => `\`#${safeText(t, 30)}\``)
          .join(' ')}`
      : '';
  const origin = entry.owner !== null ? ` _(imported, owner <@${entry.owner}>)_` : entry.kind === 'recipe' ? ' _(recipe)_' : '';
  const manual = startable(runbook) ? '' : ' _(not started by hand)_';
  return `• \`${safeText(runbook.reference, 64)}\` @ \`${shortHash(entry.hash)}\` · ${steps} step${steps === 1 ? '' : 's'}${args}${description}${tags}${origin}${manual}`;
}

export function renderRunbookList(entries: readonly RunbookListEntry[], tag: string | null): SlackMessage {
  const filter = tag === null ? '' : ` tagged \`${safeText(tag, 40)}\``;
  if (entries.length === 0) {
    const text =
      tag === null
        ? 'No runbooks yet. Add them under `runbooks:` in countersign.yml, or `/task runbook import` one.'
        : `No runbooks${filter}. \`/task runbook list\` shows them all.`;
    return { text, blocks: [section(text)] };
  }
  const shown = entries.slice(0, LIST_LINES);
  return fitBlocks((scale) => {
    const blocks: Block[] = [section(`*Runbooks*${filter} (${entries.length}) · start one with \`/task start &lt;reference&gt;\``)];
    const packed = withinBudget(packTexts(shown.map((e) => listLine(e, scale))).slice(0, MAX_MESSAGE_BLOCKS - 3), 9500);
    blocks.push(...packed.map((p) => section(p.text)));
    const listed = packed.reduce((n, p) => n + p.count, 0);
    if (entries.length > listed) blocks.push(context(`and ${entries.length - listed} more: narrow the list with \`/task runbook list --tag &lt;tag&gt;\`.`));
    blocks.push(context('`/task runbook show &lt;reference&gt;` shows its steps · `/task runbook export &lt;reference&gt;` its definition'));
    return { text: `Runbooks${tag === null ? '' : ` tagged ${tag.replace(/[<>&]/g, '')}`}: ${entries.length}`, blocks };
  });
}

/** The runbook's facts and every step (the first lines of each script), for `/task runbook show`. */
export function renderRunbookShow(entry: RunbookListEntry & { editors?: { users: readonly string[]; usergroup: string | null } | null }): SlackMessage {
  const { runbook } = entry;
  const steps = runbook.steps.flat().length;
  return fitBlocks((scale) => {
    const facts = [
      `version \`${shortHash(entry.hash)}\``,
      entry.source === 'config' ? 'from countersign.yml' : `imported, owner <@${entry.owner ?? '?'}>`,
      entry.kind === 'recipe' ? 'a recipe (one script step; starts a task)' : null,
      runbook.tags.length > 0
        ? `tags ${runbook.tags
            .slice(0, 10)
            .map((t) => `\`${safeText(t, 30)}\``)
            .join(' ')}`
        : null,
      `started by ${runbook.triggeredBy.map((t) => (t.kind === 'after' ? `after \`${safeText(t.runbook, 64)}\` (${t.on})` : t.kind)).join(', ')}`,
      runbook.dependsOn.length > 0 ? `runs first ${runbook.dependsOn.map((d) => `\`${safeText(d, 64)}\``).join(', ')}` : null,
      entry.editors && (entry.editors.users.length > 0 || entry.editors.usergroup)
        ? `editors ${[...entry.editors.users.slice(0, 10).map((u) => `<@${u}>`), ...(entry.editors.usergroup ? [`<!subteam^${entry.editors.usergroup}>`] : [])].join(', ')}`
        : null,
    ].filter((f): f is string => f !== null);
    const blocks: Block[] = [
      section(
        `*${safeText(runbook.name, 150)}* (\`${safeText(runbook.reference, 64)}\`)${runbook.description ? `\n${safeText(runbook.description, Math.max(200, Math.round(1500 * scale)))}` : ''}`,
      ),
      context(facts.join(' · ').slice(0, 2900)),
    ];
    if (runbook.arguments.length > 0) blocks.push(section(`*Arguments* ${argumentSummary(runbook.arguments, Math.max(200, Math.round(2000 * scale)))}`));
    const texts = stepTexts(runbook, Math.max(80, Math.round(codeCharsFor(steps) * scale)));
    const packed = withinBudget(packTexts(texts).slice(0, MAX_MESSAGE_BLOCKS - blocks.length - 1), 11_000 - JSON.stringify(blocks).length - 800);
    blocks.push(...packed.map((p) => section(p.text)));
    const hidden = texts.length - packed.reduce((n, p) => n + p.count, 0);
    blocks.push(
      context(
        `${steps} step${steps === 1 ? '' : 's'}${hidden > 0 ? `, ${hidden} not shown` : ''} · only the first lines of long scripts are shown: \`/task runbook export ${safeText(runbook.reference, 64)}\` gives the whole definition${startable(runbook) ? ` · \`/task start ${safeText(runbook.reference, 64)}\` starts it` : ''}`,
      ),
    );
    return { text: `Runbook ${runbook.reference.replace(/[<>&]/g, '')}`, blocks };
  });
}
