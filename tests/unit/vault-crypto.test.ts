import { describe, expect, test } from "bun:test";
import { createCipheriv, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, loadConfig } from "../../src/config";
import { DecryptionError, decryptValue, encryptValue, envelopeKeyId, type Binding } from "../../src/crypto/envelope";
import { buildKeyring, DEV_KEY_ID, parseKeyList } from "../../src/crypto/keyring";
import { decryptLegacy } from "../../src/crypto/legacy";

const k = (fill: number) => Buffer.alloc(32, fill).toString("base64");
const ring = (active: string, ids = ["k1", "k2"]) => buildKeyring(parseKeyList(ids.map((id, i) => `${id}:${k(i + 1)}`).join(",")), active);
const binding: Binding = { purpose: "credential.secret", userId: "usr_a", providerId: "anthropic", rowId: "crd_1" };
const SECRET = "sk-ant-api03-very-secret-value";

describe("vault envelope (AES-256-GCM)", () => {
  test("round-trips, carries version and key id, and uses a fresh IV every time", () => {
    const keyring = ring("k2");
    const a = encryptValue(keyring, SECRET, binding);
    const b = encryptValue(keyring, SECRET, binding);
    expect(a).toStartWith("v1.k2.");
    expect(envelopeKeyId(a)).toBe("k2");
    expect(a).not.toBe(b);
    expect(a.split(".")[2]).not.toBe(b.split(".")[2]);
    expect(Buffer.from(a.split(".")[2]!, "base64url").length).toBe(12);
    expect(a).not.toContain(SECRET);
    expect(decryptValue(keyring, a, binding)).toBe(SECRET);
  });

  test("an old key keeps decrypting after the active key changes", () => {
    const old = encryptValue(ring("k1"), SECRET, binding);
    expect(decryptValue(ring("k2"), old, binding)).toBe(SECRET);
  });

  test("fails closed: flipped byte, other row, other user, other provider, other purpose", () => {
    const keyring = ring("k1");
    const env = encryptValue(keyring, SECRET, binding);
    const [v, id, iv, body] = env.split(".") as [string, string, string, string];
    const raw = Buffer.from(body, "base64url");
    for (let i = 0; i < raw.length; i += 7) {
      const flipped = Buffer.from(raw);
      flipped[i]! ^= 0x01;
      expect(() => decryptValue(keyring, [v, id, iv, flipped.toString("base64url")].join("."), binding)).toThrow(DecryptionError);
    }
    const ivFlipped = Buffer.from(iv, "base64url");
    ivFlipped[0]! ^= 0x80;
    expect(() => decryptValue(keyring, [v, id, ivFlipped.toString("base64url"), body].join("."), binding)).toThrow(DecryptionError);
    for (const other of [{ rowId: "crd_2" }, { userId: "usr_b" }, { providerId: "openai" }, { purpose: "device_flow.code" }]) {
      expect(() => decryptValue(keyring, env, { ...binding, ...other })).toThrow(DecryptionError);
    }
  });

  test("fails closed: wrong or unknown key id, other version, garbage", () => {
    const keyring = ring("k1");
    const env = encryptValue(keyring, SECRET, binding);
    // Relabelled to another key in the ring: the key id is authenticated too.
    expect(() => decryptValue(keyring, env.replace("v1.k1.", "v1.k2."), binding)).toThrow(DecryptionError);
    expect(() => decryptValue(keyring, env.replace("v1.k1.", "v1.k9."), binding)).toThrow(DecryptionError);
    expect(() => decryptValue(keyring, env.replace("v1.", "v2."), binding)).toThrow(DecryptionError);
    expect(() => decryptValue(ring("k1", ["k1"]), encryptValue(buildKeyring(parseKeyList(`k1:${k(9)}`), "k1"), SECRET, binding), binding)).toThrow(DecryptionError);
    for (const junk of ["", "v1", "v1.k1..", SECRET]) expect(() => decryptValue(keyring, junk, binding)).toThrow(DecryptionError);
  });
});

