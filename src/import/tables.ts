import { symmetricEncrypt } from "better-auth/crypto";
import { SECRET_KEY, stripSecrets } from "../services/activity/record";
import { agentNameProblem, EXTENSIONS_BY_TYPE } from "../services/agent-config/names";
import {
  LEGACY_TEXT_KEY,
  messageText,
  optionalTime,
  QUIET_NOTES,
  requiredTime,
  toBool,
  toEnum,
  toInt,
  toJson,
  toRepositoryUrl,
  toText,
  type Notes,
} from "./convert";
import type { LegacyRow } from "./source";
import type { ConvertEnv, ConvertResult, TableSpec } from "./writer";

/**
 * One spec per legacy row table: how each legacy row becomes a Warren row (every quirk of
 * shared/legacy-schema.md), and the SQL that writes a batch of them. Ids are kept as they are
 * (sandbox ids live on in container, volume and directory names).
 */

export type CatalogIds = {
  tiers: Set<string>;
  flavors: Set<string>;
  addons: Set<string>;
  defaultTier: string;
  defaultFlavor: string;
};

export type SpecDeps = { catalog: CatalogIds; authSecret: string };

const USER_EXISTS = (col: string) => `exists (select 1 from users u where u.id = ${col})`;
const ORPHAN_USER = (col: string) => `case when not ${USER_EXISTS(col)} then 'orphan_user' end`;

/**
 * Deleted in Warren since imported. The import ledger (legacy_import_ledger, written by every run:
 * writer.ts afterStatements) lists the legacy users, sandboxes, chat sessions and agent files an
 * earlier run found in Warren or brought over; such a row missing from Warren now was deleted
 * there (an account deletion, a sandbox deletion, an agent file deletion), and a purged session
 * stays as a tombstone (purged_at). Neither the row nor what hangs off it is brought back. The
 * checks are index lookups inside the batch's set-based statements: no query per row.
 */
const IN_LEDGER = (entity: string, col: string) => `exists (select 1 from legacy_import_ledger l where l.entity = '${entity}' and l.legacy_id = ${col})`;
const USER_GONE = (col: string) => `(${IN_LEDGER("user", col)} and not ${USER_EXISTS(col)})`;
const SANDBOX_GONE = (col: string) => `(${IN_LEDGER("sandboxes", col)} and not exists (select 1 from sandboxes x where x.id = ${col}))`;
const SESSION_GONE = (col: string) =>
  `(exists (select 1 from chat_sessions x where x.id = ${col} and x.purged_at is not null)
    or (${IN_LEDGER("chat_sessions", col)} and not exists (select 1 from chat_sessions x where x.id = ${col})))`;

/** Legacy "bool" columns; created_at/updated_at pairs with their NULL fallbacks. */
function times(row: LegacyRow, notes: Notes, env: ConvertEnv, created = "created_at", updated = "updated_at") {
  const createdAt = requiredTime(row[created], created, notes, toIsoOrNull(row[updated]), env.now);
  const updatedAt = requiredTime(row[updated], updated, notes, createdAt);
  return { created_at: createdAt, updated_at: updatedAt };
}

/**
 * The error message of an assistant reply the legacy system left streaming, stored as cancelled
 * (also how a later import recognises it: interrupted.ts).
 */
export const INTERRUPTED_MESSAGE = "Interrupted: the legacy system never finished this message";

function toIsoOrNull(value: unknown): string | null {
  return optionalTime(value, "", QUIET_NOTES);
}

/** Better Auth's password format: scrypt (N=16384, r=16, p=1, 64 bytes), "hexsalt:hexkey". */
export const BETTER_AUTH_SCRYPT_HASH = /^[0-9a-f]{32}:[0-9a-f]{128}$/;

/** Better Auth's own check for a value it encrypted (see better-auth oauth2/utils). */
const looksEncrypted = (token: string) => token.startsWith("$ba$") || (token.length % 2 === 0 && /^[0-9a-f]+$/i.test(token));

