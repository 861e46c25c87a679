import pino from "pino";

export type Logger = pino.Logger;

// Last line of defence: even if a secret-bearing object reaches a log call, these keys are
// replaced. Code must still never log request bodies or headers wholesale.
const REDACT = [
  "password",
  "*.password",
  "token",
  "*.token",
  "secret",
  "*.secret",
  "apiKey",
  "*.apiKey",
  "accessToken",
  "*.accessToken",
  "refreshToken",
  "*.refreshToken",
  "authorization",
  "*.authorization",
  "cookie",
  "*.cookie",
  "headers.authorization",
  "headers.cookie",
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "warren" },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT, censor: "[redacted]" },
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ fd: 1, sync: false }),
  );
}

/**
 * Logs are written asynchronously; the last lines must reach stdout before the process exits.
 * `logger.flush(cb)` is not enough: with pino's default destination (SonicBoom, minLength 0)
 * it calls back at once, while a write may still be in flight. Ending the destination waits
 * for every queued write, then emits `close` (stdout itself stays open).
 */
export function flushLogs(logger: Logger): Promise<void> {
  const stream = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym] as
    | { end?: () => void; once?: (event: string, fn: () => void) => void; destroyed?: boolean }
    | undefined;
  if (!stream?.end || !stream.once || stream.destroyed) {
    return new Promise((resolve) => logger.flush(() => resolve()));
  }
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 2000);
    stream.once!("close", () => {
      clearTimeout(timer);
      resolve();
    });
    stream.end!();
  });
}
