/**
 * TESTS ONLY. Better Auth's GitHub provider hard-codes https://github.com/login/oauth/* and
 * https://api.github.com/*, and makes its token exchange and user-info calls through the global
 * fetch. To run the whole OAuth web flow offline, this wraps globalThis.fetch so that requests
 * for exactly those two hosts go to a local stand-in that speaks GitHub's protocol, path and
 * query kept. Every other request is untouched.
 *
 * Installed from src/index.ts only when GITHUB_API_OVERRIDE_URL is set, which config refuses
 * when NODE_ENV=production: in production this redirect would hand every GitHub user's code and
 * token to whoever runs the override.
 */

const GITHUB_HOSTS = new Set(["github.com", "api.github.com"]);

/** The URL a request for github.com or api.github.com goes to instead; null for any other URL. */
export function overriddenGithubUrl(url: string, overrideBase: string): string | null {
  const target = URL.parse(url);
  if (!target || target.protocol !== "https:" || !GITHUB_HOSTS.has(target.hostname)) return null;
  const base = new URL(overrideBase);
  const basePath = base.pathname.replace(/\/$/, "");
  return `${base.origin}${basePath}${target.pathname}${target.search}`;
}

/** Wraps globalThis.fetch for the rest of the process (call it once, at start-up). */
export function installGithubApiOverride(overrideBase: string): void {
  const original = globalThis.fetch;
  const wrapped = (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const url = input instanceof Request ? input.url : String(input);
    const redirected = overriddenGithubUrl(url, overrideBase);
    if (!redirected) return original(input, init);
    return input instanceof Request ? original(new Request(redirected, input), init) : original(redirected, init);
  };
  globalThis.fetch = Object.assign(wrapped, { preconnect: original.preconnect }) as typeof fetch;
}
