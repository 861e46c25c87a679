import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Logger } from "../lib/logger";

/**
 * The loopback guard of the local and docker drivers: sandboxes share the host's network namespace
 * (bubblewrap without a network namespace; containers on `--network host`), so without it
 * any sandbox could open 127.0.0.1:<port> of another sandbox's unauthenticated add-on
 * (code-server --auth none, websockify) or of a host service (PostgreSQL with trust auth). Every
 * sandbox runs under a host uid of its own, and the kernel knows the owner of the socket a packet
 * leaves from (`meta skuid`), so one nftables table per Warren data directory says, for traffic
 * to any local address (127.0.0.0/8, ::1 and the host's own addresses all leave through `lo`):
 *
 *   a process of a sandbox uid may open a TCP connection to a listener of its own uid (its agent,
 *   its add-ons, a dev server it started), to DNS (port 53) and to the allow-listed ports (Warren's
 *   own API for the MCP server, SANDBOX_LOOPBACK_ALLOW_PORTS); anything else on loopback is refused.
 *
 * nftables cannot ask who owns the listener when the SYN leaves, so the check is made on the
 * answer: the SYN of a sandbox connection is accepted with its conntrack mark set to the sender's
 * uid, and the listener's SYN-ACK (which leaves with the listener's uid) is dropped unless that uid
 * equals the mark. The refused (port, uid) is remembered for a few seconds, so the client's SYN
 * retransmission about one second later gets a TCP reset: connect() fails with ECONNREFUSED
 * instead of hanging. Only connection attempts (SYN without ACK) are judged, so the replies of a
 * sandbox's own agent to Warren (root, unaffected) pass untouched; other protocols to loopback
 * (UDP, ICMP) are refused except DNS and the allow-listed ports.
 *
 * Membership is by uid only, never by port: a sandbox's uid is entered before its processes are
 * spawned and removed once they are gone, so a port reused by the next sandbox carries no stale
 * permission. The table is rebuilt atomically (`nft -f -`, one transaction) on first use from the
 * sandboxes that are running, so a Warren restart or crash never leaves a stale or missing rule
 * set; it is deleted when the data directory has no sandbox left. Every value in the scripts is a
 * number Warren generated.
 *
 * The local driver keeps one table per data directory (guardTableName); the docker driver one per
 * Docker socket and data directory (dockerGuardTableName), its members the uids on its running
 * containers' labels. Both hand out uids from the same range (sandbox-uids.ts).
 *
 * A local table's data directory is recorded in GUARD_REGISTRY_DIR. A Warren that crashed and whose
 * data directory was then deleted leaves a table no one would ever drop, and its members (uids
 * another Warren on the host may hand out again) would keep being judged by it: that sandbox's
 * connections to its own Warren's allow-listed ports were dropped. The first table written by a
 * process drops every recorded table whose data directory no longer exists.
 */

export type LoopbackGuardOptions = (
  | { dataDir: string }
  /** A table name given explicitly (the docker driver's, dockerGuardTableName). */
  | { table: string }
) & {
  /** Loopback ports every sandbox may reach (Warren's API, a local model server, …). */
  allowPorts: number[];
  logger: Logger;
};

export const INSTALL_NFT = "apt-get install -y nftables";
export const GUARD_OFF_NOTE =
  "loopback guard off (SANDBOX_LOOPBACK_GUARD=off): every sandbox can connect to every loopback port of this host, including other sandboxes' add-ons (code-server without a password) and local databases";

export type GuardCheck = { ok: true } | { ok: false; reason: string };

/**
 * Local tables' data directories, one file per table (root's; /run is emptied at boot, as the
 * tables are).
 */
export const GUARD_REGISTRY_DIR = "/run/warren/loopback-guard";
let orphansCollected = false;

/** A refused (port, uid) answers resets for this long: covers the SYN retransmissions of one connect(). */
const REFUSED_TIMEOUT_S = 10;
const NFT_PATH = "/usr/sbin:/usr/bin:/sbin:/bin";

