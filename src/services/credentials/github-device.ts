import { overriddenGithubUrl } from "../../auth/github-api-override";

/**
 * GitHub's OAuth device flow as GitHub documents it
 * (docs.github.com/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps#device-flow):
 * POST /login/device/code, then POST /login/oauth/access_token until a token or an error.
 * Errors come back as 200s with an `error` field. No tables here: the vault stores the results.
 */
export type DeviceFlowClient = {
  clientId: string;
  scope: string;
  deviceCodeUrl: string;
  tokenUrl: string;
};

/** Provider id → its device-flow client; fetch is injectable and honours the test override. */
export type DeviceFlowClients = { clients: Record<string, DeviceFlowClient>; fetch: typeof fetch; timeoutMs: number };

export function githubDeviceFlowClients(options: {
  copilotClientId: string;
  /** Tests only: GITHUB_API_OVERRIDE_URL, the same stand-in the sign-in flow uses. */
  githubApiOverrideUrl?: string | undefined;
  fetch?: typeof fetch;
}): DeviceFlowClients {
  const base = options.fetch ?? fetch;
  const override = options.githubApiOverrideUrl;
  const routed = ((input: RequestInfo | URL, init?: RequestInit) => {
    const url = String(input instanceof Request ? input.url : input);
    return base((override && overriddenGithubUrl(url, override)) || url, init);
  }) as typeof fetch;
  return {
    fetch: routed,
    timeoutMs: 10_000,
    clients: {
      "github-copilot": {
        clientId: options.copilotClientId,
        scope: "read:user",
        deviceCodeUrl: "https://github.com/login/device/code",
        tokenUrl: "https://github.com/login/oauth/access_token",
      },
    },
  };
}

export class UpstreamError extends Error {
  override name = "UpstreamError";
}

async function post(clients: DeviceFlowClients, url: string, params: Record<string, string>): Promise<Record<string, unknown>> {
  let res: Response;
  try {
    res = await clients.fetch(url, {
      method: "POST",
      headers: { accept: "application/json", "content-type": "application/x-www-form-urlencoded", "user-agent": "warren" },
      body: new URLSearchParams(params).toString(),
      signal: AbortSignal.timeout(clients.timeoutMs),
    });
  } catch (err) {
    throw new UpstreamError(`device flow endpoint unreachable: ${(err as Error).name}`);
  }
  const body = (await res.json().catch(() => null)) as unknown;
  if (!body || typeof body !== "object" || Array.isArray(body)) throw new UpstreamError(`device flow endpoint answered ${res.status} without JSON`);
  return body as Record<string, unknown>;
}

export type DeviceCode = { deviceCode: string; userCode: string; verificationUri: string; expiresIn: number; interval: number };

export async function requestDeviceCode(clients: DeviceFlowClients, client: DeviceFlowClient): Promise<DeviceCode> {
  const body = await post(clients, client.deviceCodeUrl, { client_id: client.clientId, scope: client.scope });
  const { device_code, user_code, verification_uri, expires_in, interval } = body;
  if (typeof device_code !== "string" || typeof user_code !== "string" || typeof verification_uri !== "string") {
    throw new UpstreamError(`device code request refused: ${typeof body.error === "string" ? body.error : "unexpected answer"}`);
  }
  return {
    deviceCode: device_code,
    userCode: user_code,
    verificationUri: verification_uri,
    expiresIn: typeof expires_in === "number" && expires_in > 0 ? expires_in : 900,
    interval: typeof interval === "number" && interval > 0 ? interval : 5,
  };
}

export type PollOutcome =
  | { kind: "token"; accessToken: string; scopes: string[]; /** Seconds, when the token expires (GitHub Apps with expiring tokens). */ expiresIn: number | null }
  | { kind: "pending" }
  | { kind: "slow_down"; interval: number | null }
  | { kind: "expired" }
  | { kind: "denied" }
  | { kind: "error"; error: string };

export async function pollToken(clients: DeviceFlowClients, client: DeviceFlowClient, deviceCode: string): Promise<PollOutcome> {
  const body = await post(clients, client.tokenUrl, {
    client_id: client.clientId,
    device_code: deviceCode,
    grant_type: "urn:ietf:params:oauth:grant-type:device_code",
  });
  if (typeof body.access_token === "string" && body.access_token) {
    const scopes = typeof body.scope === "string" ? body.scope.split(/[ ,]+/).filter(Boolean) : [];
    const expiresIn = typeof body.expires_in === "number" && Number.isFinite(body.expires_in) && body.expires_in > 0 ? body.expires_in : null;
    return { kind: "token", accessToken: body.access_token, scopes, expiresIn };
  }
  switch (body.error) {
    case "authorization_pending":
      return { kind: "pending" };
    case "slow_down":
      return { kind: "slow_down", interval: typeof body.interval === "number" ? body.interval : null };
    case "expired_token":
      return { kind: "expired" };
    case "access_denied":
      return { kind: "denied" };
    default:
      return { kind: "error", error: typeof body.error === "string" ? body.error.slice(0, 100) : "unexpected answer" };
  }
}
