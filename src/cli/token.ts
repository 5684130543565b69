/**
 * `npm run token -- create --user U0123 --name ci` | `list` | `revoke <id>`: API tokens for
 * admins. Uses DATABASE_URL, else the embedded Postgres under .data/ (the running app's, when
 * it is up; otherwise started just for this command). The clear token is printed once.
 */
import { parseArgs } from 'node:util';
import { createApiToken, listApiTokens, revokeApiToken } from '../store/apiTokens.js';
import type { Db } from '../store/db.js';
import { runWhenMain, UsageError } from './databaseCommand.js';

const USAGE = `usage:
  npm run token -- create --user <Slack user id, e.g. U0123ABC> --name <what it is for>
  npm run token -- list
  npm run token -- revoke <token id>`;

export async function runTokenCommand(args: string[], db: Db, out: (line: string) => void): Promise<void> {
  const { positionals, values } = parseArgs({ args, allowPositionals: true, options: { user: { type: 'string' }, name: { type: 'string' } } });
  const [command, ...rest] = positionals;
  if (command === 'create') {
    if (!values.user || !/^[UW][A-Z0-9]{2,}$/.test(values.user)) throw new UsageError('--user must be a Slack user id such as U0123ABC');
    if (!values.name || values.name.trim() === '') throw new UsageError('--name is required: say what the token is for');
    const { token, record } = await createApiToken(db, values.user, values.name.trim());
    out(`token ${record.id} "${record.name}" acts as ${record.userId}. It is shown this once; store it now:`);
    out(token);
  } else if (command === 'list') {
    for (const t of await listApiTokens(db)) {
      out(
        `${t.id}\t${t.name}\t${t.userId}\tcreated ${t.createdAt.toISOString()}\t${t.revokedAt ? `revoked ${t.revokedAt.toISOString()}` : t.lastUsedAt ? `last used ${t.lastUsedAt.toISOString()}` : 'never used'}`,
      );
    }
  } else if (command === 'revoke') {
    const id = Number(rest[0]);
    if (!Number.isSafeInteger(id) || id < 1) throw new UsageError('revoke needs a token id (see `list`)');
    out((await revokeApiToken(db, id)) ? `token ${id} revoked` : `no live token ${id}`);
  } else {
    throw new UsageError(command ? `unknown command \`${command}\`` : 'missing command');
  }
}

runWhenMain(import.meta.url, 'token', USAGE, runTokenCommand);
