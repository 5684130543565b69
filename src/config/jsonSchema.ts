/**
 * countersign.schema.json: the JSON Schema of countersign.yml, generated from the zod schema the
 * loader validates with (src/config/schema.ts), so there is one source of truth for the shape.
 * Editors use it through the `# yaml-language-server: $schema=...` line at the top of the config
 * (completion, hover text, errors as you type).
 *
 * Draft-07, the draft editors' YAML and JSON services support best. The input side of the
 * schema (`io: 'input'`): fields with a default are optional, as they are to whoever writes the
 * file. zod refinements (durations, sizes, sudo -n, secret names, "users or a usergroup"...)
 * have no JSON Schema form and are checked by the loader only; test/unit/jsonSchema.test.ts lists
 * them.
 *
 * The hover texts live here, keyed by path, rather than as .describe() calls spread over the zod
 * schema: generation fails when a documented path no longer exists, so they cannot drift.
 */
import { z } from 'zod';
import { configFileSchema } from './schema.js';

/** Paths: `targets.*` is any target, `hosts[]` any item of the list. */
export const FIELD_DOCS: Readonly<Record<string, string>> = {
  admins: "countersign's admins: they may read every task and change or remove any saved recipe.",
  'admins.users': 'Slack user ids (U0123ABC).',
  'admins.usergroup': 'A Slack user group id (S0123ABC): its members are admins.',
  links: 'Links to task pages (in cards, answers and the API).',
  'links.ttl': 'How long a task-page link stays valid (24h). npm run links -- revoke <key> stops links at once.',
  runner: 'How this process runs tasks.',
  'runner.maxConcurrentRuns': 'Runs this process carries out at once (20).',
  'runner.leaseTimeout': 'A run whose process stops renewing its lease this long is taken as lost, when its runner has no liveness lock (30s).',
  'runner.livenessTimeout':
    'How long a runner cut off from Postgres (a silent partition) may stay silent before its runs are given up (60s); a crashed runner is found in about a second.',
  'runner.pollInterval': 'How often ready tasks are looked for besides notifications (2s).',
  'runner.killGrace': 'After TERM, how long before KILL (5s).',
  'runner.shutdownGrace':
    'On SIGTERM, how long running tasks may go on before they are stopped (30s). Give the pod a termination grace period longer than shutdownGrace + killGrace.',
  'runner.maxOutput': 'Stored output per task (10MB); beyond it the head and the last lines are kept.',
  targets: 'Where scripts may run, by name (letters, digits, -, _ and .).',
  'targets.*': 'A target: its hosts, how to log in, its secrets and its review policy.',
  'targets.*.description': 'Shown in /task targets and the form.',
  'targets.*.type': 'The default script type.',
  'targets.*.hosts': 'The hosts a task runs on, all of them (in batches with rollout).',
  'targets.*.hosts[].host': 'A host name or address.',
  'targets.*.hosts[].port': 'The SSH port (22).',
  'targets.*.hosts[].user': 'The login user (an ordinary user; see runAs to run as another).',
  'targets.*.ssh': 'How countersign logs in: exactly one of privateKeyFile or privateKeyEnv, and the pinned host keys.',
  'targets.*.ssh.privateKeyFile': 'Path of the private key (OpenSSH or PEM), relative to this file.',
  'targets.*.ssh.privateKeyEnv': 'Name of an environment variable holding the private key.',
  'targets.*.ssh.knownHosts':
    'Pinned host keys in known_hosts format ("host ssh-ed25519 AAAA..."; ssh-keyscan prints them). An unknown or changed key refuses to run.',
  'targets.*.channel': 'A Slack channel id (C0123ABC): where scheduled results go.',
  'targets.*.timeout': 'A run is stopped (TERM, then KILL) this long after its script started (15m).',
  'targets.*.connectTimeout': 'Bound on the SSH handshake (10s).',
  'targets.*.maxSessions': "The hosts' sshd MaxSessions (10): one channel per connection stays free for Kill.",
  'targets.*.rollout': 'Run on the hosts in batches, one batch after another.',
  'targets.*.rollout.batch': 'Hosts per batch: a number (5) or a percentage ("25%").',
  'targets.*.rollout.stopOnFailure': 'Start no further batch once a host failed.',
  'targets.*.runAs': 'A command prefix the script runs under, e.g. "sudo -n -u app" (sudo needs -n: nobody can type a password).',
  'targets.*.secrets': 'Environment variables handed to the script on stdin and masked as ***** in all output.',
  'targets.*.secrets.*': 'Where the value comes from: { env: VAR } or { file: path }. At least 4 characters.',
  'targets.*.secrets.*.env': 'An environment variable of the countersign process.',
  'targets.*.secrets.*.file': 'A file (its final newline is dropped), relative to this file.',
  'targets.*.redact': 'Output redaction: built-ins email, ipv4, credit-card, aws-key, jwt, or regexes.',
  'targets.*.review': 'The review policy; absent means tasks run without review.',
  'targets.*.review.channel': 'Where review requests go (a channel id).',
  'targets.*.review.autoRun': 'Run as soon as approved, without the author clicking Run.',
  'targets.*.review.groups': 'Every group must reach its approvals.',
  'targets.*.review.groups[].name': 'Shown on the review request.',
  'targets.*.review.groups[].users': 'Slack user ids whose approvals count for this group.',
  'targets.*.review.groups[].usergroup': 'A Slack user group id: its members count for this group too.',
  'targets.*.review.groups[].approvals': 'Approvals this group must give (1). Authors never approve their own tasks.',
  'targets.*.review.groups[].dm': 'Direct-message each member (but the author) when a review is requested.',
  'targets.*.review.expiresAfter': 'A review still pending this long is rejected (e.g. 24h).',
  'targets.*.viewers': "Who may read this target's tasks and output besides authors, reviewers, card channel members and admins.",
  recipes: 'Saved tasks with arguments, started with /task start <name> or by a hook.',
  'recipes.*.target': 'The target it runs on.',
  'recipes.*.script': 'The script; it gets the arguments as "$1", "$2"... and as ARG_<NAME> variables, never spliced into its text.',
  'recipes.*.arguments': 'fixed (never shown), options (one of a list) or input (free text with an optional pattern).',
  recipeFiles: 'More recipes as JSON files in the /task recipe export format: a file, a directory or dir/*.json.',
  hooks: 'Webhooks: POST /hooks/<id> starts the recipe.',
  'hooks.*.recipe': 'A recipe from recipes or recipeFiles (not an imported one).',
  'hooks.*.secret': 'The shared secret ({ env } or { file }), at least 16 characters.',
  'hooks.*.signature':
    'How deliveries prove the secret: countersign (timestamped HMAC, the default), github (X-Hub-Signature-256 + X-GitHub-Delivery) or bearer (cannot prevent replay).',
  'hooks.*.channel': "Where the task's card goes (the target's channel otherwise).",
  'hooks.*.arguments': 'Arguments the hook sets: a literal, or { from: "path.in.body" }.',
};

