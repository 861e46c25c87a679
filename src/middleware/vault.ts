import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../context";
import type { Keyring } from "../crypto/keyring";
import type { DeviceFlowClients } from "../services/credentials/github-device";
import type { SandboxCredentialsHook } from "../services/credentials/types";
import { createVault } from "../services/credentials/vault";
import { lazyObject } from "../lib/lazy";

/**
 * Runs after requireUser: binds the caller's credential vault to c.var.vault. Routes never see
 * credential rows, only this vault, and it can only reach the rows of the user it was built for.
 * Built on first use: most requests never touch credentials.
 */
export function bindVault(deps: { keyring: Keyring; sandboxes: SandboxCredentialsHook; deviceFlows: DeviceFlowClients }): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const ctx = c.get("scope");
    c.set("vault", lazyObject(() => createVault({ ctx, ...deps })));
    await next();
  };
}
