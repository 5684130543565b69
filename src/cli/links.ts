/**
 * `npm run links -- list | rotate | revoke <version>`: the keys that sign task-page links.
 * `rotate` adds a key: new links use it, links signed before stay valid until they expire.
 * `revoke` stops every link signed with that key at once (every replica re-reads the ring
 * within seconds); revoking the key in use makes a new one for new links. Uses DATABASE_URL,
 * else the embedded Postgres under .data/ (the running app's, when it is up). Secrets are
 * never printed.
 */
import { parseArgs } from 'node:util';
import type { Db } from '../store/db.js';
import { runWhenMain, UsageError } from './databaseCommand.js';
import { currentKey, ensureLinkKeys, linkKeys, revokeLinkKey, rotateLinkKey } from '../store/linkKeys.js';

const USAGE = `usage:
  npm run links -- list
  npm run links -- rotate
  npm run links -- revoke <key version>`;

export async function runLinksCommand(args: string[], db: Db, out: (line: string) => void): Promise<void> {
  const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
  const [command, ...rest] = positionals;
  if (command === 'list') {
    const keys = await ensureLinkKeys(db);
    const current = currentKey(keys);
    for (const key of keys) {
      const state = key.revokedAt
        ? `revoked ${key.revokedAt.toISOString()}`
        : key.version === current?.version
          ? 'signs new links'
          : 'verifies links until they expire';
      out(`${key.version}\tcreated ${key.createdAt.toISOString()}\t${state}`);
    }
  } else if (command === 'rotate') {
    if (rest.length > 0) throw new UsageError('rotate takes no arguments');
    await ensureLinkKeys(db);
    const key = await rotateLinkKey(db);
    out(`key ${key.version} signs new links from now on (within seconds on every replica); links signed with older keys stay valid until they expire.`);
  } else if (command === 'revoke') {
    const version = Number(rest[0]);
    if (rest.length !== 1 || !Number.isSafeInteger(version) || version < 1) throw new UsageError('revoke needs one key version (see `list`)');
    if (!(await revokeLinkKey(db, version))) {
      out(`no live key ${version}`);
      return;
    }
    out(`key ${version} revoked: its links stop working within seconds on every replica.`);
    const before = currentKey(await linkKeys(db));
    const keys = await ensureLinkKeys(db);
    const current = currentKey(keys);
    if (!before && current) out(`it was the key in use: key ${current.version} signs new links now.`);
  } else {
    throw new UsageError(command ? `unknown command \`${command}\`` : 'missing command');
  }
}

runWhenMain(import.meta.url, 'links', USAGE, runLinksCommand);
