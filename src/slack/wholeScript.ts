/**
 * A reviewer must be able to read everything they approve: when a review request cannot show a
 * script whole, the whole script is uploaded as a file into the request's thread. Shared by the
 * task, schedule and run review requests (a run's file holds every step: type `plan`).
 */
import type { ScriptType } from '../domain/scriptTypes.js';
import type { SlackGateway } from './gateway.js';

/** What a clipped review request says where the rest is (`version`: the short content version its Approve covers). */
export function wholeScriptInThread(version: string, what: 'script' | 'plan' = 'script'): string {
  if (what === 'plan')
    return `:page_facing_up: Not every step can be shown whole here: every step in full, version \`${version}\`, is in this thread (a file of another version there is void).`;
  return `:page_facing_up: The script is too long to show here: the whole script, version \`${version}\`, is in this thread (a file of another version there is void).`;
}

const EXTENSIONS: Readonly<Record<ScriptType | 'plan', string>> = { bash: 'sh', sh: 'sh', python3: 'py', node: 'js', plan: 'txt' };

export interface WholeScript {
  /** The review request's channel and ts: the file goes into its thread. */
  channel: string;
  threadTs: string;
  /** The file's name without version and extension, e.g. `task-12-script`. */
  name: string;
  /** How people name what the script belongs to, e.g. `#12` or `S3`. */
  ref: string;
  /** `plan`: a run's steps as text. */
  type: ScriptType | 'plan';
  script: string;
  /** The short content version Approve covers: after an edit the thread holds two files, and the reviewer must tell which one counts. */
  version: string;
}

export async function postWholeScript(gateway: Pick<SlackGateway, 'uploadFile'>, whole: WholeScript): Promise<void> {
  await gateway.uploadFile({
    channel: whole.channel,
    threadTs: whole.threadTs,
    filename: `${whole.name}-${whole.version}.${EXTENSIONS[whole.type]}`,
    title: `${whole.type === 'plan' ? 'Steps' : 'Script'} of ${whole.ref}, version ${whole.version}`,
    content: Buffer.from(whole.script, 'utf8'),
    comment: `:page_facing_up: ${whole.type === 'plan' ? 'Every step' : 'The whole script'} of ${whole.ref}, version \`${whole.version}\`, for review. Approve covers this version only: any other ${whole.type === 'plan' ? 'steps' : 'script'} file in this thread is an earlier version and is void.`,
  });
}
