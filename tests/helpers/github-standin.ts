import { createHash, randomBytes } from "node:crypto";

/**
 * A local stand-in for GitHub, because github.com cannot be reached from tests. It speaks the
 * OAuth web-flow protocol of a registered OAuth App as GitHub documents it
 * (docs.github.com/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps), and the two REST
 * endpoints Better Auth reads:
 *
 * - GET  /login/oauth/authorize     the user (signed in at "GitHub" by the user_session cookie)
 *                                   approves; 302 to redirect_uri with ?code&state
 * - POST /login/oauth/access_token  code → token; params in the query, a form or a JSON body;
 *                                   answer as JSON, XML or form by Accept; errors are 200s
 * - GET  /user, GET /user/emails    with `Authorization: Bearer|token <token>` and a User-Agent
 *
 * Warren reaches it through GITHUB_API_OVERRIDE_URL (src/auth/github-api-override.ts).
 */

export type GithubEmail = { email: string; primary: boolean; verified: boolean; visibility: "public" | "private" | null };

export type GithubUser = {
  id: number;
  login: string;
  name: string | null;
  /** The public profile email: null when the user keeps it private (then /user/emails has it). */
  email: string | null;
  emails: GithubEmail[];
};

export type GithubApp = { clientId: string; clientSecret: string; callbackUrl: string };

type Grant = {
  login: string;
  scope: string;
  redirectUri: string;
  codeChallenge: string | null;
  expiresAt: number;
};

export type GithubStandIn = {
  url: string;
  /** Every access token handed out, so tests can look for it where it must not be. */
  issuedTokens: string[];
  /** Method and path of every request received, in order. */
  requests: string[];
  /**
   * The browser's part: opens the authorize URL Warren produced (its query parameters, on this
   * stand-in) as the signed-in GitHub user `login`, and returns where GitHub sends the browser.
   */
  authorize(authorizeUrl: string, login: string): Promise<URL>;
  stop(): void;
};

const DOCS = "https://docs.github.com/rest";

