import { readdirSync, readFileSync } from "node:fs";

/** Every process whose command line mentions `text` (a sandbox id: its launcher, agent and anything it spawned). */
export function processesMentioning(text: string): number[] {
  return readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, "utf8").includes(text);
      } catch {
        return false;
      }
    })
    .map(Number);
}