/** `inet warren_<8 hex>`: one table per resolved data directory, so two Warrens on a host keep apart. */
export function guardTableName(dataDir: string): string {
  return `warren_${createHash("sha256").update(resolve(dataDir)).digest("hex").slice(0, 8)}`;
}

/**
 * `inet warren_docker_<8 hex>`: the docker driver's table, one per Docker socket path (the daemon
 * whose containers it guards) and data directory (two Warrens on one daemon keep apart, as two
 * local data directories do). Without a data directory (DATA_DIR=memory://) the socket alone: the
 * name must stay the same across restarts, or a crashed Warren's table would never be dropped.
 */
export function dockerGuardTableName(socketPath: string, dataDir: string | null): string {
  const key = `docker\0${resolve(socketPath)}\0${dataDir ? resolve(dataDir) : ""}`;
  return `warren_docker_${createHash("sha256").update(key).digest("hex").slice(0, 8)}`;
}

export function nftBinary(): string | null {
  return Bun.which("nft", { PATH: NFT_PATH });
}

const uint = (n: number, max: number) => {
  if (!Number.isInteger(n) || n < 0 || n > max) throw new Error(`loopback guard: ${n} is not a whole number in 0..${max}`);
  return String(n);
};

export class LoopbackGuard {
  readonly table: string;
  /** The data directory of a local table (recorded in GUARD_REGISTRY_DIR); null for the docker driver's. */
  private readonly dataDir: string | null;
  private readonly family = "inet";
  /** Uids admitted by this process whose sandbox may not be running yet (start in progress). */
  private readonly pending = new Set<number>();
  private restored = false;
  private checked = false;
  private queue: Promise<unknown> = Promise.resolve();

  /** `running` lists the uids of the sandboxes of this data directory (or Docker daemon) that are running now. */
  constructor(
    private readonly options: LoopbackGuardOptions,
    private readonly running: () => number[] | Promise<number[]>,
  ) {
    this.table = "table" in options ? options.table : guardTableName(options.dataDir);
    this.dataDir = "dataDir" in options ? resolve(options.dataDir) : null;
    for (const p of options.allowPorts) uint(p, 65535);
  }

  private get ref(): string {
    return `${this.family} ${this.table}`;
  }

  /** The whole table, replaced in one transaction (declaring it first makes the delete safe). */
  script(uids: Iterable<number>): string {
    const members = [...new Set(uids)].map((u) => uint(u, 0xffff_fffe));
    const allowed = [...new Set(this.options.allowPorts)].map((p) => uint(p, 65535));
    const elements = (items: string[]) => (items.length ? ` elements = { ${items.join(", ")} };` : "");
    return [
      `table ${this.ref}`,
      `delete table ${this.ref}`,
      `table ${this.ref} {`,
      // The uids of this data directory's running sandboxes, and nothing else: another Warren on
      // the host (another data directory, maybe an overlapping uid range) judges its own.
      `  set members { typeof meta skuid;${elements(members)} }`,
      // uid -> the conntrack mark its connections carry (the uid itself: nft cannot assign one
      // type to the other, so a map does), the marks, and the (uid . mark) pairs that mean "the
      // listener is the connecting sandbox itself".
      `  map uid_mark { typeof meta skuid : ct mark;${elements(members.map((u) => `${u} : ${u}`))} }`,
      `  set marks { typeof ct mark;${elements(members)} }`,
      `  set uid_self { typeof meta skuid . ct mark;${elements(members.map((u) => `${u} . ${u}`))} }`,
      `  set allowed { typeof tcp dport;${elements(allowed)} }`,
      `  set refused { typeof tcp dport . ct mark; size 65535; flags dynamic, timeout; timeout ${REFUSED_TIMEOUT_S}s; }`,
      "  chain output {",
      "    type filter hook output priority 0; policy accept;",
      `    oif "lo" meta skuid @members jump from_sandbox`,
      `    oif "lo" ct direction reply ct mark @marks tcp flags & (syn | ack) == syn | ack jump to_sandbox`,
      "  }",
      "  chain from_sandbox {",
      // Replies and the rest of an accepted connection: nothing gets through without a handshake.
      "    tcp flags & (syn | ack) != syn return",
      // resolv.conf may name a stub resolver on loopback (127.0.0.53, 127.0.0.11).
      "    meta l4proto { tcp, udp } th dport 53 accept",
      "    meta l4proto { tcp, udp } th dport @allowed accept",
      // Data in a SYN (TCP Fast Open) would reach the listener before its SYN-ACK is judged.
      "    tcp option fastopen exists reject with tcp reset",
      "    meta l4proto tcp ct mark set meta skuid map @uid_mark",
      "    tcp dport . ct mark @refused reject with tcp reset",
      `    meta l4proto tcp ct mark @marks accept`,
      "    meta l4proto tcp reject with tcp reset",
      "    reject",
      "  }",
      "  chain to_sandbox {",
      "    meta skuid . ct mark @uid_self return",
      // Two rules: if the dynamic set were full, the add would fail and the drop must still happen.
      "    add @refused { tcp sport . ct mark }",
      "    drop",
      "  }",
      "}",
      "",
    ].join("\n");
  }

