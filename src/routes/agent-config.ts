import { createRoute, z } from "@hono/zod-openapi";
import { ETagHeader, etagOf, IfMatchHeaders, parseIfMatch } from "../lib/etag";
import { authSecurity, createRouter, errorResponses } from "../lib/openapi";
import { PageQuery, pageOf } from "../lib/pagination";
import { isStorableJson, UNSTORABLE_JSON_MESSAGE, storableString } from "../lib/text";
import type { SandboxConfigApplier } from "../services/agent-config/apply";
import { getAgentConfig, getAgentFile, LIMITS, listAgentFiles } from "../services/agent-config/document";
import { AGENT_FILE_EXTENSIONS, AGENT_FILE_TYPES, AGENT_NAME } from "../services/agent-config/names";
import { deleteAgentFile, putAgentFile, updateAgentConfig } from "../services/agent-config/write";

const SandboxSyncSchema = z
  .object({
    applied: z.array(z.string()).openapi({ description: "Running sandboxes that received the change and reloaded their agent" }),
    restartRequired: z
      .array(z.string())
      .openapi({ description: "Running sandboxes that will use the change only after a restart" }),
  })
  .openapi("SandboxSync", { description: "Where the change went among the caller's running sandboxes" });

const AgentFileSchema = z
  .object({
    type: z.enum(AGENT_FILE_TYPES),
    name: z.string(),
    extension: z.enum(AGENT_FILE_EXTENSIONS),
    path: z.string().openapi({ description: "Where it lands in a sandbox, relative to HOME", example: ".config/opencode/agents/reviewer.md" }),
    sizeBytes: z.number().int(),
    createdAt: z.string().datetime(),
    updatedAt: z.string().datetime(),
    content: z.string().optional().openapi({ description: "Present for a single file, or with include=content" }),
  })
  .openapi("AgentFile");

const OpencodeConfig = z
  .record(z.string(), z.unknown(), { error: "must be a JSON object" })
  .refine((config) => isStorableJson(config), UNSTORABLE_JSON_MESSAGE)
  .openapi({
  description:
    `Your opencode.json as a JSON object (at most ${LIMITS.configBytes} bytes). It is stored and shown to you as ` +
    "given: keep provider keys in the credential vault rather than here.",
  example: { $schema: "https://opencode.ai/config.json", model: "anthropic/claude-sonnet-4-5" },
});
const AgentsMd = storableString().openapi({ description: `Your global AGENTS.md (at most ${LIMITS.agentsMdBytes} bytes)` });

const AgentConfigSchema = z
  .object({
    config: OpencodeConfig,
    agentsMd: AgentsMd,
    files: z.array(AgentFileSchema).openapi({ description: "Every file, without content unless include=content" }),
    version: z.number().int().openapi({ description: "Increases on every change of any part; 0 until the first write. Also the ETag." }),
    updatedAt: z.string().datetime().nullable(),
  })
  .openapi("AgentConfig");

const AgentConfigWritten = AgentConfigSchema.extend({ sandboxes: SandboxSyncSchema }).openapi("AgentConfigWritten");

const AgentConfigReplace = z.object({ config: OpencodeConfig, agentsMd: AgentsMd }).strict().openapi("AgentConfigReplace");
const AgentConfigPatch = z
  .object({ config: OpencodeConfig.optional(), agentsMd: AgentsMd.optional() })
  .strict()
  .refine((p) => p.config !== undefined || p.agentsMd !== undefined, { error: "name config, agentsMd or both" })
  .openapi("AgentConfigPatch");

const IncludeQuery = z.object({
  include: z
    .enum(["content"])
    .optional()
    .openapi({ param: { name: "include", in: "query" }, description: "content: include every file's content" }),
});

const FileParams = z.object({
  type: z.enum(AGENT_FILE_TYPES).openapi({ param: { name: "type", in: "path" } }),
  name: AGENT_NAME.openapi({
    param: { name: "name", in: "path" },
    description: "1–100 characters, no / or \\, no .., no control characters, no leading dot; without the extension",
    example: "reviewer",
  }),
});

const AgentFilePut = z
  .object({
    content: storableString().openapi({ description: `At most ${LIMITS.fileBytes} bytes` }),
    extension: z
      .enum(AGENT_FILE_EXTENSIONS)
      .optional()
      .openapi({ description: "md for agents and commands; ts (default) or js for tools and plugins" }),
  })
  .strict()
  .openapi("AgentFilePut");

const AgentFileWritten = z
  .object({ file: AgentFileSchema, version: z.number().int(), sandboxes: SandboxSyncSchema })
  .openapi("AgentFileWritten");
const AgentFileDeleted = z.object({ version: z.number().int(), sandboxes: SandboxSyncSchema }).openapi("AgentFileDeleted");

const json = <T extends z.ZodTypeAny>(schema: T, description: string) => ({
  description,
  headers: ETagHeader,
  content: { "application/json": { schema } },
});

export type AgentConfigRouteDeps = { sandboxConfig: SandboxConfigApplier };

