/**
 * A TCP socket whose writes made in one turn of the event loop leave together, in one writev.
 *
 * ssh2 writes each packet in three pieces (length, encrypted body, MAC), and with TCP_NODELAY on
 * (needed: Nagle plus delayed ACKs cost ~40 ms per round trip) each piece is its own syscall and
 * its own segment, which sshd reads one by one. A trivial run sends about five packets (channel
 * open, exec, stdin, EOF, close): 15 writes before, 5 or fewer after. Nothing waits for more data:
 * the writes are released at the end of the current tick.
 */
import { Socket } from 'node:net';

/** Connects to host:port (the socket is still connecting when it returns). */
export function connectCoalesced(address: { host: string; port: number }): Socket {
  const socket = new Socket();
  socket.connect(address);
  // After connect(): it puts the prototype's write back on the socket.
  let corked = false;
  const release = () => {
    corked = false;
    socket.uncork();
  };
  const write = socket.write;
  socket.write = function (this: Socket, ...args: Parameters<Socket['write']>) {
    if (!corked) {
      corked = true;
      socket.cork();
      process.nextTick(release);
    }
    return (write as (...a: Parameters<Socket['write']>) => boolean).apply(this, args);
  } as Socket['write'];
  return socket;
}
