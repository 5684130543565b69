/**
 * One Bolt middleware for every request countersign answers: the `/task` command, every button,
 * every form and App Home's event, each dispatched by id to the handlers registered here. What
 * it does not know (another command, a Workflow Builder step's `function_executed`, a click on
 * an id nobody handles) goes on to Bolt's own listeners, which answer it as they always did.
 *
 * Why: Bolt runs the middleware chain of every registered listener for every request, a copied
 * array, a few closures and promises each, to find the one that matches. With countersign's 30
 * listeners a `/task run` spent ~185 µs of Bolt's CPU and allocated ~5x what an app with one
 * listener does; folding buttons and forms into two listeners took most of that. The five that
 * were left still made Bolt allocate about twice what a one-listener app does per request, and
 * the allocation is what fills the young generation and brings the collections that make an
 * ack's slow tail (bench/compare, "acknowledgements"). A handled request now reaches no listener.
 *
 * It must be registered after the workspace guard (app.ts): Bolt runs global middleware in order.
 * Handlers get the middleware's `next` where a listener got a no-op: none calls it (it would run
 * Bolt's listeners after them).
 */
import type {
  AllMiddlewareArgs,
  AnyMiddlewareArgs,
  App,
  BlockAction,
  SlackActionMiddlewareArgs,
  SlackCommandMiddlewareArgs,
  SlackEventMiddlewareArgs,
  SlackViewAction,
  SlackViewMiddlewareArgs,
} from '@slack/bolt';

type ActionArgs<A extends BlockAction> = SlackActionMiddlewareArgs<A> & AllMiddlewareArgs;
type ViewArgs = SlackViewMiddlewareArgs<SlackViewAction> & AllMiddlewareArgs;
type CommandArgs = SlackCommandMiddlewareArgs & AllMiddlewareArgs;
type HomeOpenedArgs = SlackEventMiddlewareArgs<'app_home_opened'> & AllMiddlewareArgs;
type ActionHandler<A extends BlockAction = BlockAction> = (args: ActionArgs<A>) => Promise<void>;
type ViewHandler = (args: ViewArgs) => Promise<void>;
type CommandHandler = (args: CommandArgs) => Promise<void>;
type HomeOpenedHandler = (args: HomeOpenedArgs) => Promise<void>;

export class ListenerTable {
  private readonly actions = new Map<string, ActionHandler>();
  /** Ids matched by pattern (Home's link buttons carry a suffix), tried after the exact ids. */
  private readonly actionPatterns: Array<[RegExp, ActionHandler]> = [];
  private readonly views = new Map<string, ViewHandler>();
  private readonly commands = new Map<string, CommandHandler>();
  private readonly events = new Map<string, HomeOpenedHandler>();

  constructor(readonly app: App) {
    app.use(async (args) => {
      const handle = this.handlerOf(args);
      // Not ours: Bolt's listeners (a workflow step's) or its unhandled-request answer.
      if (!handle) return args.next();
      await handle();
    });
  }

  /** The handler of a request, bound to its arguments; null when none is registered for it. */
  private handlerOf(args: AnyMiddlewareArgs & AllMiddlewareArgs): (() => Promise<void>) | null {
    const { body } = args;
    if ('command' in args && args.command) {
      const handler = this.commands.get(args.command.command);
      return handler ? () => handler(args as CommandArgs) : null;
    }
    if (body.type === 'block_actions' && 'action' in args && args.action) {
      const id = (args.action as BlockAction['actions'][number]).action_id;
      const handler = this.actions.get(id) ?? this.actionPatterns.find(([pattern]) => pattern.test(id))?.[1];
      // None: left to Bolt, which leaves a click no listener matches unacknowledged (Slack shows it failed).
      return handler ? () => handler(args as unknown as ActionArgs<BlockAction>) : null;
    }
    if (body.type === 'view_submission' && 'view' in args && args.view) {
      const handler = this.views.get((args.view as SlackViewAction['view']).callback_id);
      return handler ? () => handler(args as unknown as ViewArgs) : null;
    }
    if ('event' in args && args.event) {
      const handler = this.events.get(args.event.type);
      return handler ? () => handler(args as unknown as HomeOpenedArgs) : null;
    }
    return null;
  }

  /** A slash command's handler, by its name (`/task`). */
  command(name: string, handler: CommandHandler): void {
    if (this.commands.has(name)) throw new Error(`two handlers for the command ${name}`);
    this.commands.set(name, handler);
  }

  /** An Events API event's handler, by its type (App Home's `app_home_opened` is the one countersign listens to). */
  event(type: 'app_home_opened', handler: HomeOpenedHandler): void {
    if (this.events.has(type)) throw new Error(`two handlers for the event ${type}`);
    this.events.set(type, handler);
  }

  /**
   * A block action's handler, by its action_id or a pattern of it. An id is handled by one
   * handler only: where Bolt ran every listener that matched, a second one would be dropped
   * silently here, so registering one throws instead (an exact id a pattern also matches, too).
   */
  action<A extends BlockAction = BlockAction>(id: string | RegExp, handler: ActionHandler<A>): void {
    const erased = handler as unknown as ActionHandler;
    if (typeof id !== 'string') {
      // test() on a global or sticky pattern moves its lastIndex: the next click would be judged from there.
      if (id.global || id.sticky) throw new Error(`the action pattern ${id} must not be global or sticky`);
      const taken = [...this.actions.keys()].find((known) => id.test(known));
      if (taken !== undefined) throw new Error(`two handlers for the action ${taken}`);
      this.actionPatterns.push([id, erased]);
      return;
    }
    const pattern = this.actionPatterns.find(([known]) => known.test(id))?.[0];
    if (this.actions.has(id) || pattern) throw new Error(`two handlers for the action ${id}${pattern ? ` (${pattern} matches it)` : ''}`);
    this.actions.set(id, erased);
  }

  /** A form's submission handler, by its view's callback_id. */
  view(callbackId: string, handler: ViewHandler): void {
    if (this.views.has(callbackId)) throw new Error(`two handlers for the form ${callbackId}`);
    this.views.set(callbackId, handler);
  }
}
