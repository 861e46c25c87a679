import { Database } from "bun:sqlite";
import type { ImportOptions } from "../../src/import/run";
import type { TestApp } from "./app";
import { createCipheriv, randomBytes, scryptSync } from "node:crypto";

/**
 * Legacy SQLite files built in code, in the layout of shared/legacy-schema.md, with its quirks:
 * camelCase auth columns, three timestamp shapes, NULLs where newer installs say NOT NULL (the
 * DDL here is an older install's, without those constraints), epoch seconds and milliseconds,
 * ISO 8601 with an offset, an impossible date, 0/1 booleans, malformed JSON (in jsonb-shaped
 * columns and in id lists that cannot hold it, one hiding a secret), agent file names Warren
 * refuses,
 * orphans, duplicate chat messages, unicode and very long texts, and credentials encrypted with
 * the legacy scheme.
 */

export const LEGACY_KEY = "legacy-encryption-key-not-32-ch"; // shorter than 32: right-padded with 0

/** The legacy scheme (quirk 6): base64(iv ‖ ciphertext ‖ tag), AES-256-GCM, key = first 32 chars padded with "0". */
export function legacyEncrypt(plaintext: string, keySetting = LEGACY_KEY): string {
  const key = Buffer.from(keySetting.slice(0, 32).padEnd(32, "0"), "utf8");
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]).toString("base64");
}

/** The legacy Better Auth password hash: scrypt N=16384 r=16 p=1, 64 bytes, "hexsalt:hexkey". */
export function legacyPasswordHash(password: string): string {
  const salt = randomBytes(16).toString("hex");
  const key = scryptSync(password.normalize("NFKC"), salt, 64, { N: 16384, r: 16, p: 1, maxmem: 128 * 16384 * 16 * 2 });
  return `${salt}:${key.toString("hex")}`;
}

const DDL = `
create table _migrations (version integer primary key, name text, applied_at text default (datetime('now')));
create table "user" (id text primary key, name text, email text unique, emailVerified integer, image text, createdAt text, updatedAt text);
create table "session" (id text primary key, expiresAt text, token text unique, ipAddress text, userAgent text, userId text, createdAt text, updatedAt text);
create table "account" (id text primary key, accountId text, providerId text, userId text, accessToken text, refreshToken text, idToken text,
  accessTokenExpiresAt text, refreshTokenExpiresAt text, scope text, password text, createdAt text, updatedAt text);
create table "verification" (id text primary key, identifier text, value text, expiresAt text, createdAt text, updatedAt text);
create table resource_tiers (id text primary key, name text, description text, cpu_cores real, memory_gb real, storage_gb integer, price_monthly real,
  is_default integer default 0, sort_order integer, created_at text default (datetime('now')), updated_at text default (datetime('now')));
create table container_flavors (id text primary key, name text, description text, languages text, image_size_mb integer, is_default integer, enabled integer,
  sort_order integer, created_at text default (datetime('now')), updated_at text default (datetime('now')));
create table container_addons (id text primary key, name text, description text, category text check (category in ('interface','compute','storage','devops')),
  image_size_mb integer, port integer, requires_gpu integer, requires_flavor text, price_monthly real, sort_order integer,
  created_at text default (datetime('now')), updated_at text default (datetime('now')));
create table container_tiers (id text primary key, name text, created_at text, updated_at text);
create table sandboxes (id text primary key, user_id text references "user"(id) on delete cascade, name text, slug text, description text, repo_name text,
  github_url text, resource_tier_id text default 'starter', flavor_id text default 'fullstack', addon_ids text, container_id text, container_name text,
  status text check (status in ('created','starting','running','stopping','stopped','error')), error_message text, opencode_url text,
  acp_gateway_url text, vnc_url text, code_server_url text, last_accessed_at text, created_at text default (datetime('now')), updated_at text default (datetime('now')),
  unique (user_id, slug));
create table projects (id text primary key, slug text, repo text, tier text, status text, created_at text, updated_at text);
create table chat_sessions (id text primary key, sandbox_id text, user_id text, source text check (source in ('opencode','acp_gateway')),
  opencode_session_id text, acp_session_id text, acp_agent_id text, title text, status text check (status in ('active','archived','deleted')),
  message_count integer, user_message_count integer, assistant_message_count integer, total_input_tokens integer, total_output_tokens integer,
  last_message_at text, last_synced_at text, created_at text, updated_at text);
create table chat_messages (id text primary key, session_id text, external_message_id text, role text check (role in ('user','assistant','system')),
  content text, tool_calls text, tool_results text, thinking text, model_provider text, model_id text, agent_id text, input_tokens integer,
  output_tokens integer, status text check (status in ('streaming','complete','error','cancelled')), error_message text, created_at text, completed_at text);
create table provider_credentials (id text primary key, provider_id text unique, auth_type text check (auth_type in ('api_key','oauth','device_flow')),
  api_key_encrypted text, access_token_encrypted text, refresh_token_encrypted text, token_expires_at text, oauth_provider text, oauth_scopes text,
  created_at text, updated_at text);
create table oauth_state (id text primary key, provider_id text, device_code text, user_code text, verification_uri text, interval_seconds integer,
  expires_at text, status text, error_message text, created_at text, updated_at text);
create table providers (id text primary key, name text, api_key text, created_at text, updated_at text);
create table settings (key text primary key, value text, created_at text, updated_at text);
create table user_opencode_config (id text primary key, user_id text unique, settings text, agents_md text, created_at text, updated_at text);
create table user_opencode_files (id text primary key, user_id text, type text, name text, extension text, content text, created_at text, updated_at text,
  unique (user_id, type, name));
create table user_preferences (id text primary key, user_id text unique, theme_mode text, theme_preset text, auto_refresh_interval integer,
  in_app_notifications integer, system_notifications integer, default_resource_tier_id text, default_flavor_id text, default_addon_ids text,
  default_agent_id text, settings_version integer, created_at text, updated_at text);
create table activity_log (id integer primary key autoincrement, user_id text, action text, entity_type text, entity_id text, metadata text,
  ip_address text, user_agent text, anonymized integer default 0, created_at text default (datetime('now')));
create table activity_log_archive (id integer primary key, action text, entity_type text, metadata text, original_created_at text, archived_at text);
`;

