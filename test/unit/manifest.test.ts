// manifest.yml against Slack's published app manifest schema, and against what the code does:
// the slash command, interactivity, App Home and events it listens for, and exactly the bot
// scopes the Web API methods it calls need (methods found by scanning src/, see
// test/support/slackMethods.ts). Also checks the fake Slack answers every method the code calls.
//
// test/fixtures/manifest.schema.json is a byte-identical copy of Slack's published JSON Schema for
// app manifests, version 1.0.0: slackapi/manifest-schema, schemas/manifest.schema.1.0.0.json
// (https://github.com/slackapi/manifest-schema), taken from /work/shared/slack/manifest.schema.json.
// It declares "$schema": "http://json-schema.org/draft-07/schema#", so it is compiled with Ajv's
// default (draft-07) class, not Ajv2020. Replace the file as a whole to update it.
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject } from 'ajv';
import * as addFormatsModule from 'ajv-formats';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeSlack, type FakeSlack } from '../support/fakeSlack.js';
import { WORKFLOW_STEP_CALLBACK_ID, WORKFLOW_STEP_DEFINITION } from '../../src/domain/workflowStep.js';
import { FEATURE_SCOPES, isWebApiMethod, METHOD_SCOPES, requiredBotScopes, scanSource, type Scan } from '../support/slackMethods.js';

// ajv-formats is CommonJS: its default export arrives wrapped under ESM.
type AddFormats = (ajv: Ajv) => unknown;
const addFormats = ((addFormatsModule as unknown as { default: { default?: AddFormats } & AddFormats }).default.default ??
  (addFormatsModule as unknown as { default: AddFormats }).default) as AddFormats;

const MANIFEST_PATH = new URL('../../manifest.yml', import.meta.url);
const SCHEMA_PATH = new URL('../fixtures/manifest.schema.json', import.meta.url);

interface Manifest {
  display_information: { name: string; background_color?: string };
  features?: {
    app_home?: { home_tab_enabled?: boolean; messages_tab_enabled?: boolean; messages_tab_read_only_enabled?: boolean };
    bot_user?: { display_name: string };
    slash_commands?: { command: string; url?: string; description: string; should_escape?: boolean }[];
  };
  oauth_config?: { scopes?: { bot?: string[]; user?: string[] }; token_management_enabled?: boolean };
  functions?: Record<string, unknown>;
  settings?: {
    event_subscriptions?: { request_url?: string; bot_events?: string[]; user_events?: string[] };
    interactivity?: { is_enabled: boolean; request_url?: string };
    org_deploy_enabled?: boolean;
    function_runtime?: string;
    socket_mode_enabled?: boolean;
    token_rotation_enabled?: boolean;
  };
}

const manifest = parseYaml(readFileSync(MANIFEST_PATH, 'utf8')) as Manifest;
const schema = JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')) as Record<string, unknown>;
const scan: Scan = scanSource();
const botScopes = manifest.oauth_config?.scopes?.bot ?? [];
const botMethods = scan.methods.filter((method) => METHOD_SCOPES[method]?.token !== 'app');

/** One line per problem: where in the manifest, what is wrong. */
function describeErrors(errors: readonly ErrorObject[]): string {
  return errors
    .map((error) => {
      const at = error.instancePath || '(top level)';
      const extra =
        error.keyword === 'additionalProperties'
          ? `: ${String((error.params as { additionalProperty: string }).additionalProperty)}`
          : error.keyword === 'enum'
            ? `: ${JSON.stringify((error.params as { allowedValues: unknown }).allowedValues)}`
            : '';
      return `  ${at} ${error.message ?? error.keyword}${extra}`;
    })
    .join('\n');
}

/** Where each method is used, for failure messages. */
function usesOf(method: string): string {
  return scan.uses
    .filter((use) => use.method === method)
    .map((use) => `${use.where} (${use.how})`)
    .join(', ');
}

function pathOf(url: string | undefined): string | undefined {
  return url === undefined ? undefined : new URL(url).pathname;
}

