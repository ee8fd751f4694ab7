import 'reflect-metadata';
import { ConfigError, loadConfig } from './config/config.loader';
import type { AppConfig } from './config/app-config';
import { Gateway, startGateway } from './gateway';

/*
 * The server process. Signals: the first SIGTERM or SIGINT drains (DESIGN §3.3) and exits 0;
 * further SIGTERMs change nothing; a second SIGINT (an operator's second Ctrl-C) exits 130 at
 * once. Handlers are installed before start-up, so a signal during migrations is not ignored.
 */

let gateway: Gateway | undefined;
let stopping = false;

function onSignal(signal: NodeJS.Signals): void {
  if (stopping) {
    if (signal === 'SIGINT') process.exit(130);
    return;
  }
  stopping = true;
  // Still starting: nothing is in flight, and each migration is its own transaction.
  if (!gateway) process.exit(0);
  gateway.shutdown().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`shutdown failed: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
}

async function main(): Promise<void> {
  let config: AppConfig;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const problem of err.problems) process.stderr.write(`${problem}\n`);
      process.exit(1);
    }
    throw err;
  }
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  gateway = await startGateway(config);
}

main().catch((err: unknown) => {
  process.stderr.write(`drawbridge failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
