import { Pool, errors } from 'undici';
import type { Dispatcher } from 'undici';
import type { TimeoutsSection } from '../config/config.schema';
import { UpstreamError, parseRetryAfter } from './upstream-error';

export interface UpstreamResponse {
  status: number;
  headers: Dispatcher.ResponseData['headers'];
  body: Dispatcher.ResponseData['body'];
}

/**
 * One keep-alive undici Pool per account, with the account's per-phase timeouts: connect,
 * first byte (response headers) and idle gap between body chunks. There is no total timeout, so
 * a long stream runs as long as it keeps sending.
 */
export class UpstreamHttp {
  private readonly pool: Pool;
  private readonly basePath: string;

  constructor(baseUrl: string, private readonly timeouts: TimeoutsSection, connections: number) {
    const url = new URL(baseUrl);
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.pool = new Pool(url.origin, {
      connections,
      pipelining: 1,
      connect: { timeout: timeouts.connect_ms },
      headersTimeout: timeouts.first_byte_ms,
      bodyTimeout: timeouts.idle_ms,
    });
  }

  /** POSTs JSON; a non-2xx answer is read and thrown as the UpstreamError `toError` makes of it. */
  async post(
    path: string,
    headers: Record<string, string>,
    body: string,
    signal: AbortSignal,
    toError: (status: number, body: string, retryAfterMs: number | undefined) => UpstreamError,
  ): Promise<UpstreamResponse> {
    let response: Dispatcher.ResponseData;
    try {
      response = await this.pool.request({
        method: 'POST',
        path: this.basePath + path,
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
        body,
        signal,
      });
    } catch (err) {
      throw toUpstreamError(err, false);
    }
    if (response.statusCode >= 200 && response.statusCode < 300) return { status: response.statusCode, headers: response.headers, body: response.body };
    let text = '';
    try {
      text = await response.body.text();
    } catch {
      // The status is what matters; an unreadable error body changes nothing.
    }
    throw toError(response.statusCode, text, parseRetryAfter(response.headers['retry-after']));
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/** Maps undici's and the network's errors onto the pool's failure kinds. */
export function toUpstreamError(err: unknown, afterFirstByte: boolean): UpstreamError {
  if (err instanceof UpstreamError) return err;
  if (afterFirstByte) {
    const idle = err instanceof errors.BodyTimeoutError;
    return new UpstreamError('stream', idle ? 'The upstream stopped sending.' : 'The upstream connection failed mid-response.');
  }
  if (err instanceof errors.ConnectTimeoutError) return new UpstreamError('timeout', 'Connecting to the upstream timed out.');
  if (err instanceof errors.HeadersTimeoutError || err instanceof errors.BodyTimeoutError) {
    return new UpstreamError('timeout', 'The upstream did not answer in time.');
  }
  if (err instanceof Error && err.name === 'AbortError') return new UpstreamError('stream', 'The request was cancelled.');
  return new UpstreamError('connect', 'Could not reach the upstream.');
}

/** The `error.message` of an OpenAI-style error body, cut short; a fallback when there is none. */
export function upstreamMessage(status: number, body: string, fallback: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: { message?: unknown } | string; message?: unknown };
    const message = typeof parsed.error === 'string' ? parsed.error : (parsed.error?.message ?? parsed.message);
    if (typeof message === 'string' && message.length > 0) return message.slice(0, 1000);
  } catch {
    // not JSON
  }
  return `${fallback} (HTTP ${status}).`;
}
