import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import type { Page } from "playwright-core";
import {
  buildBrowserApp,
  openBrowserProfile,
  serveBrowserApp,
  type BrowserProfile,
  type StaticSite,
} from "../helpers/browser-app/serve";
import { startGithubStandIn, type GithubStandIn } from "../helpers/github-standin";
import { createServerStorage, freePort, startServer, type RunningServer, type ServerStorage } from "../helpers/server";

// A real browser (Debian's headless Chromium) loads a page from one loopback origin and signs in
// to the real Warren process on another, with better-auth/client and credentials: "include".
// localhost:A → localhost:B is cross-origin but same-site; 127.0.0.1:A → localhost:B is
// cross-site, where a cookie comes back only if it is SameSite=None (AUTH_COOKIE_SAME_SITE=none)
// AND the browser allows third-party cookies; the bearer token works either way.

type Warren = { server: RunningServer; storage: ServerStorage; api: string };

let site: StaticSite;
let untrustedSite: StaticSite;
let lax: Warren;
let none: Warren;
let withGithub: Warren;
let github: GithubStandIn;
const profiles: BrowserProfile[] = [];

async function startWarren(trusted: string[], env: Record<string, string> = {}, port = freePort()): Promise<Warren> {
  const storage = await createServerStorage();
  const api = `http://localhost:${port}`;
  const server = await startServer({ storage, port, env: { PUBLIC_URL: api, TRUSTED_ORIGINS: trusted.join(","), ...env } });
  return { server, storage, api };
}

beforeAll(async () => {
  const script = await buildBrowserApp();
  site = serveBrowserApp(script);
  untrustedSite = serveBrowserApp(script);
  const pageOrigins = [`http://localhost:${site.port}`, `http://127.0.0.1:${site.port}`];
  const githubPort = freePort();
  const client = { clientId: "Iv1.browser0000000000", clientSecret: "browser-standin-secret-0123456789" };
  github = startGithubStandIn({ ...client, callbackUrl: `http://localhost:${githubPort}/api/auth/callback/github` }, [
    {
      id: 1,
      login: "octocat",
      name: "The Octocat",
      email: null,
      emails: [{ email: "octo@cat.example", primary: true, verified: true, visibility: "private" }],
    },
  ]);
  [lax, none, withGithub] = await Promise.all([
    startWarren(pageOrigins),
    startWarren(pageOrigins, { AUTH_COOKIE_SAME_SITE: "none" }),
    // GITHUB_API_OVERRIDE_URL is refused in production, hence NODE_ENV=test for this one.
    startWarren(
      pageOrigins,
      {
        NODE_ENV: "test",
        GITHUB_CLIENT_ID: client.clientId,
        GITHUB_CLIENT_SECRET: client.clientSecret,
        GITHUB_API_OVERRIDE_URL: github.url,
      },
      githubPort,
    ),
  ]);
}, 120_000);

// One Chromium per page keeps cookie jars apart; close them as each test ends.
afterEach(async () => {
  for (const profile of profiles.splice(0)) await profile.close();
});

afterAll(async () => {
  site?.stop();
  untrustedSite?.stop();
  github?.stop();
  for (const w of [lax, none, withGithub]) {
    await w?.server.stop();
    await w?.storage.destroy();
  }
}, 60_000);

/** A fresh browser (its own profile and cookie jar) with the page open, pointed at Warren. */
async function openPage(pageOrigin: string, warren: Warren, thirdPartyCookies: "allowed" | "blocked" = "blocked"): Promise<Page> {
  const profile = await openBrowserProfile(thirdPartyCookies);
  profiles.push(profile);
  const page = await profile.context.newPage();
  await page.goto(`${pageOrigin}/?api=${encodeURIComponent(warren.api)}`);
  await page.waitForSelector("body[data-ready=true]");
  return page;
}

async function fill(page: Page, email: string, password = "a long enough password") {
  await page.fill("#email", email);
  await page.fill("#password", password);
}

/** Clicks a button the way a person would and reads what the page then shows. */
async function press(page: Page, button: string, output: string): Promise<any> {
  await page.click(`#${button}`);
  await page.waitForSelector(`#${output}:not(:empty)`, { timeout: 10_000 });
  return JSON.parse((await page.textContent(`#${output}`))!);
}

let counter = 0;
const newEmail = () => `browser.${++counter}.${Date.now()}@example.com`;

async function sessionCookieIn(page: Page, warren: Warren) {
  const cookies = await page.context().cookies(warren.api);
  return cookies.find((c) => c.name.endsWith("better-auth.session_token"));
}

