/** What the runner tells the views (Slack's thread streamer) as a run progresses. */
import type { OutputStream, Task } from '../domain/task.js';

export type StartedTask = Pick<Task, 'id' | 'channelId' | 'runStep'>;

export interface RunObserver {
  /**
   * `task.runStep`: the task is a step of this run (its label is looked up), null: a task of its
   * own, whose card (if any) is in `task.channelId`.
   */
  runStarted(task: StartedTask, executionId: number, hosts: number): void;
  /** `host` labels the output when the plan has more than one host. */
  output(taskId: number, executionId: number, host: string | null, stream: OutputStream, text: string): void;
  /** Called after the result is stored; may take its time (uploads), the runner does not wait on it for correctness. */
  runFinished(taskId: number, executionId: number): Promise<void>;
}

export const silentObserver: RunObserver = {
  runStarted: () => undefined,
  output: () => undefined,
  runFinished: async () => undefined,
};
