/**
 * The sandbox launch helper of both drivers (landlock.ts): puts itself in a Landlock domain of its
 * own that scopes abstract unix sockets and signals, then execs the rest of its command line
 * (bubblewrap, or the container's command) with the sandbox's environment, taken from
 * WARREN_SANDBOX_ENV_* variables.
 *
 *   bun src/orchestrator/landlock-exec.ts [--chdir DIR] --scope|--no-scope -- COMMAND [ARG...]
 *
 * --scope fails (exit 126, reason on stderr) rather than run the sandbox unscoped; --no-scope,
 * used on kernels without Landlock ABI 6, only restores the environment. --chdir: where COMMAND
 * runs (Bun itself is started elsewhere: landlock.ts helperArgv).
 */
import { execvpe, restrictSelf, sandboxEnvFromLauncher } from "./landlock";

const USAGE = "usage: landlock-exec.ts [--chdir DIR] --scope|--no-scope -- COMMAND [ARG...]";
const args = process.argv.slice(2);

if (args[0] === "--help" || args[0] === "-h") {
  console.log(USAGE);
  process.exit(0);
}
const chdir = args[0] === "--chdir" ? args[1] : undefined;
const [mode, dashes, ...command] = args.slice(chdir === undefined ? 0 : 2);
if ((args[0] === "--chdir" && !chdir) || (mode !== "--scope" && mode !== "--no-scope") || dashes !== "--" || command.length === 0) {
  console.error(USAGE);
  process.exit(2);
}
try {
  if (chdir !== undefined) process.chdir(chdir);
  if (mode === "--scope") restrictSelf();
} catch (err) {
  console.error(`warren launch: ${(err as Error).message}`);
  process.exit(126);
}
const problem = execvpe(command, sandboxEnvFromLauncher(process.env));
console.error(`warren launch: cannot run ${command[0]}: ${problem}`);
process.exit(127);
