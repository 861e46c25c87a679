import net from "node:net";
import { pickLoopbackPort } from "../../src/orchestrator/processes";

/**
 * A loopback TCP proxy in front of a real PostgreSQL server, for fault tests: `cut()` drops every
 * connection and refuses new ones (the database "goes away"), `restore()` brings it back on the
 * same port. Nothing about the PostgreSQL protocol is faked; bytes pass through untouched, with
 * stream backpressure (pipe) so that no byte is lost under load.
 */
export class TcpProxy {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  port = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  /** Listens on `port`, by default one below the ephemeral range: restore() needs it back after a cut. */
  async start(port = pickLoopbackPort()): Promise<this> {
    const server = net.createServer((client) => {
      const upstream = net.connect(this.targetPort, this.targetHost);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on("close", () => this.sockets.delete(s));
        // Either side failing ends the pair, as a dropped network path would.
        s.on("error", () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => resolve());
    });
    this.server = server;
    this.port = (server.address() as net.AddressInfo).port;
    return this;
  }

  /** The database disappears: open connections are reset, new ones refused. */
  cut(): void {
    this.server?.close();
    this.server = undefined;
    for (const s of this.sockets) s.resetAndDestroy();
    this.sockets.clear();
  }

  /** The database is back, on the same address. */
  async restore(): Promise<void> {
    await this.start(this.port);
  }

  stop(): void {
    this.cut();
  }
}