export function startGithubStandIn(app: GithubApp, users: GithubUser[]): GithubStandIn {
  const byLogin = new Map(users.map((u) => [u.login, u]));
  const codes = new Map<string, Grant>();
  const tokens = new Map<string, { login: string; scope: string }>();
  const issuedTokens: string[] = [];
  const requests: string[] = [];
  const registered = new URL(app.callbackUrl);

  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const url = new URL(req.url);
      requests.push(`${req.method} ${url.pathname}`);
      if (req.method === "GET" && url.pathname === "/login/oauth/authorize") return authorizePage(req, url);
      if (req.method === "POST" && url.pathname === "/login/oauth/access_token") return accessToken(req, url);
      if (req.method === "GET" && (url.pathname === "/user" || url.pathname === "/user/emails")) return restApi(req, url);
      return Response.json({ message: "Not Found", documentation_url: DOCS, status: "404" }, { status: 404 });
    },
  });

  function authorizePage(req: Request, url: URL): Response {
    const q = url.searchParams;
    if (q.get("client_id") !== app.clientId) return new Response("Not Found", { status: 404 });
    // GitHub accepts a redirect_uri on the registered callback's host and port, under its path;
    // anything else goes back to the registered callback with an error.
    const redirectUri = q.get("redirect_uri") ?? app.callbackUrl;
    const target = URL.parse(redirectUri);
    if (!target || target.origin !== registered.origin || !target.pathname.startsWith(registered.pathname)) {
      const back = new URL(app.callbackUrl);
      back.searchParams.set("error", "redirect_uri_mismatch");
      back.searchParams.set("error_description", "The redirect_uri MUST match the registered callback URL for this application.");
      if (q.get("state")) back.searchParams.set("state", q.get("state")!);
      return Response.redirect(back.toString(), 302);
    }
    const login = cookie(req, "user_session");
    const user = login ? byLogin.get(login) : undefined;
    if (!user) {
      return Response.redirect(`${server.url.origin}/login?return_to=${encodeURIComponent(url.pathname + url.search)}`, 302);
    }
    if (q.get("code_challenge") && q.get("code_challenge_method") !== "S256") {
      return new Response("code_challenge_method must be S256", { status: 400 });
    }
    const code = randomBytes(10).toString("hex");
    codes.set(code, {
      login: user.login,
      scope: (q.get("scope") ?? "").split(/[ ,]+/).filter(Boolean).join(","),
      redirectUri,
      codeChallenge: q.get("code_challenge"),
      expiresAt: Date.now() + 10 * 60_000,
    });
    target.searchParams.set("code", code);
    if (q.get("state") !== null) target.searchParams.set("state", q.get("state")!);
    return Response.redirect(target.toString(), 302);
  }

  async function accessToken(req: Request, url: URL): Promise<Response> {
    const params = new URLSearchParams(url.search);
    const type = req.headers.get("content-type") ?? "";
    if (type.includes("application/json")) {
      for (const [k, v] of Object.entries((await req.json()) as Record<string, string>)) params.set(k, String(v));
    } else {
      for (const [k, v] of new URLSearchParams(await req.text())) params.set(k, v);
    }
    const accept = req.headers.get("accept") ?? "";
    const reply = (body: Record<string, string>) => tokenResponse(body, accept);

    if (params.get("client_id") !== app.clientId || params.get("client_secret") !== app.clientSecret) {
      return reply({
        error: "incorrect_client_credentials",
        error_description: "The client_id and/or client_secret passed are incorrect.",
        error_uri: `${DOCS}/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#incorrect-client-credentials`,
      });
    }
    const code = params.get("code") ?? "";
    const grant = codes.get(code);
    codes.delete(code); // single use, as at GitHub
    const badCode = {
      error: "bad_verification_code",
      error_description: "The code passed is incorrect or expired.",
      error_uri: `${DOCS}/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code`,
    };
    if (!grant || grant.expiresAt < Date.now()) return reply(badCode);
    if (params.has("redirect_uri") && params.get("redirect_uri") !== grant.redirectUri) {
      return reply({
        error: "redirect_uri_mismatch",
        error_description: "The redirect_uri MUST match the registered callback URL for this application.",
        error_uri: `${DOCS}/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#redirect-uri-mismatch2`,
      });
    }
    if (grant.codeChallenge) {
      const verifier = params.get("code_verifier") ?? "";
      if (createHash("sha256").update(verifier).digest("base64url") !== grant.codeChallenge) return reply(badCode);
    }
    const token = `gho_${randomBytes(18).toString("base64url").replace(/[-_]/g, "A").slice(0, 36)}`;
    tokens.set(token, { login: grant.login, scope: grant.scope });
    issuedTokens.push(token);
    return reply({ access_token: token, token_type: "bearer", scope: grant.scope });
  }

  function restApi(req: Request, url: URL): Response {
    // GitHub refuses API calls without a User-Agent.
    if (!req.headers.get("user-agent")) {
      return new Response("Request forbidden by administrative rules. Please make sure your request has a User-Agent header", {
        status: 403,
      });
    }
    const [scheme, token] = (req.headers.get("authorization") ?? "").split(" ");
    const grant = token && /^(bearer|token)$/i.test(scheme ?? "") ? tokens.get(token) : undefined;
    const user = grant ? byLogin.get(grant.login) : undefined;
    if (!grant || !user) return Response.json({ message: "Bad credentials", documentation_url: DOCS, status: "401" }, { status: 401 });
    const headers = { "x-oauth-scopes": grant.scope.split(",").join(", ") };
    if (url.pathname === "/user") {
      return Response.json(
        {
          login: user.login,
          id: user.id,
          node_id: `U_${Buffer.from(String(user.id)).toString("base64")}`,
          avatar_url: `https://avatars.githubusercontent.com/u/${user.id}?v=4`,
          html_url: `https://github.com/${user.login}`,
          type: "User",
          site_admin: false,
          name: user.name,
          email: user.email,
        },
        { headers },
      );
    }
    // Private emails need the user:email (or user) scope; without it GitHub answers 404.
    if (!grant.scope.split(",").some((s) => s === "user:email" || s === "user")) {
      return Response.json({ message: "Not Found", documentation_url: DOCS, status: "404" }, { status: 404, headers });
    }
    return Response.json(user.emails, { headers });
  }

  return {
    url: server.url.origin,
    issuedTokens,
    requests,
    async authorize(authorizeUrl, login) {
      const onStandIn = new URL(`/login/oauth/authorize${new URL(authorizeUrl).search}`, server.url);
      const res = await fetch(onStandIn, { redirect: "manual", headers: { cookie: `user_session=${login}` } });
      const location = res.headers.get("location");
      if (res.status !== 302 || !location) throw new Error(`authorize answered ${res.status}: ${await res.text()}`);
      return new URL(location);
    },
    stop: () => void server.stop(true),
  };
}

function tokenResponse(body: Record<string, string>, accept: string): Response {
  if (accept.includes("application/json")) return Response.json(body);
  if (accept.includes("xml")) {
    const fields = Object.entries(body)
      .map(([k, v]) => `<${k}>${v.replace(/[<&]/g, (c) => (c === "<" ? "&lt;" : "&amp;"))}</${k}>`)
      .join("");
    return new Response(`<OAuth>${fields}</OAuth>`, { headers: { "content-type": "application/xml; charset=utf-8" } });
  }
  return new Response(new URLSearchParams(body).toString(), {
    headers: { "content-type": "application/x-www-form-urlencoded; charset=utf-8" },
  });
}

function cookie(req: Request, name: string): string | undefined {
  for (const part of (req.headers.get("cookie") ?? "").split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return decodeURIComponent(v.join("="));
  }
  return undefined;
}
