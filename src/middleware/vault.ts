import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../context";
import type { Keyring } from "../crypto/keyring";
import type { DeviceFlowClients } from "../services/credentials/github-device";
import type { SandboxCredentialsHook } from "../services/credentials/types";
import { createVault } from "../services/credentials/vault";

/**
 * Runs after requireUser: binds the caller's credential vault to c.var.vault. Routes never see
 * credential rows, only this vault, and it can only reach the rows of the user it was built for.
 */
export function bindVault(deps: { keyring: Keyring; sandboxes: SandboxCredentialsHook; deviceFlows: DeviceFlowClients }): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    c.set("vault", createVault({ ctx: c.get("scope"), ...deps }));
    await next();
  };
}
