import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A hop (TCP on 127.0.0.1, or a Unix socket) in front of a real server (Redis in the tests) that a test can break
 * and restore. Cut: every open connection is destroyed and new ones are accepted and dropped at
 * once, as a partitioned or crashed Redis looks to a client. Silence: connections stay open but
 * nothing reaches the server, as a stalled one looks. Restore: forwarding resumes (the listening
 * port never changes, so clients reconnect by themselves).
 */
export class TcpProxy {
  private readonly server: Server = createServer((socket) => this.accept(socket));
  private readonly sockets = new Set<Socket>();
  private mode: 'forward' | 'cut' | 'silent' = 'forward';
  private port = 0;
  /** Connections accepted so far. */
  accepted = 0;

  private constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  /**
   * Listens on 127.0.0.1 on a free port, or on the Unix socket `path`, in front of `target` (a
   * `redis://host:port` URL).
   */
  static async start(target: string, path?: string): Promise<TcpProxy> {
    const url = new URL(target);
    const proxy = new TcpProxy(url.hostname, Number(url.port || 6379));
    await new Promise<void>((resolve, reject) => {
      proxy.server.once('error', reject);
      const listening = (): void => {
        proxy.server.off('error', reject);
        resolve();
      };
      if (path) proxy.server.listen(path, listening);
      else proxy.server.listen(0, '127.0.0.1', listening);
    });
    const address = proxy.server.address();
    if (address === null) throw new Error('the proxy has no address');
    if (typeof address === 'object') proxy.port = address.port;
    return proxy;
  }

  /** `target` with its host and port replaced by the proxy's (scheme, credentials, db kept). */
  urlFor(target: string): string {
    const url = new URL(target);
    url.hostname = '127.0.0.1';
    url.port = String(this.port);
    return url.toString();
  }

  get isCut(): boolean {
    return this.mode === 'cut';
  }

  /** Stops forwarding: destroys every open connection and drops new ones until `restore()`. */
  cut(): void {
    this.mode = 'cut';
    for (const socket of this.sockets) socket.destroy();
  }

  /** Keeps connections open but stops passing the client's bytes on, until `restore()`. */
  silence(): void {
    this.mode = 'silent';
  }

  restore(): void {
    this.mode = 'forward';
  }

  async close(): Promise<void> {
    this.mode = 'cut';
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    this.accepted++;
    this.track(client);
    if (this.mode === 'cut') {
      client.destroy();
      return;
    }
    const upstream = this.track(connect(this.targetPort, this.targetHost));
    client.on('data', (chunk) => {
      if (this.mode === 'forward') upstream.write(chunk);
    });
    upstream.on('data', (chunk) => client.write(chunk));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }

  private track(socket: Socket): Socket {
    this.sockets.add(socket);
    // A cut resets connections on purpose; their errors are expected.
    socket.on('error', () => {});
    socket.on('close', () => this.sockets.delete(socket));
    return socket;
  }
}