  /** nft is installed and the kernel accepts the table (a dry run, `nft -c`: nothing changes). */
  async check(): Promise<GuardCheck> {
    if (this.checked) return { ok: true };
    if (!nftBinary()) return { ok: false, reason: "nft (nftables) is not installed; sandboxes' loopback traffic is guarded with it (SANDBOX_LOOPBACK_GUARD)" };
    const result = await this.nft(this.script([]), { check: true });
    if (!result.ok) return { ok: false, reason: `nftables refused the loopback guard's table: ${result.error}` };
    this.checked = true;
    return { ok: true };
  }

  /** First use in this process: the table again, from the sandboxes running now (after a restart). */
  restore(): Promise<void> {
    if (this.restored) return Promise.resolve();
    return this.serial(() => (this.restored ? Promise.resolve() : this.rebuild()));
  }

  /** restore(), for a caller that must go on when nftables fails: the failure is logged. */
  async restoreOrLog(): Promise<void> {
    try {
      await this.restore();
    } catch (err) {
      this.options.logger.error({ err }, "loopback guard: could not restore the table");
    }
  }

  /** Before a sandbox's processes are spawned: its uid may reach its own listeners from then on. */
  admit(uid: number): Promise<void> {
    return this.serial(async () => {
      this.pending.add(uid);
      if (!this.restored) return this.rebuild();
      const u = uint(uid, 0xffff_fffe);
      const added = await this.nft(this.elements(u).map(([set, e]) => `add element ${this.ref} ${set} { ${e} }\n`).join(""));
      // The table went away under us (another process on this data directory dropped it).
      if (!added.ok) await this.rebuild();
    });
  }

  /** Once a sandbox's processes are gone. Idempotent: adding first makes the delete always valid. */
  release(uid: number): Promise<void> {
    return this.serial(async () => {
      this.pending.delete(uid);
      const u = uint(uid, 0xffff_fffe);
      const result = await this.nft(
        this.elements(u)
          .map(([set, e]) => `add element ${this.ref} ${set} { ${e} }\ndelete element ${this.ref} ${set} { ${e} }\n`)
          .join(""),
      );
      // A missing table holds no permission to take back; anything else is worth an operator's look.
      if (!result.ok && !/No such file or directory/.test(result.error)) {
        this.options.logger.warn({ uid, table: this.table, error: result.error }, "loopback guard: could not remove a stopped sandbox's uid");
      }
    });
  }

  /**
   * No sandbox left in the data directory: no table either. Not while a uid admitted by this
   * process has not been released: a start in progress (admitted, its state not written yet) is
   * not among the sandboxes the caller counted, and dropping would leave it unguarded.
   */
  drop(): Promise<void> {
    return this.serial(async () => {
      if (this.pending.size > 0) return;
      this.restored = false;
      await (this.dataDir ? dropGuardTable(this.dataDir, this.options.logger) : dropGuardTableNamed(this.table, this.options.logger));
    });
  }

