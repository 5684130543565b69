// Pinned host keys: parsing OpenSSH known_hosts text and picking the keys for host:port, checked
// against keys, hashes and fingerprints from the real ssh-keygen.
import { execFileSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keysFor, parseKnownHosts, type KnownHostEntry } from '../../src/exec/knownHosts.js';
import { fingerprint } from '../../src/exec/sshStep.js';

const ED = 'AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl';
const ED_OTHER = 'AAAAC3NzaC1lZDI1NTE5AAAAIFmCqg2rA9YJkTDpwR5Yx1b8EZtl3Bj4Hj4mW3dFq0bT';
const RSA = 'AAAAB3NzaC1yc2EAAAADAQABAAABAQC7vbqajDhA+17ZAdaZcZSjJF2p';

/** `|1|salt|hash` as OpenSSH writes it: HMAC-SHA1 keyed by a random salt over the host name. */
function hashHost(name: string, salt: Buffer = randomBytes(20)): string {
  return `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
}

function parseOk(text: string): KnownHostEntry[] {
  const { entries, errors } = parseKnownHosts(text);
  expect(errors).toEqual([]);
  return entries;
}

const keysOf = (entries: KnownHostEntry[]) => entries.map((e) => e.keyBase64);

describe('parseKnownHosts', () => {
  it('parses a plain line, ignoring the comment after the key', () => {
    expect(parseOk(`10.0.0.5 ssh-ed25519 ${ED} root@web-1 added 2024`)).toEqual([{ patterns: ['10.0.0.5'], keyType: 'ssh-ed25519', keyBase64: ED }]);
  });

  it('splits comma lists of names', () => {
    expect(parseOk(`web-1.example.com,web-1,10.0.0.5 ssh-rsa ${RSA}`)).toEqual([
      { patterns: ['web-1.example.com', 'web-1', '10.0.0.5'], keyType: 'ssh-rsa', keyBase64: RSA },
    ]);
  });

  it('keeps [host]:port and hashed names as they are', () => {
    const hashed = hashHost('10.0.0.7');
    expect(parseOk(`[10.0.0.6]:2222 ssh-ed25519 ${ED}\n${hashed} ssh-ed25519 ${ED_OTHER}`)).toEqual([
      { patterns: ['[10.0.0.6]:2222'], keyType: 'ssh-ed25519', keyBase64: ED },
      { patterns: [hashed], keyType: 'ssh-ed25519', keyBase64: ED_OTHER },
    ]);
  });

  it('skips comments and blank lines, takes CRLF, tabs and indentation', () => {
    const text = `# pinned by ops\r\n\r\n   \r\n\t10.0.0.5\tssh-ed25519   ${ED}\r\n  # another comment\n10.0.0.6 ssh-rsa ${RSA}\n`;
    expect(keysOf(parseOk(text))).toEqual([ED, RSA]);
    expect(parseKnownHosts('').entries).toEqual([]);
    expect(parseKnownHosts('# nothing\n\n').entries).toEqual([]);
  });

  it('reports markers such as @cert-authority and @revoked as errors with their line', () => {
    const text = `10.0.0.5 ssh-ed25519 ${ED}\n# c\n@cert-authority *.example.com ssh-ed25519 ${ED}\n@revoked 10.0.0.5 ssh-ed25519 ${ED_OTHER}`;
    const { entries, errors } = parseKnownHosts(text);
    expect(keysOf(entries)).toEqual([ED]);
    expect(errors).toHaveLength(2);
    expect(errors[0]).toMatch(/^line 3: /);
    expect(errors[0]).toContain('@cert-authority');
    expect(errors[1]).toMatch(/^line 4: /);
    expect(errors[1]).toContain('@revoked');
  });

  it('reports malformed lines with their line numbers, counting blank and comment lines', () => {
    const text = [
      `10.0.0.5 ssh-ed25519 ${ED}`, // 1: fine
      '', // 2
      '# comment', // 3
      '10.0.0.6 ssh-ed25519', // 4: no key
      '10.0.0.7', // 5: host only
      '10.0.0.8 ssh-ed25519 not-base64!', // 6: bad base64
      `ssh-ed25519 ${ED}`, // 7: no host (the key lands in the type slot)
      `10.0.0.9 ssh-rsa ${RSA}`, // 8: fine
    ].join('\n');
    const { entries, errors } = parseKnownHosts(text);
    expect(keysOf(entries)).toEqual([ED, RSA]);
    expect(errors.map((e) => e.split(':')[0])).toEqual(['line 4', 'line 5', 'line 6', 'line 7']);
    for (const error of errors) expect(error).toContain('expected "host keytype base64-key"');
  });
});

