/**
 * A local stand-in for GitHub's OAuth device flow, because github.com cannot be reached from
 * tests. It speaks the protocol as GitHub documents it
 * (docs.github.com/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps#device-flow):
 *
 * - POST /login/device/code          client_id, scope → device_code, user_code,
 *                                    verification_uri, expires_in, interval
 * - POST /login/oauth/access_token   client_id, device_code, grant_type=…device_code → an
 *                                    access_token, or a 200 with `error`: authorization_pending,
 *                                    slow_down (with the new interval), expired_token,
 *                                    access_denied, incorrect_device_code, …
 *
 * What the user does at github.com/login/device is scripted by the test: approve, deny, expire,
 * or make the next poll answer slow_down. Warren reaches it through GITHUB_API_OVERRIDE_URL.
 */
type Device = {
  userCode: string;
  clientId: string;
  scope: string;
  next: string[];
  token: string | null;
  /** Set for a GitHub App with expiring user tokens: the token answer carries expires_in. */
  expiresIn: number | null;
  interval: number;
  used: boolean;
};

export type DeviceStandIn = {
  url: string;
  clientId: string;
  /** Tokens handed out, so tests can look for them where they must not be. */
  issuedTokens: string[];
  /** Every token-endpoint poll, in order, as the device code it carried. */
  polls: string[];
  /** The user approves; `expiresIn` makes the token expire as a GitHub App's user token does. */
  approve(userCode: string, options?: { expiresIn?: number }): string;
  deny(userCode: string): void;
  expire(userCode: string): void;
  slowDown(userCode: string): void;
  stop(): void;
};

export function startDeviceStandIn(clientId = "Iv1.test-client-id"): DeviceStandIn {
  const devices = new Map<string, Device>();
  const byUserCode = new Map<string, string>();
  const issuedTokens: string[] = [];
  const polls: string[] = [];
  let n = 0;

  async function params(req: Request): Promise<URLSearchParams> {
    const type = req.headers.get("content-type") ?? "";
    if (type.includes("application/json")) return new URLSearchParams((await req.json()) as Record<string, string>);
    return new URLSearchParams(await req.text());
  }

  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const url = new URL(req.url);
      if (req.method === "POST" && url.pathname === "/login/device/code") {
        const p = await params(req);
        if (p.get("client_id") !== clientId) return Response.json({ error: "Not Found" }, { status: 404 });
        const deviceCode = `dc_${crypto.randomUUID().replace(/-/g, "")}`;
        const userCode = `${String(1000 + ++n)}-ABCD`;
        devices.set(deviceCode, { userCode, clientId, scope: p.get("scope") ?? "", next: [], token: null, expiresIn: null, interval: 5, used: false });
        byUserCode.set(userCode, deviceCode);
        return Response.json({ device_code: deviceCode, user_code: userCode, verification_uri: "https://github.com/login/device", expires_in: 899, interval: 5 });
      }
      if (req.method === "POST" && url.pathname === "/login/oauth/access_token") {
        const p = await params(req);
        if (p.get("grant_type") !== "urn:ietf:params:oauth:grant-type:device_code") return Response.json({ error: "unsupported_grant_type" });
        if (p.get("client_id") !== clientId) return Response.json({ error: "incorrect_client_credentials" });
        const code = p.get("device_code") ?? "";
        polls.push(code);
        const device = devices.get(code);
        if (!device || device.used) return Response.json({ error: "incorrect_device_code" });
        const step = device.next.shift();
        if (step === "slow_down") {
          device.interval += 5;
          return Response.json({ error: "slow_down", error_description: "Too many requests", interval: device.interval });
        }
        if (step === "expired_token" || step === "access_denied") return Response.json({ error: step });
        if (device.token) {
          device.used = true;
          return Response.json({
            access_token: device.token,
            token_type: "bearer",
            scope: device.scope,
            ...(device.expiresIn === null ? {} : { expires_in: device.expiresIn }),
          });
        }
        return Response.json({ error: "authorization_pending" });
      }
      return Response.json({ message: "Not Found" }, { status: 404 });
    },
  });

  const device = (userCode: string) => {
    const d = devices.get(byUserCode.get(userCode) ?? "");
    if (!d) throw new Error(`stand-in: no device with user code ${userCode}`);
    return d;
  };
  return {
    url: `http://127.0.0.1:${server.port}`,
    clientId,
    issuedTokens,
    polls,
    approve(userCode, options = {}) {
      const token = `${options.expiresIn ? "ghu" : "gho"}_${crypto.randomUUID().replace(/-/g, "")}`;
      device(userCode).token = token;
      device(userCode).expiresIn = options.expiresIn ?? null;
      issuedTokens.push(token);
      return token;
    },
    deny: (userCode) => void device(userCode).next.push("access_denied"),
    expire: (userCode) => void device(userCode).next.push("expired_token"),
    slowDown: (userCode) => void device(userCode).next.push("slow_down"),
    stop: () => void server.stop(true),
  };
}
