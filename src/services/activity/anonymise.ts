import { sql, type SQL } from "drizzle-orm";

/**
 * Metadata keys that carry personal data. Top-level keys are removed in SQL when an account is
 * deleted (one UPDATE over all its entries); the archive removes them at any depth.
 */
export const PERSONAL_METADATA_KEYS = [
  "email",
  "name",
  "username",
  "login",
  "displayName",
  "fullName",
  "image",
  "avatar",
  "avatarUrl",
  "phone",
  "address",
  "ip",
  "ipAddress",
  "ip_address",
  "userAgent",
  "user_agent",
  "userId",
  "user_id",
] as const;

const normalise = (key: string) => key.toLowerCase().replace(/[-_]/g, "");
const PERSONAL = new Set(PERSONAL_METADATA_KEYS.map(normalise));

/** Metadata with every personal key removed, at any depth (spelling of the key ignored). */
export function anonymiseMetadata(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== "object") return value;
  if (depth > 8) return null;
  if (Array.isArray(value)) return value.map((v) => anonymiseMetadata(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (PERSONAL.has(normalise(k))) continue;
    out[k] = anonymiseMetadata(v, depth + 1);
  }
  return out;
}

/** SQL: a jsonb metadata column without its top-level personal keys. */
export function withoutPersonalKeys(column: SQL | unknown): SQL {
  const keys = sql.join(
    PERSONAL_METADATA_KEYS.map((k) => sql`${k}`),
    sql`, `,
  );
  return sql`(${column} - array[${keys}]::text[])`;
}
