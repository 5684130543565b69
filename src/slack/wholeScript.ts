/**
 * A reviewer must be able to read everything they approve: when a review request cannot show a
 * script whole, the whole script is uploaded as a file into the request's thread. Shared by the
 * task and the schedule review requests.
 */
import type { ScriptType } from '../domain/scriptTypes.js';
import type { SlackGateway } from './gateway.js';

/** What a clipped review request says where the rest is. */
export const WHOLE_SCRIPT_IN_THREAD = ':page_facing_up: The script is too long to show here: the whole script is in this thread.';

const EXTENSIONS: Readonly<Record<ScriptType, string>> = { bash: 'sh', sh: 'sh', python3: 'py', node: 'js' };

export interface WholeScript {
  /** The review request's channel and ts: the file goes into its thread. */
  channel: string;
  threadTs: string;
  /** The file's name without extension, e.g. `task-12-script`. */
  name: string;
  /** How people name what the script belongs to, e.g. `#12` or `S3`. */
  ref: string;
  type: ScriptType;
  script: string;
  /** Said in the comment when given (a schedule's version, which its Approve button names). */
  version?: string;
}

export async function postWholeScript(gateway: Pick<SlackGateway, 'uploadFile'>, whole: WholeScript): Promise<void> {
  await gateway.uploadFile({
    channel: whole.channel,
    threadTs: whole.threadTs,
    filename: `${whole.name}.${EXTENSIONS[whole.type]}`,
    title: `Script of ${whole.ref}`,
    content: Buffer.from(whole.script, 'utf8'),
    comment: `:page_facing_up: The whole script of ${whole.ref}${whole.version ? ` (version \`${whole.version}\`)` : ''}, for review.`,
  });
}