function stringArray(value: unknown, column: string, notes: Notes): string[] {
  // Warren keeps these as lists of catalog ids, with no room for {"$legacyText": …}: malformed
  // text is stored as [] and its original goes into the report.
  const parsed = toJson(value, column, notes, [], { keep: false });
  if (Array.isArray(parsed)) return parsed.filter((v): v is string => typeof v === "string");
  notes.replaced(column, "not a JSON array, stored as []");
  return [];
}

/**
 * Malformed activity metadata is kept as text, but the secrets of the well-formed metadata are
 * redacted (stripSecrets) and must not survive here either: the value of any "key": "value"
 * pair whose key names a secret is replaced.
 */
function redactLegacyText(metadata: Record<string, unknown>): Record<string, unknown> {
  const text = metadata[LEGACY_TEXT_KEY];
  if (typeof text !== "string") return metadata;
  const redacted = text.replace(/("((?:[^"\\]|\\.)*)"\s*:\s*)"(?:[^"\\]|\\.)*("?)/g, (whole, head: string, key: string, close: string) =>
    SECRET_KEY.test(key) ? `${head}"[redacted]${close}` : whole,
  );
  return { ...metadata, [LEGACY_TEXT_KEY]: redacted };
}

function jsonObject(value: unknown, column: string, notes: Notes): Record<string, unknown> {
  const parsed = toJson(value, column, notes, {});
  if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
  // Valid JSON but not an object (an array, a number): kept whole beside the object shape.
  notes.replaced(column, "JSON that is not an object, stored as {\"value\": …}");
  return { value: parsed };
}

