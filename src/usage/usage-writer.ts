import { Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit, Optional } from '@nestjs/common';
import { isDatabaseUnavailable } from '../database/database-errors';
import { KeyAuthenticator } from '../keys/key-authenticator';
import { NewUsageRecord, UsageRepository } from './usage.repository';

export interface UsageWriterOptions {
  /** Rows per INSERT; a full queue is written at once, a partial one on the next tick. */
  batchSize: number;
  /** How often a partial batch is written; keeps usage visible well within 5 s (DESIGN §3.4). */
  flushIntervalMs: number;
  /** Records kept in memory while Postgres is unreachable; past that the oldest are dropped. */
  maxPending: number;
  /** Retry delay after a failed write, doubling up to `maxBackoffMs`. */
  minBackoffMs: number;
  maxBackoffMs: number;
  /** How long shutdown waits for the last records to be written. */
  shutdownTimeoutMs: number;
}

export const USAGE_WRITER_OPTIONS = Symbol('USAGE_WRITER_OPTIONS');

export const DEFAULT_USAGE_WRITER_OPTIONS: UsageWriterOptions = {
  batchSize: 200,
  flushIntervalMs: 500,
  maxPending: 100_000,
  minBackoffMs: 250,
  maxBackoffMs: 5_000,
  shutdownTimeoutMs: 10_000,
};

const LOG_EVERY_MS = 5_000;

/**
 * Usage off the hot path (DESIGN §4, §6.7): `record()` is a synchronous push; batches are written
 * by size or by time, one statement each, and the key's cached `creditsUsed` moves at once so the
 * credit limit needs no database read.
 *
 * Failures:
 * - A write that fails for any reason other than the data itself (Postgres down, a deadlock, a
 *   timeout) keeps its batch and is retried with backoff; nothing is lost or doubled, since the
 *   statement is atomic and `request_id` is unique.
 * - While that lasts the queue is bounded by `maxPending`: beyond it the oldest 1 % of the queue
 *   is dropped at once (cheaper than one shift per record) and the drops are counted in an
 *   error log and in `dropped`.
 * - A batch refused for its data (SQLSTATE class 22 or 23: a bad uuid, an out-of-range number)
 *   is split in halves until the offending rows are alone; those are dropped with an error log
 *   (counted in `rejected`) and every other row is written.
 */
