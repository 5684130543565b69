import { describe, expect, it } from 'vitest';
import { compileLinear } from '../../src/domain/linearRegex.js';
import { BUILT_IN_RULES, compileRedactRules, LineRedactor, redactLine, type RedactRule } from '../../src/domain/redaction.js';

function rules(...entries: string[]): RedactRule[] {
  const result = compileRedactRules(entries);
  if (!result.ok) throw new Error(result.error);
  return result.rules;
}

function compileError(...entries: string[]): string {
  const result = compileRedactRules(entries);
  if (result.ok) throw new Error(`expected ${JSON.stringify(entries)} to be rejected`);
  return result.error;
}

/** Redacts `text` with one built-in rule and returns what was redacted, in order. */
function redactedBy(name: keyof typeof BUILT_IN_RULES, text: string): string {
  return redactLine(text, rules(name));
}

describe('built-in rules', () => {
  describe('email', () => {
    it.each([
      ['alice@example.com', '[redacted:email]'],
      ['to: first.last+tag@mail.example.co.uk, cc', 'to: [redacted:email], cc'],
      ['<bob_1@mail-server.io>', '<[redacted:email]>'],
      ['sent to x%y@a-b.example.org.', 'sent to [redacted:email].'],
      ['a@b.io c@d.io', '[redacted:email] [redacted:email]'],
    ])('redacts %j', (input, expected) => {
      expect(redactedBy('email', input)).toBe(expected);
    });

    it.each(['user@localhost', '@example.com', 'alice@', 'alice@example.c', 'alice@example.com5', 'alice at example dot com', 'a@.com', 'v1.2@3.4'])(
      'leaves %j alone',
      (input) => {
        expect(redactedBy('email', input)).toBe(input);
      },
    );
  });

  describe('ipv4', () => {
    it.each([
      ['10.0.0.1', '[redacted:ipv4]'],
      ['connect to 192.168.1.254:8080 failed', 'connect to [redacted:ipv4]:8080 failed'],
      ['(255.255.255.0)', '([redacted:ipv4])'],
      ['resolved 8.8.8.8.', 'resolved [redacted:ipv4].'],
      ['net 172.16.0.0/12', 'net [redacted:ipv4]/12'],
      ['from=0.0.0.0,to=1.1.1.1', 'from=[redacted:ipv4],to=[redacted:ipv4]'],
    ])('redacts %j', (input, expected) => {
      expect(redactedBy('ipv4', input)).toBe(expected);
    });

    it.each(['1.2.3.4.5', 'version 10.2.3.4.1 released', '999.1.1.1', '1.2.3.256', '256.1.1.1', '1.2.3', 'v1.2.3.4', '10.0.0.1a', 'a10.0.0.1', '1..2.3.4'])(
      'leaves %j alone',
      (input) => {
        expect(redactedBy('ipv4', input)).toBe(input);
      },
    );
  });

  describe('credit-card', () => {
    it.each([
      ['4111111111111111', '[redacted:credit-card]'],
      ['card 4111 1111 1111 1111 exp 12/29', 'card [redacted:credit-card] exp 12/29'],
      ['5500-0000-0000-0004', '[redacted:credit-card]'],
      ['amex 3782 822463 10005.', 'amex [redacted:credit-card].'],
      ['4222222222222', '[redacted:credit-card]'],
      ['6011111111111117 then 6011 1111 1111 1117', '[redacted:credit-card] then [redacted:credit-card]'],
      // The run of digits is longer than the card; the card is still found inside it.
      ['qty 4111 1111 1111 1111 43', 'qty [redacted:credit-card] 43'],
      ['7 4111 1111 1111 1111', '7 [redacted:credit-card]'],
    ])('redacts %j', (input, expected) => {
      expect(redactedBy('credit-card', input)).toBe(expected);
    });

    it.each([
      '4111111111111112',
      '4111 1111 1111 1112',
      '411111111111',
      '41111111111111111111',
      'order 1234567890123 shipped',
      'pid 12345 took 678 ms',
      '2024-05-01 12:00:00',
      '4111111111111111x',
      'x4111111111111111',
    ])('leaves %j alone', (input) => {
      expect(redactedBy('credit-card', input)).toBe(input);
    });
  });

  describe('aws-key', () => {
    it.each([
      ['AKIAIOSFODNN7EXAMPLE', '[redacted:aws-key]'],
      ['aws_access_key_id=ASIAY34FZKBOKMUTVV7A', 'aws_access_key_id=[redacted:aws-key]'],
      ['"AKIA0123456789ABCDEF",', '"[redacted:aws-key]",'],
    ])('redacts %j', (input, expected) => {
      expect(redactedBy('aws-key', input)).toBe(expected);
    });

    it.each(['AKIAIOSFODNN7EXAMPL', 'AKIAIOSFODNN7EXAMPLEX', 'XAKIAIOSFODNN7EXAMPLE', 'akiaiosfodnn7example', 'AKIDIOSFODNN7EXAMPLE', 'AKIAiosfodnn7EXAMPLE'])(
      'leaves %j alone',
      (input) => {
        expect(redactedBy('aws-key', input)).toBe(input);
      },
    );
  });

  describe('jwt', () => {
    const token = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U';
    it.each([
      [token, '[redacted:jwt]'],
      [`Authorization: Bearer ${token}`, 'Authorization: Bearer [redacted:jwt]'],
      [`token=${token}&x=1`, 'token=[redacted:jwt]&x=1'],
    ])('redacts %j', (input, expected) => {
      expect(redactedBy('jwt', input)).toBe(expected);
    });

    it.each(['eyJhbGciOiJIUzI1NiJ9', 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0', 'abc.def.ghi', `x${token}`, 'eyJ..', 'eyJa.b.'])('leaves %j alone', (input) => {
      expect(redactedBy('jwt', input)).toBe(input);
    });
  });

  it('applies several rules to one line', () => {
    expect(redactLine('alice@example.com from 10.0.0.1 key AKIAIOSFODNN7EXAMPLE', rules('email', 'ipv4', 'aws-key'))).toBe(
      '[redacted:email] from [redacted:ipv4] key [redacted:aws-key]',
    );
  });

  it('does not share lastIndex between compiled rules', () => {
    const [first] = rules('email');
    const [second] = rules('email');
    if (first?.kind !== 'built-in' || second?.kind !== 'built-in') throw new Error('expected built-in rules');
    expect(first.pattern).not.toBe(second.pattern);
    expect(first.pattern).not.toBe(BUILT_IN_RULES.email);
  });
});

