import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { connectCoalesced } from '../../src/exec/coalescedSocket.js';

let server: Server | null = null;
const sockets: Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  server = null;
});

/** A server on 127.0.0.1 that collects what it is sent; a coalesced socket connected to it; the socket's writes to the kernel. */
async function connected(): Promise<{ socket: Socket; received: () => string; syscalls: Array<{ kind: 'write' | 'writev'; chunks: number }> }> {
  let received = '';
  server = createServer((peer) => peer.on('data', (data) => (received += data.toString())));
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const socket = connectCoalesced({ host: '127.0.0.1', port });
  sockets.push(socket);
  socket.setNoDelay(true);
  await new Promise((resolve) => socket.once('connect', resolve));
  // What the stream hands the handle: _write is one write(2), _writev one writev(2) of its chunks.
  const syscalls: Array<{ kind: 'write' | 'writev'; chunks: number }> = [];
  const internals = socket as unknown as { _write: (...a: unknown[]) => void; _writev: (chunks: unknown[], cb: unknown) => void };
  const write = internals._write.bind(socket);
  const writev = internals._writev.bind(socket);
  internals._write = (...args) => {
    syscalls.push({ kind: 'write', chunks: 1 });
    write(...args);
  };
  internals._writev = (chunks, cb) => {
    syscalls.push({ kind: 'writev', chunks: chunks.length });
    writev(chunks, cb);
  };
  return { socket, received: () => received, syscalls };
}

const until = async (check: () => boolean) => {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
};

describe('connectCoalesced', () => {
  it('sends the writes of one turn of the event loop in one writev (ssh2 writes a packet as length, body, MAC)', async () => {
    const { socket, received, syscalls } = await connected();
    socket.write(Buffer.from([0, 0, 0, 32]));
    socket.write(Buffer.alloc(32, 1));
    socket.write(Buffer.alloc(16, 2));
    await until(() => received().length === 52);
    expect(received().length).toBe(52);
    expect(syscalls).toEqual([{ kind: 'writev', chunks: 3 }]);
  });

  it('holds nothing past its turn: writes of later turns leave in their own turns, in order, each callback called', async () => {
    const { socket, received, syscalls } = await connected();
    const done: string[] = [];
    socket.write('one ', () => done.push('one'));
    await new Promise((resolve) => setImmediate(resolve));
    socket.write('two ', () => done.push('two'));
    socket.write('three', () => done.push('three'));
    await new Promise((resolve) => setTimeout(resolve, 1));
    socket.write(' four', () => done.push('four'));
    await until(() => received() === 'one two three four' && done.length === 4);
    expect(received()).toBe('one two three four');
    expect(done).toEqual(['one', 'two', 'three', 'four']);
    expect(syscalls).toEqual([
      { kind: 'write', chunks: 1 },
      { kind: 'writev', chunks: 2 },
      { kind: 'write', chunks: 1 },
    ]);
  });
});
