import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext } from "playwright-core";

/** Debian's chromium (CI: `apt-get install -y chromium`); playwright-core downloads no browser. */
export const CHROMIUM = "/usr/bin/chromium";

const PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Warren frontend</title></head>
<body>
  <input id="name" value="Browser User"> <input id="email"> <input id="password" type="password">
  <button id="sign-up">Sign up</button> <button id="sign-in">Sign in</button>
  <button id="sign-in-simple">Sign in with a form-encoded fetch</button>
  <button id="github">Sign in with GitHub</button>
  <button id="load-me">Load my profile</button> <button id="load-me-bearer">Load it with the bearer token</button>
  <button id="session-bearer">Better Auth session by bearer token</button>
  <pre id="sign-up-result"></pre> <pre id="sign-in-result"></pre> <pre id="sign-in-simple-result"></pre>
  <pre id="github-result"></pre>
  <pre id="me-result"></pre> <pre id="me-bearer-result"></pre> <pre id="session-bearer-result"></pre>
  <form id="classic-sign-in" method="post">
    <input type="hidden" name="email"> <input type="hidden" name="password">
    <button id="classic-submit">Sign in without JavaScript</button>
  </form>
  <script type="module" src="/app.js"></script>
</body>
</html>`;

/** better-auth/client and the page script, bundled for the browser once per test file. */
export async function buildBrowserApp(): Promise<string> {
  const result = await Bun.build({ entrypoints: [join(import.meta.dir, "main.ts")], target: "browser", format: "esm" });
  if (!result.success || !result.outputs[0]) throw new Error(`bundling the browser app failed: ${result.logs.join("\n")}`);
  return await result.outputs[0].text();
}

export type StaticSite = { port: number; stop(): void };

/** Serves the page on a loopback port; which origin it has depends on the host the browser uses. */
export function serveBrowserApp(script: string): StaticSite {
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const { pathname } = new URL(req.url);
      if (pathname === "/") return new Response(PAGE, { headers: { "content-type": "text/html; charset=utf-8" } });
      if (pathname === "/app.js") return new Response(script, { headers: { "content-type": "text/javascript" } });
      return new Response("not found", { status: 404 });
    },
  });
  return { port: server.port!, stop: () => void server.stop(true) };
}

const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export type BrowserProfile = { context: BrowserContext; close(): Promise<void> };

/**
 * A fresh Chromium with a profile (and cookie jar) of its own. Whether third-party cookies are
 * allowed is set explicitly, because it decides whether a cross-site cookie session can work at
 * all: Chromium 156 here blocks them by default (as do Safari, Firefox's strict mode and private
 * windows), and then even a SameSite=None; Secure cookie is dropped.
 */
export async function openBrowserProfile(thirdPartyCookies: "allowed" | "blocked"): Promise<BrowserProfile> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
  const dir = mkdtempSync(join(tmpdir(), "warren-chromium-"));
  mkdirSync(join(dir, "Default"));
  // Chromium's CookieControlsMode: 0 allows third-party cookies, 1 blocks them.
  const preferences = { profile: { cookie_controls_mode: thirdPartyCookies === "allowed" ? 0 : 1 } };
  writeFileSync(join(dir, "Default", "Preferences"), JSON.stringify(preferences));
  const context = await chromium.launchPersistentContext(dir, { executablePath: CHROMIUM, headless: true, args: ARGS });
  return {
    context,
    async close() {
      await context.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
