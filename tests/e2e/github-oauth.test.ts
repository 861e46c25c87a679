import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startGithubStandIn, type GithubStandIn, type GithubUser } from "../helpers/github-standin";
import { createServerStorage, freePort, startServer, type RunningServer, type ServerStorage } from "../helpers/server";
import { queryServerDatabase } from "../helpers/server-database";

// GitHub sign-in end to end against the real server process. github.com cannot be reached from
// here, so a local stand-in (tests/helpers/github-standin.ts) speaks GitHub's OAuth web flow and
// Warren is pointed at it with the test-only GITHUB_API_OVERRIDE_URL.

const APP_ORIGIN = "https://app.example.test";
const CLIENT = { clientId: "Iv1.0123456789abcdef", clientSecret: "standin-client-secret-0123456789" };

const users: GithubUser[] = [
  {
    id: 583231,
    login: "octocat",
    name: "The Octocat",
    email: "octocat@github.example",
    emails: [{ email: "octocat@github.example", primary: true, verified: true, visibility: "public" }],
  },
  {
    id: 9001,
    login: "quiet-dev",
    name: null,
    // Public email hidden: only /user/emails (scope user:email) tells the primary verified one.
    email: null,
    emails: [
      { email: "9001+quiet-dev@users.noreply.github.example", primary: false, verified: true, visibility: null },
      { email: "old@quiet.example", primary: false, verified: false, visibility: "private" },
      { email: "quiet@quiet.example", primary: true, verified: true, visibility: "private" },
    ],
  },
  {
    id: 4242,
    login: "has-password",
    name: "Pat Password",
    email: "pat@password.example",
    emails: [{ email: "pat@password.example", primary: true, verified: true, visibility: "public" }],
  },
  {
    id: 31337,
    login: "linker",
    name: "Lin Ker",
    email: "lin@linker.example",
    emails: [{ email: "lin@linker.example", primary: true, verified: true, visibility: "public" }],
  },
  {
    id: 7,
    login: "token-check",
    name: "Token Check",
    email: "token@check.example",
    emails: [{ email: "token@check.example", primary: true, verified: true, visibility: "public" }],
  },
];

let storage: ServerStorage;
let server: RunningServer;
let github: GithubStandIn;
let serverEnv: Record<string, string>;

beforeAll(async () => {
  const port = freePort();
  github = startGithubStandIn({ ...CLIENT, callbackUrl: `http://127.0.0.1:${port}/api/auth/callback/github` }, users);
  storage = await createServerStorage();
  serverEnv = {
    // The override is refused in production (tested below), so this server runs as "test".
    NODE_ENV: "test",
    GITHUB_CLIENT_ID: CLIENT.clientId,
    GITHUB_CLIENT_SECRET: CLIENT.clientSecret,
    GITHUB_API_OVERRIDE_URL: github.url,
    TRUSTED_ORIGINS: APP_ORIGIN,
  };
  server = await startServer({ storage, env: serverEnv, port });
}, 120_000);

afterAll(async () => {
  await server?.stop();
  github?.stop();
  await storage?.destroy();
}, 60_000);

/** Name=value pairs of a response's Set-Cookie headers, for the next request's Cookie header. */
function cookiesOf(res: Response): string {
  return res.headers
    .getSetCookie()
    .map((c) => c.split(";")[0]!)
    .join("; ");
}

type Me = { id: string; name: string; email: string; emailVerified: boolean };

/** Where requests go (base), the URL Warren hands out (publicUrl), and which GitHub stand-in. */
type Via = { base: string; publicUrl: string; standIn: GithubStandIn };

/**
 * What a browser does: ask Warren for the authorize URL, let "GitHub" send it back to the
 * callback with a code, and follow the callback with the state cookie. Returns that answer.
 */