describe('keysFor', () => {
  const entries = parseOk(
    [
      `10.0.0.5 ssh-ed25519 ${ED}`,
      `10.0.0.5 ssh-rsa ${RSA}`,
      `[10.0.0.5]:2222 ssh-ed25519 ${ED_OTHER}`,
      `web-1,10.0.0.6 ssh-ed25519 ${ED}`,
      `[10.0.0.7]:22 ssh-ed25519 ${ED}`,
      `[10.0.0.8]:2200 ssh-ed25519 ${ED_OTHER}`,
    ].join('\n'),
  );

  it('finds every key pinned for a host on port 22', () => {
    expect(keysOf(keysFor(entries, '10.0.0.5', 22))).toEqual([ED, RSA]);
    expect(keysOf(keysFor(entries, 'web-1', 22))).toEqual([ED]);
    expect(keysOf(keysFor(entries, '10.0.0.6', 22))).toEqual([ED]);
  });

  it('matches `[host]:22` for port 22', () => {
    expect(keysOf(keysFor(entries, '10.0.0.7', 22))).toEqual([ED]);
  });

  it('prefers the exact [host]:port entry on a non-standard port', () => {
    expect(keysOf(keysFor(entries, '10.0.0.5', 2222))).toEqual([ED_OTHER]);
  });

  it('falls back to the plain host entry on a non-standard port without a [host]:port entry', () => {
    expect(keysOf(keysFor(entries, '10.0.0.5', 2200))).toEqual([ED, RSA]);
    expect(keysOf(keysFor(entries, 'web-1', 8022))).toEqual([ED]);
  });

  it('never uses a [host]:port entry for another port', () => {
    expect(keysFor(entries, '10.0.0.8', 22)).toEqual([]);
    expect(keysFor(entries, '10.0.0.8', 2222)).toEqual([]);
    expect(keysFor(entries, '10.0.0.7', 2222)).toEqual([]);
  });

  it('finds nothing for unknown hosts, and names match whole', () => {
    expect(keysFor(entries, '10.0.0.50', 22)).toEqual([]);
    expect(keysFor(entries, '10.0.0', 22)).toEqual([]);
    expect(keysFor(entries, 'web', 22)).toEqual([]);
    expect(keysFor([], '10.0.0.5', 22)).toEqual([]);
  });

  it('matches hashed names, plain and [host]:port, as OpenSSH hashes them', () => {
    const hashed = parseOk(
      [
        `${hashHost('10.0.0.5')} ssh-ed25519 ${ED}`,
        `${hashHost('[10.0.0.5]:2222')} ssh-ed25519 ${ED_OTHER}`,
        `${hashHost('db-1')},10.9.9.9 ssh-rsa ${RSA}`,
      ].join('\n'),
    );
    expect(keysOf(keysFor(hashed, '10.0.0.5', 22))).toEqual([ED]);
    expect(keysOf(keysFor(hashed, '10.0.0.5', 2222))).toEqual([ED_OTHER]);
    expect(keysOf(keysFor(hashed, '10.0.0.5', 2200))).toEqual([ED]);
    expect(keysOf(keysFor(hashed, 'db-1', 22))).toEqual([RSA]);
    expect(keysOf(keysFor(hashed, '10.9.9.9', 22))).toEqual([RSA]);
    expect(keysFor(hashed, '10.0.0.6', 22)).toEqual([]);
    expect(keysFor(hashed, 'db-2', 22)).toEqual([]);
  });

  it('does not match a hash made with another salt or for another name, nor a truncated hash entry', () => {
    const salt = randomBytes(20);
    const good = hashHost('10.0.0.5', salt);
    const [, , saltB64, hash] = good.split('|');
    const otherSalt = `|1|${randomBytes(20).toString('base64')}|${hash}`;
    const otherName = hashHost('10.0.0.6', salt);
    const truncated = `|1|${saltB64}`;
    const list = parseOk([otherSalt, otherName, truncated].map((p) => `${p} ssh-ed25519 ${ED}`).join('\n'));
    expect(keysFor(list, '10.0.0.5', 22)).toEqual([]);
  });
});