describe('compileRedactRules', () => {
  it('compiles built-in names and custom regexes', () => {
    const compiled = rules('email', 'password=\\S+');
    expect(compiled.map((rule) => rule.name)).toEqual(['email', 'custom']);
    expect(redactLine('login password=hunter2 ok', compiled)).toBe('login [redacted:custom] ok');
    expect(redactLine('ids: u-123 u-456', rules('u-\\d+'))).toBe('ids: [redacted:custom] [redacted:custom]');
  });

  it('treats names that are not built-ins as regexes', () => {
    expect(redactLine('hasOwnProperty toString', rules('toString'))).toBe('hasOwnProperty [redacted:custom]');
  });

  it('names an invalid regex in the error', () => {
    const error = compileError('email', 'token=(\\w+');
    expect(error).toContain('token=(\\w+');
    expect(error).toMatch(/regular expression/);
    expect(compileError('[a-')).toContain('[a-');
  });

  it.each(['a*', '^', '$', '\\b', '(?:)', 'x?', '(?=a)', '\\s*'])('rejects %j, which matches empty text', (entry) => {
    expect(compileError(entry)).toContain(entry);
  });

  it('accepts an empty list', () => {
    expect(compileRedactRules([])).toEqual({ ok: true, rules: [] });
  });

  it('never inserts markers for an empty match that slipped past the check', () => {
    const compiled = compileLinear('c|x*');
    if (!compiled.ok) throw new Error(compiled.error);
    expect(redactLine('abc', [{ name: 'custom', kind: 'custom', regex: compiled.regex }])).toBe('ab[redacted:custom]');
  });
});

