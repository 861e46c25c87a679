import { eq } from "drizzle-orm";
import { sandboxes } from "../../../db/schema";
import { agentAuthHeader } from "../../orchestrator/opencode";
import type { SandboxRuntime } from "../sandboxes/runtime";
import { agentPassword } from "../sandboxes/worker";

/**
 * How Warren reaches a sandbox's OpenCode server: the same endpoint and per-sandbox password the
 * agent proxy uses (driver.inspect + the sealed agent secret), never a second copy of either.
 */
export type AgentTarget = { sandboxId: string; userId: string; url: string; authorization: string };

export class AgentUnavailableError extends Error {
  override name = "AgentUnavailableError";
}

export async function agentTarget(rt: Pick<SandboxRuntime, "db" | "driver" | "keyring">, sandboxId: string): Promise<AgentTarget> {
  const [row] = await rt.db.select().from(sandboxes).where(eq(sandboxes.id, sandboxId));
  if (!row) throw new AgentUnavailableError("the sandbox no longer exists");
  if (row.status !== "running") throw new AgentUnavailableError(`the sandbox is ${row.status}`);
  const info = await rt.driver.inspect(row.id);
  const password = agentPassword(rt as SandboxRuntime, row);
  if (info.state !== "running" || !info.agentUrl || !password) throw new AgentUnavailableError("the sandbox's agent is not running");
  return { sandboxId: row.id, userId: row.userId, url: info.agentUrl, authorization: agentAuthHeader(password) };
}

function agentFetch(target: AgentTarget, path: string, signal?: AbortSignal): Promise<Response> {
  return fetch(new URL(path, target.url), {
    headers: { authorization: target.authorization, accept: "application/json" },
    signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(30_000)]) : AbortSignal.timeout(30_000),
  });
}

const unavailable = (res: Response, path: string) => new AgentUnavailableError(`the agent answered ${res.status} to GET ${path.split("?")[0]}`);

/** GET a JSON document from the agent's API. */
export async function agentGet<T>(target: AgentTarget, path: string, signal?: AbortSignal): Promise<T> {
  const res = await agentFetch(target, path, signal);
  if (!res.ok) {
    await res.arrayBuffer().catch(() => undefined);
    throw unavailable(res, path);
  }
  return (await res.json()) as T;
}

/**
 * GET a JSON document, or null when the agent says it does not exist: 404 with OpenCode's own
 * NotFoundError body, nothing less (a 404 from anything else on the way is an error, not absence).
 */
export async function agentGetIfFound<T>(target: AgentTarget, path: string, signal?: AbortSignal): Promise<T | null> {
  const res = await agentFetch(target, path, signal);
  if (!res.ok) {
    const body = (await res.json().catch(() => null)) as { name?: unknown } | null;
    if (res.status === 404 && body?.name === "NotFoundError") return null;
    throw unavailable(res, path);
  }
  return (await res.json()) as T;
}
