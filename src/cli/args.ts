import { parseArgs, type ParseArgsOptionsConfig } from "node:util";

/**
 * A command's arguments, the way every CLI here takes them: `-h`/`--help` prints `help` and
 * exits 0; an unknown or malformed option, or a `usage()` the command calls itself, prints
 * "COMMAND: message" on stderr and exits 2.
 */
type Values<O extends ParseArgsOptionsConfig> = { -readonly [K in keyof O]?: O[K] extends { type: "boolean" } ? boolean : string };

export function commandLine<const O extends ParseArgsOptionsConfig>(command: string, help: string, options: O): { values: Values<O>; usage: (message: string) => never } {
  const usage = (message: string): never => {
    console.error(`${command}: ${message}`);
    process.exit(2);
  };
  let values: Values<O> & { help?: boolean };
  try {
    ({ values } = parseArgs({ options: { ...options, help: { type: "boolean", short: "h" } } }) as { values: Values<O> & { help?: boolean } });
  } catch (err) {
    return usage((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(help);
    process.exit(0);
  }
  return { values, usage };
}
