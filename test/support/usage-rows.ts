import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { TEST_DATABASE_URL } from './test-gateway';

/** One `usage_records` row as the tests read it: numeric columns as JSON numbers. */
export interface UsageRow {
  request_id: string;
  api_key_id: string;
  model: string;
  account_id: string | null;
  status: string;
  http_status: number;
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  credits: number;
  usage_estimated: boolean;
  stream: boolean;
  latency_ms: number;
  ttft_ms: number | null;
  error_code: string | null;
  created_at: Date;
}

const POLL_MS = 50;

/**
 * The usage rows of one key, oldest first, read straight from Postgres (not through the admin API
 * under test). Usage is written in batches, so this polls until at least `count` rows exist or
 * `timeoutMs` passes, and then returns what is there: the caller asserts the exact count.
 */
export async function waitForUsageRows(keyId: string, count: number, timeoutMs = 5000): Promise<UsageRow[]> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const rows = await select(client, keyId);
      if (rows.length >= count || Date.now() >= deadline) return rows;
      await sleep(POLL_MS);
    }
  } finally {
    await client.end();
  }
}

/** The key's usage rows right now, without waiting. */
export function readUsageRows(keyId: string): Promise<UsageRow[]> {
  return waitForUsageRows(keyId, 0, 0);
}

async function select(client: pg.Client, keyId: string): Promise<UsageRow[]> {
  const result = await client.query<UsageRow & { credits: string }>(
    `SELECT request_id, api_key_id, model, account_id, status, http_status, prompt_tokens, completion_tokens,
            total_tokens, credits, usage_estimated, stream, latency_ms, ttft_ms, error_code, created_at
       FROM usage_records WHERE api_key_id = $1 ORDER BY created_at, id`,
    [keyId],
  );
  return result.rows.map((row) => ({ ...row, credits: Number(row.credits) }));
}
