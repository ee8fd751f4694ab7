export type MaybePromise<T> = T | Promise<T>;

/** What a ledger hands out for one taken slot; given back to `release`. */
export type SlotToken = string | number;

/**
 * Counts the busy concurrency slots of every account. The in-process ledger answers at once; a
 * shared (Redis) ledger may answer `tryAcquire` and `release` with promises.
 *
 * `busy` is synchronous on purpose: selection compares every candidate account on each acquire
 * and must stay a few map lookups. A shared ledger answers it from what it last learnt and keeps
 * `tryAcquire` as the atomic authority, so a stale count can only cost a lost race, never an
 * extra slot.
 */
export interface SlotLedger {
  /** Slots of the account held now (as last known, for a shared ledger). */
  busy(accountId: string): number;
  /** Takes one slot atomically if fewer than `max` are busy; null when full. */
  tryAcquire(accountId: string, max: number): MaybePromise<SlotToken | null>;
  /** Gives one slot back. Each token is released once: the pool's leases guarantee it. */
  release(accountId: string, token: SlotToken): MaybePromise<void>;
  /**
   * Shared ledgers only: whether this replica now has queued requests that could use the account
   * (called on the first and after the last), so other replicas cannot keep overtaking them.
   */
  setWaiting?(accountId: string, waiting: boolean): void;
}

/** Injection token of the ledger the pool uses; the memory ledger unless a module overrides it. */
export const SLOT_LEDGER = Symbol('SLOT_LEDGER');

/** Single-process ledger: one counter per account. */
export class MemorySlotLedger implements SlotLedger {
  private readonly counts = new Map<string, number>();

  busy(accountId: string): number {
    return this.counts.get(accountId) ?? 0;
  }

  tryAcquire(accountId: string, max: number): SlotToken | null {
    const busy = this.counts.get(accountId) ?? 0;
    if (busy >= max) return null;
    this.counts.set(accountId, busy + 1);
    return 1;
  }

  release(accountId: string): void {
    const busy = this.counts.get(accountId) ?? 0;
    // Never below zero: a double release would otherwise hand out an extra slot later.
    if (busy > 0) this.counts.set(accountId, busy - 1);
  }
}

export function isPromiseLike<T>(value: MaybePromise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}
