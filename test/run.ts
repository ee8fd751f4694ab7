/*
 * `npm test` after typecheck and lint: creates one fresh database for this run, applies the real
 * migrations, runs every spec (dist/src/**\/*.spec.js, dist/test/**\/*.spec.js, e2e specs included)
 * with node:test, drops the database, and ends with `N passed, N failed`.
 */
import { readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { run } from 'node:test';
import { spec } from 'node:test/reporters';
import { Client } from 'pg';
import { runMigrations } from '../src/database/migrate';

const ADMIN_URL = process.env.TEST_PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

function findFiles(dir: string, suffix: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...findFiles(path, suffix));
    else if (name.endsWith(suffix)) out.push(path);
  }
  return out.sort();
}

async function withAdmin<T>(work: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: ADMIN_URL });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

async function main(): Promise<number> {
  const dist = resolve(__dirname, '..');
  const filter = process.argv.slice(2);
  let files = [...findFiles(join(dist, 'src'), '.spec.js'), ...findFiles(join(dist, 'test'), 'spec.js')];
  if (filter.length > 0) files = files.filter((f) => filter.some((part) => f.includes(part)));

  const database = `drawbridge_test_${Date.now()}_${process.pid}`;
  await withAdmin((c) => c.query(`CREATE DATABASE ${database}`));
  const databaseUrl = ADMIN_URL.replace(/\/[^/]*$/, `/${database}`);
  let passed = 0;
  let failed = 0;
  try {
    await runMigrations(databaseUrl);
    process.env.TEST_DATABASE_URL = databaseUrl;
    process.env.TEST_REDIS_URL ??= 'redis://127.0.0.1:6379';
    const stream = run({ files, concurrency: 2, timeout: 120_000 });
    stream.on('test:pass', (event) => {
      if (event.details.type !== 'suite') passed++;
    });
    stream.on('test:fail', (event) => {
      if (event.details.type !== 'suite') failed++;
    });
    await new Promise<void>((done, fail) => {
      stream.compose(new spec()).on('data', (line: string) => process.stdout.write(line)).on('end', done).on('error', fail);
    });
  } finally {
    await withAdmin((c) => c.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`));
  }
  process.stdout.write(`\n${passed} passed, ${failed} failed\n`);
  return failed === 0 && passed > 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
