import type { AuthenticatedKey } from './authenticated-key';

interface Entry {
  key: AuthenticatedKey;
  loadedAt: number;
}

/**
 * Keys by hash, so a valid key costs no database query. Entries older than `ttlMs` are still
 * served while the caller refreshes them in the background; that TTL is also what bounds how
 * stale another replica's change can be when no invalidation message arrives. Unknown hashes
 * are remembered briefly so well-formed made-up keys cannot hammer the database.
 */
export class KeyCache {
  private readonly byHash = new Map<string, Entry>();
  private readonly hashById = new Map<string, string>();
  private readonly unknown = new Map<string, number>();

  constructor(
    private readonly ttlMs = 30_000,
    private readonly unknownTtlMs = 2_000,
    private readonly maxUnknown = 10_000,
  ) {}

  get(hash: string, now = Date.now()): { key: AuthenticatedKey; stale: boolean } | undefined {
    const entry = this.byHash.get(hash);
    return entry && { key: entry.key, stale: now - entry.loadedAt > this.ttlMs };
  }

  set(key: AuthenticatedKey, now = Date.now()): void {
    this.byHash.set(key.keyHash, { key, loadedAt: now });
    this.hashById.set(key.id, key.keyHash);
    this.unknown.delete(key.keyHash);
  }

  isKnownUnknown(hash: string, now = Date.now()): boolean {
    const until = this.unknown.get(hash);
    if (until === undefined) return false;
    if (until > now) return true;
    this.unknown.delete(hash);
    return false;
  }

  rememberUnknown(hash: string, now = Date.now()): void {
    if (this.unknown.size >= this.maxUnknown) this.unknown.clear();
    this.unknown.set(hash, now + this.unknownTtlMs);
  }

  /** Drops a key so its next request reloads it (after a PATCH or DELETE). */
  invalidate(id: string): void {
    const hash = this.hashById.get(id);
    if (hash === undefined) return;
    this.byHash.delete(hash);
    this.hashById.delete(id);
  }

  findById(id: string): AuthenticatedKey | undefined {
    const hash = this.hashById.get(id);
    return hash === undefined ? undefined : this.byHash.get(hash)?.key;
  }
}