type Node = Record<string, unknown>;

/** Every node of the schema reachable by a documented-path spelling, per path. */
function nodesByPath(root: Node): Map<string, Node[]> {
  const found = new Map<string, Node[]>();
  const add = (path: string, node: Node) => found.set(path, [...(found.get(path) ?? []), node]);
  const walk = (node: unknown, path: string): void => {
    if (node === null || typeof node !== 'object') return;
    const n = node as Node;
    for (const [key, child] of Object.entries((n.properties as Record<string, Node> | undefined) ?? {})) {
      const childPath = path === '' ? key : `${path}.${key}`;
      add(childPath, child);
      walk(child, childPath);
    }
    if (n.additionalProperties && typeof n.additionalProperties === 'object') {
      add(`${path}.*`, n.additionalProperties as Node);
      walk(n.additionalProperties, `${path}.*`);
    }
    if (n.items && typeof n.items === 'object') walk(n.items, `${path}[]`);
    for (const key of ['anyOf', 'oneOf', 'allOf']) for (const branch of (n[key] as unknown[] | undefined) ?? []) walk(branch, path);
  };
  walk(root, '');
  return found;
}

/** The JSON Schema of countersign.yml, with the hover texts; throws when a documented path is gone. */
export function configJsonSchema(): Node {
  const schema = z.toJSONSchema(configFileSchema, { target: 'draft-7', io: 'input' }) as Node;
  const nodes = nodesByPath(schema);
  const stale = Object.keys(FIELD_DOCS).filter((path) => !nodes.has(path));
  if (stale.length > 0) throw new Error(`FIELD_DOCS in src/config/jsonSchema.ts documents paths the config schema no longer has: ${stale.join(', ')}`);
  for (const [path, text] of Object.entries(FIELD_DOCS)) for (const node of nodes.get(path)!) node.description = text;
  const { $schema, ...rest } = schema;
  return { $schema, title: 'countersign.yml', description: 'countersign: where scripts may run and who must approve them.', ...rest };
}

/** The file's text: stable key order from the generator, two-space indent, final newline. */
export function configJsonSchemaText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}
