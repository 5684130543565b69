/**
 * Which Slack Web API methods the code under src/ calls, found by reading its source, and which
 * OAuth scopes Slack documents for each. test/unit/manifest.test.ts checks manifest.yml's bot
 * scopes and the fake Slack against this, so a new call cannot ship without its scope or untested.
 *
 * The scan parses each file with the TypeScript compiler (syntax only, no type checking), so
 * comments never count and strings are told apart from code. A method counts when it is:
 * - called on a Web API client: `client.chat.postMessage(`, `this.client.views.open(`,
 *   `app.client.usergroups.users.list(`: any receiver whose name ends in `client` (case
 *   insensitive) followed by at least two property names (`client.on(`, `client.query(` of
 *   pg or ssh2 are one name and do not count);
 * - a client helper that calls methods itself: `client.filesUploadV2(` (see CLIENT_HELPERS);
 * - the method name given to `client.apiCall('views.publish', ...)` or
 *   `client.paginate('usergroups.users.list', ...)`;
 * - any other whole string literal that is the name of a method of @slack/web-api's WebClient:
 *   the gateway's `call('chat.postMessage', ...)`, refusal and metric labels (a literal that
 *   merely looks like one, such as body-parser's 'entity.too.large', does not count);
 * - Bolt's `say(...)` (chat.postMessage);
 * - implied by a library the code constructs (IMPLICIT_CALLS): Bolt's `new App({ token })`
 *   checks its token with auth.test; `new SocketModeReceiver(...)` opens its WebSocket with
 *   apps.connections.open on the app-level token.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { WebClient } from '@slack/web-api';
import ts from 'typescript';

export type TokenType = 'bot' | 'app';

export interface MethodScopes {
  /** The token the code calls it with: the bot token (xoxb) or the app-level token (xapp). */
  token: TokenType;
  /** Scopes the token needs, all of them; empty when Slack says "No scope required". */
  scopes: readonly string[];
  note?: string;
}

/**
 * Every Web API method the code may call, with the scopes Slack's method reference lists for
 * the token type used (https://docs.slack.dev/reference/methods/<method>). A method the scan
 * finds that is not here fails the manifest test: classify it here first.
 */
export const METHOD_SCOPES: Readonly<Record<string, MethodScopes>> = {
  'auth.test': { token: 'bot', scopes: [] },
  'chat.postMessage': { token: 'bot', scopes: ['chat:write'] },
  'chat.update': { token: 'bot', scopes: ['chat:write'] },
  'chat.postEphemeral': { token: 'bot', scopes: ['chat:write'] },
  'chat.delete': { token: 'bot', scopes: ['chat:write'] },
  'chat.getPermalink': { token: 'bot', scopes: [] },
  'views.open': { token: 'bot', scopes: [] },
  'views.update': { token: 'bot', scopes: [] },
  'views.push': { token: 'bot', scopes: [] },
  'views.publish': { token: 'bot', scopes: [] },
  'files.getUploadURLExternal': { token: 'bot', scopes: ['files:write'] },
  'files.completeUploadExternal': { token: 'bot', scopes: ['files:write'] },
  'usergroups.users.list': { token: 'bot', scopes: ['usergroups:read'] },
  'conversations.open': {
    token: 'bot',
    scopes: ['im:write'],
    note: 'Slack accepts any of channels:manage, groups:write, im:write, mpim:write; a DM with one user (reviewer DMs) needs im:write',
  },
  'users.info': { token: 'bot', scopes: ['users:read'] },
  'conversations.members': {
    token: 'bot',
    scopes: ['channels:read', 'groups:read'],
    note: 'Slack asks for the scope of the conversation type: channels:read (public), groups:read (private), mpim:read / im:read (group or 1:1 DMs). Cards go to channels; a DM card is seen by its author anyway, so no DM scope is asked for.',
  },
  'functions.completeSuccess': { token: 'bot', scopes: [], note: "completes a Workflow Builder step; Slack takes the bot token or the execution's own" },
  'functions.completeError': { token: 'bot', scopes: [], note: "fails a Workflow Builder step; Slack takes the bot token or the execution's own" },
  'apps.connections.open': {
    token: 'app',
    scopes: ['connections:write'],
    note: 'Socket Mode: an app-level token (xapp-) made in the app settings, not a bot scope in the manifest',
  },
};

