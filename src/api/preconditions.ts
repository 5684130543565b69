/**
 * Entity tags and preconditions (RFC 9110 §8.8.3, §13.1.1): a task's ETag is its content
 * version, quoted. Approving needs `If-Match` naming the version the reviewer read (428
 * without, 412 when the task is no longer that version); an edit may send one against lost
 * updates. Comparison is strong: a weak tag (W/"…") never matches.
 */
import { FULL_HASH } from '../domain/contentVersion.js';
import type { Access } from '../service/access.js';
import { ApiError } from './errors.js';

/**
 * A card's channel lets its members see what it shows: a start over the API may name only a
 * channel its user is in (or `own`, the target's own channel), for tasks and runbooks alike.
 */
export async function assertMayNameChannel(access: Access, userId: string, channel: string | undefined, own: string | null = null): Promise<void> {
  if (channel === undefined || channel === own || (await access.viewer(userId).channelMember(channel))) return;
  throw new ApiError(
    422,
    'not_in_channel',
    `You are not a member of channel ${channel} (or Slack cannot say so right now): name a channel you are in, or leave channel out for the target's own.`,
  );
}

export const etag = (contentVersion: string): string => `"${contentVersion}"`;

export type IfMatch = { kind: 'absent' } | { kind: 'any' } | { kind: 'tag'; version: string | null };

const ENTITY_TAG = /^(W\/)?"([\x21\x23-\x7e\x80-\xff]*)"$/;

/**
 * Reads If-Match. One entity tag: its version (null when it is weak or not a content version,
 * so it matches nothing). A list of several is refused: a change names the one version it read.
 */
export function readIfMatch(header: string | undefined): IfMatch {
  if (header === undefined || header.trim() === '') return { kind: 'absent' };
  const value = header.trim();
  if (value === '*') return { kind: 'any' };
  const tags = value.split(',').map((t) => t.trim());
  if (tags.length > 1) throw new ApiError(400, 'invalid_request', 'If-Match: name one ETag, the version you read.');
  const match = ENTITY_TAG.exec(tags[0]!);
  if (!match) throw new ApiError(400, 'invalid_request', 'If-Match: expected an ETag in double quotes, as GET /tasks/{id} sends it.');
  const weak = match[1] !== undefined;
  return { kind: 'tag', version: !weak && FULL_HASH.test(match[2]!) ? match[2]! : null };
}
