import { hashPassword } from "better-auth/crypto";
import { PASSWORD_LENGTH } from "../auth/auth";
import { ConfigError, loadConfig } from "../config";
import { openDatabase } from "../database/client";
import { AppError } from "../errors";
import { createLogger } from "../lib/logger";
import { resetPassword } from "../services/account/reset-password";
import { commandLine } from "./args";

const HELP = `Usage: bun run user:reset-password --email EMAIL --password-stdin
       bun run user:reset-password --email EMAIL --generate

Sets the password of the user with EMAIL, for a user who forgot theirs (Warren sends no email).
Every session of the user is signed out, on every instance, and the user's activity log records
auth.password_reset. A user who signs in with GitHub only gets a password as well.

With the embedded database (no DATABASE_URL), stop the server first: one process at a time can
open its data directory.

Options:
  --email EMAIL      the user's email address
  --password-stdin   read the new password from standard input (one line; ${PASSWORD_LENGTH.min} to ${PASSWORD_LENGTH.max}
                     characters), so that it is in no shell history or process list
  --generate         make up a strong password and print it once
  --json             print the result as JSON
  -h, --help         show this help

Exit codes: 0 done, 1 no user with that email (or the database failed), 2 bad usage.
`;

const { values, usage } = commandLine("user:reset-password", HELP, {
  email: { type: "string" },
  "password-stdin": { type: "boolean" },
  generate: { type: "boolean" },
  json: { type: "boolean" },
});

if (!values.email?.includes("@")) usage("give the user's --email (see --help)");
if (Boolean(values["password-stdin"]) === Boolean(values.generate)) usage("give one of --password-stdin or --generate (see --help)");

let password: string;
if (values.generate) {
  // 144 random bits, 24 characters of base64url.
  password = Buffer.from(crypto.getRandomValues(new Uint8Array(18))).toString("base64url");
} else {
  // One line: a trailing newline (echo, a heredoc) is not part of the password.
  password = (await Bun.stdin.text()).replace(/\r?\n$/, "");
  if (password.length < PASSWORD_LENGTH.min || password.length > PASSWORD_LENGTH.max) {
    usage(`the password must be ${PASSWORD_LENGTH.min} to ${PASSWORD_LENGTH.max} characters (got ${password.length}; see --help)`);
  }
}

try {
  const config = loadConfig();
  const logger = createLogger(config.logLevel === "info" ? "warn" : config.logLevel, process.stderr);
  const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 2 });
  try {
    const result = await resetPassword({ db: database.db, logger, now: () => new Date() }, { email: values.email!, passwordHash: await hashPassword(password) });
    if (values.json) {
      console.log(JSON.stringify({ ...result, ...(values.generate ? { password } : {}) }));
    } else {
      console.log(
        `${result.email}: password ${result.passwordAdded ? "added (the account had GitHub sign-in only)" : "replaced"}; ` +
          `${result.sessionsSignedOut} session(s) signed out`,
      );
      if (values.generate) console.log(`new password (shown once): ${password}`);
    }
  } finally {
    await database.close();
  }
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(`user:reset-password: ${err.message}`);
    process.exit(2);
  }
  if (err instanceof AppError && err.code === "NOT_FOUND") {
    console.error(`user:reset-password: no user has the email ${JSON.stringify(values.email)}`);
    process.exit(1);
  }
  console.error(`user:reset-password: ${(err as Error).message}`);
  process.exit(1);
}