export const ALICE = { id: "usr-legacy-alice", email: "alice@example.com", password: "alice-old-password-1" };
export const BOB = { id: "usr-legacy-bob", email: "Bob@Example.com", password: "bob-old-password-22" };
export const ANTHROPIC_KEY = "sk-ant-legacy-0123456789abcdef";
export const COPILOT_TOKEN = "ghu_legacyCopilotToken0123456789";
/** Malformed activity metadata (cut short) that still holds a secret. */
export const LEGACY_BROKEN_METADATA = '{"provider":"openai","apiKey":"sk-legacy-broken-secret","via":"ui"';
export const LONG_TEXT = "ünïcödé 🦀 漢字 — ".repeat(20_000); // ~400 kB of multi-byte text

export type Fixture = {
  path: string;
  /** Source row counts per table, for assertions. */
  counts: Record<string, number>;
};

/** The full quirk fixture: two real users, one orphaned legacy "default-user", everything else. */
export function buildLegacyFixture(path: string, options: { legacyKey?: string } = {}): Fixture {
  const key = options.legacyKey ?? LEGACY_KEY;
  const db = new Database(path, { create: true, strict: true });
  db.exec("pragma journal_mode = wal");
  db.exec(DDL);
  const run = (q: string, ...params: unknown[]) => db.query(q).run(...(params as never[]));

  for (let v = 1; v <= 18; v++) if (v !== 9) run("insert into _migrations (version, name) values (?, ?)", v, `m${v}`);
  // Reference data: the legacy seed, with one operator edit (builder got more memory) and a new flavor.
  const tiers: Array<[string, number, number, number, number, number, number]> = [
    ["micro", 1, 1, 10, 0, 0, 0],
    ["starter", 1, 2, 20, 0, 1, 1],
    ["builder", 2, 6, 30, 10, 0, 2], // edited: 6 GB instead of 4
    ["creator", 4, 8, 50, 25, 0, 3],
    ["power", 8, 16, 100, 50, 0, 4],
  ];
  for (const [id, cpu, mem, disk, price, def, sort] of tiers) {
    run("insert into resource_tiers (id, name, cpu_cores, memory_gb, storage_gb, price_monthly, is_default, sort_order) values (?,?,?,?,?,?,?,?)", id, id, cpu, mem, disk, price, def, sort);
  }
  run("insert into container_flavors (id, name, languages, image_size_mb, is_default, enabled, sort_order) values ('js','JS','[\"javascript\",\"typescript\"]',800,0,1,1)");
  run("insert into container_flavors (id, name, languages, image_size_mb, is_default, enabled, sort_order) values ('elixir','Elixir','[\"elixir\"]',950,0,1,9)");
  run("insert into container_addons (id, name, category, port, requires_gpu, price_monthly, sort_order) values ('gui','GUI','interface',6080,0,5,1)");
  run("insert into container_tiers (id, name) values ('lite','Lite'), ('pro','Pro')");

  // Users: three timestamp shapes (SQLite datetime, ISO with Z, Date#toString), a NULL name.
  run('insert into "user" values (?,?,?,?,?,?,?)', ALICE.id, "Alice Ünïcode 🦊", ALICE.email, 1, null, "2023-01-02 03:04:05", "2023-01-02T03:04:05.123Z");
  run('insert into "user" values (?,?,?,?,?,?,?)', BOB.id, null, BOB.email, 0, null, "Tue Nov 21 2023 13:48:14 GMT+0000 (Coordinated Universal Time)", null);
  run('insert into "account" values (?,?,?,?,?,?,?,?,?,?,?,?,?)', "acc-alice", ALICE.id, "credential", ALICE.id, null, null, null, null, null, null, legacyPasswordHash(ALICE.password), "2023-01-02 03:04:05", "2023-01-02 03:04:05");
  run('insert into "account" values (?,?,?,?,?,?,?,?,?,?,?,?,?)', "acc-bob", BOB.id, "credential", BOB.id, null, null, null, null, null, null, legacyPasswordHash(BOB.password), null, null);
  run('insert into "account" values (?,?,?,?,?,?,?,?,?,?,?,?,?)', "acc-alice-gh", "12345", "github", ALICE.id, "gho_plaintextGithubToken", null, null, null, null, "read:user", null, "2023-01-03 00:00:00", "2023-01-03 00:00:00");
  run('insert into "account" values (?,?,?,?,?,?,?,?,?,?,?,?,?)', "acc-ghost", "ghost", "credential", "default-user", null, null, null, null, null, null, "x:y", null, null);
  // Epoch seconds and epoch milliseconds (TEXT affinity: stored as their digits).
  run('insert into "session" values (?,?,?,?,?,?,?,?)', "ses-alice", "2030-01-01T00:00:00.000Z", "legacy-token-alice", "127.0.0.1", "Firefox", ALICE.id, "1672628645", "1672628645123");
  run('insert into "session" values (?,?,?,?,?,?,?,?)', "ses-ghost", null, "legacy-token-ghost", null, null, "default-user", null, null);
  run('insert into "verification" values (?,?,?,?,?,?)', "ver-1", "email-verification:bob", "v-123", "2023-06-01T02:00:00+02:00", null, null); // ISO with an offset

  // Sandboxes: ids kept; statuses from every literal; an unknown add-on; malformed addon_ids.
  run("insert into sandboxes (id, user_id, name, slug, description, github_url, resource_tier_id, flavor_id, addon_ids, container_id, status, last_accessed_at, created_at, updated_at) values (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
    "AbCdEf123456", ALICE.id, "Alice's 🦊 app", "alices-app", null, "https://user:pat@github.com/alice/app", "builder", "js", '["gui","teleporter"]', "c0ffee", "running", "2023-02-01T10:00:00Z", "2023-02-01 09:00:00", "2023-02-01 10:00:00");
  run("insert into sandboxes (id, user_id, name, slug, addon_ids, status, error_message, created_at, updated_at) values (?,?,?,?,?,?,?,?,?)",
    "ZyXwVu654321", ALICE.id, "Broken", "broken", "[gui", "error", "image pull failed", "2023-02-02 09:00:00", null);
  run("insert into sandboxes (id, user_id, name, slug, addon_ids, status, resource_tier_id, flavor_id, last_accessed_at, created_at) values (?,?,?,?,?,?,?,?,?,?)",
    "Bob000000001", BOB.id, "Bob box", "bob-box", "", "created", "ultra", "elixir", "2023-02-30 10:00:00", "2023-03-01 00:00:00"); // no 30 February
  run("insert into sandboxes (id, user_id, name, slug, status) values (?,?,?,?,?)", "Ghost0000001", "default-user", "Ghost", "ghost", "stopped");

  // Chat: a session with duplicates, malformed JSON, unicode and a very long message; an orphan session.
  run("insert into chat_sessions values (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", "0123456789abcdef0123456789abcdef", "AbCdEf123456", ALICE.id, "opencode", "oc-1", null, null, "Première session 🦊", "active", 5, 2, 3, 100, 200, "2023-02-01 10:00:00", null, "2023-02-01 09:30:00", "2023-02-01 10:00:00");
  run("insert into chat_sessions values (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", "ffffffffffffffffffffffffffffffff", "Ghost0000001", "default-user", "opencode", "oc-9", null, null, "ghost", "active", 1, 1, 0, 0, 0, null, null, null, null);
  const msg = (id: string, session: string, ext: string | null, role: string, content: string | null, created: string | null, status = "complete") =>
    run("insert into chat_messages (id, session_id, external_message_id, role, content, input_tokens, output_tokens, status, created_at) values (?,?,?,?,?,?,?,?,?)", id, session, ext, role, content, 1, 2, status, created);
  const S = "0123456789abcdef0123456789abcdef";
  msg("m1", S, "ext-1", "user", JSON.stringify([{ type: "text", text: "Bonjour, 世界 🦀" }]), "2023-02-01 09:31:00");
  msg("m2", S, "ext-2", "assistant", JSON.stringify([{ type: "text", text: "first copy" }]), "2023-02-01T09:32:00.000Z", "streaming");
  msg("m2-dup", S, "ext-2", "assistant", JSON.stringify([{ type: "text", text: "second copy" }]), "2023-02-01T09:32:01.000Z");
  msg("m3", S, "ext-3", "assistant", "{not json", "Wed Feb 01 2023 09:33:00 GMT+0000 (Coordinated Universal Time)");
  msg("m4", S, "ext-4", "user", JSON.stringify([{ type: "text", text: LONG_TEXT }]), null);
  msg("m5", S, null, "system", "", "2023-02-01 09:35:00");
  msg("m-orphan", "ffffffffffffffffffffffffffffffff", "ext-x", "user", "[]", "2023-02-01 09:36:00");
  msg("m-nosession", "does-not-exist", "ext-y", "user", "[]", "2023-02-01 09:37:00");

  // Credentials: global, encrypted with the legacy scheme; one pending OAuth flow.
  run("insert into provider_credentials (id, provider_id, auth_type, api_key_encrypted, created_at) values (?,?,?,?,?)", "cred-1", "anthropic", "api_key", legacyEncrypt(ANTHROPIC_KEY, key), "2023-01-05 00:00:00");
  run("insert into provider_credentials (id, provider_id, auth_type, access_token_encrypted, oauth_scopes, created_at) values (?,?,?,?,?,?)", "cred-2", "github-copilot", "device_flow", legacyEncrypt(COPILOT_TOKEN, key), '["read:user"]', "2023-01-06 00:00:00");
  run("insert into provider_credentials (id, provider_id, auth_type, oauth_scopes) values (?,?,?,?)", "cred-3", "openai", "api_key", "read:user, repo"); // not JSON
  run("insert into oauth_state (id, provider_id, device_code, user_code, status) values ('os-1','github-copilot','dc-plain','ABCD-1234','pending')");
  run("insert into oauth_state (id, provider_id, device_code, user_code, status) values ('os-2','github-copilot','dc-old','EFGH-5678','expired')");
  run("insert into providers (id, name) values ('anthropic','Anthropic'), ('openai','OpenAI')");
  run("insert into settings (key, value) values ('default_provider','anthropic'), ('ENCRYPTION_KEY_SET','1')");
  run("insert into projects (id, slug) values ('p1','old-project')");

  // User settings: malformed opencode.json for Bob, an orphaned default-user config.
  run("insert into user_opencode_config values (?,?,?,?,?,?)", "cfg-1", ALICE.id, JSON.stringify({ model: "anthropic/claude-sonnet-4", theme: "dark" }), "# Alice's rules\nBe kind. 🦊", "2023-01-04 00:00:00", null);
  run("insert into user_opencode_config values (?,?,?,?,?,?)", "cfg-2", BOB.id, "{\"model\": ", null, null, null);
  run("insert into user_opencode_config values (?,?,?,?,?,?)", "cfg-3", "default-user", "{}", null, null, null);
  run("insert into user_opencode_files values (?,?,?,?,?,?,?,?)", "file-1", ALICE.id, "agent", "reviewer", "md", "You review code.", null, null);
  run("insert into user_opencode_files values (?,?,?,?,?,?,?,?)", "file-2", "default-user", "command", "deploy", "md", "deploy it", null, null);
  // Names and extensions Warren's renderer refuses (a path out of the config directory; a tool
  // written in markdown): skipped as invalid, so that Alice's configuration still renders.
  run("insert into user_opencode_files values (?,?,?,?,?,?,?,?)", "file-3", ALICE.id, "agent", "../escape", "md", "outside", null, null);
  run("insert into user_opencode_files values (?,?,?,?,?,?,?,?)", "file-4", ALICE.id, "tool", "notes", "md", "# not code", null, null);
  run("insert into user_preferences values (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", "pref-1", ALICE.id, "dark", "ocean", 600, 1, 0, "builder", "js", '["gui"]', "build", 3, "2023-01-04 00:00:00", "2023-01-04 00:00:00");
  run("insert into user_preferences values (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", "pref-2", BOB.id, null, null, null, null, null, "ghost-tier", null, "not json", null, null, null, null);

  // Activity: a secret in metadata, malformed metadata, an orphan (default-user), a NULL user (system).
  run("insert into activity_log (user_id, action, entity_type, entity_id, metadata, created_at) values (?,?,?,?,?,?)", ALICE.id, "sandbox.start", "sandbox", "AbCdEf123456", '{"apiKey":"sk-should-not-survive","via":"ui"}', "2023-02-01 09:00:00");
  run("insert into activity_log (user_id, action, metadata, created_at) values (?,?,?,?)", ALICE.id, "provider.configure", LEGACY_BROKEN_METADATA, "2023-02-01T09:01:00Z");
  run("insert into activity_log (user_id, action, metadata) values (?,?,?)", "default-user", "sandbox.stop", "{}");
  run("insert into activity_log (user_id, action, metadata, created_at) values (?,?,?,?)", null, "system.cleanup", null, null);
  run("insert into activity_log_archive values (?,?,?,?,?,?)", 1000, "sandbox.create", "sandbox", '{"n":1}', "2022-01-01 00:00:00", "2022-06-01 00:00:00");

  const counts: Record<string, number> = {};
  for (const { name } of db.query<{ name: string }, []>("select name from sqlite_master where type='table' and name not like 'sqlite_%'").all()) {
    counts[name] = db.query<{ n: number }, []>(`select count(*) as n from "${name}"`).get()!.n;
  }
  db.close();
  return { path, counts };
}