/** Bot scopes that no Web API method needs but a manifest feature does. */
export const FEATURE_SCOPES: Readonly<Record<string, string>> = {
  commands: 'features.slash_commands (Slack requires it for slash commands)',
};

/** Client methods that are not Web API methods themselves but call some. */
export const CLIENT_HELPERS: Readonly<Record<string, readonly string[]>> = {
  // @slack/web-api's filesUploadV2: files.getUploadURLExternal, a POST of the bytes, files.completeUploadExternal.
  filesUploadV2: ['files.getUploadURLExternal', 'files.completeUploadExternal'],
};

/** Constructors whose objects call Web API methods on their own. */
export const IMPLICIT_CALLS: Readonly<Record<string, { methods: readonly string[]; why: string }>> = {
  App: { methods: ['auth.test'], why: "Bolt's App checks its bot token with auth.test (tokenVerificationEnabled)" },
  SocketModeReceiver: { methods: ['apps.connections.open'], why: 'asks for its WebSocket URL with the app-level token' },
};

/** First segments of Slack Web API method names (docs.slack.dev/reference/methods). */
const FAMILIES = [
  'admin',
  'api',
  'apps',
  'assistant',
  'auth',
  'bookmarks',
  'bots',
  'calls',
  'canvases',
  'chat',
  'conversations',
  'dialog',
  'dnd',
  'emoji',
  'entity',
  'files',
  'functions',
  'migration',
  'oauth',
  'openid',
  'pins',
  'reactions',
  'reminders',
  'rtm',
  'search',
  'slackLists',
  'stars',
  'team',
  'tooling',
  'usergroups',
  'users',
  'views',
  'workflows',
];
const METHOD_LITERAL = new RegExp(`^(?:${FAMILIES.join('|')})(?:\\.[a-zA-Z][a-zA-Z0-9]*)+$`);
const CLIENT_NAME = /client$/i;
const webClient = new WebClient();

/** True when @slack/web-api's WebClient has this method (`client.usergroups.users.list`). */
export function isWebApiMethod(method: string): boolean {
  let value: unknown = webClient;
  for (const part of method.split('.')) {
    if (value === null || (typeof value !== 'object' && typeof value !== 'function') || !Object.hasOwn(value, part)) return false;
    value = (value as Record<string, unknown>)[part];
  }
  return typeof value === 'function';
}
/** Client methods taking a method name as their first argument (the literal is found anyway). */
const BY_NAME = new Set(['apiCall', 'paginate']);

export interface Use {
  method: string;
  /** `file:line`, relative to the repository. */
  where: string;
  how: 'client call' | 'client helper' | 'method name' | 'say' | 'implied';
}

export interface Scan {
  uses: Use[];
  /** Sorted, each once. */
  methods: string[];
  /** Slash commands registered with `.command('/x', ...)`. */
  commands: string[];
  /** Events listened to with `.event('x', ...)`. */
  events: string[];
  /** Workflow Builder steps (custom functions) listened to with `.function('callback_id', ...)`. */
  functions: string[];
  /** String values of `endpoints:` properties (ExpressReceiver / HTTPReceiver paths). */
  endpoints: string[];
}

const repoRoot = new URL('../../', import.meta.url).pathname;

