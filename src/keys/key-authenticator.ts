import { Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { GatewayError } from '../common/gateway-error';
import { isDatabaseUnavailable } from '../database/database-errors';
import { ApiKey } from './api-key.entity';
import type { AuthenticatedKey } from './authenticated-key';
import { KeyCache } from './key-cache';
import { hashApiKey, isWellFormedApiKey } from './key-format';
import { KeysRepository } from './keys.repository';

const LAST_USED_FLUSH_MS = 10_000;

/**
 * The hot-path half of the keys module: secret → key, in memory when possible. `last_used_at`
 * is collected here and written in one batched statement every few seconds, never per request.
 */
@Injectable()
export class KeyAuthenticator implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(KeyAuthenticator.name);
  readonly cache = new KeyCache();
  private readonly refreshing = new Set<string>();
  /** Key id → last use (unix ms), written in one batch every few seconds. */
  private lastUsed = new Map<string, number>();
  private timer?: NodeJS.Timeout;

  constructor(private readonly repository: KeysRepository) {}

  onModuleInit(): void {
    this.timer = setInterval(() => void this.flushLastUsed(), LAST_USED_FLUSH_MS);
    this.timer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.flushLastUsed();
  }

  /** Resolves the secret to an active key or throws the matching 401 (or 503 if it cannot tell). */
  async authenticate(secret: string, now = Date.now()): Promise<AuthenticatedKey> {
    if (!isWellFormedApiKey(secret)) throw GatewayError.invalidApiKey();
    const hash = hashApiKey(secret);
    const key = await this.lookup(hash, now);
    if (!key || key.revoked || (key.expiresAtMs !== null && key.expiresAtMs <= now)) throw GatewayError.invalidApiKey();
    this.lastUsed.set(key.id, now);
    return key;
  }

  /**
   * Counts credits this replica just spent on the cached key, before the usage writer stores
   * them, so the credit limit holds without a database read. A reload from the row replaces it.
   */
  addCreditsUsed(id: string, credits: number): void {
    const key = this.cache.findById(id);
    // Micro-credit rounding, as in the numeric column, so repeated float additions do not drift.
    if (key) key.creditsUsed = Math.round((key.creditsUsed + credits) * 1e6) / 1e6;
  }

  /** Forgets a key on this replica so its next request sees the change. */
  invalidate(id: string): void {
    this.cache.invalidate(id);
  }

  private async lookup(hash: string, now: number): Promise<AuthenticatedKey | undefined> {
    const cached = this.cache.get(hash, now);
    if (cached) {
      if (cached.stale) void this.refresh(hash);
      return cached.key;
    }
    if (this.cache.isKnownUnknown(hash, now)) return undefined;
    let row: ApiKey | null;
    try {
      row = await this.repository.findByHash(hash);
    } catch (err) {
      if (isDatabaseUnavailable(err)) throw GatewayError.storeUnavailable('The key store');
      throw err;
    }
    if (!row) {
      this.cache.rememberUnknown(hash, now);
      return undefined;
    }
    const key = toAuthenticatedKey(row);
    this.cache.set(key, now);
    return key;
  }

  private async refresh(hash: string): Promise<void> {
    if (this.refreshing.has(hash)) return;
    this.refreshing.add(hash);
    try {
      const row = await this.repository.findByHash(hash);
      if (row) this.cache.set(toAuthenticatedKey(row));
    } catch {
      // Postgres is down: keep serving what we have (DESIGN §6.6) and try again on a later request.
    } finally {
      this.refreshing.delete(hash);
    }
  }

  private async flushLastUsed(): Promise<void> {
    if (this.lastUsed.size === 0) return;
    const batch = this.lastUsed;
    this.lastUsed = new Map();
    try {
      await this.repository.touchLastUsed(batch);
    } catch (err) {
      // Put the batch back (newer times win) so it is written once Postgres returns.
      for (const [id, at] of batch) if (!this.lastUsed.has(id)) this.lastUsed.set(id, at);
      this.logger.warn({ err: (err as Error).message }, 'could not record last_used_at; will retry');
    }
  }
}

export function toAuthenticatedKey(row: ApiKey): AuthenticatedKey {
  return {
    id: row.id,
    keyHash: row.key_hash,
    rateLimitPerMinute: row.rate_limit_per_minute,
    models: row.models ? new Set(row.models) : null,
    expiresAtMs: row.expires_at ? row.expires_at.getTime() : null,
    revoked: row.revoked_at !== null,
    creditLimit: row.credit_limit,
    creditsUsed: row.credits_used,
  };
}
