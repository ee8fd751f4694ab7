import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import type { UsageRecord } from './usage-record.entity';

/** A usage row before it is stored; `created_at` defaults to the moment it is recorded. */
export type NewUsageRecord = Omit<UsageRecord, 'id' | 'created_at'> & { created_at?: Date };

export type UsageGroupBy = 'key' | 'model' | 'account' | 'day';

export interface UsageFilter {
  /** Inclusive. */
  from: Date;
  /** Exclusive. */
  to: Date;
  keyId?: string;
  model?: string;
}

export interface UsageTotals {
  requests: number;
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  credits: number;
}

export interface UsageGroup extends UsageTotals {
  /** Key id, model id, account id (null when none was reached) or `YYYY-MM-DD` (UTC). */
  group: string | null;
}

const GROUP_EXPRESSIONS: Record<UsageGroupBy, string> = {
  key: 'api_key_id::text',
  model: 'model',
  account: 'account_id',
  day: `to_char(date_trunc('day', created_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD')`,
};

/*
 * The whole batch is one statement: rows arrive as one JSON array (one parameter whatever the
 * batch size; serialising it is one native JSON.stringify, where 16 text arrays cost an escape per
 * value), duplicates of an already stored request_id are skipped, and only the credits of rows
 * actually inserted are added to their keys. A retried batch therefore never doubles a row or a
 * credit.
 */
const INSERT_BATCH = `
  WITH ins AS (
    INSERT INTO usage_records (request_id, api_key_id, model, account_id, status, http_status, prompt_tokens,
      completion_tokens, total_tokens, credits, usage_estimated, stream, latency_ms, ttft_ms, error_code, created_at)
    SELECT request_id, api_key_id, model, account_id, status, http_status, prompt_tokens, completion_tokens,
           total_tokens, credits, usage_estimated, stream, latency_ms, ttft_ms, error_code, COALESCE(created_at, now())
      FROM json_to_recordset($1::json) AS v(request_id text, api_key_id uuid, model text, account_id text, status text,
           http_status int, prompt_tokens int, completion_tokens int, total_tokens int, credits numeric,
           usage_estimated bool, stream bool, latency_ms int, ttft_ms int, error_code text, created_at timestamptz)
    ON CONFLICT (request_id) DO NOTHING
    RETURNING api_key_id, credits
  ), spent AS (
    UPDATE api_keys k SET credits_used = k.credits_used + s.credits
      FROM (SELECT api_key_id, sum(credits) AS credits FROM ins GROUP BY api_key_id HAVING sum(credits) <> 0) s
     WHERE k.id = s.api_key_id
  )
  SELECT count(*)::int AS inserted FROM ins`;

/** Every SQL statement about usage_records lives here. */
@Injectable()
export class UsageRepository {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  /** Stores the batch and adds its credits to api_keys.credits_used, atomically; returns the rows inserted. */
  async recordBatch(records: readonly NewUsageRecord[]): Promise<number> {
    if (records.length === 0) return 0;
    const rows = (await this.dataSource.query(INSERT_BATCH, [JSON.stringify(records)])) as { inserted: number }[];
    return Number(rows[0]?.inserted ?? 0);
  }

  /**
   * Totals over the filter and, with `groupBy`, the same totals per group, from one scan
   * (GROUPING SETS). The time range keeps the (created_at), (api_key_id, created_at) or
   * (model, created_at) index in play.
   */
  async summarize(filter: UsageFilter, groupBy?: UsageGroupBy): Promise<{ totals: UsageTotals; groups: UsageGroup[] }> {
    const params: unknown[] = [filter.from.toISOString(), filter.to.toISOString()];
    const where = ['created_at >= $1', 'created_at < $2'];
    if (filter.keyId !== undefined) where.push(`api_key_id = $${params.push(filter.keyId)}`);
    if (filter.model !== undefined) where.push(`model = $${params.push(filter.model)}`);
    const sums = `count(*) AS requests, COALESCE(sum(prompt_tokens), 0) AS prompt_tokens,
      COALESCE(sum(completion_tokens), 0) AS completion_tokens, COALESCE(sum(total_tokens), 0) AS total_tokens,
      COALESCE(sum(credits), 0) AS credits`;
    const filtered = `SELECT ${groupBy ? GROUP_EXPRESSIONS[groupBy] : 'NULL'} AS g, prompt_tokens, completion_tokens,
      total_tokens, credits FROM usage_records WHERE ${where.join(' AND ')}`;
    const sql = groupBy
      ? `SELECT g, GROUPING(g) AS is_total, ${sums} FROM (${filtered}) u
          GROUP BY GROUPING SETS ((), (g)) ORDER BY GROUPING(g) DESC, g ASC NULLS LAST`
      : `SELECT NULL AS g, 1 AS is_total, ${sums} FROM (${filtered}) u`;
    const rows = (await this.dataSource.query(sql, params)) as SummaryRow[];
    const total = rows.find((row) => Number(row.is_total) === 1);
    return {
      totals: total ? toTotals(total) : { requests: 0, prompt_tokens: 0, completion_tokens: 0, total_tokens: 0, credits: 0 },
      groups: rows.filter((row) => Number(row.is_total) === 0).map((row) => ({ group: row.g, ...toTotals(row) })),
    };
  }
}

interface SummaryRow {
  g: string | null;
  is_total: number | string;
  requests: number | string;
  prompt_tokens: number | string;
  completion_tokens: number | string;
  total_tokens: number | string;
  credits: number | string;
}

/** bigint and numeric arrive as strings unless parseInt8 is on; the API speaks JSON numbers. */
function toTotals(row: SummaryRow): UsageTotals {
  return {
    requests: Number(row.requests),
    prompt_tokens: Number(row.prompt_tokens),
    completion_tokens: Number(row.completion_tokens),
    total_tokens: Number(row.total_tokens),
    credits: Number(row.credits),
  };
}