describe("legacy format (quirk 6)", () => {
  // Encrypts the way the legacy system did: key = first 32 chars of ENCRYPTION_KEY, "0"-padded.
  const legacyEncrypt = (plain: string, setting: string) => {
    const iv = randomBytes(12);
    const c = createCipheriv("aes-256-gcm", Buffer.from(setting.slice(0, 32).padEnd(32, "0"), "utf8"), iv);
    return Buffer.concat([iv, c.update(plain, "utf8"), c.final(), c.getAuthTag()]).toString("base64");
  };

  test("decrypts values with a long, an exactly-32 and a short (padded) key", () => {
    for (const setting of ["this-is-a-much-longer-legacy-encryption-key-than-32", "x".repeat(32), "short"]) {
      expect(decryptLegacy(legacyEncrypt(SECRET, setting), setting)).toBe(SECRET);
    }
  });

  test("fails closed with the wrong key or a tampered value", () => {
    const value = legacyEncrypt(SECRET, "short");
    expect(() => decryptLegacy(value, "other")).toThrow(DecryptionError);
    const raw = Buffer.from(value, "base64");
    raw[14]! ^= 1;
    expect(() => decryptLegacy(raw.toString("base64"), "short")).toThrow(DecryptionError);
    expect(() => decryptLegacy("dG9vIHNob3J0", "short")).toThrow(DecryptionError);
  });
});

describe("keyring configuration", () => {
  const fail = (env: Record<string, string>) => {
    try {
      loadConfig({ DATA_DIR: "memory://", ...env });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).not.toContain("\n");
      return (err as Error).message;
    }
    throw new Error("expected a ConfigError");
  };

  test("reads ids and keys, with one active", () => {
    const c = loadConfig({ DATA_DIR: "memory://", ENCRYPTION_KEYS: `k1:${k(1)}, k2:${k(2)}`, ENCRYPTION_ACTIVE_KEY: "k2" });
    expect(c.keyring.activeKeyId).toBe("k2");
    expect([...c.keyring.keys.keys()]).toEqual(["k1", "k2"]);
    expect(loadConfig({ DATA_DIR: "memory://", ENCRYPTION_KEYS: `only:${k(1)}` }).keyring.activeKeyId).toBe("only");
  });

  test("bad keyrings stop start-up with one line naming the variable, never the key", () => {
    const shortKey = Buffer.alloc(16, 3).toString("base64");
    expect(fail({ ENCRYPTION_KEYS: `k1:${shortKey}` })).toStartWith("Invalid environment variable ENCRYPTION_KEYS: ");
    expect(fail({ ENCRYPTION_KEYS: `k1:${shortKey}` })).not.toContain(shortKey);
    expect(fail({ ENCRYPTION_KEYS: k(1) })).toStartWith("Invalid environment variable ENCRYPTION_KEYS: ");
    expect(fail({ ENCRYPTION_KEYS: `k1:${k(1)},k1:${k(2)}` })).toContain("twice");
    expect(fail({ ENCRYPTION_KEYS: `k1:${k(1)},k2:${k(2)}` })).toStartWith("Invalid environment variable ENCRYPTION_ACTIVE_KEY: ");
    expect(fail({ ENCRYPTION_KEYS: `k1:${k(1)}`, ENCRYPTION_ACTIVE_KEY: "k3" })).toStartWith("Invalid environment variable ENCRYPTION_ACTIVE_KEY: ");
  });

  test("production refuses to start without a keyring", () => {
    const message = fail({ NODE_ENV: "production", AUTH_SECRET: "s".repeat(40), PUBLIC_URL: "https://api.example.com" });
    expect(message).toBe("Invalid environment variable ENCRYPTION_KEYS: is required in production (id:base64 of 32 random bytes)");
  });

  test("development generates one key into DATA_DIR with mode 0600 and reuses it", () => {
    const dir = mkdtempSync(join(tmpdir(), "warren-keys-"));
    const a = loadConfig({ DATA_DIR: dir });
    const b = loadConfig({ DATA_DIR: dir });
    expect(a.keyring.activeKeyId).toBe(DEV_KEY_ID);
    expect(a.keyring.keys.get(DEV_KEY_ID)!.length).toBe(32);
    expect(Buffer.from(b.keyring.keys.get(DEV_KEY_ID)!).equals(Buffer.from(a.keyring.keys.get(DEV_KEY_ID)!))).toBe(true);
    expect(statSync(join(dir, "encryption-key")).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, "encryption-key"), "utf8").trim().length).toBeGreaterThan(40);
  });
});
