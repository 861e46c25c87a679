import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import type { Keyring } from "./keyring";

/**
 * Stored envelope: `v1.<keyId>.<iv>.<ciphertext‖tag>` (base64url parts). AES-256-GCM with a
 * fresh 96-bit IV per value. The additional authenticated data binds the value to the envelope
 * version, its key id, the purpose of the column and the user, provider and row it belongs to,
 * so a ciphertext copied into another row, user or column fails authentication instead of
 * decrypting under someone else's name.
 */
export const ENVELOPE_VERSION = "v1";
const IV_BYTES = 12;
const TAG_BYTES = 16;

export type Binding = {
  /** What the value is: "credential.secret", "credential.refresh", "device_flow.code". */
  purpose: string;
  userId: string;
  providerId: string;
  rowId: string;
};

/** One message for every failure, so a caller learns nothing about which check failed. */
export class DecryptionError extends Error {
  override name = "DecryptionError";
  constructor() {
    super("stored secret could not be decrypted");
  }
}

function aad(version: string, keyId: string, b: Binding): Buffer {
  // JSON of an array: unambiguous whatever characters the ids contain.
  return Buffer.from(JSON.stringify(["warren-vault", version, keyId, b.purpose, b.userId, b.providerId, b.rowId]));
}

export function encryptValue(keyring: Keyring, plaintext: string, binding: Binding): string {
  const keyId = keyring.activeKeyId;
  const key = keyring.keys.get(keyId)!;
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv("aes-256-gcm", key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad(ENVELOPE_VERSION, keyId, binding));
  const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final(), cipher.getAuthTag()]);
  return [ENVELOPE_VERSION, keyId, iv.toString("base64url"), body.toString("base64url")].join(".");
}

/** The key id of an envelope without decrypting it; null when it is not an envelope. */
export function envelopeKeyId(envelope: string): string | null {
  const parts = envelope.split(".");
  return parts.length === 4 && parts[0] === ENVELOPE_VERSION ? parts[1]! : null;
}

export function decryptValue(keyring: Keyring, envelope: string, binding: Binding): string {
  const parts = envelope.split(".");
  if (parts.length !== 4 || parts[0] !== ENVELOPE_VERSION) throw new DecryptionError();
  const [version, keyId, ivText, bodyText] = parts as [string, string, string, string];
  const key = keyring.keys.get(keyId);
  if (!key) throw new DecryptionError();
  const iv = Buffer.from(ivText, "base64url");
  const body = Buffer.from(bodyText, "base64url");
  if (iv.length !== IV_BYTES || body.length < TAG_BYTES) throw new DecryptionError();
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(aad(version, keyId, binding));
    decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
    return Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]).toString("utf8");
  } catch {
    throw new DecryptionError();
  }
}
