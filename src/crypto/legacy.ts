import { createDecipheriv } from "node:crypto";
import { DecryptionError } from "./envelope";

/**
 * The legacy system's format (shared/legacy-schema.md, quirk 6), for the importer only:
 * base64(iv[12] ‖ ciphertext ‖ tag[16]), AES-256-GCM, no AAD, and a key that is the first 32
 * characters of its ENCRYPTION_KEY setting, right-padded with "0", as UTF-8 bytes. Warren never
 * writes this format: imported values are re-encrypted into vault envelopes.
 */
export function legacyKeyBytes(setting: string): Buffer {
  const key = Buffer.from(setting.slice(0, 32).padEnd(32, "0"), "utf8");
  // A multi-byte character among the first 32 makes more than 32 bytes; the legacy code
  // handed that to its cipher, which refused, so such a key never encrypted anything.
  if (key.length !== 32) throw new DecryptionError();
  return key;
}

export function decryptLegacy(value: string, legacyKeySetting: string): string {
  const raw = Buffer.from(value, "base64");
  if (raw.length < 12 + 16) throw new DecryptionError();
  try {
    const decipher = createDecipheriv("aes-256-gcm", legacyKeyBytes(legacyKeySetting), raw.subarray(0, 12));
    decipher.setAuthTag(raw.subarray(raw.length - 16));
    return Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]).toString("utf8");
  } catch {
    throw new DecryptionError();
  }
}
