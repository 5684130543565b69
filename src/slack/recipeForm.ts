/**
 * The Slack side of recipes: `/task start <recipe>` (a form showing the script and its version
 * and asking for its options and inputs, opened as a loading view within the trigger's 3 s and
 * filled in with views.update; bad values are refused on their field with `response_action:
 * errors`, and so is a submit after the recipe changed), and `/task recipe list | export |
 * import | remove`. Starting goes through RecipeService, which creates the task like any other.
 */
import type { AckFn, App, RespondArguments, RespondFn, SlashCommand, ViewOutput } from '@slack/bolt';
import { shortHash } from '../domain/contentVersion.js';
import { describeArguments, parseRecipeCommand } from '../domain/recipe.js';
import type { ReviewPolicy } from '../domain/review.js';
import { escapeSlackText } from '../domain/slackText.js';
import type { Logger } from '../log.js';
import type { RecipeEntry, RecipeService } from '../service/recipes.js';
import type { Task } from '../domain/task.js';
import { createdModal } from './taskForm.js';
import { context } from './render/blocks.js';
import { argumentErrors, readArgumentValues } from './render/argumentFields.js';
import {
  RECIPE_MESSAGE_BLOCK,
  RECIPE_MODAL_CALLBACK,
  RECIPE_VALUE,
  renderRecipeLoadingModal,
  renderRecipeMissingModal,
  renderRecipeModal,
  type RecipeFormMetadata,
} from './render/recipeModal.js';

export interface RecipeFormDeps {
  recipes: RecipeService;
  log: Logger;
  resolvedPolicy(targetName: string): Promise<ReviewPolicy | null>;
}

/** Slack shows a message's text up to about 40,000 characters, a section 3,000: past this, export as a file. */
const INLINE_EXPORT_CHARS = 2900;
export const RECIPE_ALIAS_NOTE = ':information_source: `/task recipe` is an alias of `/task runbook list|show|export|import|remove`, which does the same for recipes and runbooks.';
const OUR_FAULT = 'Something went wrong on our side and nothing was changed. Try again in a minute; if it keeps failing, tell the countersign admins.';

/**
 * Handles `/task start …` and `/task recipe …`; answers false (having done nothing) for every
 * other /task command.
 */
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
        await ack();
        await openRecipeForm(app, deps, command.trigger_id, parsed.name, { recipe: parsed.name, channel: command.channel_id });
        return true;
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
          await say(`Recipe \`${parsed.name}\` @ \`${shortHash(exported.hash)}\` (import it with \`/task recipe import\` and this block):${fixedNote}\n\`\`\`${shown}\`\`\``);
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
          const version = imported.previousHash ? `\`${shortHash(imported.previousHash)}\` → \`${shortHash(imported.hash)}\`` : `\`${shortHash(imported.hash)}\``;
          await say(`:white_check_mark: ${imported.replaced ? 'Replaced' : 'Imported'} the recipe \`${imported.recipe.name}\` @ ${version} (on \`${escapeSlackText(imported.recipe.target)}\`). Start it with \`/task start ${imported.recipe.name}\`.`);
        }
        return true;
      }
      case 'recipe-remove': {
        const removed = await deps.recipes.remove(parsed.name, user);
        if (!removed.ok) await say(`:warning: ${removed.message}`);
        else await say(`:wastebasket: Removed the recipe \`${removed.name}\` (it was \`${shortHash(removed.hash)}\`). Tasks started from it keep their script and say which version they came from.`);
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
  const args = recipe.arguments.filter((a) => a.kind !== 'fixed').map((a) => (a.kind === 'options' ? `${a.name}: ${a.options.join('|')}` : `${a.name}${a.required ? '' : '?'}`));
  const origin = entry.owner === null ? '' : ` _(imported, owner <@${entry.owner}>)_`;
  return `• \`${recipe.name}\` @ \`${shortHash(entry.hash)}\` on \`${escapeSlackText(recipe.target)}\`${args.length > 0 ? ` (${escapeSlackText(args.join(', '))})` : ''}${recipe.description ? ` — ${escapeSlackText(recipe.description)}` : ''}${origin}`;
}

/** The loading view now (the trigger expires in 3 s), the form once the recipe is read. */
export async function openRecipeForm(app: App, deps: RecipeFormDeps, triggerId: string, name: string, metadata: RecipeFormMetadata): Promise<void> {
  const opened = await app.client.views.open({ trigger_id: triggerId, view: renderRecipeLoadingModal(name) });
  const view = opened.view;
  if (!view?.id) return;
  const entry = await deps.recipes.find(name);
  const next = entry
    ? renderRecipeModal(entry.recipe, { ...metadata, recipe: entry.recipe.name, hash: entry.hash })
    : renderRecipeMissingModal(`There is no recipe \`${name}\`. \`/task recipe list\` shows them.`);
  await app.client.views.update({ view_id: view.id, ...(view.hash ? { hash: view.hash } : {}), view: next });
}

type Submission = { ok: true; task: Task; created: boolean } | { ok: false; errors: Record<string, string> };

/** Reads the form, checks the values against the recipe, creates the task; field errors otherwise. */
export async function submitRecipeForm(deps: RecipeFormDeps, userId: string, view: ViewOutput): Promise<Submission> {
  const metadata = JSON.parse(view.private_metadata || '{}') as Partial<RecipeFormMetadata>;
  const recipe = metadata.recipe ? await deps.recipes.get(metadata.recipe) : null;
  if (!recipe) return { ok: false, errors: { [RECIPE_MESSAGE_BLOCK]: `The recipe ${metadata.recipe ?? ''} no longer exists.` } };
  const state = view.state.values;
  const values = readArgumentValues(recipe.arguments, state);
  const message = state[RECIPE_MESSAGE_BLOCK]?.[RECIPE_VALUE]?.value?.trim() || null;
  const started = await deps.recipes.start(recipe, {
    // The version the form showed: a recipe replaced since is not started under the starter's name.
    expectedHash: metadata.hash ?? '',
    author: userId,
    values,
    message,
    source: 'slack',
    // A double submit of one form makes one task.
    sourceKey: `slack-view:${view.id}`,
    channelId: metadata.channel ?? null,
  });
  if (started.ok) return { ok: true, task: started.task, created: started.created };
  if (started.code === 'invalid_arguments' && started.errors) return { ok: false, errors: argumentErrors(recipe.arguments, started.errors, RECIPE_MESSAGE_BLOCK) };
  return { ok: false, errors: { [RECIPE_MESSAGE_BLOCK]: started.message.replace(/[*`]/g, '') } };
}

/** The form's submit: field errors, or the "created" view. */
export function registerRecipeView(app: App, deps: RecipeFormDeps): void {
  app.view(RECIPE_MODAL_CALLBACK, async ({ ack, body, view }) => {
    try {
      const result = await submitRecipeForm(deps, body.user.id, view);
      if (!result.ok) {
        await ack({ response_action: 'errors', errors: result.errors });
        return;
      }
      const policy = await deps.resolvedPolicy(result.task.target);
      const modal = createdModal(result.task, result.task.channelId, policy);
      // Fixed values stay hidden (•••).
      if (result.task.arguments && result.task.arguments.length > 0) modal.blocks.push(context(`Arguments: ${describeArguments(result.task.arguments)}`.slice(0, 2000)));
      await ack({ response_action: 'update', view: modal });
    } catch (error) {
      deps.log.error({ err: error, user: body.user.id }, 'submitting a recipe form failed');
      await ack({ response_action: 'errors', errors: { [RECIPE_MESSAGE_BLOCK]: OUR_FAULT } });
    }
  });
}