describe("a browser app on another origin", () => {
  test("same-site (localhost:A → localhost:B): sign up, sign in, then /me with the session cookie", async () => {
    const page = await openPage(`http://localhost:${site.port}`, lax);
    const email = newEmail();
    await fill(page, email);
    expect(await press(page, "sign-up", "sign-up-result")).toMatchObject({ user: { email }, error: null });
    expect(await press(page, "sign-in", "sign-in-result")).toMatchObject({ user: { email }, error: null });
    expect(await press(page, "load-me", "me-result")).toMatchObject({ status: 200, body: { email, name: "Browser User" } });
    // What the browser kept: the default cookie, out of reach of page scripts.
    expect(await sessionCookieIn(page, lax)).toMatchObject({ sameSite: "Lax", httpOnly: true, secure: false });
  }, 30_000);

  test("cross-site (127.0.0.1:A → localhost:B) with the default SameSite=Lax: signed in, yet the browser drops the cookie", async () => {
    // Even a browser that allows third-party cookies: SameSite=Lax alone keeps this one out.
    const page = await openPage(`http://127.0.0.1:${site.port}`, lax, "allowed");
    const email = newEmail();
    await fill(page, email);
    // CORS lets the page read the answers (its origin is trusted) ...
    expect(await press(page, "sign-up", "sign-up-result")).toMatchObject({ user: { email }, error: null });
    // ... but a Lax cookie from a cross-site fetch is never stored, so the API sees no session.
    expect(await sessionCookieIn(page, lax)).toBeUndefined();
    expect(await press(page, "load-me", "me-result")).toMatchObject({ status: 401, body: { error: { code: "UNAUTHENTICATED" } } });
  }, 30_000);

  test("cross-site with AUTH_COOKIE_SAME_SITE=none, third-party cookies allowed: SameSite=None; Secure, /me works", async () => {
    const page = await openPage(`http://127.0.0.1:${site.port}`, none, "allowed");
    const email = newEmail();
    await fill(page, email);
    expect(await press(page, "sign-up", "sign-up-result")).toMatchObject({ user: { email }, error: null });
    expect(await press(page, "sign-in", "sign-in-result")).toMatchObject({ user: { email }, error: null });
    expect(await press(page, "load-me", "me-result")).toMatchObject({ status: 200, body: { email } });
    expect(await sessionCookieIn(page, none)).toMatchObject({ sameSite: "None", secure: true, httpOnly: true });
  }, 30_000);

  test("cross-site, third-party cookies blocked: no cookie even with SameSite=None, but the bearer token works", async () => {
    const page = await openPage(`http://127.0.0.1:${site.port}`, none, "blocked");
    const email = newEmail();
    await fill(page, email);
    expect(await press(page, "sign-up", "sign-up-result")).toMatchObject({ user: { email }, error: null });
    expect(await sessionCookieIn(page, none)).toBeUndefined();
    expect(await press(page, "load-me", "me-result")).toMatchObject({ status: 401 });
    // set-auth-token is an exposed CORS header, so the page can read it and send it itself.
    expect(await press(page, "load-me-bearer", "me-bearer-result")).toMatchObject({ status: 200, body: { email } });
    // And better-auth/client's own calls carry it too (fetchOptions.auth, as docs/frontend.md shows).
    expect(await press(page, "session-bearer", "session-bearer-result")).toMatchObject({ email, error: null });
  }, 30_000);
});

type LogLine = { method?: string; path?: string; status?: number; component?: string; msg?: string };

/**
 * Warren's log lines from `from` on, once `until` holds for them (the request line is written
 * after the answer, so it may trail what the page shows). Fails after 10 s.
 */
async function logLinesSince(warren: Warren, from: number, until: (lines: LogLine[]) => boolean): Promise<LogLine[]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const lines = warren.server.output
      .slice(from)
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as LogLine);
    if (until(lines)) return lines;
    if (Date.now() > deadline) throw new Error(`expected log lines did not appear:\n${JSON.stringify(lines, null, 1)}`);
    await Bun.sleep(50);
  }
}

const signInRequests = (lines: LogLine[]) =>
  lines.filter((l) => l.path === "/api/auth/sign-in/email").map((l) => ({ method: l.method, status: l.status }));

