import type { ServiceContext } from "../../context";

/** What the API shows of a credential: never the secret, only its last four characters. */
export type CredentialInfo = {
  providerId: string;
  authType: "api_key" | "oauth" | "device_flow";
  hint: string;
  baseUrl: string | null;
  scopes: string[] | null;
  expiresAt: string | null;
  lastUsedAt: string | null;
  createdAt: string;
  updatedAt: string;
};

/** What the sandbox side did after a credential changed (ids of the user's sandboxes). */
export type SandboxSync = { refreshed: string[]; restartRequired: string[]; error?: string };

/**
 * The seam to the sandbox side: called after a credential change has committed, so that running
 * sandboxes drop or pick up the key. The default does nothing (no sandboxes are running).
 */
export type SandboxCredentialsHook = {
  credentialsChanged(ctx: ServiceContext, providerId: string): Promise<{ refreshed: string[]; restartRequired: string[] }>;
};

export const noSandboxHook: SandboxCredentialsHook = {
  credentialsChanged: async () => ({ refreshed: [], restartRequired: [] }),
};

/** OpenCode's auth.json entry ($XDG_DATA_HOME/opencode/auth.json), keyed by provider id. */
export type OpenCodeAuthEntry =
  | { type: "api"; key: string }
  | { type: "oauth"; refresh: string; access: string; expires: number };

export type OpenCodeProviderConfig = {
  npm?: string;
  name?: string;
  options: { baseURL: string };
  models?: Record<string, { name: string; limit?: { context: number; output: number } }>;
};

/** Everything a sandbox needs to hand the user's credentials to OpenCode. */
export type SandboxCredentials = {
  /** Write as $XDG_DATA_HOME/opencode/auth.json, mode 0600, inside the sandbox only. */
  authJson: Record<string, OpenCodeAuthEntry>;
  /** Merge into the sandbox's opencode.json: custom providers and base URL overrides. */
  config: { provider: Record<string, OpenCodeProviderConfig> };
  /** Credentials that exist but could not be decrypted (tampered, or key missing). */
  unavailable: string[];
};
