import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A loopback TCP proxy in front of a real dependency, so a test can take the dependency away
 * (connections refused), hold it (connections accepted and never answered: a hung server), and
 * give it back, without stopping the real server that other tests share.
 */
export class TcpProxy {
  readonly #target: { host: string; port: number };
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;
  #mode: 'forward' | 'hold' = 'forward';
  port = 0;

  constructor(target: { host: string; port: number }) {
    this.#target = target;
  }

  async start(port = 0): Promise<this> {
    this.#server = createServer((client) => {
      this.#sockets.add(client);
      client.on('close', () => this.#sockets.delete(client));
      client.on('error', () => undefined);
      if (this.#mode === 'hold') return; // accept and say nothing
      const upstream = connect(this.#target.port, this.#target.host);
      this.#sockets.add(upstream);
      upstream.on('close', () => this.#sockets.delete(upstream));
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => this.#server!.listen(port, '127.0.0.1', () => resolve()));
    this.port = (this.#server.address() as { port: number }).port;
    return this;
  }

  /** Drops every connection and refuses new ones. */
  async cut(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server?.close(() => resolve()));
    this.#server = undefined;
  }

  /** Accepts connections but forwards nothing: the dependency hangs. */
  hold(): void {
    this.#mode = 'hold';
    for (const s of this.#sockets) s.destroy();
  }

  /** Forwards again (on the same port); connections held meanwhile are dropped, so clients dial afresh. */
  async restore(): Promise<void> {
    if (this.#mode === 'hold') for (const s of this.#sockets) s.destroy();
    this.#mode = 'forward';
    if (!this.#server) await this.start(this.port);
  }

  async stop(): Promise<void> {
    await this.cut();
  }
}
