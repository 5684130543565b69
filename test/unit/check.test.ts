// The pure half of `countersign check`: loader problems as rows, scopes compared, the table.
import { describe, expect, it } from 'vitest';
import {
  envProblemRows,
  formatTable,
  manifestBotScopes,
  problemRows,
  scopeRow,
  sortRows,
  splitProblem,
  summarize,
  type CheckRow,
} from '../../src/domain/check.js';

describe('check rows', () => {
  it('splits a loader problem into its field and message', () => {
    expect(splitProblem('targets.web.prod.secrets.DB: environment variable X is not set')).toEqual({
      field: 'targets.web.prod.secrets.DB',
      message: 'environment variable X is not set',
    });
    expect(splitProblem('not valid YAML (line 3): bad indentation')).toEqual({ field: '', message: 'not valid YAML (line 3): bad indentation' });
  });

  it('files each problem under what it is about, with a fix', () => {
    const rows = problemRows(
      [
        'targets.web.secrets.DB: environment variable PROD_DB is not set',
        'targets.web.secrets.KEY: cannot read /etc/key: EACCES',
        'hooks.deploy.secret: the secret is shorter than 16 characters',
        'hooks.deploy.recipe: there is no recipe x in recipes or recipeFiles',
        'recipes.restart.target: there is no target gone',
        'recipeFiles[1]: a.json: target: there is no target gone',
        'targets.web.hosts[0].port: expected number, received string',
      ],
      'countersign.yml',
    );
    expect(rows.map((row) => [row.area, row.subject, row.status])).toEqual([
      ['secret', 'targets.web.secrets.DB', 'fail'],
      ['secret', 'targets.web.secrets.KEY', 'fail'],
      ['hook', 'hooks.deploy.secret', 'fail'],
      ['reference', 'hooks.deploy.recipe', 'fail'],
      ['reference', 'recipes.restart.target', 'fail'],
      ['reference', 'recipeFiles[1]', 'fail'],
      ['config', 'targets.web.hosts[0].port', 'fail'],
    ]);
    expect(rows[0]!.fix).toMatch(/^set PROD_DB in countersign's environment/);
    expect(rows[1]!.fix).toMatch(/^make \/etc\/key readable/);
    expect(rows[2]!.fix).toContain('openssl rand');
    expect(rows[6]!.fix).toBe('edit targets.web.hosts[0].port in countersign.yml');
    expect(envProblemRows(['PORT: expected a port number 0-65535'])).toEqual([
      { area: 'env', subject: 'PORT', status: 'fail', ms: null, detail: 'expected a port number 0-65535', fix: 'fix PORT where countersign runs' },
    ]);
  });

  it("compares the token's scopes with the manifest's", () => {
    const required = manifestBotScopes({ oauth_config: { scopes: { bot: ['files:write', 'chat:write'] } } });
    expect(required).toEqual(['chat:write', 'files:write']);
    expect(scopeRow(['chat:write'], required)).toMatchObject({ status: 'fail', detail: 'missing files:write (the token has chat:write)' });
    expect(scopeRow([], required)).toMatchObject({ status: 'fail', detail: 'missing chat:write, files:write (the token has no scopes)' });
    expect(scopeRow(['files:write', 'chat:write'], required)).toMatchObject({ status: 'ok', detail: 'has all 2 the app needs' });
    expect(scopeRow(['files:write', 'chat:write', 'users:read'], required).detail).toBe('has all 2 the app needs; also users:read, which it does not use');
    expect(scopeRow(undefined, required).status).toBe('warn');
    expect(() => manifestBotScopes({ oauth_config: {} })).toThrow(/oauth_config\.scopes\.bot/);
  });
});

describe('the table', () => {
  const rows: CheckRow[] = [
    { area: 'slack', subject: 'auth.test', status: 'ok', ms: 41.6, detail: 'the token is the bot countersign' },
    { area: 'ssh', subject: 'web deploy@10.0.0.5:22', status: 'fail', ms: 1200, detail: 'cannot connect: ECONNREFUSED', fix: 'is sshd listening?' },
    { area: 'config', subject: 'targets.web.timeout', status: 'warn', ms: null, detail: 'long', fix: 'shorten it' },
  ];

  it('aligns the columns, puts the fix under a failure, and counts each result', () => {
    const text = formatTable(sortRows(rows));
    expect(text.split('\n')).toEqual([
      'CHECK   SUBJECT                 RESULT     TIME  DETAIL',
      'config  targets.web.timeout     WARN             long',
      '                                                 fix: shorten it',
      'ssh     web deploy@10.0.0.5:22  FAIL    1200 ms  cannot connect: ECONNREFUSED',
      '                                                 fix: is sshd listening?',
      'slack   auth.test               ok        42 ms  the token is the bot countersign',
      '',
      '1 ok, 1 warning, 1 failure',
    ]);
    expect(summarize(rows)).toEqual({ ok: 1, warnings: 1, failures: 1 });
  });

  it("never lets a host's stderr drive the terminal", () => {
    const text = formatTable([{ area: 'ssh', subject: 'h', status: 'fail', ms: 1, detail: 'sudo: \u001b]0;owned\u0007no\r\nway', fix: 'x' }]);
    expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f]/);
    expect(text).toContain('sudo:  ]0;owned no way');
  });
});
