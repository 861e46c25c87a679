import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { pickLoopbackPort } from "../../src/orchestrator/processes";

// The ports sandboxes' agents and add-ons (and the tests' servers) are given, on this machine's
// kernel: never from the range outgoing connections draw their local ports from.
describe("pickLoopbackPort", () => {
  test("a free port below the kernel's ephemeral range, and a different one each time", () => {
    const [lo] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    const ports = Array.from({ length: 20 }, () => pickLoopbackPort());
    for (const port of ports) {
      expect(port).toBeGreaterThanOrEqual(10_000);
      expect(port).toBeLessThan(lo!);
      // Free: a listener can take it now.
      Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } }).stop(true);
    }
    expect(new Set(ports).size).toBeGreaterThan(15);
  });

  test("a port some listener holds is never handed out", () => {
    const held = Array.from({ length: 200 }, () => {
      try {
        return Bun.listen({ hostname: "127.0.0.1", port: 10_000 + Math.floor(Math.random() * 2_000), socket: { data() {} } });
      } catch {
        return null; // already taken by someone else: fine, it is held either way
      }
    }).filter((l) => l !== null);
    try {
      const taken = new Set(held.map((l) => l.port));
      for (let i = 0; i < 200; i++) expect(taken.has(pickLoopbackPort())).toBe(false);
    } finally {
      for (const l of held) l.stop(true);
    }
  });
});