  /** One sandbox uid's entries, by set. */
  private elements(u: string): Array<[string, string]> {
    return [
      ["members", u],
      ["uid_mark", `${u} : ${u}`],
      ["marks", u],
      ["uid_self", `${u} . ${u}`],
    ];
  }

  private async rebuild(): Promise<void> {
    if (!orphansCollected) {
      orphansCollected = true;
      await dropOrphanedTables(this.table, this.options.logger);
    }
    const uids = new Set([...(await this.running()), ...this.pending]);
    const result = await this.nft(this.script(uids));
    if (!result.ok) throw new Error(`loopback guard: nftables refused table ${this.ref}: ${result.error}`);
    if (this.dataDir) {
      try {
        mkdirSync(GUARD_REGISTRY_DIR, { recursive: true, mode: 0o700 });
        writeFileSync(join(GUARD_REGISTRY_DIR, this.table), this.dataDir, { mode: 0o600 });
      } catch (err) {
        this.options.logger.warn({ err, table: this.table }, "loopback guard: could not record the table's data directory");
      }
    }
    this.restored = true;
    this.options.logger.info({ table: this.table, sandboxUids: uids.size }, "loopback guard table written");
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private nft(script: string, options: { check?: boolean } = {}) {
    return runNft(script, options);
  }
}

/**
 * Drops the recorded local tables (other than `own`) whose data directory no longer exists: no
 * Warren can run that directory's sandboxes any more (their disks lived in it), so nothing is left
 * to guard, and the table's uids may be handed out again on this host.
 */
export async function dropOrphanedTables(own: string, logger: Logger): Promise<string[]> {
  let names: string[];
  try {
    names = readdirSync(GUARD_REGISTRY_DIR).filter((n) => /^warren_[0-9a-f]{8}$/.test(n) && n !== own);
  } catch {
    return [];
  }
  const dropped: string[] = [];
  for (const name of names) {
    const file = join(GUARD_REGISTRY_DIR, name);
    let dataDir: string;
    try {
      dataDir = readFileSync(file, "utf8");
    } catch {
      continue; // Dropped by its own Warren meanwhile.
    }
    // Only a record this code wrote (the table's name is its directory's hash) and whose directory is gone.
    if (!dataDir.startsWith("/") || guardTableName(dataDir) !== name || existsSync(dataDir)) continue;
    await dropGuardTableNamed(name, logger);
    rmSync(file, { force: true });
    dropped.push(name);
    logger.info({ table: name, dataDir }, "loopback guard: dropped the table of a data directory that no longer exists");
  }
  return dropped;
}

/** Deletes the data directory's table if there is one (no sandbox left, or the guard turned off). */
export async function dropGuardTable(dataDir: string, logger: Logger): Promise<void> {
  const name = guardTableName(dataDir);
  await dropGuardTableNamed(name, logger);
  rmSync(join(GUARD_REGISTRY_DIR, name), { force: true });
}

export async function dropGuardTableNamed(table: string, logger: Logger): Promise<void> {
  if (!nftBinary()) return;
  const ref = `inet ${table}`;
  const result = await runNft(`table ${ref}\ndelete table ${ref}\n`);
  if (!result.ok) logger.warn({ table: ref, error: result.error }, "loopback guard: could not delete the table");
}

/** `nft -f -`: the whole script is one transaction, applied entirely or not at all. */
async function runNft(script: string, options: { check?: boolean } = {}): Promise<{ ok: true } | { ok: false; error: string }> {
  const bin = nftBinary();
  if (!bin) return { ok: false, error: "nft is not installed" };
  try {
    const proc = Bun.spawn([bin, ...(options.check ? ["-c"] : []), "-f", "-"], {
      stdin: new TextEncoder().encode(script),
      stdout: "ignore",
      stderr: "pipe",
      env: { PATH: NFT_PATH },
    });
    const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
    return code === 0 ? { ok: true } : { ok: false, error: stderr.trim().split("\n")[0] || `nft exited with ${code}` };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
}
