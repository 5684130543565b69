/**
 * `npx tsx bench/redaction-engines.ts`: what redaction costs per MiB of typical log output, on
 * V8 and in the linear-time engine (re2js). Custom rules must run in re2js; this measures what
 * moving the built-ins there too would cost. The built-ins use lookbehind, which RE2 lacks, so
 * their re2js figures use the same patterns without the lookarounds (an optimistic stand-in).
 * Prints figures; asserts nothing.
 */
import { compileLinear } from '../src/domain/linearRegex.js';
import { BUILT_IN_RULES, compileRedactRules, redactLine } from '../src/domain/redaction.js';

const LINES = [
  '2024-05-01T12:00:00.123Z INFO  request id=8f14e45f method=GET path=/api/v1/items?page=3 status=200 took=12ms',
  '2024-05-01T12:00:00.124Z DEBUG cache hit key=user:42:profile size=1532 bytes ttl=300s',
  '2024-05-01T12:00:00.125Z WARN  login failed for alice@example.com from 192.168.1.20 attempt 3',
  '2024-05-01T12:00:00.126Z INFO  charged card 4111 1111 1111 1111 amount=12.50 EUR order=1234567',
  '    at Object.<anonymous> (/srv/app/node_modules/some-lib/dist/index.js:1234:56)',
  'drwxr-xr-x  2 deploy deploy 4096 May  1 12:00 releases/20240501120000',
];
const lines: string[] = [];
for (let size = 0; size < 1 << 20; ) {
  const line = LINES[lines.length % LINES.length] as string;
  lines.push(line);
  size += line.length + 1;
}

function msPerMiB(run: () => void): number {
  run();
  const rounds = 5;
  const started = performance.now();
  for (let i = 0; i < rounds; i++) run();
  return (performance.now() - started) / rounds;
}

const withoutLookaround = (source: string) => source.replace(/\(\?<?[!=](?:[^()\\]|\\.|\((?:[^()\\]|\\.)*\))*\)/g, '');

console.log('redaction, ms per MiB of log lines (lower is better)\n');
const builtIns = compileRedactRules(Object.keys(BUILT_IN_RULES));
if (!builtIns.ok) throw new Error(builtIns.error);
console.log(`all 5 built-ins on V8:                     ${msPerMiB(() => lines.forEach((l) => redactLine(l, builtIns.rules))).toFixed(1)}`);
let re2Total = 0;
for (const [name, pattern] of Object.entries(BUILT_IN_RULES)) {
  const v8 = compileRedactRules([name]);
  if (!v8.ok) throw new Error(v8.error);
  const core = compileLinear(withoutLookaround(pattern.source));
  if (!core.ok) throw new Error(`${name}: ${core.error}`);
  const v8Ms = msPerMiB(() => lines.forEach((l) => redactLine(l, v8.rules)));
  const re2Ms = msPerMiB(() => lines.forEach((l) => core.regex.matches(l)));
  re2Total += re2Ms;
  console.log(`  ${name.padEnd(12)} V8 ${v8Ms.toFixed(1).padStart(6)}   re2js (no lookaround) ${re2Ms.toFixed(1).padStart(6)}`);
}
console.log(`all 5 built-ins in re2js (stand-in):       ${re2Total.toFixed(1)}\n`);
for (const source of ['password=\\S+', 'token-[A-Za-z0-9]+', '(?i)secret[:=]\\s*\\S+', '[0-9a-f]{32}', 'xox[baprs]-[A-Za-z0-9-]{10,48}']) {
  const custom = compileRedactRules([source]);
  if (!custom.ok) throw new Error(custom.error);
  const v8 = new RegExp(source.replace('(?i)', ''), source.startsWith('(?i)') ? 'gi' : 'g');
  const re2Ms = msPerMiB(() => lines.forEach((l) => redactLine(l, custom.rules)));
  const v8Ms = msPerMiB(() => lines.forEach((l) => l.replace(v8, '[redacted:custom]')));
  console.log(`custom ${source.padEnd(34)} re2js ${re2Ms.toFixed(1).padStart(6)}   (V8 would be ${v8Ms.toFixed(1)})`);
}