describe('LineRedactor', () => {
  const emailAndIp = rules('email', 'ipv4');

  it('holds a partial line until its newline arrives', () => {
    const redactor = new LineRedactor(emailAndIp);
    expect(redactor.push('mail alice@exa')).toBe('');
    expect(redactor.push('mple.com now\nnext 10.0.')).toBe('mail [redacted:email] now\n');
    expect(redactor.push('0.1\n')).toBe('next [redacted:ipv4]\n');
    expect(redactor.end()).toBe('');
  });

  it('gives the same result whatever the chunk boundaries', () => {
    const text = 'a alice@example.com b\r\nc 10.0.0.1\n\nd 4111 1111 1111 1111 e\r\nno newline bob@example.org';
    const all = rules('email', 'ipv4', 'credit-card');
    const expected = 'a [redacted:email] b\r\nc [redacted:ipv4]\n\nd [redacted:credit-card] e\r\nno newline [redacted:email]';
    for (let cut = 0; cut <= text.length; cut++) {
      const redactor = new LineRedactor(all);
      expect(redactor.push(text.slice(0, cut)) + redactor.push(text.slice(cut)) + redactor.end(), `cut at ${cut}`).toBe(expected);
    }
    const redactor = new LineRedactor(all);
    expect([...text].map((c) => redactor.push(c)).join('') + redactor.end()).toBe(expected);
  });

  it('keeps CRLF line endings and lets rules see the line without the CR', () => {
    const redactor = new LineRedactor(rules('[a-z]+\\r?$'));
    expect(redactor.push('one two\r\nthree\r')).toBe('one [redacted:custom]\r\n');
    expect(redactor.push('\n')).toBe('[redacted:custom]\r\n');
  });

  it('releases a partial line on flushPartial and carries on afterwards', () => {
    const redactor = new LineRedactor(emailAndIp);
    redactor.push('Password for alice@example.com: ');
    expect(redactor.flushPartial()).toBe('Password for [redacted:email]: ');
    expect(redactor.flushPartial()).toBe('');
    expect(redactor.push('ok 10.0.0.1\n')).toBe('ok [redacted:ipv4]\n');
  });

  it('emits a line that grows past maxLineChars, redacted', () => {
    const redactor = new LineRedactor(emailAndIp, 100);
    const long = `${'x'.repeat(60)} alice@example.com ${'y'.repeat(40)}`;
    expect(redactor.push(long.slice(0, 90))).toBe('');
    // Released up to the last safe whitespace; the tail waits for the rest of the line.
    expect(redactor.push(long.slice(90))).toBe(`${'x'.repeat(60)} [redacted:email] `);
    expect(redactor.push(`${'z'.repeat(10)}\n`)).toBe(`${'y'.repeat(40) + 'z'.repeat(10)}\n`);
  });

  it('never lets a match slip through when an overlong line is cut near it', () => {
    const redactor = new LineRedactor(emailAndIp, 100);
    let out = '';
    // A line with no end in sight; an address arrives in pieces right where cuts happen.
    for (let i = 0; i < 50; i++) out += redactor.push(`${'word '.repeat(19)}bob.smith`);
    out += redactor.push('@example.org is here');
    for (let i = 0; i < 50; i++) out += redactor.push(' filler '.repeat(15));
    out += redactor.end();
    expect(out).not.toContain('example.org');
    expect(out).toContain('[redacted:email]');
  });

  it('emits whole lines even when they are longer than maxLineChars', () => {
    const redactor = new LineRedactor(emailAndIp, 10);
    expect(redactor.push('alice@example.com and more\nab')).toBe('[redacted:email] and more\n');
    expect(redactor.end()).toBe('ab');
  });

  it('passes chunks through untouched without rules', () => {
    const redactor = new LineRedactor([]);
    expect(redactor.push('partial alice@example.com')).toBe('partial alice@example.com');
    expect(redactor.flushPartial()).toBe('');
    expect(redactor.end()).toBe('');
  });

  it('redacts 20 MB with 5 rules quickly', () => {
    const all = rules('email', 'ipv4', 'credit-card', 'aws-key', 'jwt');
    const lines = [
      '2024-05-01T12:00:00.123Z INFO  request id=8f14e45f method=GET path=/api/v1/items?page=3 status=200 took=12ms\n',
      '2024-05-01T12:00:00.124Z DEBUG cache hit key=user:42:profile size=1532 bytes ttl=300s\n',
      '2024-05-01T12:00:00.125Z WARN  login failed for alice@example.com from 192.168.1.20 attempt 3\n',
      '2024-05-01T12:00:00.126Z INFO  charged card 4111 1111 1111 1111 amount=12.50 EUR order=1234567\n',
      '    at Object.<anonymous> (/srv/app/node_modules/some-lib/dist/index.js:1234:56)\n',
      'drwxr-xr-x  2 deploy deploy 4096 May  1 12:00 releases/20240501120000\n',
    ];
    let block = '';
    for (let i = 0; block.length < 1 << 20; i++) block += lines[i % lines.length];
    const chunkSize = 64 * 1024;
    const chunks: string[] = [];
    for (let offset = 0; offset < block.length; offset += chunkSize) chunks.push(block.slice(offset, offset + chunkSize));

    const redactor = new LineRedactor(all);
    let redactions = 0;
    const started = performance.now();
    for (let round = 0; round < 20; round++) {
      for (const chunk of chunks) redactions += redactor.push(chunk).split('[redacted:').length - 1;
    }
    redactions += redactor.end().split('[redacted:').length - 1;
    const elapsed = performance.now() - started;
    console.info(`LineRedactor: ${((block.length * 20) / 2 ** 20).toFixed(0)} MiB with 5 rules in ${elapsed.toFixed(0)} ms`);
    expect(elapsed).toBeLessThan(3000);
    // Two redactions on each login line (email, ip), one on each card line.
    const count = (needle: string) => block.split('\n').filter((line) => line.includes(needle)).length;
    expect(redactions).toBe(20 * (2 * count('login failed') + count('charged card')));
  });
});

