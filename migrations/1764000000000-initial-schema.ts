import type { MigrationInterface, QueryRunner } from 'typeorm';

export class InitialSchema1764000000000 implements MigrationInterface {
  name = 'InitialSchema1764000000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      CREATE TABLE api_keys (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name text NOT NULL,
        key_hash text NOT NULL UNIQUE,
        key_prefix text NOT NULL,
        rate_limit_per_minute integer,
        models text[],
        expires_at timestamptz,
        credit_limit numeric,
        credits_used numeric NOT NULL DEFAULT 0,
        metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
        created_at timestamptz NOT NULL DEFAULT now(),
        last_used_at timestamptz,
        revoked_at timestamptz
      )`);
    // Keyset pagination, newest first.
    await db.query(`CREATE INDEX api_keys_created_idx ON api_keys (created_at DESC, id DESC)`);
    await db.query(`
      CREATE TABLE usage_records (
        id bigserial PRIMARY KEY,
        request_id text NOT NULL UNIQUE,
        api_key_id uuid NOT NULL,
        model text NOT NULL,
        account_id text,
        status text NOT NULL,
        http_status integer NOT NULL,
        prompt_tokens integer NOT NULL DEFAULT 0,
        completion_tokens integer NOT NULL DEFAULT 0,
        total_tokens integer NOT NULL DEFAULT 0,
        credits numeric NOT NULL DEFAULT 0,
        usage_estimated boolean NOT NULL DEFAULT false,
        stream boolean NOT NULL DEFAULT false,
        latency_ms integer NOT NULL,
        ttft_ms integer,
        error_code text,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    // The admin usage queries filter by time, optionally by key or model.
    await db.query(`CREATE INDEX usage_created_idx ON usage_records (created_at)`);
    await db.query(`CREATE INDEX usage_key_created_idx ON usage_records (api_key_id, created_at)`);
    await db.query(`CREATE INDEX usage_model_created_idx ON usage_records (model, created_at)`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP TABLE usage_records`);
    await db.query(`DROP TABLE api_keys`);
  }
}
