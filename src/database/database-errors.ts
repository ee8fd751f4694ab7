import { QueryFailedError } from 'typeorm';

/**
 * True when an error means "Postgres cannot be reached right now" (refused, reset, timed out,
 * shutting down) rather than a bad statement. Only those become 503 `store_unavailable`; a
 * real bug still surfaces as a 500 with a log line.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  const error = err instanceof QueryFailedError ? (err.driverError as unknown) : err;
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (/^(ECONN|ETIMEDOUT|EPIPE|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH)/.test(code)) return true;
    // SQLSTATE 08xxx connection exceptions, 57P0x shutdown/cannot-connect, 53300 too many connections.
    if (/^(08|57P0)/.test(code) || code === '53300') return true;
  }
  return /timeout|terminated|Connection terminated|not queryable|ECONNREFUSED/i.test(error.message);
}
