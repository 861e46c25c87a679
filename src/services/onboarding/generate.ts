import type { knowledgeDocuments } from "../../../db/schema";
import type { Executor } from "../../database/client";
import { agentNameProblem } from "../agent-config/names";
import { FrontMatter } from "../knowledge/document";
import { documentsOfCategories } from "../knowledge/queries";
import { MCP_SERVER_NAME } from "../knowledge/sandbox-mcp";
import type { Recommendations } from "./recommend";
import type { Requirements } from "./requirements";

/**
 * What onboarding writes into a sandbox, in the agent-configuration shapes (rendered by
 * src/services/agent-config/render.ts like the user's own configuration): opencode.json keys,
 * AGENTS.md, agent and command files, and the knowledge documents they came from. Pure given its
 * inputs, so generating twice gives the same layer and applying it twice writes the same bytes.
 */
export type GeneratedLayer = {
  config: Record<string, unknown>;
  agentsMd: string;
  files: Array<{ type: "agent" | "command"; name: string; extension: "md"; content: string }>;
  sources: string[];
};

export const TEMPLATE_CATEGORIES = { project: "project-template", agent: "agent-pattern", command: "command-template" } as const;
const MAX_AGENTS = 3;
const MAX_COMMANDS = 4;

type Doc = typeof knowledgeDocuments.$inferSelect;
type Scored = { doc: Doc; fm: FrontMatter; score: number };

/**
 * How well a document's applicability fits the project: -1 when it names project types or
 * languages and none match (it is for something else); otherwise points for each match. A
 * document that names nothing applies everywhere, with score 0.
 */
export function applicabilityScore(fm: FrontMatter, req: Requirements): number {
  const a = fm.applicability;
  const langs = a.languages.filter((l) => req.languages.includes(l)).length;
  const frameworks = a.frameworks.filter((f) => req.frameworks.includes(f)).length;
  const typeMatch = a.projectTypes.includes(req.projectType);
  if (a.projectTypes.length > 0 && !typeMatch) return -1;
  if (a.languages.length > 0 && langs === 0) return -1;
  return (typeMatch ? 3 : 0) + langs * 2 + frameworks * 2;
}

function scored(docs: Doc[], req: Requirements): Scored[] {
  return docs
    .flatMap((doc) => {
      const fm = FrontMatter.safeParse(doc.frontMatter);
      return fm.success ? [{ doc, fm: fm.data, score: applicabilityScore(fm.data, req) }] : [];
    })
    .filter((s) => s.score >= 0)
    .sort((a, b) => b.score - a.score || (a.doc.slug < b.doc.slug ? -1 : 1));
}

/** Fills {{placeholders}} that templates may use; unknown ones are left as written. */
function fill(template: string, values: Record<string, string>): string {
  return template.replace(/\{\{\s*([a-zA-Z]+)\s*\}\}/g, (whole, key: string) => values[key] ?? whole);
}

const frontMatterBlock = (fields: Record<string, unknown>) => `---\n${Bun.YAML.stringify(fields, null, 2).trimEnd()}\n---\n\n`;

export async function generateLayer(
  db: Executor,
  input: { sandboxName: string; requirements: Requirements; recommendations: Recommendations },
): Promise<GeneratedLayer> {
  const req = input.requirements;
  const docs = await documentsOfCategories(db, Object.values(TEMPLATE_CATEGORIES));
  const of = (category: string) => scored(docs.filter((d) => d.category === category), req);
  const project = of(TEMPLATE_CATEGORIES.project)[0];
  const defaults = project?.fm.defaults ?? {};
  const values: Record<string, string> = {
    testCommand: req.testCommand ?? defaults.testCommand ?? "the project's test command",
    buildCommand: req.buildCommand ?? defaults.buildCommand ?? "the project's build command",
    lintCommand: req.lintCommand ?? defaults.lintCommand ?? "the project's linter",
    runCommand: defaults.runCommand ?? "the project's start command",
    language: req.languages[0]!,
    languages: req.languages.join(", "),
    frameworks: req.frameworks.join(", ") || "none",
    projectType: req.projectType,
  };

  const files: GeneratedLayer["files"] = [];
  const sources: string[] = project ? [project.doc.slug] : [];
  for (const a of of(TEMPLATE_CATEGORIES.agent).filter((s) => s.fm.agent && !agentNameProblem(s.fm.agent.name)).slice(0, MAX_AGENTS)) {
    const agent = a.fm.agent!;
    const head = { description: agent.description, mode: agent.mode, ...(agent.tools ? { tools: agent.tools } : {}) };
    files.push({ type: "agent", name: agent.name, extension: "md", content: frontMatterBlock(head) + fill(a.doc.content, values).trimEnd() + "\n" });
    sources.push(a.doc.slug);
  }
  for (const c of of(TEMPLATE_CATEGORIES.command).filter((s) => s.fm.command && !agentNameProblem(s.fm.command.name)).slice(0, MAX_COMMANDS)) {
    const command = c.fm.command!;
    const head = { description: command.description, ...(command.agent ? { agent: command.agent } : {}) };
    files.push({ type: "command", name: command.name, extension: "md", content: frontMatterBlock(head) + fill(c.doc.content, values).trimEnd() + "\n" });
    sources.push(c.doc.slug);
  }
  files.sort((x, y) => (`${x.type}/${x.name}` < `${y.type}/${y.name}` ? -1 : 1));

  const config: Record<string, unknown> = { $schema: "https://opencode.ai/config.json" };
  const rec = input.recommendations;
  if (rec.primary) config.model = `${rec.primary.providerId}/${rec.primary.modelId}`;
  if (rec.small) config.small_model = `${rec.small.providerId}/${rec.small.modelId}`;

  const lines = [
    `# ${input.sandboxName}`,
    "",
    ...(req.description ? [req.description, ""] : []),
    "## Project",
    "",
    `- Type: ${req.projectType}`,
    `- Languages: ${values.languages}`,
    `- Frameworks: ${values.frameworks}`,
    `- Test: \`${values.testCommand}\``,
    `- Build: \`${values.buildCommand}\``,
    `- Lint: \`${values.lintCommand}\``,
    "",
    ...(project ? ["## Conventions", "", fill(project.doc.content, values).trim(), ""] : []),
    "## Knowledge base",
    "",
    `Warren's knowledge base is connected as the \`${MCP_SERVER_NAME}\` MCP server. Before starting`,
    "unfamiliar work (a new framework, a provider, a recurring task), call `search_knowledge` and read",
    "the best match with `get_knowledge_document`; `get_project_context` repeats what is recorded here.",
    "",
  ];
  return { config, agentsMd: lines.join("\n"), files, sources };
}
