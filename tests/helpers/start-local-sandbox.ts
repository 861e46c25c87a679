// Run as a child process by tests/integration/orchestrator-local.test.ts: starts one sandbox with
// the real local driver, prints its agent URL, then waits to be killed (standing in for a Warren
// process that dies with SIGKILL while its sandboxes run).
import { createDriver } from "../../src/orchestrator";
import { memoryLogger, testConfig } from "./app";

const [env, spec] = [JSON.parse(process.argv[2]!), JSON.parse(process.argv[3]!)];
const driver = createDriver(testConfig(env), memoryLogger().logger);
const info = await driver.start(spec);
console.log(JSON.stringify({ agentUrl: info.agentUrl, workloadId: info.workloadId }));
setInterval(() => {}, 1 << 30);
