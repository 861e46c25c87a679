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
