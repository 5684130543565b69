// http.allow as pure rules: entries parsed with their faults named, hosts checked as written,
// DNS answers checked (public, or covered by an entry), special-purpose ranges recognised.
import { describe, expect, it } from 'vitest';
import {
  checkResolvedAddress,
  checkUrlHost,
  EMPTY_NET_ALLOW,
  netAllowEntryProblem,
  parseNetAllow,
  specialPurposeRange,
  type NetAllow,
} from '../../src/domain/netAllow.js';
import { httpConfigSchema, httpSettingsFromConfig } from '../../src/exec/httpStep.js';

function allow(entries: string[]): NetAllow {
  const parsed = parseNetAllow(entries);
  if (!parsed.ok) throw new Error(parsed.problems.join('; '));
  return parsed.allow;
}

describe('parseNetAllow', () => {
  it('accepts names, wildcards, addresses and CIDRs of both families', () => {
    expect(parseNetAllow(['api.example.com', '*.internal.example', '10.0.0.0/8', '192.0.2.7', '::1', '[::1]', 'fd00::/8', 'STATUS.Example.com.']).ok).toBe(
      true,
    );
  });

  it('names each bad entry by its index', () => {
    const parsed = parseNetAllow([
      'ok.example',
      'https://api.example.com',
      '10.0.0.0/33',
      'fd00::/129',
      'a.*.example',
      '*.',
      '',
      'host:8080',
      '10.0.0.0/8/1',
      '-bad.example',
      'under_score.example',
    ]);
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.problems).toEqual([
      'http.allow[1]: https://api.example.com: expected a network like 10.0.0.0/8 or fd00::/8',
      'http.allow[2]: 10.0.0.0/33: the prefix length must be 0 to 32',
      'http.allow[3]: fd00::/129: the prefix length must be 0 to 128',
      'http.allow[4]: a.*.example: a wildcard is only allowed as the first label ("*.example.com")',
      'http.allow[5]: *.: "*." must be followed by a host name',
      'http.allow[6]: an entry is empty',
      'http.allow[7]: host:8080: expected a host name, an address or a CIDR (no scheme, port or path)',
      'http.allow[8]: 10.0.0.0/8/1: expected a network like 10.0.0.0/8 or fd00::/8',
      'http.allow[9]: -bad.example: not a valid host name',
      'http.allow[10]: under_score.example: not a valid host name',
    ]);
    expect(netAllowEntryProblem('xn--bcher-kva.example')).toBeNull();
  });
});

describe('checkUrlHost', () => {
  const list = allow(['api.example.com', '*.internal.example', '10.0.0.0/8', '192.0.2.7', 'fd00::/8']);

  it('allows listed names (case and a trailing dot ignored) and names under a wildcard, not the wildcard apex', () => {
    expect(checkUrlHost(list, 'api.example.com')).toEqual({ ok: true, kind: 'name', host: 'api.example.com' });
    expect(checkUrlHost(list, 'API.Example.COM.')).toEqual({ ok: true, kind: 'name', host: 'api.example.com' });
    expect(checkUrlHost(list, 'db.internal.example').ok).toBe(true);
    expect(checkUrlHost(list, 'a.b.internal.example').ok).toBe(true);
    expect(checkUrlHost(list, 'internal.example')).toEqual({ ok: false, reason: 'the host internal.example is not in http.allow' });
    expect(checkUrlHost(list, 'evilinternal.example').ok).toBe(false);
    expect(checkUrlHost(list, 'api.example.com.evil.test').ok).toBe(false);
  });

  it('allows address literals only when an entry covers them, and never a name for resolving into a network', () => {
    expect(checkUrlHost(list, '10.20.30.40')).toEqual({ ok: true, kind: 'address', host: '10.20.30.40' });
    expect(checkUrlHost(list, '192.0.2.7').ok).toBe(true);
    expect(checkUrlHost(list, '192.0.2.8')).toEqual({ ok: false, reason: '192.0.2.8 is not covered by http.allow' });
    expect(checkUrlHost(list, '[fd00::5]')).toEqual({ ok: true, kind: 'address', host: 'fd00::5' });
    expect(checkUrlHost(list, '[::ffff:10.1.1.1]').ok).toBe(true);
    expect(checkUrlHost(list, '[::1]').ok).toBe(false);
    // A public address is not allowed just for being public: literals need an entry.
    expect(checkUrlHost(list, '8.8.8.8').ok).toBe(false);
    expect(checkUrlHost(list, 'unlisted.example').ok).toBe(false);
  });

  it('allows nothing when empty', () => {
    expect(checkUrlHost(EMPTY_NET_ALLOW, 'api.example.com').ok).toBe(false);
    expect(checkUrlHost(EMPTY_NET_ALLOW, '127.0.0.1').ok).toBe(false);
  });
});