/**
 * Adds `messages` chat messages and `activities` activity rows for one user (bench and the
 * kill -9 test), written fast in one SQLite transaction.
 */
export function addBulkRows(
  path: string,
  opts: { userId: string; sandboxId: string; sessions: number; messages: number; activities: number; prefix?: string; textOf?: (i: number) => string },
): void {
  const db = new Database(path, { strict: true });
  const p = opts.prefix ?? "bulk";
  const text = "Here is a typical assistant reply with some code: `const x = 1;` and an explanation. ";
  db.transaction(() => {
    const session = db.query("insert into chat_sessions (id, sandbox_id, user_id, source, opencode_session_id, title, status, created_at, updated_at) values (?,?,?,?,?,?,?,?,?)");
    for (let s = 0; s < opts.sessions; s++) {
      session.run(`${p}-s${s}`, opts.sandboxId, opts.userId, "opencode", `${p}-oc-${s}`, `Session ${s}`, "active", "2024-01-01 00:00:00", "2024-01-01 00:00:00");
    }
    const message = db.query("insert into chat_messages (id, session_id, external_message_id, role, content, input_tokens, output_tokens, status, created_at) values (?,?,?,?,?,?,?,?,?)");
    for (let i = 0; i < opts.messages; i++) {
      const created = new Date(Date.UTC(2024, 0, 1) + i * 1000).toISOString();
      const body = opts.textOf ? opts.textOf(i) : `${text}#${i}`;
      message.run(`${p}-m${i}`, `${p}-s${i % opts.sessions}`, `${p}-e${i}`, i % 2 ? "assistant" : "user", JSON.stringify([{ type: "text", text: body }]), 10, 20, "complete", created);
    }
    const activity = db.query("insert into activity_log (user_id, action, entity_type, entity_id, metadata, ip_address, created_at) values (?,?,?,?,?,?,?)");
    for (let i = 0; i < opts.activities; i++) {
      activity.run(opts.userId, "sandbox.start", "sandbox", opts.sandboxId, `{"i":${i},"via":"api"}`, "10.0.0.1", "2024-01-01 00:00:00");
    }
  })();
  db.close();
}

/** A logger that says nothing (tests check the report, not the log). */
export const silentLogger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silentLogger } as never;

/**
 * Options for importLegacy into a test app's database from `sourcePath`: credentials go to Alice,
 * the fixture's legacy key, the app's keyring and auth secret, a silent logger; `over` wins.
 */
export function importOptionsFor(t: TestApp, sourcePath: string, over: Partial<ImportOptions> = {}): ImportOptions {
  return {
    database: t.database,
    sourcePath,
    assignCredentialsTo: ALICE.email,
    legacyKey: LEGACY_KEY,
    keyring: t.config.keyring,
    authSecret: t.config.authSecret,
    logger: silentLogger,
    ...over,
  };
}
