import 'reflect-metadata';
import { ConfigError, loadConfig } from './config/config.loader';
import type { AppConfig } from './config/app-config';
import { startGateway } from './gateway';

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
  const gateway = await startGateway(config);
  let closing = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (closing) {
      // An operator's second Ctrl-C: leave now.
      if (signal === 'SIGINT') process.exit(130);
      return;
    }
    closing = true;
    gateway.close().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`shutdown failed: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`drawbridge failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