describe('checkResolvedAddress', () => {
  const list = allow(['api.example.com', '10.1.0.0/16']);

  it('accepts public answers and answers inside an entry; refuses special-purpose ones with the reason', () => {
    expect(checkResolvedAddress(list, 'api.example.com', '93.184.216.34')).toEqual({ ok: true });
    expect(checkResolvedAddress(list, 'api.example.com', '2606:4700::6810:85e5')).toEqual({ ok: true });
    expect(checkResolvedAddress(list, 'api.example.com', '10.1.2.3')).toEqual({ ok: true });
    expect(checkResolvedAddress(list, 'api.example.com', '10.2.0.1')).toEqual({
      ok: false,
      reason: 'api.example.com resolves to 10.2.0.1, a private address that http.allow does not cover',
    });
    expect(checkResolvedAddress(list, 'api.example.com', '169.254.169.254')).toEqual({
      ok: false,
      reason: 'api.example.com resolves to 169.254.169.254, a link-local (cloud metadata) address that http.allow does not cover',
    });
    expect(checkResolvedAddress(list, 'api.example.com', '127.0.0.1').ok).toBe(false);
    expect(checkResolvedAddress(list, 'api.example.com', 'not-an-ip').ok).toBe(false);
  });

  it('sees through IPv4-mapped IPv6, in dotted and hex forms', () => {
    expect(checkResolvedAddress(list, 'api.example.com', '::ffff:127.0.0.1')).toEqual({
      ok: false,
      reason: 'api.example.com resolves to ::ffff:127.0.0.1, a loopback address that http.allow does not cover',
    });
    expect(checkResolvedAddress(list, 'api.example.com', '::ffff:7f00:1').ok).toBe(false);
    expect(checkResolvedAddress(list, 'api.example.com', '::ffff:a01:203').ok).toBe(true); // 10.1.2.3, covered
    expect(checkResolvedAddress(list, 'api.example.com', '::ffff:8.8.8.8').ok).toBe(true);
  });
});

describe('specialPurposeRange', () => {
  it.each([
    ['0.0.0.0', '"this network"'],
    ['10.255.0.1', 'private'],
    ['100.64.0.1', 'shared (CGNAT)'],
    ['127.8.9.10', 'loopback'],
    ['169.254.169.254', 'link-local (cloud metadata)'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['198.18.0.1', 'benchmarking'],
    ['224.0.0.1', 'multicast'],
    ['255.255.255.255', 'reserved'],
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['::127.0.0.1', 'IPv4-compatible (deprecated)'],
    ['64:ff9b::7f00:1', 'NAT64 (embeds an IPv4 address)'],
    ['2002:7f00:1::', '6to4 (embeds an IPv4 address)'],
    ['fd12:3456::1', 'unique-local'],
    ['fe80::1', 'link-local'],
    ['ff02::1', 'multicast'],
    ['2001:db8::1', 'documentation'],
  ])('%s is %s', (address, what) => {
    expect(specialPurposeRange(address)).toBe(what);
  });

  it('finds none for public addresses', () => {
    for (const address of ['1.1.1.1', '8.8.8.8', '172.32.0.1', '100.128.0.1', '2606:4700::1', '2a00:1450:4001::200e'])
      expect(specialPurposeRange(address), address).toBeNull();
  });
});

describe('the http: config block', () => {
  it('defaults to allowing nothing, 5 redirects and 1 MiB', () => {
    expect(httpSettingsFromConfig(undefined)).toMatchObject({ allow: { entries: [] }, maxRedirects: 5, maxBodyBytes: 1024 * 1024 });
    const parsed = httpConfigSchema.parse({ allow: ['api.example.com', '10.0.0.0/8'], maxBody: '256KB' });
    const settings = httpSettingsFromConfig(parsed);
    expect(settings.allow.entries).toEqual(['api.example.com', '10.0.0.0/8']);
    expect(settings).toMatchObject({ maxRedirects: 5, maxBodyBytes: 256 * 1024 });
    expect(checkUrlHost(settings.allow, '10.9.9.9').ok).toBe(true);
  });

  it('names bad entries and values by field', () => {
    const parsed = httpConfigSchema.safeParse({ allow: ['ok.example', 'http://x'], maxRedirects: 50, maxBody: '1GB', typo: 1 });
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`)).toEqual([
      'allow.1: http://x: expected a network like 10.0.0.0/8 or fd00::/8',
      'maxRedirects: Too big: expected number to be <=20',
      'maxBody: must be at most 64MB',
      ': Unrecognized key: "typo"',
    ]);
  });
});
