/**
 * `/task recipe list | export | import | remove`: an alias of `/task runbook …` kept in the recipe
 * format (countersign.recipe/v1), each answer ending with a note pointing at `/task runbook`.
 * Recipes start from the runbooks' form (`/task start <reference>`, runbookForm.ts): a recipe is a
 * one-step runbook.
 */
import type { AckFn, App, RespondArguments, RespondFn, SlashCommand } from '@slack/bolt';
import { shortHash } from '../domain/contentVersion.js';
import { parseRecipeCommand } from '../domain/recipe.js';
import { escapeSlackText } from '../domain/slackText.js';
import type { Logger } from '../log.js';
import type { RecipeEntry, RecipeService } from '../service/recipes.js';
import { OUR_FAULT } from './answerWithin.js';

export interface RecipeFormDeps {
  recipes: RecipeService;
  log: Logger;
}

/** Slack shows a message's text up to about 40,000 characters, a section 3,000: past this, export as a file. */
const INLINE_EXPORT_CHARS = 2900;
export const RECIPE_ALIAS_NOTE =
  ':information_source: `/task recipe` is an alias of `/task runbook list|show|export|import|remove`, which does the same for recipes and runbooks.';

/** Handles `/task recipe …`; answers false (having done nothing) for every other /task command. */
export async function handleRecipeCommand(
  app: App,
  deps: RecipeFormDeps,
  command: SlashCommand,
  ack: AckFn<string | RespondArguments>,
  respond: RespondFn,
): Promise<boolean> {
  const parsed = parseRecipeCommand(command.text);
  if (!parsed) return false;
  const user = command.user_id;
  // `/task recipe` is an alias now (recipes are one-step runbooks); it keeps the recipe format.
  const say = (text: string) => ack({ response_type: 'ephemeral', text: `${text}\n${RECIPE_ALIAS_NOTE}` });
  try {
    switch (parsed.kind) {
      case 'recipe-error':
        await say(`:warning: ${parsed.message}`);
        return true;
      case 'start':
        // The runbooks' form starts recipes (runbookCommands.ts answers `/task start` first).
        return false;
      case 'recipe-list': {
        const recipes = await deps.recipes.list();
        if (recipes.length === 0) await say('No recipes yet. Add them under `recipes:` in countersign.yml, or `/task recipe import` one.');
        else await say(`*Recipes* (\`/task start <name>\`)\n${recipes.map(listLine).join('\n')}`.slice(0, 3900));
        return true;
      }
      case 'recipe-export': {
        const exported = await deps.recipes.export(parsed.name);
        if (!exported.ok) {
          await say(`:warning: ${exported.message}`);
          return true;
        }
        // Escaped for Slack (&, <, >), shown as typed; `/task recipe import` reads it back the same.
        const shown = escapeSlackText(exported.json);
        // Fixed values never leave the server: whoever imports this fills them in.
        const fixedNote =
          exported.fixed.length > 0
            ? `\n:lock: Fixed values are left out (${exported.fixed.map((n) => `\`${n}\``).join(', ')}): add \`"value"\` to ${exported.fixed.length > 1 ? 'each' : 'it'} before importing, or the import is refused.`
            : '';
        if (shown.length <= INLINE_EXPORT_CHARS) {
          await say(
            `Recipe \`${parsed.name}\` @ \`${shortHash(exported.hash)}\` (import it with \`/task recipe import\` and this block):${fixedNote}\n\`\`\`${shown}\`\`\``,
          );
          return true;
        }
        await ack();
        await app.client.filesUploadV2({
          channel_id: command.channel_id,
          file: Buffer.from(exported.json, 'utf8'),
          filename: `${parsed.name}.recipe.json`,
          title: `Recipe ${parsed.name}`,
          initial_comment: `<@${user}> exported the recipe \`${parsed.name}\` @ \`${shortHash(exported.hash)}\`.${fixedNote}`,
        });
        return true;
      }
      case 'recipe-import': {
        const imported = await deps.recipes.import(parsed.json, user, parsed.replace);
        if (!imported.ok) await say(`:warning: ${imported.message}`);
        else {
          const version = imported.previousHash
            ? `\`${shortHash(imported.previousHash)}\` → \`${shortHash(imported.hash)}\``
            : `\`${shortHash(imported.hash)}\``;
          await say(
            `:white_check_mark: ${imported.replaced ? 'Replaced' : 'Imported'} the recipe \`${imported.recipe.name}\` @ ${version} (on \`${escapeSlackText(imported.recipe.target)}\`). Start it with \`/task start ${imported.recipe.name}\`.`,
          );
        }
        return true;
      }
      case 'recipe-remove': {
        const removed = await deps.recipes.remove(parsed.name, user);
        if (!removed.ok) await say(`:warning: ${removed.message}`);
        else
          await say(
            `:wastebasket: Removed the recipe \`${removed.name}\` (it was \`${shortHash(removed.hash)}\`). Tasks started from it keep their script and say which version they came from.`,
          );
        return true;
      }
    }
  } catch (error) {
    deps.log.error({ err: error, user }, 'a /task recipe command failed');
    await respond({ response_type: 'ephemeral', replace_original: false, text: `:x: ${OUR_FAULT}` }).catch(() => undefined);
  }
  return true;
}

function listLine(entry: RecipeEntry): string {
  const { recipe } = entry;
  const args = recipe.arguments
    .filter((a) => a.kind !== 'fixed')
    .map((a) => (a.kind === 'options' ? `${a.name}: ${a.options.join('|')}` : `${a.name}${a.required ? '' : '?'}`));
  const origin = entry.owner === null ? '' : ` _(imported, owner <@${entry.owner}>)_`;
  return `• \`${recipe.name}\` @ \`${shortHash(entry.hash)}\` on \`${escapeSlackText(recipe.target)}\`${args.length > 0 ? ` (${escapeSlackText(args.join(', '))})` : ''}${recipe.description ? ` — ${escapeSlackText(recipe.description)}` : ''}${origin}`;
}