async function githubCallback(login: string, { base, publicUrl, standIn }: Via) {
  const start = await fetch(`${base}/api/auth/sign-in/social`, {
    method: "POST",
    headers: { "content-type": "application/json", origin: APP_ORIGIN },
    body: JSON.stringify({
      provider: "github",
      callbackURL: `${APP_ORIGIN}/after-sign-in`,
      errorCallbackURL: `${APP_ORIGIN}/sign-in-failed`,
    }),
  });
  expect(start.status).toBe(200);
  const { url } = (await start.json()) as { url: string };
  const authorize = new URL(url);
  expect(`${authorize.origin}${authorize.pathname}`).toBe("https://github.com/login/oauth/authorize");
  expect(authorize.searchParams.get("redirect_uri")).toBe(`${publicUrl}/api/auth/callback/github`);

  const back = await standIn.authorize(url, login);
  expect(`${back.origin}${back.pathname}`).toBe(`${publicUrl}/api/auth/callback/github`);
  expect(back.searchParams.get("code")).toBeTruthy();

  // The browser comes back to the public URL; here that host is Warren itself (or its "proxy").
  const callback = await fetch(`${base}${back.pathname}${back.search}`, {
    redirect: "manual",
    headers: { cookie: cookiesOf(start) },
  });
  expect(callback.status).toBe(302);
  return { callback, authorize };
}

/** A whole GitHub sign-in; returns the session cookie and what /api/v1/me says with it. */
async function signInWithGithub(login: string, via: Via = { base: server.url, publicUrl: server.url, standIn: github }) {
  const { base } = via;
  const { callback, authorize } = await githubCallback(login, via);
  expect(callback.headers.get("location")).toBe(`${APP_ORIGIN}/after-sign-in`);
  const cookie = cookiesOf(callback);
  expect(cookie).toMatch(/(^|; )(__Secure-)?better-auth\.session_token=/);
  const me = await fetch(`${base}/api/v1/me`, { headers: { cookie } });
  expect(me.status).toBe(200);
  return { cookie, me: (await me.json()) as Me, authorize };
}

async function accountsOf(cookie: string) {
  const res = await fetch(`${server.url}/api/auth/list-accounts`, { headers: { cookie, origin: server.url } });
  expect(res.status).toBe(200);
  return (await res.json()) as Array<{ id: string; providerId: string; accountId: string; userId: string }>;
}

