/**
 * Message text for the chat benchmarks (bench/seed-chat.ts, bench/chat-ingest.ts): what a coding
 * agent and its user write to each other, with the word frequencies such text has. Words are drawn
 * from a Zipf distribution over a vocabulary of plain English and programming words (a handful of
 * words — "the", "to", "error", "file" — are in most messages, most words in few), and now and then
 * an identifier or a file path from a large space (each appears in a few dozen messages among a
 * million: the "where did I fix parseInvoiceV12" kind of search).
 *
 * Deterministic for a given seed, so two runs seed the same corpus and the benchmark's search
 * terms match the same number of rows.
 */

/** A small deterministic PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Most frequent first: the rank decides the frequency.
const COMMON = `the to a and of is in it that this for you with on be we can i not are as have if will
but or so from at by should now use need it's function file error here let me an all when then there
which what test run code just one change also do fix like add new update check value type return
see would make sure make data could into case more way call first because get only some set other
line time look work because issue problem server request how was using these them instead api config
error's method out need they our up where already still want after before without same last next
build output current name path string number list object default user message version same might
why other both each much well find its been into does was has did were my than test's any over
working looks seems added removed changed fixed failing passes passing both instead between`.split(/\s+/);

const TECH = `typescript javascript python rust golang postgres postgresql sqlite redis docker kubernetes
nginx webpack vite bun node deno react vue svelte hono express fastify drizzle prisma migration
migrations schema index indexes query queries transaction rollback commit deadlock timeout retry
backoff cache caching session cookie token bearer oauth jwt password hash bcrypt scrypt encryption
endpoint route handler middleware validation zod json yaml toml env environment variable variables
dependency dependencies package lockfile install build compile compiler linter eslint prettier
formatter refactor refactoring component props state hook hooks useeffect usestate render
rendering layout css tailwind html dom event listener callback promise async await stream
streaming buffer socket websocket http https header headers status response cors proxy upstream
latency throughput benchmark profile profiler memory leak allocation garbage pointer reference
null undefined nan exception stacktrace traceback panic segfault assertion mock fixture snapshot
coverage unit integration e2e playwright vitest jest pytest cargo clippy borrow lifetime trait
struct enum interface generic generics union tuple array map filter reduce iterator generator
closure recursion regex parser lexer tokenizer ast serializer deserialize encoding utf8 unicode
timezone timestamp date cron scheduler queue worker job jobs lock mutex semaphore thread threads
concurrency parallel race condition idempotent upsert conflict constraint foreign key primary
unique nullable column table row rows pagination cursor offset limit sort order filter search
ranking highlight snippet vector embedding model prompt tokens context window agent tool tools
sandbox container image volume mount permission permissions chmod chown ssh git branch merge rebase
conflict diff patch pull request review ci pipeline workflow deploy deployment release rollback
staging production logging logger metrics tracing alert dashboard grafana prometheus billing invoice
checkout payment stripe webhook email notification upload download s3 bucket cdn dns certificate
tls ssl domain subdomain`.split(/\s+/);

const SUFFIXES = ["Handler", "Service", "Config", "Client", "Store", "Parser", "Worker", "Router", "Schema", "Cache"];
const STEMS = ["invoice", "user", "billing", "session", "order", "payment", "report", "upload", "search", "auth", "sandbox", "tenant", "webhook", "export", "import", "metric"];
const DIRS = ["src/routes", "src/services", "src/lib", "tests/unit", "tests/integration", "app/models", "pkg/api", "internal/store"];
const EXTS = [".ts", ".py", ".rs", ".go", ".tsx"];

/** Interleaves the two lists, so programming words sit among the frequent English ones. */
function vocabulary(): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const push = (w: string) => {
    if (w && !seen.has(w)) {
      seen.add(w);
      out.push(w);
    }
  };
  for (let i = 0; i < Math.max(COMMON.length, TECH.length); i++) {
    push(COMMON[i] ?? "");
    if (i % 2 === 0) push(TECH[i / 2] ?? "");
  }
  for (let i = Math.ceil(COMMON.length / 2); i < TECH.length; i++) push(TECH[i]!);
  return out;
}

export const VOCABULARY = vocabulary();

/** Cumulative Zipf weights (s = 1.07) over the vocabulary, for a binary search per word. */
const CUMULATIVE = (() => {
  const w = VOCABULARY.map((_, i) => 1 / (i + 1) ** 1.07);
  const total = w.reduce((a, b) => a + b, 0);
  let acc = 0;
  return w.map((x) => (acc += x / total));
})();

function zipfWord(r: number): string {
  let lo = 0;
  let hi = CUMULATIVE.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (CUMULATIVE[mid]! < r) lo = mid + 1;
    else hi = mid;
  }
  return VOCABULARY[lo]!;
}

/** An identifier from a space of 16 × 10 × 400 = 64,000, e.g. `parseInvoiceHandlerV37`. */
export function identifier(random: () => number): string {
  const stem = STEMS[Math.floor(random() * STEMS.length)]!;
  const suffix = SUFFIXES[Math.floor(random() * SUFFIXES.length)]!;
  const n = Math.floor(random() * 400);
  return `${stem}${suffix}V${n}`;
}

function filePath(random: () => number): string {
  const dir = DIRS[Math.floor(random() * DIRS.length)]!;
  const stem = STEMS[Math.floor(random() * STEMS.length)]!;
  return `${dir}/${stem}-${Math.floor(random() * 300)}${EXTS[Math.floor(random() * EXTS.length)]!}`;
}

/**
 * One message: a user asks in one to three sentences; the assistant answers in three to twelve,
 * sometimes with an identifier, a file path or a short code line. About 60 words on average for
 * the assistant, 15 for the user.
 */
export function messageText(random: () => number, role: "user" | "assistant"): string {
  const sentences = role === "user" ? 1 + Math.floor(random() * 3) : 3 + Math.floor(random() * 10);
  const out: string[] = [];
  for (let s = 0; s < sentences; s++) {
    const words = 5 + Math.floor(random() * 9);
    const parts: string[] = [];
    for (let i = 0; i < words; i++) parts.push(zipfWord(random()));
    if (random() < 0.08) parts.splice(Math.floor(random() * parts.length), 0, identifier(random));
    if (random() < 0.05) parts.splice(Math.floor(random() * parts.length), 0, filePath(random));
    const sentence = parts.join(" ");
    out.push(sentence.charAt(0).toUpperCase() + sentence.slice(1) + (role === "user" && s === sentences - 1 ? "?" : "."));
  }
  if (role === "assistant" && random() < 0.1) out.push(`\n\n\`const ${identifier(random)} = await load(config);\``);
  return out.join(" ");
}
