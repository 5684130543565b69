/**
 * Raw ssh2, the floor: one connection per host as countersign's pool makes it (ed25519 pinned,
 * publickey only, TCP_NODELAY), and `exec` round trips on it.
 */
import { Client, type ClientChannel } from 'ssh2';

export interface RawHost {
  host: string;
  port: number;
  user: string;
  privateKey: string;
}

export function connect(host: RawHost): Promise<Client> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    client.once('ready', () => resolve(client));
    client.once('error', reject);
    client.connect({
      host: host.host,
      port: host.port,
      username: host.user,
      privateKey: host.privateKey,
      authHandler: ['publickey'],
      algorithms: { serverHostKey: ['ssh-ed25519'] },
    });
    client.setNoDelay(true);
  });
}

/** Channel opens the server refused because a closing session had not yet freed its slot (retried). */
export const refusedOpens = { count: 0 };

/**
 * Runs `command` (stdin: `input`, then EOF) and resolves with its exit code once the channel
 * closes. sshd frees a session's slot a moment after the channel closes on our side, so an open
 * at the limit can be refused ("open failed"): tried again after a millisecond, and counted.
 */
export async function exec(client: Client, command: string, input?: Buffer): Promise<number | null> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await execOnce(client, command, input);
    } catch (error) {
      if (!/open failed/.test(String((error as Error).message)) || attempt > 100) throw error;
      refusedOpens.count++;
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }
}

function execOnce(client: Client, command: string, input?: Buffer): Promise<number | null> {
  return new Promise((resolve, reject) => {
    client.exec(command, (error: Error | undefined, stream: ClientChannel) => {
      if (error) return reject(error);
      let code: number | null = null;
      stream.on('exit', (c: number | null) => (code = c));
      stream.on('close', () => resolve(code));
      stream.on('data', () => undefined);
      stream.stderr.on('data', () => undefined);
      stream.end(input);
    });
  });
}

/** Runs `command` with `input` on stdin and resolves with what it printed. */
export function execOutput(client: Client, command: string, input: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    client.exec(command, (error: Error | undefined, stream: ClientChannel) => {
      if (error) return reject(error);
      let out = '';
      stream.on('data', (data: Buffer) => (out += data.toString()));
      stream.stderr.on('data', () => undefined);
      stream.on('close', () => resolve(out));
      stream.end(input);
    });
  });
}

/** `slots` channels at once on one connection, never more: OpenSSH's MaxSessions minus the one countersign keeps for control. */
export class Channels {
  private inUse = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(
    readonly client: Client,
    private readonly slots: number,
  ) {}

  async run<T>(work: (client: Client) => Promise<T>): Promise<T> {
    if (this.inUse >= this.slots) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.inUse++;
    try {
      return await work(this.client);
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.inUse--;
    }
  }
}

/**
 * `total` execs of `command` spread over the hosts, `slots` at once per host: execs per second.
 * A command given as a function is made anew for each exec (countersign's wrapper needs a fresh
 * run token each time: two runs sharing one refuse to start). Every exec must exit 0: a floor
 * made of refused starts would be no floor.
 */
export async function fanOut(hosts: readonly RawHost[], slots: number, total: number, command: string | (() => string), input?: () => Buffer): Promise<number> {
  const clients = await Promise.all(hosts.map(connect));
  try {
    let left = total;
    const started = performance.now();
    await Promise.all(
      clients.flatMap((client) =>
        Array.from({ length: slots }, async () => {
          while (left > 0) {
            left--;
            const code = await exec(client, typeof command === 'string' ? command : command(), input?.());
            if (code !== 0) throw new Error(`a floor exec exited ${code}`);
          }
        }),
      ),
    );
    return total / ((performance.now() - started) / 1000);
  } finally {
    clients.forEach((client) => client.end());
  }
}
