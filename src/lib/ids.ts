import { typeid } from "typeid-js";

/**
 * New ids are prefixed and time-ordered (TypeID: prefix + UUIDv7 in base32), e.g.
 * `sbx_01jd3k…`. They sort by creation time, which keeps keyset pagination and B-tree inserts
 * cheap, and the prefix tells a human what an id refers to. Legacy ids keep their value.
 */
export const ID_PREFIXES = {
  user: "usr",
  session: "ses",
  account: "acc",
  verification: "ver",
  rateLimit: "rl",
  sandbox: "sbx",
  sandboxOperation: "sop",
  workloadCleanup: "wcl",
  chatSession: "chs",
  chatMessage: "chm",
  chatPart: "chp",
  credential: "crd",
  deviceFlow: "dfl",
  customProvider: "cpr",
  agentFile: "agf",
  activity: "act",
  knowledge: "kdoc",
  mcpToken: "mcp",
  onboarding: "onb",
  request: "req",
} as const;

export type IdKind = keyof typeof ID_PREFIXES;

export function newId(kind: IdKind): string {
  return typeid(ID_PREFIXES[kind]).toString();
}
