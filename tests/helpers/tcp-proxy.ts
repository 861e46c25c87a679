import type { Socket, TCPSocketListener } from "bun";

/**
 * A loopback TCP proxy in front of a real PostgreSQL server, for fault tests: `cut()` drops every
 * connection and refuses new ones (the database "goes away"), `restore()` brings it back on the
 * same port. Nothing about the PostgreSQL protocol is faked; bytes pass through untouched.
 */
export class TcpProxy {
  private listener: TCPSocketListener<{ upstream?: Socket<{ client: Socket<any> }>; pending: Uint8Array[] }> | undefined;
  private readonly sockets = new Set<Socket<any>>();
  port = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  start(port = 0): this {
    const proxy = this;
    this.listener = Bun.listen<{ upstream?: Socket<{ client: Socket<any> }>; pending: Uint8Array[] }>({
      hostname: "127.0.0.1",
      port,
      socket: {
        open(client) {
          client.data = { pending: [] };
          proxy.sockets.add(client);
          void Bun.connect<{ client: Socket<any> }>({
            hostname: proxy.targetHost,
            port: proxy.targetPort,
            socket: {
              open(upstream) {
                upstream.data = { client };
                proxy.sockets.add(upstream);
                client.data.upstream = upstream;
                for (const chunk of client.data.pending) upstream.write(chunk);
                client.data.pending = [];
              },
              data(upstream, chunk) {
                upstream.data.client.write(chunk);
              },
              close(upstream) {
                proxy.sockets.delete(upstream);
                upstream.data?.client.end();
              },
              error(upstream) {
                upstream.data?.client.end();
              },
            },
          }).catch(() => client.end());
        },
        data(client, chunk) {
          if (client.data.upstream) client.data.upstream.write(chunk);
          else client.data.pending.push(new Uint8Array(chunk));
        },
        close(client) {
          proxy.sockets.delete(client);
          client.data.upstream?.end();
        },
        error(client) {
          client.data.upstream?.end();
        },
      },
    });
    this.port = this.listener.port;
    return this;
  }

  /** The database disappears: open connections are dropped, new ones refused. */
  cut(): void {
    this.listener?.stop(true);
    this.listener = undefined;
    for (const s of this.sockets) s.terminate();
    this.sockets.clear();
  }

  /** The database is back, on the same address. */
  restore(): void {
    this.start(this.port);
  }

  stop(): void {
    this.cut();
  }
}
