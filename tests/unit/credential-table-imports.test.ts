import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";

/**
 * The vault is the only code that may touch provider credentials and device flows
 * (ARCHITECTURE.md: "reachable only through the vault the middleware binds to that user").
 * Any other module under src/ that names those tables — imported from the schema, through the
 * schema namespace, through db.query, or in raw SQL — fails this test.
 */
const ROOT = join(import.meta.dir, "../..");
const VAULT_DIR = "src/services/credentials/";
const TABLE_NAMES = /\b(providerCredentials|oauthDeviceFlows|provider_credentials|oauth_device_flows)\b/;

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : /\.(ts|tsx|js|mjs)$/.test(e.name) ? [join(dir, e.name)] : [],
  );
}

describe("credential tables", () => {
  test("only the vault (src/services/credentials/) names provider_credentials or oauth_device_flows", () => {
    const offenders: string[] = [];
    for (const file of files(join(ROOT, "src"))) {
      const path = relative(ROOT, file);
      if (path.startsWith(VAULT_DIR)) continue;
      readFileSync(file, "utf8")
        .split("\n")
        .forEach((line, i) => {
          if (TABLE_NAMES.test(line)) offenders.push(`${path}:${i + 1}: ${line.trim()}`);
        });
    }
    expect(offenders).toEqual([]);
  });

  test("stored values are decrypted only where the design says; provider secrets only for the sandbox hand-over", () => {
    // Each caller, and why. A new one must be added here, on purpose, with its reason.
    const allowed: Record<string, string> = {
      "src/services/credentials/sandbox-credentials.ts": "provider secrets: THE hand-over to the owner's sandbox, one credential.use each",
      "src/services/credentials/rotation.ts": "keys:rotate re-encrypts in place; the value never leaves the function",
      "src/services/credentials/device-flow.ts": "the flow's device code, sent back to GitHub when polling (not a provider secret)",
      "src/services/sandboxes/worker.ts": "a sandbox's agent password, for the proxy (not a provider secret)",
    };
    const callers: string[] = [];
    for (const file of files(join(ROOT, "src"))) {
      const path = relative(ROOT, file);
      if (path.startsWith("src/crypto/")) continue;
      if (/\bdecryptValue\s*\(/.test(readFileSync(file, "utf8"))) callers.push(path);
    }
    expect(callers.sort()).toEqual(Object.keys(allowed).sort());
    // And of those, only the hand-over and the rotation name the provider-secret purpose.
    const secretReaders = callers.filter((p) => readFileSync(join(ROOT, p), "utf8").includes('"credential.secret"'));
    expect(secretReaders.sort()).toEqual(["src/services/credentials/rotation.ts", "src/services/credentials/sandbox-credentials.ts"]);
  });

  test("the scan does see the vault's own use (it is not vacuous)", () => {
    const vault = files(join(ROOT, VAULT_DIR)).filter((f) => TABLE_NAMES.test(readFileSync(f, "utf8")));
    expect(vault.length).toBeGreaterThan(2);
  });
});