@Injectable()
export class UsageWriter implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(UsageWriter.name);
  private readonly options: UsageWriterOptions;
  private readonly queue: NewUsageRecord[] = [];
  /** Batches already cut and to be written before the queue: a failed batch, or the halves of a refused one. */
  private readonly held: NewUsageRecord[][] = [];
  private inFlight = 0;
  private writing?: Promise<void>;
  private failures = 0;
  private retryAt = 0;
  private lastFailureLog = 0;
  private lastDropLog = 0;
  private droppedSinceLog = 0;
  private timer?: NodeJS.Timeout;
  /** Records dropped because the queue was full. */
  dropped = 0;
  /** Records Postgres refused for their data. */
  rejected = 0;

  constructor(
    private readonly repository: UsageRepository,
    private readonly keys: KeyAuthenticator,
    @Optional() @Inject(USAGE_WRITER_OPTIONS) options?: Partial<UsageWriterOptions>,
  ) {
    this.options = { ...DEFAULT_USAGE_WRITER_OPTIONS, ...options };
  }

  onModuleInit(): void {
    this.timer = setInterval(() => this.tick(), this.options.flushIntervalMs);
    this.timer.unref();
  }

  /**
   * Runs after the HTTP server has closed (no request can record any more) and before the
   * global TypeORM module closes the data source: Nest shuts modules down deepest first.
   */
  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.flush(this.options.shutdownTimeoutMs);
    if (this.droppedSinceLog > 0) this.logDrops(Date.now());
    const left = this.pending();
    if (left > 0) this.logger.error({ records: left }, 'usage records not written at shutdown');
  }

  /** Queues one record; never throws, never waits. The writer owns `record` from here on. */
  record(record: NewUsageRecord): void {
    record.created_at ??= new Date();
    if (record.credits !== 0) this.keys.addCreditsUsed(record.api_key_id, record.credits);
    if (this.queue.length >= this.options.maxPending) this.dropOldest();
    this.queue.push(record);
    if (this.queue.length >= this.options.batchSize && !this.writing && Date.now() >= this.retryAt) void this.drain(false);
  }

  /** Records not yet stored. */
  pending(): number {
    let held = 0;
    for (const batch of this.held) held += batch.length;
    return this.queue.length + held + this.inFlight;
  }

  /**
   * Writes everything queued, waiting out retries, and resolves when nothing is pending or after
   * `timeoutMs` (then `pending()` tells what is left).
   */
  async flush(timeoutMs = Number.POSITIVE_INFINITY): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.pending() > 0 && Date.now() < deadline) {
      const now = Date.now();
      if (this.retryAt > now) await sleep(Math.min(this.retryAt, deadline) - now);
      else await within(this.drain(true), deadline - now);
    }
  }

  private tick(): void {
    if (!this.writing && Date.now() >= this.retryAt && this.pending() > 0) void this.drain(true);
  }

  /** One writer at a time; a caller arriving mid-write waits for that write. */
  private drain(partial: boolean): Promise<void> {
    this.writing ??= this.writeLoop(partial).finally(() => {
      this.writing = undefined;
    });
    return this.writing;
  }

  private async writeLoop(partial: boolean): Promise<void> {
    const minimum = partial ? 1 : this.options.batchSize;
    while (this.held.length > 0 || this.queue.length >= minimum) {
      const batch = this.held.pop() ?? this.queue.splice(0, this.options.batchSize);
      if (!(await this.write(batch))) return;
    }
  }

  /** False when the batch was kept for a later retry. */
  private async write(batch: NewUsageRecord[]): Promise<boolean> {
    this.inFlight = batch.length;
    const failure = await this.repository.recordBatch(batch).then(
      () => undefined,
      (err: unknown) => ({ err }),
    );
    this.inFlight = 0;
    if (failure) {
      if (isRefusedData(failure.err)) {
        this.refused(batch, failure.err);
        return true;
      }
      this.held.push(batch);
      this.retryLater(failure.err);
      return false;
    }
    if (this.failures > 0) {
      this.logger.log({ pending: this.pending() }, 'usage writes resumed');
      if (this.droppedSinceLog > 0) this.logDrops(Date.now());
    }
    this.failures = 0;
    this.retryAt = 0;
    return true;
  }

  private retryLater(err: unknown): void {
    const delay = Math.min(this.options.minBackoffMs * 2 ** Math.min(this.failures, 20), this.options.maxBackoffMs);
    this.failures++;
    const now = Date.now();
    this.retryAt = now + delay;
    if (this.failures > 1 && now - this.lastFailureLog < LOG_EVERY_MS) return;
    this.lastFailureLog = now;
    const detail = { err: (err as Error).message, code: sqlState(err), pending: this.pending(), retryInMs: delay };
    if (isDatabaseUnavailable(err)) this.logger.warn(detail, 'database unavailable; usage kept in memory');
    else this.logger.error(detail, 'usage write failed; will retry');
  }

  private refused(batch: NewUsageRecord[], err: unknown): void {
    if (batch.length > 1) {
      const half = Math.ceil(batch.length / 2);
      // held is a stack: the first half is written first.
      this.held.push(batch.slice(half), batch.slice(0, half));
      return;
    }
    this.rejected++;
    this.logger.error(
      { err: (err as Error).message, code: sqlState(err), request_id: batch[0].request_id },
      'usage record refused by the database; dropped',
    );
  }

  private dropOldest(): void {
    const count = Math.max(1, Math.floor(this.options.maxPending / 100));
    this.queue.splice(0, count);
    this.dropped += count;
    this.droppedSinceLog += count;
    const now = Date.now();
    if (now - this.lastDropLog >= LOG_EVERY_MS) this.logDrops(now);
  }

  private logDrops(now: number): void {
    this.logger.error(
      { dropped: this.droppedSinceLog, droppedTotal: this.dropped, maxPending: this.options.maxPending },
      'usage queue full while the database is unavailable; oldest records dropped',
    );
    this.lastDropLog = now;
    this.droppedSinceLog = 0;
  }
}

function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown; driverError?: { code?: unknown } } | null)?.code ??
    (err as { driverError?: { code?: unknown } } | null)?.driverError?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Data exceptions (22xxx) and integrity violations (23xxx): the rows are at fault, not the database. */
function isRefusedData(err: unknown): boolean {
  const code = sqlState(err);
  return code !== undefined && /^2[23][0-9A-Z]{3}$/.test(code);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(ms, 1)));
}

/** Waits for `work` at most `ms` (which may be infinite), leaving no timer behind. */
async function within(work: Promise<void>, ms: number): Promise<void> {
  if (!Number.isFinite(ms)) return work;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([work, new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(ms, 1))))]);
  } finally {
    clearTimeout(timer);
  }
}
