/**
 * One Bolt listener for every button and one for every form, each dispatching by id to the
 * handlers registered here.
 *
 * Why: Bolt runs the middleware chain of every registered listener for every request, a copied
 * array, a few closures and promises each, to find the one that matches. With countersign's 30
 * listeners a `/task run` spent ~185 µs of Bolt's CPU and allocated ~5x what an app with one
 * listener does; the allocation is what fills the young generation and brings the collections
 * that make an ack's slow tail (bench/compare, "acknowledgements"). A map lookup finds the handler.
 */
import type { AllMiddlewareArgs, App, BlockAction, SlackActionMiddlewareArgs, SlackViewAction, SlackViewMiddlewareArgs } from '@slack/bolt';

type ActionArgs<A extends BlockAction> = SlackActionMiddlewareArgs<A> & AllMiddlewareArgs;
type ViewArgs = SlackViewMiddlewareArgs<SlackViewAction> & AllMiddlewareArgs;
type ActionHandler<A extends BlockAction = BlockAction> = (args: ActionArgs<A>) => Promise<void>;
type ViewHandler = (args: ViewArgs) => Promise<void>;

export class ListenerTable {
  private readonly actions = new Map<string, ActionHandler>();
  /** Ids matched by pattern (Home's link buttons carry a suffix), tried after the exact ids. */
  private readonly actionPatterns: Array<[RegExp, ActionHandler]> = [];
  private readonly views = new Map<string, ViewHandler>();

  constructor(readonly app: App) {
    app.action<BlockAction>({ type: 'block_actions' }, async (args) => {
      const id = args.action.action_id;
      const handler = this.actions.get(id) ?? this.actionPatterns.find(([pattern]) => pattern.test(id))?.[1];
      // None: left unacknowledged, as Bolt leaves a click no listener matches (Slack shows it failed).
      if (handler) await handler(args);
    });
    app.view<SlackViewAction>({ type: 'view_submission' }, async (args) => {
      const handler = this.views.get(args.view.callback_id);
      if (handler) await handler(args);
    });
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