describe('custom rules in the linear-time engine', () => {
  /** Milliseconds `fn` takes, after one warm-up call. */
  /** The best of three warm runs: a loaded machine's pauses are not the engine's (a backtracking blow-up is slow every time). */
  const timed = (fn: () => unknown): number => {
    fn();
    let best = Number.POSITIVE_INFINITY;
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      fn();
      best = Math.min(best, performance.now() - started);
    }
    return best;
  };

  it("scans a line of 10,000 a's with (a+)+b in under 50 ms (a backtracking engine never finishes)", () => {
    const evil = rules('(a+)+b');
    const line = 'a'.repeat(10_000);
    expect(timed(() => redactLine(line, evil))).toBeLessThan(50);
    expect(redactLine(line, evil)).toBe(line);
    expect(redactLine(`x ${'a'.repeat(20)}b y`, evil)).toBe('x [redacted:custom] y');
    const redactor = new LineRedactor(evil);
    const started = performance.now();
    const out = redactor.push(`${line}\n${line}b\n`) + redactor.end();
    expect(performance.now() - started).toBeLessThan(100);
    expect(out).toBe(`${line}\n[redacted:custom]\n`);
  });

  it('refuses what RE2 cannot run and programs too big to scan all output with, naming the entry', () => {
    expect(compileError('email', '(\\w+)=\\1')).toMatch(/"\(\\w\+\)=\\1" is not a built-in rule .* linear-time engine \(RE2 syntax/);
    expect(compileError('(?<=key=)\\S+')).toMatch(/linear-time engine/);
    expect(compileError('(?:.*a){300}')).toMatch(/too complex .* at most 500/);
    expect(rules('[0-9a-f]{64}', 'xox[baprs]-[A-Za-z0-9-]{10,48}')).toHaveLength(2);
  });

  it('keeps what custom rules meant: case-insensitive groups, classes, Unicode', () => {
    expect(redactLine('Secret: hunter2 rest', rules('(?i)secret:\\s*\\S+'))).toBe('[redacted:custom] rest');
    expect(redactLine('user Zoë logged in', rules('\\p{Lu}\\p{Ll}+'))).toBe('user [redacted:custom] logged in');
  });

  it('built-in rules (ours, on V8) stay fast on adversarial 16 KiB lines', () => {
    const all = rules('email', 'ipv4', 'credit-card', 'aws-key', 'jwt');
    const lines = [
      'a'.repeat(16_384),
      `a@${'bb.'.repeat(5000)}-`,
      'a.'.repeat(8192),
      'a@'.repeat(8192),
      `x@${'a-'.repeat(8000)}`,
      '1.'.repeat(8192),
      '1 '.repeat(8192),
      '1-'.repeat(8192),
      '9'.repeat(16_384),
      'AKIA'.repeat(4096),
      'eyJa.'.repeat(3200),
      `eyJa.b${'-'.repeat(16_000)}`,
      'eyJ-.'.repeat(3200),
    ];
    for (const line of lines)
      expect(
        timed(() => redactLine(line, all)),
        JSON.stringify(line.slice(0, 12)),
      ).toBeLessThan(50);
  });
});