export function scanSource(dir = join(repoRoot, 'src')): Scan {
  const uses: Use[] = [];
  const commands = new Set<string>();
  const events = new Set<string>();
  const functions = new Set<string>();
  const endpoints = new Set<string>();
  for (const file of sourceFiles(dir)) {
    const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
    const where = (node: ts.Node) => `${relative(repoRoot, file)}:${source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1}`;
    const visit = (node: ts.Node): void => {
      if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) return; // module specifiers are not method names
      if (ts.isCallExpression(node)) {
        const names = chain(node.expression);
        const clientAt = findLastIndex(names, (name) => CLIENT_NAME.test(name));
        if (clientAt >= 0) {
          const rest = names.slice(clientAt + 1);
          if (rest.length >= 2) uses.push({ method: rest.join('.'), where: where(node), how: 'client call' });
          else if (rest.length === 1 && Object.hasOwn(CLIENT_HELPERS, rest[0]!)) {
            for (const method of CLIENT_HELPERS[rest[0]!]!) uses.push({ method, where: where(node), how: 'client helper' });
          } else if (rest.length === 1 && BY_NAME.has(rest[0]!)) {
            const name = node.arguments[0];
            // A computed method name cannot be checked: make it a failure rather than a blind spot.
            const method = isLiteral(name) ? name.text : `<computed ${rest[0]}(...) name>`;
            uses.push({ method, where: where(node), how: 'client call' });
          }
        }
        if (ts.isIdentifier(node.expression) && node.expression.text === 'say') {
          uses.push({ method: 'chat.postMessage', where: where(node), how: 'say' });
        }
        const last = names.at(-1);
        const first = node.arguments[0];
        if (names.length >= 2 && first && isLiteral(first)) {
          if (last === 'command') commands.add(first.text);
          if (last === 'event') events.add(first.text);
        }
        // A step's callback id must be a literal to be checked against the manifest.
        if (names.length >= 2 && last === 'function' && first) functions.add(isLiteral(first) ? first.text : `<computed function(...) id at ${where(node)}>`);
      }
      if (isLiteral(node) && METHOD_LITERAL.test(node.text) && isWebApiMethod(node.text)) {
        uses.push({ method: node.text, where: where(node), how: 'method name' });
      }
      if (ts.isNewExpression(node) && ts.isIdentifier(node.expression) && Object.hasOwn(IMPLICIT_CALLS, node.expression.text)) {
        for (const method of IMPLICIT_CALLS[node.expression.text]!.methods) uses.push({ method, where: where(node), how: 'implied' });
      }
      if (ts.isPropertyAssignment(node) && propertyName(node.name) === 'endpoints' && isLiteral(node.initializer)) {
        endpoints.add(node.initializer.text);
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return {
    uses,
    methods: [...new Set(uses.map((use) => use.method))].sort(),
    commands: [...commands].sort(),
    events: [...events].sort(),
    functions: [...functions].sort(),
    endpoints: [...endpoints].sort(),
  };
}

/** Bot scopes the methods need, each with the methods needing it. */
export function requiredBotScopes(methods: readonly string[]): Map<string, string[]> {
  const needed = new Map<string, string[]>();
  for (const method of methods) {
    const entry = METHOD_SCOPES[method];
    if (entry?.token !== 'bot') continue;
    for (const scope of entry.scopes) needed.set(scope, [...(needed.get(scope) ?? []), method]);
  }
  return needed;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && /\.(ts|mts|cts|tsx)$/.test(entry.name) && !entry.name.endsWith('.d.ts'))
    .map((entry) => join(entry.parentPath, entry.name))
    .sort();
}

/** `this.client.chat.postMessage` -> ['this', 'client', 'chat', 'postMessage']; other shapes end the chain with '?'. */
function chain(expression: ts.Expression): string[] {
  if (ts.isPropertyAccessExpression(expression)) return [...chain(expression.expression), expression.name.text];
  if (ts.isIdentifier(expression)) return [expression.text];
  if (expression.kind === ts.SyntaxKind.ThisKeyword) return ['this'];
  if (ts.isNonNullExpression(expression) || ts.isParenthesizedExpression(expression)) return chain(expression.expression);
  if (ts.isElementAccessExpression(expression) && isLiteral(expression.argumentExpression)) {
    return [...chain(expression.expression), expression.argumentExpression.text];
  }
  return ['?'];
}

function isLiteral(node: ts.Node | undefined): node is ts.StringLiteral | ts.NoSubstitutionTemplateLiteral {
  return node !== undefined && (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node));
}

function propertyName(name: ts.PropertyName): string | undefined {
  return ts.isIdentifier(name) || ts.isStringLiteral(name) ? name.text : undefined;
}

function findLastIndex<T>(items: readonly T[], test: (item: T) => boolean): number {
  for (let i = items.length - 1; i >= 0; i--) if (test(items[i]!)) return i;
  return -1;
}