describe('manifest.yml', () => {
  it("is valid against Slack's published app manifest schema (draft-07)", () => {
    expect(schema.$schema, 'the fixture schema changed draft: pick the matching Ajv class').toBe('http://json-schema.org/draft-07/schema#');
    // Strict, except strictTypes: Slack's schema puts `minItems` on a string (the items of
    // external_auth_providers.oauth2.*.options.scope), which has no effect.
    const ajv = new Ajv({ allErrors: true, strict: true, strictTypes: false });
    // Annotations in Slack's schema that JSON Schema does not define: `_note` is a comment;
    // `regex` (on display_information.background_color) is Slack's spelling of `pattern`.
    ajv.addVocabulary(['_note', 'regex']);
    addFormats(ajv);
    const validate = ajv.compile(schema);
    const valid = validate(manifest);
    expect(valid, `manifest.yml does not match Slack's manifest schema:\n${describeErrors(validate.errors ?? [])}`).toBe(true);

    // Ajv ignores `regex`; check background_color against it ourselves.
    const displayInformation = (schema.definitions as Record<string, { properties: Record<string, { regex?: string }> }>)[
      'app-manifests.v1.display_information.schema'
    ];
    const colour = displayInformation?.properties.background_color?.regex;
    expect(colour, 'the schema no longer has a regex for background_color').toBeDefined();
    if (manifest.display_information.background_color !== undefined) {
      expect(manifest.display_information.background_color).toMatch(new RegExp(colour!));
    }
  });

  it('declares the slash commands the code registers, sent to its endpoint, with should_escape false', () => {
    expect(scan.commands, 'the scan found no app.command(...) in src/').toContain('/task');
    expect(scan.endpoints, 'the scan found no ExpressReceiver endpoints in src/').toEqual(['/slack/events']);
    const declared = manifest.features?.slash_commands ?? [];
    expect(declared.map((c) => c.command).sort()).toEqual(scan.commands);
    for (const command of declared) {
      expect(pathOf(command.url), `${command.command} url`).toBe(scan.endpoints[0]);
      // The listener decodes &amp; &lt; &gt; (always sent escaped) and unwraps <...> link markup;
      // with escaping on, @user, #channel and @here would also arrive as <@U…|name>, <#C…|name>,
      // <!here> and be unwrapped into text the user did not type.
      expect(command.should_escape, `${command.command} should_escape`).toBe(false);
    }
  });

  it('turns interactivity on, sent to the same endpoint', () => {
    expect(manifest.settings?.interactivity?.is_enabled).toBe(true);
    expect(pathOf(manifest.settings?.interactivity?.request_url)).toBe(scan.endpoints[0]);
  });

  it('enables the App Home tab and subscribes to app_home_opened at the same endpoint', () => {
    expect(manifest.features?.app_home?.home_tab_enabled).toBe(true);
    // Reviewer DMs show in the Messages tab; nobody reads what people write there.
    expect(manifest.features?.app_home?.messages_tab_enabled).toBe(true);
    expect(manifest.features?.app_home?.messages_tab_read_only_enabled).toBe(true);
    expect(manifest.settings?.event_subscriptions?.bot_events).toContain('app_home_opened');
    expect(manifest.settings?.event_subscriptions?.user_events ?? []).toEqual([]);
    expect(pathOf(manifest.settings?.event_subscriptions?.request_url)).toBe(scan.endpoints[0]);
  });

  it('subscribes to every event the code listens to, and listens to every event it subscribes to', () => {
    const subscribed = [...(manifest.settings?.event_subscriptions?.bot_events ?? [])].sort();
    const notSubscribed = scan.events.filter((event) => !subscribed.includes(event));
    const notListened = subscribed.filter((event) => !scan.events.includes(event));
    expect(notSubscribed, 'events the code listens to (app.event) that manifest.yml does not subscribe to: Slack never sends them').toEqual([]);
    expect(notListened, 'events manifest.yml subscribes to that no app.event(...) in src/ handles').toEqual([]);
  });

  it('declares the Workflow Builder step the code registers, exactly as src/domain/workflowStep.ts defines it', () => {
    expect(scan.functions, 'the scan found no app.function(...) in src/').toEqual([WORKFLOW_STEP_CALLBACK_ID]);
    expect(Object.keys(manifest.functions ?? {}).sort(), 'functions in manifest.yml vs app.function(...) listeners in src/').toEqual(scan.functions);
    // Inputs the code reads and outputs it completes with: a difference here is a step Slack refuses.
    expect(manifest.functions?.[WORKFLOW_STEP_CALLBACK_ID]).toEqual(WORKFLOW_STEP_DEFINITION);
    // function_executed is delivered without a subscription; Slack refuses to list it.
    expect(manifest.settings?.event_subscriptions?.bot_events ?? []).not.toContain('function_executed');
    // Slack offers custom steps only from org-ready apps whose functions run remotely (here).
    expect(manifest.settings?.org_deploy_enabled).toBe(true);
    expect(manifest.settings?.function_runtime).toBe('remote');
  });

  it('runs in HTTP mode by default, with Socket Mode and token rotation off', () => {
    const settings = manifest.settings ?? {};
    // Both modes work (SLACK_APP_TOKEN switches to Socket Mode); the manifest's comment says how.
    expect(settings.socket_mode_enabled).toBe(false);
    for (const url of [
      settings.interactivity?.request_url,
      settings.event_subscriptions?.request_url,
      ...(manifest.features?.slash_commands ?? []).map((c) => c.url),
    ]) {
      expect(url).toMatch(/^https:\/\/countersign\.example\.com\//);
    }
    expect(settings.token_rotation_enabled).toBe(false);
    expect(manifest.oauth_config?.scopes?.user ?? [], 'countersign acts only as its bot').toEqual([]);
  });
});

describe('Slack Web API methods the code calls', () => {
  it('are found by scanning src/, and are real Web API methods', () => {
    // Calls that have been in the code a long time: if these vanish, the scan is broken.
    expect(scan.methods).toEqual(
      expect.arrayContaining(['chat.postMessage', 'chat.update', 'files.getUploadURLExternal', 'files.completeUploadExternal', 'views.open', 'auth.test']),
    );
    const unknown = scan.methods.filter((method) => !isWebApiMethod(method));
    expect(
      unknown.map((method) => `${method} at ${usesOf(method)}`),
      'not methods of @slack/web-api WebClient (typo, or a false match of the scan)',
    ).toEqual([]);
  });

  it('METHOD_SCOPES names only real Web API methods', () => {
    expect(Object.keys(METHOD_SCOPES).filter((method) => !isWebApiMethod(method))).toEqual([]);
  });

  it('are each classified in METHOD_SCOPES', () => {
    const unclassified = scan.methods.filter((method) => !Object.hasOwn(METHOD_SCOPES, method));
    expect(
      unclassified.map((method) => `${method} at ${usesOf(method)}`),
      "add these to METHOD_SCOPES in test/support/slackMethods.ts with the scopes Slack's method reference lists",
    ).toEqual([]);
  });

  it('have every bot scope they need declared in oauth_config.scopes.bot', () => {
    const missing = [...requiredBotScopes(scan.methods)]
      .filter(([scope]) => !botScopes.includes(scope))
      .map(([scope, methods]) => `${scope} (for ${methods.join(', ')})`);
    expect(missing, 'add these to oauth_config.scopes.bot in manifest.yml').toEqual([]);
  });

  it('need every bot scope manifest.yml declares (commands aside)', () => {
    const needed = requiredBotScopes(scan.methods);
    const unused = botScopes.filter((scope) => !needed.has(scope) && !Object.hasOwn(FEATURE_SCOPES, scope));
    const wantedBy = (scope: string) =>
      Object.entries(METHOD_SCOPES)
        .filter(([, entry]) => entry.token === 'bot' && entry.scopes.includes(scope))
        .map(([method]) => method);
    expect(
      unused.map((scope) => `${scope} (needed by ${wantedBy(scope).join(', ') || 'no method in METHOD_SCOPES'}; none called in src/)`),
      'bot scopes declared in manifest.yml that no method called in src/ needs: remove them, or the call has not landed yet',
    ).toEqual([]);
    expect(botScopes.includes('commands')).toBe((manifest.features?.slash_commands ?? []).length > 0);
  });

  describe('the fake Slack', () => {
    let fake: FakeSlack;
    beforeAll(async () => {
      fake = await startFakeSlack();
    });
    afterAll(async () => {
      await fake.close();
    });

    it('answers every bot-token method the code calls', async () => {
      // Without a token the fake answers `not_authed` for a method it implements and
      // `unknown_method` for one it does not (as Slack does), and changes nothing. App-level
      // token methods (apps.connections.open) are answered by test/support/fakeSocketMode.ts.
      const missing: string[] = [];
      for (const method of botMethods) {
        const response = await fetch(`${fake.url}${method}`, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: '' });
        const body = (await response.json()) as { ok: boolean; error?: string };
        if (body.error === 'unknown_method') missing.push(`${method} at ${usesOf(method)}`);
        else expect(body, method).toMatchObject({ ok: false, error: 'not_authed' });
      }
      expect(missing, 'methods the code calls that test/support/fakeSlack.ts does not implement').toEqual([]);
    });
  });
});