describe("a page on an origin that is not in TRUSTED_ORIGINS", () => {
  test("the browser blocks Warren's answers, and Better Auth refuses the sign-in as an untrusted origin", async () => {
    const email = newEmail();
    const password = "a long enough password";
    const trusted = `http://localhost:${site.port}`;
    const signUp = await fetch(`${lax.api}/api/auth/sign-up/email`, {
      method: "POST",
      headers: { "content-type": "application/json", origin: trusted },
      body: JSON.stringify({ email, password, name: "Target" }),
    });
    expect(signUp.status).toBe(200);

    const untrusted = `http://localhost:${untrustedSite.port}`;
    const page = await openPage(untrusted, lax);
    await fill(page, email, password);

    // 1. better-auth/client's sign-in (a JSON body) needs a preflight. Its answer has no
    //    Access-Control-Allow-Origin, so the browser blocks it and never sends the credentials:
    //    the page gets a TypeError, and the only request Warren saw is the OPTIONS.
    let logFrom = lax.server.output.length;
    expect((await press(page, "sign-in", "sign-in-result")).networkError).toContain("TypeError");
    const preflightOnly = await logLinesSince(lax, logFrom, (lines) => signInRequests(lines).length > 0);
    expect(signInRequests(preflightOnly)).toEqual([{ method: "OPTIONS", status: 204 }]);

    // 2. The same sign-in as a form-encoded fetch needs no preflight: the browser does send it, with
    //    credentials. Better Auth refuses it as an untrusted origin (403, and its log names the
    //    origin); the answer has no Access-Control-Allow-Origin, so the browser blocks the response
    //    and the page sees a TypeError, never the status or the body.
    logFrom = lax.server.output.length;
    expect((await press(page, "sign-in-simple", "sign-in-simple-result")).networkError).toContain("TypeError");
    const refused = await logLinesSince(lax, logFrom, (lines) => signInRequests(lines).length > 0);
    expect(signInRequests(refused)).toEqual([{ method: "POST", status: 403 }]);
    expect(refused).toContainEqual(expect.objectContaining({ component: "better-auth", msg: `Invalid origin: ${untrusted}` }));
    expect(await sessionCookieIn(page, lax)).toBeUndefined();

    const preflight = (origin: string) =>
      fetch(`${lax.api}/api/auth/sign-in/email`, {
        method: "OPTIONS",
        headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type" },
      });
    expect((await preflight(untrusted)).headers.get("access-control-allow-origin")).toBeNull();
    const allowed = await preflight(trusted);
    expect(allowed.headers.get("access-control-allow-origin")).toBe(trusted);
    expect(allowed.headers.get("access-control-allow-credentials")).toBe("true");

    // 3. A plain form POST is a navigation, whose answer the browser does show: Better Auth's
    //    refusal, 403 INVALID_ORIGIN, and still no session.
    const [navigation] = await Promise.all([page.waitForNavigation(), page.click("#classic-submit")]);
    expect(navigation?.status()).toBe(403);
    expect(await navigation?.json()).toMatchObject({ code: "INVALID_ORIGIN" });
    expect(await sessionCookieIn(page, lax)).toBeUndefined();

    // 4. The same credentials from a trusted origin sign in both ways: the origin was the only
    //    thing wrong.
    const good = await openPage(trusted, lax);
    await fill(good, email, password);
    expect(await press(good, "sign-in-simple", "sign-in-simple-result")).toMatchObject({ status: 200, body: { user: { email } } });
    expect(await press(good, "sign-in", "sign-in-result")).toMatchObject({ user: { email }, error: null });
    expect(await press(good, "load-me", "me-result")).toMatchObject({ status: 200, body: { email } });
  }, 30_000);
});

describe("GitHub sign-in from the browser app (same site)", () => {
  test("the window goes to GitHub and comes back to the app signed in; /me shows the GitHub user", async () => {
    const app = `http://localhost:${site.port}`;
    const page = await openPage(app, withGithub);
    // github.com is out of reach: the browser's requests to it go to the stand-in, where the
    // user is already signed in to "GitHub".
    await page.context().addCookies([{ name: "user_session", value: "octocat", url: github.url }]);
    await page.route("https://github.com/**", (route) => {
      const url = new URL(route.request().url());
      return route.fulfill({ status: 302, headers: { location: `${github.url}${url.pathname}${url.search}` } });
    });
    await page.click("#github");
    await page.waitForURL((url) => url.origin === app && url.searchParams.get("from") === "github", { timeout: 10_000 });
    await page.waitForSelector("body[data-ready=true]");
    expect(await press(page, "load-me", "me-result")).toMatchObject({
      status: 200,
      body: { name: "The Octocat", email: "octo@cat.example", emailVerified: true },
    });
    expect(github.requests).toContain("POST /login/oauth/access_token");
  }, 30_000);
});
