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

  test("the scan does see the vault's own use (it is not vacuous)", () => {
    const vault = files(join(ROOT, VAULT_DIR)).filter((f) => TABLE_NAMES.test(readFileSync(f, "utf8")));
    expect(vault.length).toBeGreaterThan(2);
  });
});