export function buildSpecs({ catalog, authSecret }: SpecDeps): TableSpec[] {
  const users: TableSpec = {
    table: "user",
    target: "users",
    keyField: "id",
    recordset: "id text, name text, email text, email_verified boolean, image text, created_at timestamptz, updated_at timestamptz",
    // A user the ledger lists is in Warren already or deleted their account there: never inserted.
    insert: `insert into users (id, name, email, email_verified, image, created_at, updated_at)
      select id, name, email, email_verified, image, created_at, updated_at from SRC
      where not ${IN_LEDGER("user", "s.id")}
      on conflict do nothing returning id as k`,
    present: "exists (select 1 from users t where t.id = s.id)",
    deleted: USER_GONE("s.id"),
    ledger: "user",
    unplaced: { conflict: "its email belongs to another Warren account; remove or rename one of them and run again" },
    convert(row, notes, env) {
      const rawEmail = toText(row.email)?.trim();
      if (!rawEmail) return { skip: "invalid" };
      // Better Auth looks emails up lower-cased; a mixed-case legacy email could never sign in.
      const email = rawEmail.toLowerCase();
      if (email !== rawEmail) notes.replaced("email", "lower-cased");
      let name = toText(row.name);
      if (!name) {
        name = email.split("@")[0]!;
        notes.replaced("name", "NULL, the email's local part used");
      }
      return {
        id: String(row.id),
        name,
        email,
        email_verified: toBool(row.emailVerified, "emailVerified", notes, false),
        image: toText(row.image),
        ...times(row, notes, env, "createdAt", "updatedAt"),
      };
    },
  };

  const sessions: TableSpec = {
    table: "session",
    target: "sessions",
    keyField: "id",
    recordset: "id text, expires_at timestamptz, token text, ip_address text, user_agent text, user_id text, created_at timestamptz, updated_at timestamptz",
    insert: `insert into sessions (id, expires_at, token, ip_address, user_agent, user_id, created_at, updated_at)
      select id, expires_at, token, ip_address, user_agent, user_id, created_at, updated_at from SRC
      where ${USER_EXISTS("s.user_id")} on conflict do nothing returning id as k`,
    present: "exists (select 1 from sessions t where t.id = s.id)",
    deleted: USER_GONE("s.user_id"),
    orphan: ORPHAN_USER("s.user_id"),
    unplaced: { conflict: "its token is already used by another Warren session" },
    convert(row, notes, env) {
      const token = toText(row.token);
      if (!token) return { skip: "invalid" };
      const t = times(row, notes, env, "createdAt", "updatedAt");
      return {
        id: String(row.id),
        // A session without an expiry is treated as already expired, never as eternal.
        expires_at: requiredTime(row.expiresAt, "expiresAt", notes, env.now),
        token,
        ip_address: toText(row.ipAddress),
        user_agent: toText(row.userAgent),
        user_id: toText(row.userId),
        ...t,
      };
    },
  };

  const accounts: TableSpec = {
    table: "account",
    target: "accounts",
    keyField: "id",
    recordset:
      "id text, account_id text, provider_id text, user_id text, access_token text, refresh_token text, id_token text, access_token_expires_at timestamptz, refresh_token_expires_at timestamptz, scope text, password text, created_at timestamptz, updated_at timestamptz",
    insert: `insert into accounts (id, account_id, provider_id, user_id, access_token, refresh_token, id_token, access_token_expires_at, refresh_token_expires_at, scope, password, created_at, updated_at)
      select id, account_id, provider_id, user_id, access_token, refresh_token, id_token, access_token_expires_at, refresh_token_expires_at, scope, password, created_at, updated_at from SRC
      where ${USER_EXISTS("s.user_id")} on conflict do nothing returning id as k`,
    present: "exists (select 1 from accounts t where t.id = s.id)",
    deleted: USER_GONE("s.user_id"),
    orphan: ORPHAN_USER("s.user_id"),
    unplaced: { conflict: "the same provider account is already linked to another Warren user" },
    async convert(row, notes, env) {
      const providerId = toText(row.providerId);
      const accountId = toText(row.accountId);
      if (!providerId || !accountId) return { skip: "invalid" };
      const password = toText(row.password);
      // Legacy hashes are Better Auth's scrypt format, which Warren's Better Auth verifies as
      // is: no conversion. Anything else is kept (for the record) and reported: that user has
      // to reset the password.
      if (password && !BETTER_AUTH_SCRYPT_HASH.test(password)) notes.replaced("password", "not Better Auth's scrypt format; the user must reset the password");
      // GitHub tokens sat here in plaintext; Warren's Better Auth encrypts linked-account
      // tokens (encryptOAuthTokens), so they are sealed the way it would have sealed them.
      const seal = async (value: unknown) => {
        const token = toText(value);
        if (!token) return null;
        return looksEncrypted(token) ? token : symmetricEncrypt({ key: authSecret, data: token });
      };
      return {
        id: String(row.id),
        account_id: accountId,
        provider_id: providerId,
        user_id: toText(row.userId),
        access_token: await seal(row.accessToken),
        refresh_token: await seal(row.refreshToken),
        id_token: await seal(row.idToken),
        access_token_expires_at: optionalTime(row.accessTokenExpiresAt, "accessTokenExpiresAt", notes),
        refresh_token_expires_at: optionalTime(row.refreshTokenExpiresAt, "refreshTokenExpiresAt", notes),
        scope: toText(row.scope),
        password,
        ...times(row, notes, env, "createdAt", "updatedAt"),
      };
    },
  };

  const verifications: TableSpec = {
    table: "verification",
    target: "verifications",
    keyField: "id",
    recordset: "id text, identifier text, value text, expires_at timestamptz, created_at timestamptz, updated_at timestamptz",
    // Better Auth keys a password reset by the user's id (value); account deletion removes such
    // rows, and a deleted account's ones stay out.
    insert: `insert into verifications (id, identifier, value, expires_at, created_at, updated_at)
      select id, identifier, value, expires_at, created_at, updated_at from SRC where not ${USER_GONE("s.value")}
      on conflict do nothing returning id as k`,
    present: "exists (select 1 from verifications t where t.id = s.id)",
    deleted: USER_GONE("s.value"),
    unplaced: { conflict: "unexpected unique conflict" },
    convert(row, notes, env) {
      const identifier = toText(row.identifier);
      if (!identifier) return { skip: "invalid" };
      let value = toText(row.value);
      if (value === null) {
        value = "";
        notes.replaced("value", "NULL in a NOT NULL column, stored as empty");
      }
      return {
        id: String(row.id),
        identifier,
        value,
        expires_at: requiredTime(row.expiresAt, "expiresAt", notes, env.now),
        ...times(row, notes, env, "createdAt", "updatedAt"),
      };
    },
  };

  const LEGACY_SANDBOX_STATUS = ["created", "starting", "running", "stopping", "stopped", "error"] as const;
  const sandboxes: TableSpec = {
    table: "sandboxes",
    target: "sandboxes",
    keyField: "id",
    recordset:
      "id text, user_id text, name text, slug text, description text, repository_url text, resource_tier_id text, flavor_id text, addon_ids json, status text, status_reason text, error_message text, last_activity_at timestamptz, created_at timestamptz, updated_at timestamptz",
    insert: `insert into sandboxes (id, user_id, name, slug, description, repository_url, resource_tier_id, flavor_id, status, desired_status, status_reason, error_message, last_activity_at, stopped_at, created_at, updated_at)
      select id, user_id, name, slug, description, repository_url, resource_tier_id, flavor_id, status::sandbox_status, 'stopped', status_reason, error_message, last_activity_at,
        case when status = 'stopped' then updated_at end, created_at, updated_at
      from SRC where ${USER_EXISTS("s.user_id")} and not ${IN_LEDGER("sandboxes", "s.id")} on conflict do nothing returning id as k`,
    afterBatch: `insert into sandbox_addons (sandbox_id, addon_id)
      select s.id, a.value from SRC cross join lateral json_array_elements_text(s.addon_ids) as a(value)
      where exists (select 1 from sandboxes x where x.id = s.id and x.user_id = s.user_id)
      on conflict do nothing`,
    present: "exists (select 1 from sandboxes t where t.id = s.id)",
    deleted: `(${SANDBOX_GONE("s.id")} or ${USER_GONE("s.user_id")})`,
    ledger: "sandboxes",
    orphan: ORPHAN_USER("s.user_id"),
    unplaced: { conflict: "its slug is already used by another sandbox of the same user" },
    convert(row, notes, env) {
      const id = String(row.id);
      let name = toText(row.name);
      if (!name) {
        name = toText(row.slug) ?? id;
        notes.replaced("name", "NULL, slug used");
      }
      let slug = toText(row.slug);
      if (!slug) {
        slug = id.toLowerCase();
        notes.replaced("slug", "NULL, id used");
      }
      let tier = toText(row.resource_tier_id) ?? catalog.defaultTier;
      if (!catalog.tiers.has(tier)) {
        notes.replaced("resource_tier_id", `unknown tier, "${catalog.defaultTier}" used`);
        tier = catalog.defaultTier;
      }
      let flavor = toText(row.flavor_id) ?? catalog.defaultFlavor;
      if (!catalog.flavors.has(flavor)) {
        notes.replaced("flavor_id", `unknown flavor, "${catalog.defaultFlavor}" used`);
        flavor = catalog.defaultFlavor;
      }
      const addonIds = stringArray(row.addon_ids, "addon_ids", notes).filter((a) => {
        if (catalog.addons.has(a)) return true;
        notes.replaced("addon_ids", `unknown add-on "${a}" left out`);
        return false;
      });
      // The legacy containers are not Warren workloads: nothing of them runs under Warren after
      // the import, so every sandbox arrives stopped (an error keeps its message) and is started
      // by its owner, which creates its workload under the same id.
      const legacy = toEnum(row.status, LEGACY_SANDBOX_STATUS, "status", notes, "stopped");
      const status = legacy === "error" ? "error" : "stopped";
      const statusReason = legacy === "error" ? "error" : legacy === "stopped" || legacy === "created" ? null : "imported";
      return {
        id,
        user_id: toText(row.user_id),
        name,
        slug,
        description: toText(row.description) ?? "",
        repository_url: toRepositoryUrl(row.github_url, notes),
        resource_tier_id: tier,
        flavor_id: flavor,
        addon_ids: [...new Set(addonIds)],
        status,
        status_reason: statusReason,
        error_message: toText(row.error_message),
        last_activity_at: optionalTime(row.last_accessed_at, "last_accessed_at", notes),
        ...times(row, notes, env),
      };
    },
  };

  const chatSessions: TableSpec = {
    table: "chat_sessions",
    target: "chat_sessions",
    keyField: "id",
    recordset:
      "id text, user_id text, sandbox_id text, source text, external_session_id text, acp_agent_id text, title text, status text, last_synced_at timestamptz, created_at timestamptz, updated_at timestamptz",
    // No counters: the legacy ones count every copy of a duplicated message. They are set from
    // the imported messages once those are in (session-counters.ts).
    insert: `insert into chat_sessions (id, user_id, sandbox_id, source, external_session_id, acp_agent_id, title, status, last_synced_at, created_at, updated_at)
      select id, user_id, sandbox_id, source::chat_source, external_session_id, acp_agent_id, title, status::chat_session_status, last_synced_at, created_at, updated_at
      from SRC where ${USER_EXISTS("s.user_id")}
        and (s.sandbox_id is null or exists (select 1 from sandboxes x where x.id = s.sandbox_id and x.user_id = s.user_id))
        and not ${IN_LEDGER("chat_sessions", "s.id")}
      on conflict do nothing returning id as k`,
    // A purged session is a tombstone, not a conversation: counted as deleted in Warren.
    present: "exists (select 1 from chat_sessions t where t.id = s.id and t.purged_at is null)",
    deleted: `(${SESSION_GONE("s.id")} or (s.sandbox_id is not null and ${SANDBOX_GONE("s.sandbox_id")}) or ${USER_GONE("s.user_id")})`,
    ledger: "chat_sessions",
    orphan: `case when not ${USER_EXISTS("s.user_id")} then 'orphan_user'
      when s.sandbox_id is not null and not exists (select 1 from sandboxes x where x.id = s.sandbox_id and x.user_id = s.user_id) then 'orphan_sandbox' end`,
    unplaced: { conflict: "Warren already has this agent session (same sandbox and external session id) under another id" },
    convert(row, notes, env) {
      const source = toEnum(row.source, ["opencode", "acp_gateway"] as const, "source", notes, "opencode");
      return {
        id: String(row.id),
        user_id: toText(row.user_id),
        sandbox_id: toText(row.sandbox_id),
        source,
        external_session_id: toText(source === "acp_gateway" ? row.acp_session_id : row.opencode_session_id),
        acp_agent_id: toText(row.acp_agent_id),
        title: toText(row.title) ?? "",
        status: toEnum(row.status, ["active", "archived", "deleted"] as const, "status", notes, "active"),
        last_synced_at: optionalTime(row.last_synced_at, "last_synced_at", notes),
        ...times(row, notes, env),
      };
    },
  };

  const chatMessages: TableSpec = {
    table: "chat_messages",
    target: "chat_messages",
    keyField: "id",
    recordset:
      "id text, session_id text, external_message_id text, role text, content jsonb, tool_calls jsonb, tool_results jsonb, thinking jsonb, text text, model_provider text, model_id text, agent_id text, input_tokens int, output_tokens int, status text, error_message text, created_at timestamptz, completed_at timestamptz",
    // The owner comes from the session (Warren denormalises it onto every message). A second
    // copy of a message (same session and external id) hits chat_messages_external_uq and is
    // left out: the first copy in file order is kept (batchUnique keeps copies in separate batches), the others are counted as merged.
    insert: `insert into chat_messages (id, session_id, user_id, external_message_id, role, content, tool_calls, tool_results, thinking, text, model_provider, model_id, agent_id, input_tokens, output_tokens, status, error_message, created_at, completed_at, updated_at)
      select s.id, s.session_id, cs.user_id, s.external_message_id, s.role::chat_role, s.content, s.tool_calls, s.tool_results, s.thinking, s.text, s.model_provider, s.model_id, s.agent_id,
        s.input_tokens, s.output_tokens, s.status::chat_message_status, s.error_message, s.created_at, s.completed_at, coalesce(s.completed_at, s.created_at)
      from SRC join chat_sessions cs on cs.id = s.session_id
      where cs.purged_at is null
      on conflict do nothing returning id as k`,
    present: "exists (select 1 from chat_messages t where t.id = s.id)",
    deleted: SESSION_GONE("s.session_id"),
    orphan: "case when not exists (select 1 from chat_sessions cs where cs.id = s.session_id) then 'orphan_session' end",
    unplaced: "merged",
    // The insert joins the session and takes the owner from it: both references exist.
    lockReferences: `select 1 from chat_sessions cs join users u on u.id = cs.user_id
      where cs.id in (select session_id from STAGE) for key share of cs, u`,
    batchUnique: (r) => (r.external_message_id === null ? null : JSON.stringify([r.session_id, r.external_message_id])),
    convert(row, notes, env) {
      const content = toJson(row.content, "content", notes, []);
      const role = toEnum(row.role, ["user", "assistant", "system"] as const, "role", notes, "assistant");
      let status = toEnum(row.status, ["streaming", "complete", "error", "cancelled"] as const, "status", notes, "complete");
      let errorMessage = toText(row.error_message);
      if (status === "streaming") {
        // No agent will ever finish a message the legacy system left streaming: stored in the
        // final state Warren's sync gives an aborted reply (cancelled; opencode-events.ts), or,
        // as it does for user and system messages, complete. The parts received are kept.
        status = role === "assistant" ? "cancelled" : "complete";
        if (status === "cancelled") errorMessage ??= INTERRUPTED_MESSAGE;
        notes.interrupted("status", `still streaming in the legacy file, stored as ${status} (content kept)`);
      }
      return {
        id: String(row.id),
        session_id: toText(row.session_id),
        external_message_id: toText(row.external_message_id),
        role,
        content,
        tool_calls: toJson(row.tool_calls, "tool_calls", notes, null),
        tool_results: toJson(row.tool_results, "tool_results", notes, null),
        thinking: toJson(row.thinking, "thinking", notes, null),
        text: messageText(content),
        model_provider: toText(row.model_provider),
        model_id: toText(row.model_id),
        agent_id: toText(row.agent_id),
        input_tokens: toInt(row.input_tokens, 0),
        output_tokens: toInt(row.output_tokens, 0),
        status,
        error_message: errorMessage,
        created_at: requiredTime(row.created_at, "created_at", notes, env.now),
        completed_at: optionalTime(row.completed_at, "completed_at", notes),
      };
    },
  };

  const preferences: TableSpec = {
    table: "user_preferences",
    target: "user_preferences",
    idOf: (row) => String(row.user_id ?? row.id),
    keyField: "user_id",
    recordset:
      "user_id text, theme_mode text, theme_preset text, auto_refresh_interval int, in_app_notifications boolean, system_notifications boolean, default_resource_tier_id text, default_flavor_id text, default_addon_ids jsonb, default_agent_id text, version int, created_at timestamptz, updated_at timestamptz",
    insert: `insert into user_preferences (user_id, theme_mode, theme_preset, auto_refresh_interval, in_app_notifications, system_notifications, default_resource_tier_id, default_flavor_id, default_addon_ids, default_agent_id, version, created_at, updated_at)
      select user_id, theme_mode::theme_mode, theme_preset, auto_refresh_interval, in_app_notifications, system_notifications, default_resource_tier_id, default_flavor_id, default_addon_ids, default_agent_id, version, created_at, updated_at
      from SRC where ${USER_EXISTS("s.user_id")} on conflict do nothing returning user_id as k`,
    present: "exists (select 1 from user_preferences t where t.user_id = s.user_id)",
    deleted: USER_GONE("s.user_id"),
    orphan: ORPHAN_USER("s.user_id"),
    unplaced: { conflict: "unexpected unique conflict" },
    convert(row, notes, env) {
      let interval = toInt(row.auto_refresh_interval, 30);
      if (interval < 5 || interval > 300) {
        const clamped = Math.min(300, Math.max(5, interval));
        notes.replaced("auto_refresh_interval", `${interval} is outside 5–300 seconds, stored as ${clamped}`);
        interval = clamped;
      }
      const known = (value: unknown, set: Set<string>, column: string) => {
        const id = toText(value);
        if (id && !set.has(id)) {
          notes.replaced(column, "unknown catalog id, stored as NULL");
          return null;
        }
        return id;
      };
      return {
        user_id: toText(row.user_id),
        theme_mode: toEnum(row.theme_mode, ["light", "dark", "system"] as const, "theme_mode", notes, "system"),
        theme_preset: toText(row.theme_preset) ?? "default",
        auto_refresh_interval: interval,
        in_app_notifications: toBool(row.in_app_notifications, "in_app_notifications", notes, true),
        system_notifications: toBool(row.system_notifications, "system_notifications", notes, false),
        default_resource_tier_id: known(row.default_resource_tier_id, catalog.tiers, "default_resource_tier_id"),
        default_flavor_id: known(row.default_flavor_id, catalog.flavors, "default_flavor_id"),
        default_addon_ids: stringArray(row.default_addon_ids, "default_addon_ids", notes).filter((a) => {
          if (catalog.addons.has(a)) return true;
          notes.replaced("default_addon_ids", `unknown add-on "${a}" left out`);
          return false;
        }),
        default_agent_id: toText(row.default_agent_id),
        version: Math.max(1, toInt(row.settings_version, 1)),
        ...times(row, notes, env),
      };
    },
  };

  const agentConfig: TableSpec = {
    table: "user_opencode_config",
    target: "user_agent_config",
    idOf: (row) => String(row.user_id ?? row.id),
    keyField: "user_id",
    recordset: "user_id text, config jsonb, agents_md text, created_at timestamptz, updated_at timestamptz",
    insert: `insert into user_agent_config (user_id, config, agents_md, created_at, updated_at)
      select user_id, config, agents_md, created_at, updated_at from SRC where ${USER_EXISTS("s.user_id")}
      on conflict do nothing returning user_id as k`,
    present: "exists (select 1 from user_agent_config t where t.user_id = s.user_id)",
    deleted: USER_GONE("s.user_id"),
    orphan: ORPHAN_USER("s.user_id"),
    unplaced: { conflict: "unexpected unique conflict" },
    convert(row, notes, env) {
      return {
        user_id: toText(row.user_id),
        config: jsonObject(row.settings, "settings", notes),
        agents_md: toText(row.agents_md) ?? "",
        ...times(row, notes, env),
      };
    },
  };

  const agentFiles: TableSpec = {
    table: "user_opencode_files",
    target: "user_agent_files",
    keyField: "id",
    recordset: "id text, user_id text, type text, name text, extension text, content text, created_at timestamptz, updated_at timestamptz",
    insert: `insert into user_agent_files (id, user_id, type, name, extension, content, created_at, updated_at)
      select id, user_id, type::agent_file_type, name, extension::agent_file_extension, content, created_at, updated_at
      from SRC where ${USER_EXISTS("s.user_id")} and not ${IN_LEDGER("user_opencode_files", "s.id")} on conflict do nothing returning id as k`,
    present: "exists (select 1 from user_agent_files t where t.id = s.id)",
    // Deleted and then written again under the same name: the new file is the user's, not a conflict.
    deleted: `((${IN_LEDGER("user_opencode_files", "s.id")} and not exists (select 1 from user_agent_files t where t.id = s.id)) or ${USER_GONE("s.user_id")})`,
    ledger: "user_opencode_files",
    orphan: ORPHAN_USER("s.user_id"),
    unplaced: { conflict: "the user already has a file of that type and name in Warren" },
    convert(row, notes, env): ConvertResult {
      const name = toText(row.name);
      if (!name) return { skip: "invalid" };
      // The name becomes a file name in every sandbox of the user (agents/NAME.md): a name the
      // API would refuse ("../x", "a/b") would make the renderer refuse the whole configuration,
      // and with it the user's sandboxes. Such rows stay in the legacy file, named in the report.
      const problem = agentNameProblem(name);
      if (problem) {
        notes.replaced("name", `${JSON.stringify(name.slice(0, 100))} ${problem}: row not imported`);
        return { skip: "invalid" };
      }
      const type = toEnum(row.type, ["agent", "command", "tool", "plugin"] as const, "type", notes, "agent");
      const extension = toEnum(row.extension, ["md", "ts", "js"] as const, "extension", notes, EXTENSIONS_BY_TYPE[type][0]!);
      // OpenCode loads only markdown agents and commands and only JS/TS tools and plugins;
      // renaming the file would turn markdown into code (or code into a prompt).
      if (!EXTENSIONS_BY_TYPE[type].includes(extension)) {
        notes.replaced("extension", `a ${type} cannot be a .${extension} file: row not imported`);
        return { skip: "invalid" };
      }
      return {
        id: String(row.id),
        user_id: toText(row.user_id),
        type,
        name,
        extension,
        content: toText(row.content) ?? "",
        ...times(row, notes, env),
      };
    },
  };

  const activity: TableSpec = {
    table: "activity_log",
    target: "activity_log",
    keyField: "id",
    recordset:
      "id text, user_id text, actor_type text, action text, entity_type text, entity_id text, metadata jsonb, ip_address text, user_agent text, anonymized boolean, created_at timestamptz",
    insert: `insert into activity_log (id, user_id, actor_type, action, entity_type, entity_id, metadata, ip_address, user_agent, anonymized, created_at)
      select id, user_id, actor_type::actor_type, action, entity_type, entity_id, metadata, ip_address, user_agent, anonymized, created_at
      from SRC where (s.user_id is null or ${USER_EXISTS("s.user_id")})
        and not exists (select 1 from activity_log_archive a where a.id = s.id)
      on conflict do nothing returning id as k`,
    // Warren's retention moves old entries (the legacy ones soon after the import) into the
    // archive under the same id, without the personal data: there, they are already present.
    present: "exists (select 1 from activity_log t where t.id = s.id) or exists (select 1 from activity_log_archive a where a.id = s.id)",
    // A deleted account's entries stay, anonymised (already present); those it never had are not added.
    deleted: `s.user_id is not null and ${USER_GONE("s.user_id")}`,
    orphan: `case when s.user_id is not null and not ${USER_EXISTS("s.user_id")} then 'orphan_user' end`,
    unplaced: { conflict: "unexpected unique conflict" },
    // The insert takes only rows whose user exists (or has none).
    lockReferences: "select 1 from users u where u.id in (select user_id from STAGE) for key share",
    convert(row, notes, env) {
      const userId = toText(row.user_id);
      let action = toText(row.action);
      if (!action) {
        action = "unknown";
        notes.replaced("action", 'NULL, stored as "unknown"');
      }
      return {
        id: String(row.id),
        user_id: userId,
        actor_type: userId ? "user" : "system",
        action,
        entity_type: toText(row.entity_type),
        entity_id: toText(row.entity_id),
        // Secrets never reach the activity log, legacy ones included.
        metadata: redactLegacyText(stripSecrets(jsonObject(row.metadata, "metadata", notes)) as Record<string, unknown>),
        ip_address: toText(row.ip_address),
        user_agent: toText(row.user_agent),
        anonymized: toBool(row.anonymized ?? 0, "anonymized", notes, false),
        created_at: requiredTime(row.created_at, "created_at", notes, env.now),
      };
    },
  };

  const archive: TableSpec = {
    table: "activity_log_archive",
    target: "activity_log_archive",
    keyField: "id",
    recordset: "id text, action text, entity_type text, metadata jsonb, original_created_at timestamptz, archived_at timestamptz",
    insert: `insert into activity_log_archive (id, action, entity_type, metadata, original_created_at, archived_at)
      select id, action, entity_type, metadata, original_created_at, archived_at from SRC on conflict do nothing returning id as k`,
    present: "exists (select 1 from activity_log_archive t where t.id = s.id)",
    unplaced: { conflict: "unexpected unique conflict" },
    convert(row, notes, env) {
      let action = toText(row.action);
      if (!action) {
        action = "unknown";
        notes.replaced("action", 'NULL, stored as "unknown"');
      }
      const archivedAt = requiredTime(row.archived_at, "archived_at", notes, toIsoOrNull(row.created_at), env.now);
      return {
        id: String(row.id),
        action,
        entity_type: toText(row.entity_type),
        metadata: redactLegacyText(stripSecrets(jsonObject(row.metadata, "metadata", notes)) as Record<string, unknown>),
        original_created_at: requiredTime(row.original_created_at, "original_created_at", notes, archivedAt),
        archived_at: archivedAt,
      };
    },
  };

  return [users, sessions, accounts, verifications, sandboxes, chatSessions, chatMessages, preferences, agentConfig, agentFiles, activity, archive];
}
