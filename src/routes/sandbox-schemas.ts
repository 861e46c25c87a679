import { z } from "@hono/zod-openapi";
import { displayName } from "../lib/text";

const RESERVED_ENV = /^(HOME|PATH|USER|SHELL|PWD|XDG_[A-Z_]+|OPENCODE_[A-Z_]+|LD_[A-Z_]+|WARREN_[A-Z_]+)$/;

export const SandboxStatus = z.enum(["creating", "starting", "running", "stopping", "stopped", "error", "deleting"]);

const name = displayName(100);
const idleTimeoutMinutes = z.number().int().min(0).max(1440).openapi({ description: "0 never stops it for idleness" });

export const CreateSandbox = z
  .object({
    name,
    description: z.string().max(2000).optional(),
    resourceTierId: z.string().min(1).max(64).optional(),
    flavorId: z.string().min(1).max(64).optional(),
    addonIds: z.array(z.string().min(1).max(64)).max(20).optional(),
    repositoryUrl: z
      .url({ protocol: /^https$/, error: "must be an https URL" })
      .max(2048)
      // zod runs refinements even after the url check failed: an unparseable value must not
      // throw here (that was a 500; found by the OpenAPI fuzzer, issue 11).
      .refine((u) => {
        const url = URL.parse(u);
        return !url || (!url.username && !url.password);
      }, { error: "must not contain credentials; use the credential vault" })
      .optional(),
    env: z
      .record(
        z
          .string()
          .regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, { error: "names are letters, digits and underscores, not starting with a digit" })
          .refine((k) => !RESERVED_ENV.test(k), { error: "is reserved by Warren" }),
        z.string().max(8192),
      )
      .refine((e) => Object.keys(e).length <= 50, { error: "at most 50 variables" })
      .optional(),
    idleTimeoutMinutes: idleTimeoutMinutes.optional(),
    autoStart: z.boolean().optional(),
  })
  .strict()
  .openapi("CreateSandbox");

export const UpdateSandbox = z
  .object({
    name: name.optional(),
    description: z.string().max(2000).optional(),
    resourceTierId: z.string().min(1).max(64).optional(),
    flavorId: z.string().min(1).max(64).optional(),
    addonIds: z.array(z.string().min(1).max(64)).max(20).optional(),
    idleTimeoutMinutes: idleTimeoutMinutes.optional(),
  })
  .strict()
  .openapi("UpdateSandbox");

const AppliedLimits = z
  .object({
    cpuCores: z.number().nullable(),
    memoryMb: z.number().nullable(),
    pidsLimit: z.number().nullable(),
    openFiles: z.number().nullable(),
    storageGb: z.number().nullable(),
    notes: z.array(z.string()),
  })
  .openapi("AppliedLimits");

const time = z.string().datetime().nullable();

export const Sandbox = z
  .object({
    id: z.string().openapi({ example: "sbx_01jd3k7x9q8m2v5n4b6c1t0rzy" }),
    name: z.string(),
    slug: z.string(),
    description: z.string(),
    repositoryUrl: z.string().nullable(),
    resourceTierId: z.string(),
    flavorId: z.string(),
    addonIds: z.array(z.string()),
    addons: z
      .array(
        z.object({
          id: z.string(),
          kind: z.enum(["service", "tools"]).openapi({ description: "service: runs a server reached through endpoint; tools: command-line tools only" }),
          endpoint: z.string().nullable().openapi({ description: "Warren's authenticated proxy to the add-on's service (null for tools)", example: "/api/v1/sandboxes/sbx_01jd3k7x9q8m2v5n4b6c1t0rzy/addons/code-server/" }),
          status: z.enum(["starting", "running", "unhealthy", "stopped"]).openapi({
            description:
              "stopped: the sandbox is not running. For a service, while the sandbox runs: starting (not yet seen answering since the sandbox started), running (answers its health check), unhealthy (its last checks failed; see message). Warren checks each service every SANDBOX_ADDON_HEALTH_INTERVAL_SECONDS (default 15 s) and calls it unhealthy after 2 failed checks in a row. A tools add-on is running whenever the sandbox is.",
          }),
          healthCheckedAt: z.string().datetime().nullable().openapi({
            description: "When a health check recorded the service's current status and message (a check with the same result is not recorded again); null for tools, a stopped sandbox, or a service not checked yet",
          }),
          message: z.string().nullable().openapi({
            description: "Why the service is unhealthy, e.g. \"did not answer GET /healthz within 2 s\" or \"GET /healthz answered HTTP 503\"; null otherwise",
          }),
        }),
      )
      .openapi({ description: "The sandbox's add-ons and where to reach their services" }),
    envNames: z.array(z.string()).openapi({ description: "Names only: values may be secrets and are never echoed" }),
    idleTimeoutMinutes: z.number().int(),
    autoStart: z.boolean(),
    status: SandboxStatus,
    desiredStatus: z.enum(["running", "stopped", "deleted"]),
    statusReason: z.string().nullable(),
    errorMessage: z.string().nullable(),
    image: z.string().nullable(),
    limits: AppliedLimits.nullable().openapi({ description: "The limits actually applied to the running workload" }),
    agentEndpoint: z.string().openapi({ description: "Warren's authenticated proxy to the sandbox's OpenCode server" }),
    lastActivityAt: time,
    expiresAt: time.openapi({ description: "When the idle timeout will stop it" }),
    startedAt: time,
    stoppedAt: time,
    createdAt: z.string().datetime(),
    updatedAt: z.string().datetime(),
  })
  .openapi("Sandbox");

export const IdParam = z.object({
  id: z.string().min(1).max(64).openapi({ param: { name: "id", in: "path" } }),
});

export const ListQuery = z.object({
  status: SandboxStatus.optional().openapi({ param: { name: "status", in: "query" } }),
  q: z.string().max(100).optional().openapi({ param: { name: "q", in: "query" }, description: "Part of the name" }),
});

export const WaitQuery = z.object({
  status: SandboxStatus.openapi({ param: { name: "status", in: "query" } }),
  timeoutSeconds: z.coerce.number().int().min(1).max(120).default(30).openapi({ param: { name: "timeoutSeconds", in: "query" } }),
});

export const LogsQuery = z.object({
  tail: z.coerce.number().int().min(1).max(5000).default(200).openapi({ param: { name: "tail", in: "query" } }),
  since: z
    .string()
    .datetime()
    .optional()
    .openapi({ param: { name: "since", in: "query" }, description: "ISO 8601 time" }),
});
