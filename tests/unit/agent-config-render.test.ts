import { describe, expect, test } from "bun:test";
import { agentNameProblem } from "../../src/services/agent-config/names";
import { agentFilePath, MANAGED_DIRECTORIES, renderAgentConfig, type RenderableAgentConfig } from "../../src/services/agent-config/render";

const input: RenderableAgentConfig = {
  config: { $schema: "https://opencode.ai/config.json", model: "anthropic/claude-sonnet-4-5" },
  agentsMd: "# Rules\nBe brief.\n",
  files: [
    { type: "tool", name: "lint", extension: "ts", content: "export default {}" },
    { type: "agent", name: "reviewer", extension: "md", content: "---\ndescription: Reviews\n---\nReview." },
    { type: "plugin", name: "notify", extension: "js", content: "export const Notify = async () => ({})" },
    { type: "command", name: "deploy", extension: "md", content: "Deploy $ARGUMENTS" },
  ],
};

describe("renderAgentConfig", () => {
  test("lays the configuration out as OpenCode reads it, under ~/.config/opencode, sorted, owner-only", () => {
    const files = renderAgentConfig(input);
    expect(files.map((f) => f.path)).toEqual([
      ".config/opencode/opencode.json",
      ".config/opencode/AGENTS.md",
      ".config/opencode/agents/reviewer.md",
      ".config/opencode/commands/deploy.md",
      ".config/opencode/plugins/notify.js",
      ".config/opencode/tools/lint.ts",
    ]);
    expect(JSON.parse(files[0]!.content)).toEqual(input.config);
    expect(files[0]!.content.endsWith("}\n")).toBe(true);
    expect(files[1]!.content).toBe(input.agentsMd);
    expect(files.find((f) => f.path.endsWith("deploy.md"))!.content).toBe("Deploy $ARGUMENTS");
    expect(files.every((f) => f.mode === 0o600)).toBe(true);
    expect(files.every((f) => !f.path.startsWith("/") && !f.path.split("/").includes(".."))).toBe(true);
  });

  test("is pure: same input, same output, input untouched", () => {
    const before = structuredClone(input);
    expect(renderAgentConfig(input)).toEqual(renderAgentConfig(input));
    expect(input).toEqual(before);
  });

  test("an empty configuration still writes opencode.json and AGENTS.md, so clearing them propagates", () => {
    expect(renderAgentConfig({ config: {}, agentsMd: "", files: [] })).toEqual([
      { path: ".config/opencode/opencode.json", content: "{}\n", mode: 0o600 },
      { path: ".config/opencode/AGENTS.md", content: "", mode: 0o600 },
    ]);
  });

  test("refuses unsafe names and extensions that do not fit the type, even from imported rows", () => {
    for (const name of ["../x", "a/b", "a\\b", "..", ".env", "a\u0000b", "", "x".repeat(101)]) {
      expect(() => renderAgentConfig({ config: {}, agentsMd: "", files: [{ type: "agent", name, extension: "md", content: "" }] })).toThrow(
        "unsafe agent file name",
      );
    }
    expect(() => agentFilePath("agent", "ok", "ts")).toThrow("cannot be a .ts file");
    expect(() => agentFilePath("tool", "ok", "md")).toThrow("cannot be a .md file");
  });

  test("every rendered agent file sits in a managed directory", () => {
    for (const file of renderAgentConfig(input).slice(2)) {
      expect(MANAGED_DIRECTORIES.some((d) => file.path.startsWith(`${d}/`))).toBe(true);
    }
  });
});

describe("agentNameProblem", () => {
  test("accepts ordinary names, including dots and spaces inside", () => {
    for (const name of ["reviewer", "code-review_2", "v1.2", "My Agent", "x".repeat(100), "écrivain"]) expect(agentNameProblem(name)).toBeUndefined();
  });
  test("names the problem", () => {
    expect(agentNameProblem("a/b")).toContain("/");
    expect(agentNameProblem("a..b")).toContain("..");
    expect(agentNameProblem(".hidden")).toContain("dot");
    expect(agentNameProblem("tab\there")).toContain("control");
    expect(agentNameProblem("\u2028")).toContain("control");
    expect(agentNameProblem(" padded")).toContain("space");
  });
});
