/**
 * What an editor shows for countersign.yml: the YAML language server (Red Hat's, the one behind
 * VS Code's YAML extension and most editors' YAML support) is started over stdio, as an editor
 * starts it, and given the documents. Through the file's `# yaml-language-server: $schema=...`
 * line it must find countersign.schema.json, accept the example as it ships, mark mistakes on
 * the right lines, complete a target's fields and show their descriptions on hover.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
const SERVER = `${ROOT}/node_modules/yaml-language-server/bin/yaml-language-server`;

interface Diagnostic {
  range: { start: { line: number; character: number } };
  message: string;
}
type Message = { id?: number; method?: string; params?: any; result?: any }; // eslint-disable-line @typescript-eslint/no-explicit-any

/** A minimal LSP client: Content-Length framing, requests by id, notifications to listeners. */
class LanguageClient {
  private buffer = Buffer.alloc(0);
  private nextId = 0;
  private readonly listeners: ((message: Message) => boolean)[] = [];
  private readonly settings = { yaml: { validate: true, completion: true, hover: true, schemaStore: { enable: false } } };

  constructor(private readonly server: ChildProcessWithoutNullStreams) {
    server.stdout.on('data', (data: Buffer) => this.receive(data));
  }

  private receive(data: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, data]);
    for (;;) {
      const end = this.buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      const length = Number(/Content-Length: (\d+)/i.exec(this.buffer.subarray(0, end).toString())?.[1]);
      if (this.buffer.length < end + 4 + length) return;
      const message = JSON.parse(this.buffer.subarray(end + 4, end + 4 + length).toString()) as Message;
      this.buffer = this.buffer.subarray(end + 4 + length);
      // The server asks the editor for its settings, and registers capabilities.
      if (message.method === 'workspace/configuration')
        this.send({ id: message.id, result: (message.params.items as unknown[]).map(() => this.settings.yaml) });
      else if (message.method !== undefined && message.id !== undefined) this.send({ id: message.id, result: null });
      for (let i = this.listeners.length - 1; i >= 0; i--) if (this.listeners[i]!(message)) this.listeners.splice(i, 1);
    }
  }

  send(message: Message): void {
    const text = JSON.stringify({ jsonrpc: '2.0', ...message });
    this.server.stdin.write(`Content-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`);
  }

  wait<T>(match: (message: Message) => T | undefined, what: string, timeoutMs = 20_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the language server sent no ${what} within ${timeoutMs} ms`)), timeoutMs);
      this.listeners.push((message) => {
        const value = match(message);
        if (value === undefined) return false;
        clearTimeout(timer);
        resolve(value);
        return true;
      });
    });
  }

  request<T>(method: string, params: unknown): Promise<T> {
    const id = ++this.nextId;
    const answer = this.wait((message) => (message.id === id && message.method === undefined ? (message.result as T) : undefined), `answer to ${method}`);
    this.send({ id, method, params });
    return answer;
  }

  async start(): Promise<void> {
    await this.request('initialize', {
      processId: process.pid,
      rootUri: `file://${ROOT}`,
      capabilities: {
        workspace: { configuration: true },
        textDocument: { completion: { completionItem: { snippetSupport: false } }, hover: { contentFormat: ['markdown'] } },
      },
    });
    this.send({ method: 'initialized', params: {} });
    this.send({ method: 'workspace/didChangeConfiguration', params: { settings: this.settings } });
  }

  /** Opens a document and returns the diagnostics the server publishes for it. */
  async open(name: string, text: string): Promise<{ uri: string; diagnostics: Diagnostic[] }> {
    const uri = `file://${ROOT}/${name}`;
    // The server publishes once it has the schema; an empty list is an answer too.
    const published = this.wait(
      (message) =>
        message.method === 'textDocument/publishDiagnostics' && message.params.uri === uri ? (message.params.diagnostics as Diagnostic[]) : undefined,
      `diagnostics for ${name}`,
    );
    this.send({ method: 'textDocument/didOpen', params: { textDocument: { uri, languageId: 'yaml', version: 1, text } } });
    return { uri, diagnostics: await published };
  }
}

describe('countersign.yml in an editor (yaml-language-server)', () => {
  let server: ChildProcessWithoutNullStreams;
  let client: LanguageClient;
  beforeAll(async () => {
    server = spawn(process.execPath, [SERVER, '--stdio'], { stdio: ['pipe', 'pipe', 'pipe'] });
    client = new LanguageClient(server);
    await client.start();
  });
  afterAll(() => {
    server?.kill();
  });

  it('accepts the example as it ships', async () => {
    const { diagnostics } = await client.open('countersign.example.yml', readFileSync(`${ROOT}/countersign.example.yml`, 'utf8'));
    expect(diagnostics).toEqual([]);
  });

  const mistakes = [
    '# yaml-language-server: $schema=./countersign.schema.json',
    'targets:',
    '  web:',
    '    hosts:',
    '      - { host: 10.0.0.5, port: "22", user: deploy }',
    '    ssh: { privateKeyFile: key, knownHosts: "10.0.0.5 ssh-ed25519 AAAA" }',
    '    type: ruby',
    '    review:',
    '      channel: "#ops"',
    '      groups:',
    '        - name: sre',
    '          users: [U0123]',
    '          aprovals: 1',
    '    ',
  ].join('\n');

  it('marks mistakes on their lines: a wrong type, an unknown script type, a channel name, a typo', async () => {
    const { diagnostics } = await client.open('mistakes.yml', mistakes);
    const byLine = (line: number) => diagnostics.filter((d) => d.range.start.line === line).map((d) => d.message);
    expect(byLine(4)).toEqual([expect.stringMatching(/Incorrect type\. Expected "integer"/)]);
    expect(byLine(6)).toEqual([expect.stringMatching(/Value is not accepted\. Valid values: "bash", "sh", "python3", "node"/)]);
    expect(byLine(8)).toEqual([expect.stringMatching(/does not match the pattern/i)]);
    expect(byLine(12)).toEqual([expect.stringMatching(/Property aprovals is not allowed/)]);
    expect(diagnostics).toHaveLength(4);
  });

  it("completes a target's fields and explains them on hover", async () => {
    const { uri } = await client.open('complete.yml', mistakes);
    const completion = await client.request<{ items: { label: string }[] } | { label: string }[]>('textDocument/completion', {
      textDocument: { uri },
      position: { line: 13, character: 4 },
    });
    const labels = (Array.isArray(completion) ? completion : completion.items).map((item) => item.label);
    expect(labels).toEqual(expect.arrayContaining(['runAs', 'secrets', 'timeout', 'maxSessions', 'rollout', 'viewers']));
    expect(labels).not.toContain('hosts'); // already there
    const hover = await client.request<{ contents: { value: string } }>('textDocument/hover', { textDocument: { uri }, position: { line: 3, character: 6 } });
    expect(hover.contents.value).toContain('The hosts a task runs on');
  });
});
