/**
 * In-process notifications between the use cases, the runner and the Slack views. They only
 * say "look again": every listener re-reads Postgres, so a missed or duplicated notice can
 * delay a view but never make it wrong.
 */
import { EventEmitter } from 'node:events';
import type { Task } from '../domain/task.js';

/** Where a task's Slack messages are: its card's channel, its review request's. */
export interface TaskChannels {
  channelId: string | null;
  reviewChannel: string | null;
}

interface BusEvents {
  /**
   * A task's state or review changed: its card and review request should be redrawn. `channels`,
   * when the emitter has the row at hand: where its messages are (set at creation, never changed),
   * so a task with none is not read only to find that out. `notified`: the statement that changed
   * it told the other processes already (pg_notify on the task channel), so no NOTIFY is sent.
   * `born`: the task was just inserted, and this is the row its insert returned (committed).
   */
  'task-changed': [taskId: number, channels?: TaskChannels, notified?: boolean, born?: Task];
  /**
   * Someone may run a task of this target in a moment (a Run that passed its checks is being
   * committed): a runner with room may open its connections now, so the claim finds them ready.
   */
  'run-coming': [target: string];
  /** A task became ready: a runner should try to claim. */
  'task-ready': [taskId: number];
  /** Someone asked to stop a running execution. */
  'stop-requested': [executionId: number];
  /** A run or one of its steps changed: the engine looks at it again, its views redraw. */
  'run-changed': [runId: number];
}

export class Bus {
  private readonly emitter = new EventEmitter();

  constructor() {
    this.emitter.setMaxListeners(100);
  }

  emit<K extends keyof BusEvents>(event: K, ...args: BusEvents[K]): void {
    this.emitter.emit(event, ...args);
  }

  on<K extends keyof BusEvents>(event: K, listener: (...args: BusEvents[K]) => void): () => void {
    const wrapped = listener as (...args: unknown[]) => void;
    this.emitter.on(event, wrapped);
    return () => this.emitter.off(event, wrapped);
  }
}