describe("GitHub OAuth web flow against a GitHub stand-in", () => {
  test("sign-in/social → authorize → callback → session; /me shows the GitHub name and email", async () => {
    const before = github.requests.length;
    const { me, authorize } = await signInWithGithub("octocat");
    expect(me).toMatchObject({ name: "The Octocat", email: "octocat@github.example", emailVerified: true });
    expect(authorize.searchParams.get("client_id")).toBe(CLIENT.clientId);
    expect(authorize.searchParams.get("scope")?.split(" ")).toEqual(expect.arrayContaining(["read:user", "user:email"]));
    // Warren itself exchanged the code and read the profile, through the override.
    expect(github.requests.slice(before)).toEqual([
      "GET /login/oauth/authorize",
      "POST /login/oauth/access_token",
      "GET /user",
      "GET /user/emails",
    ]);
  }, 30_000);

  test("a second sign-in with the same GitHub account is the same user, with one GitHub account", async () => {
    const first = await signInWithGithub("octocat");
    const second = await signInWithGithub("octocat");
    expect(second.me.id).toBe(first.me.id);
    expect(second.cookie).not.toBe(first.cookie);
    const accounts = await accountsOf(second.cookie);
    expect(accounts.filter((a) => a.providerId === "github")).toHaveLength(1);
    expect(accounts.find((a) => a.providerId === "github")?.accountId).toBe("583231");
  }, 30_000);

  test("a user who hides their email still gets the primary verified one from /user/emails", async () => {
    const { me } = await signInWithGithub("quiet-dev");
    expect(me).toMatchObject({ email: "quiet@quiet.example", emailVerified: true, name: "quiet-dev" });
  }, 30_000);

  test("GitHub does not take over a password account whose email was never verified", async () => {
    // Pre-account-takeover: someone signs up with a victim's address before the victim ever uses
    // GitHub. Linking by email alone would hand them the victim's GitHub sign-in; Better Auth
    // links only to a verified local email, and Warren has no email verification yet.
    const signUp = await fetch(`${server.url}/api/auth/sign-up/email`, {
      method: "POST",
      headers: { "content-type": "application/json", origin: server.url },
      body: JSON.stringify({ email: "pat@password.example", password: "a long enough password", name: "Pat" }),
    });
    expect(signUp.status).toBe(200);
    const { callback } = await githubCallback("has-password", { base: server.url, publicUrl: server.url, standIn: github });
    expect(callback.headers.get("location")).toBe(`${APP_ORIGIN}/sign-in-failed?error=account_not_linked`);
    expect(callback.headers.getSetCookie().some((c) => /session_token=[^;]/.test(c))).toBe(false);
  }, 30_000);

  test("linking GitHub from a signed-in password account, and unlinking it, are in the activity log", async () => {
    const signUp = await fetch(`${server.url}/api/auth/sign-up/email`, {
      method: "POST",
      headers: { "content-type": "application/json", origin: APP_ORIGIN },
      body: JSON.stringify({ email: "lin@linker.example", password: "a long enough password", name: "Lin" }),
    });
    expect(signUp.status).toBe(200);
    const session = cookiesOf(signUp);
    const link = await fetch(`${server.url}/api/auth/link-social`, {
      method: "POST",
      headers: { "content-type": "application/json", origin: APP_ORIGIN, cookie: session },
      body: JSON.stringify({ provider: "github", callbackURL: `${APP_ORIGIN}/settings` }),
    });
    expect(link.status).toBe(200);
    const back = await github.authorize(((await link.json()) as { url: string }).url, "linker");
    const callback = await fetch(`${server.url}${back.pathname}${back.search}`, { redirect: "manual", headers: { cookie: `${session}; ${cookiesOf(link)}` } });
    expect(callback.headers.get("location")).toBe(`${APP_ORIGIN}/settings`);
    const accounts = await accountsOf(session);
    expect(accounts.map((a) => a.providerId).sort()).toEqual(["credential", "github"]);
    const linked = accounts.find((a) => a.providerId === "github")!;
    expect(linked.accountId).toBe("31337");

    const unlink = await fetch(`${server.url}/api/auth/unlink-account`, {
      method: "POST",
      headers: { "content-type": "application/json", origin: APP_ORIGIN, cookie: session },
      body: JSON.stringify({ accountId: linked.id }),
    });
    expect(unlink.status).toBe(200);
    expect((await accountsOf(session)).map((a) => a.providerId)).toEqual(["credential"]);

    const activity = await fetch(`${server.url}/api/v1/me/activity`, { headers: { cookie: session } });
    const entries = ((await activity.json()) as { data: Array<{ action: string; metadata: unknown }> }).data;
    // Newest first; the sign-up's own credential account is part of auth.sign_up, not a link.
    expect(entries.map((e) => e.action)).toEqual(["auth.account_unlink", "auth.account_link", "auth.sign_up"]);
    expect(entries.slice(0, 2).map((e) => e.metadata)).toEqual([{ provider: "github" }, { provider: "github" }]);

    // A GitHub account with another email is not linked (Better Auth's default), and says why.
    const other = await fetch(`${server.url}/api/auth/link-social`, {
      method: "POST",
      headers: { "content-type": "application/json", origin: APP_ORIGIN, cookie: session },
      body: JSON.stringify({ provider: "github", callbackURL: `${APP_ORIGIN}/settings`, errorCallbackURL: `${APP_ORIGIN}/settings/failed` }),
    });
    const otherBack = await github.authorize(((await other.json()) as { url: string }).url, "octocat");
    const refused = await fetch(`${server.url}${otherBack.pathname}${otherBack.search}`, { redirect: "manual", headers: { cookie: `${session}; ${cookiesOf(other)}` } });
    expect(refused.headers.get("location")).toBe(`${APP_ORIGIN}/settings/failed?error=email_does_not_match`);
    expect((await accountsOf(session)).map((a) => a.providerId)).toEqual(["credential"]);
  }, 30_000);

  test("a GitHub sign-up is one auth.sign_up entry, with no link", async () => {
    const { cookie } = await signInWithGithub("quiet-dev");
    const activity = await fetch(`${server.url}/api/v1/me/activity`, { headers: { cookie } });
    const actions = ((await activity.json()) as { data: Array<{ action: string }> }).data.map((e) => e.action);
    expect(actions).toContain("auth.sign_up");
    expect(actions).not.toContain("auth.account_link");
  }, 30_000);

  test("a callbackURL on an origin that is not trusted is refused before GitHub is involved", async () => {
    const res = await fetch(`${server.url}/api/auth/sign-in/social`, {
      method: "POST",
      headers: { "content-type": "application/json", origin: APP_ORIGIN },
      body: JSON.stringify({ provider: "github", callbackURL: "https://evil.example.test/steal" }),
    });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { code: string }).code).toBe("INVALID_CALLBACK_URL");
  });

  test("the linked account's tokens are stored encrypted: the plaintext token is nowhere in its row", async () => {
    const { me } = await signInWithGithub("token-check");
    const token = github.issuedTokens.at(-1)!;
    expect(token).toStartWith("gho_");
    const signedInWith = server;
    const result = await queryServerDatabase<Record<string, unknown>>(
      server,
      storage,
      serverEnv,
      "select * from accounts where user_id = $1",
      [me.id],
    );
    server = result.server;
    expect(result.rows).toHaveLength(1);
    const row = result.rows[0]!;
    expect(row).toMatchObject({ provider_id: "github", account_id: "7", scope: "read:user,user:email" });
    expect(typeof row.access_token).toBe("string");
    expect((row.access_token as string).length).toBeGreaterThan(token.length);
    const everything = JSON.stringify(Object.values(row).map(String));
    expect(everything).not.toContain(token);
    expect(everything).not.toContain(token.slice(4)); // nor its random part, in any framing
    // Nor is it in the log of the server that exchanged the code (on PGlite that process has
    // exited by now, so its whole output is here).
    expect(signedInWith.output.length).toBeGreaterThan(0);
    expect(signedInWith.output.join("\n")).not.toContain(token.slice(4));
  }, 60_000);

  test("the override is refused when NODE_ENV=production: the server does not start", async () => {
    // In memory: should it start after all, it must not share the other server's data.
    const memory: ServerStorage = { env: { DATA_DIR: "memory://" }, destroy: async () => {} };
    const failed = await startServer({ storage: memory, env: { ...serverEnv, NODE_ENV: "production" } }).then(
      async (s) => {
        await s.stop();
        return "";
      },
      (err: Error) => err.message,
    );
    expect(failed).toContain("Invalid environment variable GITHUB_API_OVERRIDE_URL: is for tests only");
  }, 30_000);
});