export function agentConfigRoutes({ sandboxConfig }: AgentConfigRouteDeps) {
  const tags = ["Agent configuration"];
  return createRouter()
    .openapi(
      createRoute({
        method: "get",
        path: "/me/agent-config",
        tags,
        summary: "The caller's whole OpenCode configuration in one document",
        security: authSecurity,
        request: { query: IncludeQuery },
        responses: { 200: json(AgentConfigSchema, "The configuration"), ...errorResponses() },
      }),
      async (c) => {
        const doc = await getAgentConfig(c.get("scope"), { includeContent: c.req.valid("query").include === "content" });
        c.header("ETag", etagOf(doc.version));
        return c.json(doc, 200);
      },
    )
    .openapi(
      createRoute({
        method: "put",
        path: "/me/agent-config",
        tags,
        summary: "Replace opencode.json and AGENTS.md (files are changed through /files)",
        security: authSecurity,
        request: { headers: IfMatchHeaders, body: { required: true, content: { "application/json": { schema: AgentConfigReplace } } } },
        responses: { 200: json(AgentConfigWritten, "Stored; sandboxes says where it went"), ...errorResponses(412) },
      }),
      async (c) => {
        const ifMatch = parseIfMatch(c.req.valid("header")["if-match"]);
        const doc = await updateAgentConfig(c.get("scope"), sandboxConfig, c.req.valid("json"), ifMatch);
        c.header("ETag", etagOf(doc.version));
        return c.json(doc, 200);
      },
    )
    .openapi(
      createRoute({
        method: "patch",
        path: "/me/agent-config",
        tags,
        summary: "Replace opencode.json, AGENTS.md, or both; what is not given is kept",
        security: authSecurity,
        request: { headers: IfMatchHeaders, body: { required: true, content: { "application/json": { schema: AgentConfigPatch } } } },
        responses: { 200: json(AgentConfigWritten, "Stored; sandboxes says where it went"), ...errorResponses(412) },
      }),
      async (c) => {
        const ifMatch = parseIfMatch(c.req.valid("header")["if-match"]);
        const doc = await updateAgentConfig(c.get("scope"), sandboxConfig, c.req.valid("json"), ifMatch);
        c.header("ETag", etagOf(doc.version));
        return c.json(doc, 200);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/me/agent-config/files",
        tags,
        summary: "The caller's agent files, newest first, without content unless include=content",
        security: authSecurity,
        request: {
          query: PageQuery.extend(IncludeQuery.shape).extend({
            type: z.enum(AGENT_FILE_TYPES).optional().openapi({ param: { name: "type", in: "query" } }),
          }),
        },
        responses: { 200: { description: "A page of files", content: { "application/json": { schema: pageOf(AgentFileSchema, "AgentFilePage") } } }, ...errorResponses() },
      }),
      async (c) => {
        const q = c.req.valid("query");
        return c.json(await listAgentFiles(c.get("scope"), { ...q, includeContent: q.include === "content" }), 200);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/me/agent-config/files/{type}/{name}",
        tags,
        summary: "One agent file with its content",
        security: authSecurity,
        request: { params: FileParams },
        responses: { 200: json(AgentFileSchema, "The file"), ...errorResponses(404) },
      }),
      async (c) => {
        const { type, name } = c.req.valid("param");
        const { version, ...file } = await getAgentFile(c.get("scope"), type, name);
        c.header("ETag", etagOf(version));
        return c.json(file, 200);
      },
    )
    .openapi(
      createRoute({
        method: "put",
        path: "/me/agent-config/files/{type}/{name}",
        tags,
        summary: "Create or replace an agent, command, tool or plugin",
        description: "If-Match is checked against the version of the whole configuration.",
        security: authSecurity,
        request: { params: FileParams, headers: IfMatchHeaders, body: { required: true, content: { "application/json": { schema: AgentFilePut } } } },
        responses: {
          200: json(AgentFileWritten, "Replaced"),
          201: json(AgentFileWritten, "Created"),
          ...errorResponses(403, 412),
        },
      }),
      async (c) => {
        const { type, name } = c.req.valid("param");
        const ifMatch = parseIfMatch(c.req.valid("header")["if-match"]);
        const { created, ...result } = await putAgentFile(c.get("scope"), sandboxConfig, type, name, c.req.valid("json"), ifMatch);
        c.header("ETag", etagOf(result.version));
        return created ? c.json(result, 201) : c.json(result, 200);
      },
    )
    .openapi(
      createRoute({
        method: "delete",
        path: "/me/agent-config/files/{type}/{name}",
        tags,
        summary: "Delete an agent file",
        security: authSecurity,
        request: { params: FileParams, headers: IfMatchHeaders },
        responses: { 200: json(AgentFileDeleted, "Deleted; sandboxes says where it went"), ...errorResponses(404, 412) },
      }),
      async (c) => {
        const { type, name } = c.req.valid("param");
        const ifMatch = parseIfMatch(c.req.valid("header")["if-match"]);
        const result = await deleteAgentFile(c.get("scope"), sandboxConfig, type, name, ifMatch);
        c.header("ETag", etagOf(result.version));
        return c.json(result, 200);
      },
    );
}
