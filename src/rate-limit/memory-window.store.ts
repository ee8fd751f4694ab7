import type { RateLimitDecision, RateLimitStore } from './rate-limit-store';

export interface MemoryWindowStoreOptions {
  /** Unix ms; `Date.now` by default. Tests inject a settable clock. */
  clock?: () => number;
  /** How often idle buckets are dropped (default 60 s); 0 runs no timer, call `sweep()` yourself. */
  sweepIntervalMs?: number;
}

/** One bucket's admitted timestamps, oldest first, in a ring that grows up to the limit. */
interface Bucket {
  times: Float64Array;
  head: number;
  size: number;
  /** The window of its last hit, so the sweep knows when the bucket is idle. */
  windowMs: number;
}

const INITIAL_CAPACITY = 8;

/**
 * The same exact sliding window as the Redis store, in process, for a single replica. Memory is
 * bounded: a bucket holds at most `limit` timestamps, and buckets whose newest entry has left its
 * window are dropped by a periodic (unref'd) sweep.
 */
export class MemoryWindowStore implements RateLimitStore {
  private readonly buckets = new Map<string, Bucket>();
  private readonly clock: () => number;
  private readonly timer: NodeJS.Timeout | undefined;
  /** Wall clocks may step back; the window only ever moves forward. */
  private lastNow = 0;

  constructor(options: MemoryWindowStoreOptions = {}) {
    this.clock = options.clock ?? Date.now;
    const interval = options.sweepIntervalMs ?? 60_000;
    if (interval > 0) {
      this.timer = setInterval(() => this.sweep(), interval);
      this.timer.unref();
    }
  }

  async hit(name: string, limit: number, windowMs: number): Promise<RateLimitDecision> {
    const now = this.now();
    let bucket = this.buckets.get(name);
    if (bucket !== undefined) {
      prune(bucket, now - windowMs);
      bucket.windowMs = windowMs;
    }
    const count = bucket === undefined ? 0 : bucket.size;
    if (count < limit) {
      if (bucket === undefined) {
        bucket = { times: new Float64Array(Math.min(limit, INITIAL_CAPACITY)), head: 0, size: 0, windowMs };
        this.buckets.set(name, bucket);
      }
      push(bucket, now, limit);
      return { allowed: true, limit, remaining: limit - bucket.size, resetAtMs: bucket.times[bucket.head] + windowMs, nowMs: now };
    }
    if (bucket === undefined || count === 0) return { allowed: false, limit, remaining: 0, resetAtMs: now + windowMs, nowMs: now };
    // After a lowered limit, one more is admitted only once count - limit + 1 entries have left.
    const index = Math.min(count - limit, count - 1);
    const resetAtMs = bucket.times[(bucket.head + index) % bucket.times.length] + windowMs;
    return { allowed: false, limit, remaining: 0, resetAtMs, nowMs: now };
  }

  /** Drops every bucket with nothing left in its window. */
  sweep(): void {
    const now = this.now();
    for (const [name, bucket] of this.buckets) {
      if (bucket.size === 0) {
        this.buckets.delete(name);
        continue;
      }
      const newest = bucket.times[(bucket.head + bucket.size - 1) % bucket.times.length];
      if (newest <= now - bucket.windowMs) this.buckets.delete(name);
    }
  }

  get bucketCount(): number {
    return this.buckets.size;
  }

  close(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
  }

  private now(): number {
    const now = this.clock();
    if (now > this.lastNow) this.lastNow = now;
    return this.lastNow;
  }
}

/** Removes entries at or before `cutoff`, i.e. those that have left the window. */
function prune(bucket: Bucket, cutoff: number): void {
  const { times } = bucket;
  while (bucket.size > 0 && times[bucket.head] <= cutoff) {
    bucket.head = bucket.head + 1 === times.length ? 0 : bucket.head + 1;
    bucket.size--;
  }
}

function push(bucket: Bucket, time: number, limit: number): void {
  if (bucket.size === bucket.times.length) {
    const grown = new Float64Array(Math.max(bucket.size + 1, Math.min(bucket.size * 2, limit)));
    for (let i = 0; i < bucket.size; i++) grown[i] = bucket.times[(bucket.head + i) % bucket.times.length];
    bucket.times = grown;
    bucket.head = 0;
  }
  bucket.times[(bucket.head + bucket.size) % bucket.times.length] = time;
  bucket.size++;
}
