import { expect } from "bun:test";
import { once } from "node:events";
import { connect, createServer } from "node:net";
import type { OrchestratorDriver } from "../../src/orchestrator";
import { scopesSupported, scopeUnavailableNote } from "../../src/orchestrator/landlock";

/**
 * What the loopback guard tests (local and docker drivers) ask of the kernel: a TCP connect made
 * by a command (inside a sandbox, as its uid) or as root, and the guard's nftables table.
 */

/** Runs `cmd`, a bash /dev/tcp connect that prints "open": "open", "refused" or what else happened. */
export async function connectOutcome(cmd: string[]): Promise<string> {
  const proc = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (out.trim() === "open") return "open";
  if (/Connection refused/.test(err)) return "refused";
  return `code ${code}: ${err.trim()}`;
}

/** The argv tail of a connect to host:port that prints "open", for connectOutcome. */
export const tcpConnect = (host: string, port: number) => ["timeout", "8", "bash", "-c", 'exec 3<>"/dev/tcp/$0/$1" && echo open', host, String(port)];

/** A TCP connect as root (Warren): the guard never applies to it. */
export async function connectAsRoot(port: number): Promise<string> {
  try {
    const socket = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
    socket.end();
    return "open";
  } catch (err) {
    return (err as Error).message;
  }
}

/** The uids in the guard table's `members` set, sorted, or null when the table does not exist. */
export async function nftMembers(table: string): Promise<number[] | null> {
  const proc = Bun.spawn(["nft", "list", "set", "inet", table, "members"], { stdout: "pipe", stderr: "ignore" });
  const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  if (code !== 0) return null;
  const elements = /elements = \{([^}]*)\}/.exec(out)?.[1] ?? "";
  return elements
    .split(",")
    .map((e) => Number(e.trim()))
    .filter((n) => n > 0)
    .sort();
}

export const nftTableExists = async (table: string) => (await Bun.spawn(["nft", "list", "table", "inet", table], { stdout: "ignore", stderr: "ignore" }).exited) === 0;

/** The abstract unix socket an abstractProbe add-on binds: "warren-abstract-<sandbox id>". */
export const abstractName = (sandboxId: string) => `warren-abstract-${sandboxId}`;

/**
 * An add-on service command (run by `bun` at that path, in the sandbox) answering HTTP on its
 * port: "addon" on GET /, and on GET /?abstract=NAME whether it, a process of the sandbox, can
 * connect to the abstract unix socket NAME ("open", or the error code). It binds
 * abstractName(sandboxId) itself, so another sandbox can try to reach it; a client hanging up on it
 * before its greeting is written is ignored (an unhandled EPIPE used to end the add-on, and the
 * next request to it failed with ECONNRESET).
 */
export const abstractProbe = (bun: string, sandboxId: string) => `exec ${bun} -e '
const net = require("node:net");
net.createServer((c) => c.on("error", () => {}).end("hi")).listen({ path: "\\0${abstractName(sandboxId)}" });
const reach = (name) => new Promise((done) => {
  const s = net.connect({ path: "\\0" + name });
  s.on("connect", () => { s.destroy(); done("open"); });
  s.on("error", (e) => done(e.code || "error"));
});
Bun.serve({ hostname: "127.0.0.1", port: Number(process.env.WARREN_ADDON_PORT), fetch: async (req) => {
  const name = new URL(req.url).searchParams.get("abstract");
  return new Response(name ? await reach(name) : "addon");
} });'`;

/** Whether this process (root, outside every sandbox) can connect to the abstract unix socket `name`. */
const abstractConnect = (name: string) =>
  new Promise<string>((done) => {
    const s = connect({ path: `\0${name}` });
    s.on("connect", () => (s.destroy(), done("open")));
    s.on("error", (e: NodeJS.ErrnoException) => done(e.code ?? "error"));
  });

/**
 * A root listener on the abstract unix socket `name` (a host service: a desktop's D-Bus, say) that
 * greets and hangs up; stop() closes it. A client that hangs up first (the probes here destroy their
 * socket on connect) makes the greeting fail with EPIPE: ignored, or it would be an uncaught error.
 */
export async function abstractHostListener(name: string, greeting = "host"): Promise<{ stop(): void }> {
  const server = createServer((c) => c.on("error", () => {}).end(greeting)).listen({ path: `\0${name}` });
  await once(server, "listening");
  return { stop: () => server.close() };
}

/**
 * Two running sandboxes with an abstractProbe add-on: each reaches its own abstract socket, not
 * the other's nor a host listener's, while Warren (root, outside) still reaches in; on a kernel
 * without Landlock ABI 6 the driver's availability says so, and the host's socket is reachable.
 */
export async function expectAbstractScope(a: { id: string; addonPort: number }, b: { id: string; addonPort: number }, driver: OrchestratorDriver): Promise<void> {
  const hostName = `warren-abstract-host-${a.id}`;
  const host = await abstractHostListener(hostName);
  try {
    const from = async (s: { id: string; addonPort: number }, name: string) => {
      try {
        return await (await fetch(`http://127.0.0.1:${s.addonPort}/?abstract=${name}`)).text();
      } catch (err) {
        // The add-on died or never answered: its own output says why (an uncaught error, say).
        const output = await driver.logs(s.id, { tail: 20 }).catch(() => []);
        throw new Error(`the add-on of ${s.id} did not answer (${(err as Error).message}); its last output:\n${output.join("\n") || "(none)"}`);
      }
    };
    // Its own processes talk over abstract sockets as usual (X11, D-Bus of a desktop add-on).
    expect(await from(a, abstractName(a.id))).toBe("open");
    expect(await from(b, abstractName(b.id))).toBe("open");
    // Warren (root, outside) reaches in, as often as it likes: clients that hang up at once leave
    // the sandbox's listener (and the add-on serving it) running.
    for (let i = 0; i < 50; i++) expect(await abstractConnect(abstractName(a.id))).toBe("open");
    if (scopesSupported()) {
      expect(await from(a, abstractName(b.id))).not.toBe("open");
      expect(await from(b, abstractName(a.id))).not.toBe("open");
      expect(await from(a, hostName)).not.toBe("open");
    } else {
      const availability = await driver.availability();
      expect(availability.available && availability.notes).toContain(scopeUnavailableNote()!);
      expect(await from(a, hostName)).toBe("open");
    }
    expect(await from(a, abstractName(a.id))).toBe("open");
  } finally {
    host.stop();
  }
}
