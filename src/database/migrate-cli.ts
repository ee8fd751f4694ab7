/*
 * `npm run migration:run`: applies the migrations to DATABASE_URL, or to the embedded database
 * under DRAWBRIDGE_DATA_DIR when DATABASE_URL is unset (stop the gateway first: one process owns
 * an embedded data folder at a time).
 */
import 'reflect-metadata';
import { resolve } from 'node:path';
import { EmbeddedPostgres } from './embedded-postgres';
import { runMigrations } from './migrate';

async function main(): Promise<void> {
  // An entry point, like main.ts: the only other place that reads the environment.
  const databaseUrl = process.env.DATABASE_URL || undefined;
  const embedded = databaseUrl ? undefined : new EmbeddedPostgres(resolve(process.env.DRAWBRIDGE_DATA_DIR || './data'));
  const url = databaseUrl ?? (await embedded!.start());
  try {
    const applied = await runMigrations(url);
    process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'no pending migrations\n');
  } finally {
    await embedded?.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`migration failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
