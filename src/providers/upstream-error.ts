/**
 * Why an upstream call failed, in the terms the pool acts on (DESIGN §6.3–6.4):
 * - `connect`, `timeout` (connect or first byte), `server` (5xx, 529), `rate_limited` (429) are
 *   retryable on another account before the client has received a byte;
 * - `auth` (401/403) marks the account unhealthy; the gateway's fault, so the next account is
 *   tried (the client sees its answer, or 502);
 * - `client` (400, 404, 413, 422) is the client's fault and passes through with its status;
 * - `stream` is a failure after the first chunk (idle timeout, cut connection, error event).
 */
export type UpstreamFailure = 'connect' | 'timeout' | 'server' | 'rate_limited' | 'auth' | 'client' | 'stream';

export class UpstreamError extends Error {
  constructor(
    readonly failure: UpstreamFailure,
    message: string,
    /** The upstream's HTTP status, when it answered with one. */
    readonly status?: number,
    /** From the upstream's Retry-After (seconds or HTTP date), for 429 cooldowns. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'UpstreamError';
  }

  get retryable(): boolean {
    return this.failure !== 'client' && this.failure !== 'stream';
  }
}

/** Maps an upstream HTTP status to how the pool treats it. */
export function failureForStatus(status: number): UpstreamFailure {
  if (status === 429) return 'rate_limited';
  if (status === 401 || status === 403) return 'auth';
  if (status >= 500) return 'server';
  return 'client';
}

/** Parses Retry-After as seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (!text) return undefined;
  if (/^\s*\d+(\.\d+)?\s*$/.test(text)) return Math.max(0, Number(text) * 1000);
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
