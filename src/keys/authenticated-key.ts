/** What the request path knows about a key: a cached, immutable snapshot of its row. */
export interface AuthenticatedKey {
  id: string;
  keyHash: string;
  /** null → `rate_limit.default_per_minute`. */
  rateLimitPerMinute: number | null;
  /** null → every configured model. */
  models: ReadonlySet<string> | null;
  expiresAtMs: number | null;
  revoked: boolean;
  creditLimit: number | null;
  /** As loaded, plus what this replica has spent since (kept current by the usage writer). */
  creditsUsed: number;
}

export function mayUseModel(key: AuthenticatedKey, model: string): boolean {
  return key.models === null || key.models.has(model);
}
