import { ApiKey } from './api-key.entity';
import type { KeyStatus } from './keys.repository';

/** The key as the admin API shows it (DESIGN §3.4): never the secret, never its hash. */
export interface KeyObject {
  id: string;
  object: 'api_key';
  name: string;
  key_prefix: string;
  status: KeyStatus;
  rate_limit_per_minute: number | null;
  models: string[] | null;
  expires_at: string | null;
  credit_limit: number | null;
  credits_used: number;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
  metadata: Record<string, unknown>;
}

export function keyStatus(row: Pick<ApiKey, 'revoked_at' | 'expires_at'>, now = Date.now()): KeyStatus {
  if (row.revoked_at) return 'revoked';
  if (row.expires_at && row.expires_at.getTime() <= now) return 'expired';
  return 'active';
}

export function toKeyObject(row: ApiKey): KeyObject {
  return {
    id: row.id,
    object: 'api_key',
    name: row.name,
    key_prefix: row.key_prefix,
    status: keyStatus(row),
    rate_limit_per_minute: row.rate_limit_per_minute,
    models: row.models,
    expires_at: row.expires_at?.toISOString() ?? null,
    credit_limit: row.credit_limit,
    credits_used: row.credits_used,
    created_at: row.created_at.toISOString(),
    last_used_at: row.last_used_at?.toISOString() ?? null,
    revoked_at: row.revoked_at?.toISOString() ?? null,
    metadata: row.metadata,
  };
}