describe("behind a TLS-terminating proxy", () => {
  const PUBLIC_URL = "https://warren.example.test";
  let proxied: RunningServer;
  let proxiedStorage: ServerStorage;
  let proxiedGithub: GithubStandIn;

  beforeAll(async () => {
    proxiedGithub = startGithubStandIn({ ...CLIENT, callbackUrl: `${PUBLIC_URL}/api/auth/callback/github` }, users);
    proxiedStorage = await createServerStorage();
    proxied = await startServer({
      storage: proxiedStorage,
      env: { ...serverEnv, GITHUB_API_OVERRIDE_URL: proxiedGithub.url, PUBLIC_URL, CLIENT_IP_HEADER: "x-forwarded-for" },
    });
  }, 120_000);

  afterAll(async () => {
    await proxied?.stop();
    proxiedGithub?.stop();
    await proxiedStorage?.destroy();
  }, 60_000);

  test("the redirect_uri sent to GitHub is the public URL, not the listen address, and the flow completes", async () => {
    expect(proxied.url).toStartWith("http://127.0.0.1:");
    // Requests reach the listen address (as from the proxy); every URL handed out is public, and
    // the stand-in, registered with the public callback, checks redirect_uri at both steps.
    const via = { base: proxied.url, publicUrl: PUBLIC_URL, standIn: proxiedGithub };
    const { me, cookie } = await signInWithGithub("octocat", via);
    expect(me.email).toBe("octocat@github.example");
    // An https public URL makes Better Auth's cookies __Secure- prefixed and Secure.
    expect(cookie).toMatch(/(^|; )__Secure-better-auth\.session_token=[^;]/);
  }, 30_000);
});
