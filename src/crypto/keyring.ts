/**
 * The encryption keyring: key id → 32 raw bytes, with one active key that new values are
 * encrypted to. Old keys stay in the ring so existing values keep decrypting until
 * `keys:rotate` has moved everything to the active key.
 */
export type Keyring = {
  activeKeyId: string;
  keys: ReadonlyMap<string, Uint8Array>;
};

export const KEY_ID_PATTERN = /^[A-Za-z0-9_-]{1,32}$/;
export const KEY_BYTES = 32;

export class KeyringError extends Error {
  override name = "KeyringError";
}

/** Parses `id:base64,id:base64`; throws KeyringError with a message fit for one config line. */
export function parseKeyList(value: string): Map<string, Uint8Array> {
  const keys = new Map<string, Uint8Array>();
  for (const entry of value.split(",").map((s) => s.trim()).filter(Boolean)) {
    const colon = entry.indexOf(":");
    const id = colon > 0 ? entry.slice(0, colon) : "";
    if (!KEY_ID_PATTERN.test(id)) {
      throw new KeyringError('each entry must be "keyid:base64key" with a key id of letters, digits, _ or - (at most 32)');
    }
    // Never echo key material into an error: only the id is named.
    const bytes = decodeKey(entry.slice(colon + 1));
    if (bytes.length !== KEY_BYTES) {
      throw new KeyringError(`key "${id}" must be ${KEY_BYTES} bytes, base64 encoded (try: openssl rand -base64 32)`);
    }
    if (keys.has(id)) throw new KeyringError(`key id "${id}" appears twice`);
    keys.set(id, bytes);
  }
  if (keys.size === 0) throw new KeyringError("must name at least one key");
  return keys;
}

/** Standard or URL-safe base64, padded or not. */
export function decodeKey(text: string): Uint8Array {
  const normalized = text.trim().replace(/-/g, "+").replace(/_/g, "/");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(normalized)) return new Uint8Array();
  return new Uint8Array(Buffer.from(normalized, "base64"));
}

export function buildKeyring(keys: Map<string, Uint8Array>, active: string | undefined): Keyring {
  const activeKeyId = active ?? (keys.size === 1 ? [...keys.keys()][0]! : undefined);
  if (!activeKeyId) throw new KeyringError("several keys are configured: set ENCRYPTION_ACTIVE_KEY to one of their ids");
  if (!keys.has(activeKeyId)) throw new KeyringError(`active key "${activeKeyId}" is not in ENCRYPTION_KEYS`);
  return { activeKeyId, keys };
}

/** The development key id: the key itself lives in DATA_DIR (see config.ts). */
export const DEV_KEY_ID = "dev";