describe('against ssh-keygen', () => {
  let dir: string;
  const keygen = (...args: string[]) => execFileSync('ssh-keygen', args, { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'countersign-keys-'));
    keygen('-q', '-t', 'ed25519', '-N', '', '-C', 'test-ed25519', '-f', join(dir, 'ed'));
    keygen('-q', '-t', 'rsa', '-b', '2048', '-N', '', '-C', 'test-rsa', '-f', join(dir, 'rsa'));
    keygen('-q', '-t', 'ecdsa', '-b', '256', '-N', '', '-C', 'test-ecdsa', '-f', join(dir, 'ecdsa'));
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  for (const name of ['ed', 'rsa', 'ecdsa']) {
    it(`fingerprint matches ssh-keygen -lf for a ${name} key`, () => {
      const pub = readFileSync(join(dir, `${name}.pub`), 'utf8').trim();
      const [, keyBase64] = pub.split(/\s+/);
      const expected = keygen('-l', '-E', 'sha256', '-f', join(dir, `${name}.pub`)).split(/\s+/)[1];
      expect(expected).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
      expect(fingerprint(Buffer.from(keyBase64!, 'base64'))).toBe(expected);
    });
  }

  it('parses public key lines ssh-keygen wrote and finds them for their host', () => {
    const lines = ['ed', 'rsa', 'ecdsa'].map((name) => readFileSync(join(dir, `${name}.pub`), 'utf8').trim());
    const text = lines.map((line, i) => `10.0.1.${i} ${line}`).join('\n');
    const entries = parseOk(text);
    expect(entries.map((e) => e.keyType)).toEqual(['ssh-ed25519', 'ssh-rsa', 'ecdsa-sha2-nistp256']);
    for (const [i, line] of lines.entries()) expect(keysOf(keysFor(entries, `10.0.1.${i}`, 22))).toEqual([line.split(' ')[1]]);
  });

  it('matches names hashed by ssh-keygen -H', () => {
    const pub = readFileSync(join(dir, 'ed.pub'), 'utf8').trim().split(' ');
    const file = join(dir, 'known_hosts');
    writeFileSync(file, `web-9.example.com ${pub[0]} ${pub[1]}\n[10.0.2.9]:2222 ${pub[0]} ${pub[1]}\n`);
    keygen('-H', '-f', file);
    const hashedText = readFileSync(file, 'utf8');
    expect(hashedText).not.toContain('web-9');
    expect(hashedText).not.toContain('10.0.2.9');
    const entries = parseOk(hashedText);
    expect(entries).toHaveLength(2);
    expect(entries.every((e) => e.patterns[0]!.startsWith('|1|'))).toBe(true);
    expect(keysOf(keysFor(entries, 'web-9.example.com', 22))).toEqual([pub[1]]);
    expect(keysOf(keysFor(entries, '10.0.2.9', 2222))).toEqual([pub[1]]);
    expect(keysFor(entries, '10.0.2.9', 22)).toEqual([]);
    expect(keysFor(entries, 'web-8.example.com', 22)).toEqual([]);
  });
});
