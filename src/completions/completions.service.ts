import { Inject, Injectable, Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { AccountPool, Lease, isNoOtherAccount } from '../account-pool/account-pool.service';
import type { AuthedRequest } from '../auth/authed-request';
import { JSON_CONTENT_TYPE } from '../common/envelope.filter';
import { GatewayError } from '../common/gateway-error';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import type { ModelSection } from '../config/config.schema';
import { DRAINING, DrainState } from '../health/drain-state';
import { mayUseModel } from '../keys/authenticated-key';
import { GatewayMetrics } from '../metrics/gateway-metrics';
import type { ChatCompletionChunk, ChatRequest } from '../providers/openai-types';
import type { ProviderAdapter } from '../providers/provider';
import { ProviderRegistry } from '../providers/provider-registry';
import { UpstreamError } from '../providers/upstream-error';
import { computeCredits } from '../usage/credits';
import { UsageWriter } from '../usage/usage-writer';
import { validateChatRequest } from './chat-request.validator';
import { SseWriter } from './sse-writer';
import { UsageMeter } from './usage-meter';

/** HTTP status recorded for a client that went away (nginx's convention). */
const CLIENT_CLOSED = 499;
const CLIENT_GONE = Symbol('client gone');
const NOT_SERVED = Symbol('not served');
const JSON_HEADERS = { 'Content-Type': JSON_CONTENT_TYPE };

/** One admitted request on its way through the service, and how it ended. */
export interface Exchange {
  req: AuthedRequest;
  res: ServerResponse;
  request: ChatRequest;
  model: ModelSection;
  upstreamBody: ChatRequest;
  /** Aborted when the client goes away (CLIENT_GONE) or the drain deadline passes (DRAINING). */
  cancel: AbortController;
  meter: UsageMeter;
  started: number;
  status: 'success' | 'error' | 'cancelled';
  httpStatus: number;
  errorCode: string | null;
  accountId: string | null;
  ttftMs: number | null;
  /** A slot taken ahead of serving (see `reserve`): the first attempt's. */
  reserved?: Promise<Lease>;
  /** Time spent waiting on others (slot queue, upstream, a slow client): not gateway overhead. */
  waitedMs: number;
}

/**
 * POST /v1/chat/completions: validate, pick an account slot, call its provider, relay the answer
 * (streamed chunk by chunk), and queue one usage record. Retries go to another account, only for
 * retryable failures and only before the client has received a byte (DESIGN §6.3).
 */
@Injectable()
export class CompletionsService {
  private readonly logger = new Logger(CompletionsService.name);
  private readonly models: Map<string, ModelSection>;
  private readonly retries: number;

  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    private readonly pool: AccountPool,
    private readonly providers: ProviderRegistry,
    private readonly usage: UsageWriter,
    private readonly drain: DrainState,
    private readonly metrics: GatewayMetrics,
  ) {
    this.models = new Map(config.models.map((m) => [m.id, m]));
    this.retries = config.pool.retries;
  }

  /**
   * Everything that may refuse a request before it reaches the pool: the body's shape, the model,
   * the key's access and credits, the drain. Throws the refusal; an admitted request is then
   * `serve`d, and counted and recorded when it ends.
   */
  admit(req: AuthedRequest, res: ServerResponse): Exchange {
    const request = validateChatRequest(req.body as Record<string, unknown>);
    const model = this.models.get(request.model);
    if (!model) throw GatewayError.modelNotFound(request.model);
    const key = req.apiKey;
    if (!mayUseModel(key, model.id)) throw GatewayError.modelNotAllowed(model.id);
    if (key.creditLimit !== null && key.creditsUsed >= key.creditLimit) {
      throw new GatewayError(429, 'rate_limit_error', 'insufficient_quota', 'This API key has used up its credit limit.', null, 60);
    }
    if (this.drain.draining) throw GatewayError.draining();
    const cancel = new AbortController();
    return {
      req,
      res,
      request,
      model,
      upstreamBody: { ...request, model: model.upstream_model ?? model.id },
      cancel,
      meter: new UsageMeter(request.messages),
      started: performance.now(),
      status: 'error',
      httpStatus: 500,
      errorCode: 'internal_error',
      accountId: null,
      ttftMs: null,
      waitedMs: 0,
    };
  }

  /**
   * Starts taking the request's slot now, while the caller still waits on something that may yet
   * refuse it (the rate limit's round trip): the two overlap. `unreserve` gives it back.
   */
  reserve(x: Exchange): void {
    x.reserved = this.pool.acquire(x.model.id, { signal: x.cancel.signal });
    x.reserved.catch(ignore); // serve() reports a failure; after unreserve() nobody asks
  }

  /** The request will not be served after all: leave the queue, or give the slot back. */
  unreserve(x: Exchange): void {
    x.cancel.abort(NOT_SERVED);
    x.reserved?.then((lease) => lease.release(), ignore);
  }

  /** Serves an admitted request to its end; rejects with what the client must be told before its first byte. */
  async serve(x: Exchange): Promise<void> {
    const untrack = this.drain.track(x.cancel);
    x.res.once('close', () => {
      if (!x.res.writableFinished) x.cancel.abort(CLIENT_GONE);
    });
    try {
      if (x.request.stream === true) await this.stream(x);
      else await this.complete(x);
    } catch (err) {
      if (x.cancel.signal.aborted) {
        markCancelled(x);
        if (x.cancel.signal.reason === DRAINING) throw GatewayError.draining();
        return;
      }
      const error = toClientError(err);
      Object.assign(x, { status: 'error', httpStatus: error.status, errorCode: error.code });
      // Unexpected errors keep their identity so the envelope filter logs them.
      throw err instanceof GatewayError || err instanceof UpstreamError ? error : err;
    } finally {
      untrack();
      this.record(x);
    }
  }

  private async complete(x: Exchange): Promise<void> {
    let lease: Lease | undefined;
    const completion = await this.withRetries(x, (adapter, held) => {
      lease = held;
      return adapter.complete({ body: x.upstreamBody, signal: x.cancel.signal });
    });
    // The answer goes out first; the slot's bookkeeping (a Redis script) after.
    try {
      completion.model = x.request.model;
      x.meter.observeUsage(completion.usage);
      for (const choice of completion.choices ?? []) {
        x.meter.observeText(choice.message?.content);
        for (const call of choice.message?.tool_calls ?? []) x.meter.observeText(call.function.arguments);
      }
      x.ttftMs = performance.now() - x.started;
      Object.assign(x, { status: 'success', httpStatus: 200, errorCode: null });
      x.res.writeHead(200, JSON_HEADERS).end(JSON.stringify(completion));
    } finally {
      lease?.release();
    }
    this.reportSuccess(x.accountId!);
  }

  private async stream(x: Exchange): Promise<void> {
    const includeUsage = x.request.stream_options?.include_usage === true;
    let lease: Lease | undefined;
    const upstream = await this.withRetries(x, (adapter, held) => {
      lease = held;
      return adapter.stream({ body: x.upstreamBody, signal: x.cancel.signal });
    });
    // From here on the client has its first byte: no retry, failures are reported in-band.
    const sse = new SseWriter(x.res);
    sse.open();
    let usageSent = false;
    let last: ChatCompletionChunk | undefined;
    const chunks = upstream.chunks[Symbol.asyncIterator]();
    try {
      for (;;) {
        const waitStart = performance.now();
        const next = await chunks.next();
        x.waitedMs += performance.now() - waitStart;
        if (next.done) break;
        const chunk = (last = next.value);
        x.meter.observeChunk(chunk);
        if (!forClient(chunk, x.request.model, includeUsage)) continue;
        usageSent ||= chunk.choices.length === 0 && chunk.usage != null;
        x.ttftMs ??= performance.now() - x.started;
        const sendStart = performance.now();
        const sent = await sse.send(JSON.stringify(chunk));
        x.waitedMs += performance.now() - sendStart;
        if (!sent) break;
      }
      if (x.cancel.signal.aborted) throw x.cancel.signal.reason;
      // The client asked for usage and the upstream sent none: give it the estimate we record.
      if (includeUsage && !usageSent && last) await sse.send(JSON.stringify(estimatedUsageChunk(last, x)));
      sse.done();
      this.reportSuccess(x.accountId!);
      Object.assign(x, { status: 'success', httpStatus: 200, errorCode: null });
    } catch (err) {
      if (x.cancel.signal.aborted) {
        markCancelled(x);
        if (x.cancel.signal.reason === DRAINING) sse.fail(GatewayError.draining().toBody());
        return;
      }
      const error = toClientError(err);
      if (err instanceof UpstreamError) this.reportFailure(x.accountId!, err);
      else this.logger.error({ requestId: x.req.id, err: (err as Error).message }, 'stream relay failed');
      // The status line (200) is long gone; the record keeps what the client was told in-band.
      Object.assign(x, { status: 'error', httpStatus: error.status, errorCode: error.code });
      sse.fail(error.toBody());
    } finally {
      // Stopped early (client gone, failure): the upstream body is let go at once.
      chunks.return?.().catch(ignore);
      lease?.release();
    }
  }

  /**
   * Runs `call` on an account's slot, moving to another account on a retryable failure. After a
   * success the slot stays held: the caller releases it once the answer is sent, and reports the
   * success.
   */
  private async withRetries<T>(x: Exchange, call: (adapter: ProviderAdapter, lease: Lease) => Promise<T>): Promise<T> {
    const tried = new Set<string>();
    let lastError: UpstreamError | undefined;
    for (let attempt = 0; attempt <= this.retries; attempt++) {
      let lease: Lease;
      const waitStart = performance.now();
      try {
        lease = await (attempt === 0 && x.reserved ? x.reserved : this.pool.acquire(x.model.id, { signal: x.cancel.signal, exclude: tried }));
      } catch (err) {
        // No other account left to try: the last upstream failure is the answer.
        if (lastError && isNoOtherAccount(err)) throw lastError;
        throw err;
      }
      tried.add(lease.account.id);
      x.accountId = lease.account.id;
      let handedOver = false;
      try {
        const result = await call(this.providers.adapterFor(lease.account.id), lease);
        handedOver = true;
        return result;
      } catch (err) {
        if (!(err instanceof UpstreamError) || x.cancel.signal.aborted) throw err;
        this.reportFailure(lease.account.id, err);
        lastError = err;
        if (!err.retryable) throw err;
      } finally {
        x.waitedMs += performance.now() - waitStart;
        if (!handedOver) lease.release();
      }
    }
    throw lastError!;
  }

  private reportSuccess(accountId: string): void {
    this.pool.reportSuccess(accountId);
    this.metrics.upstreamOutcome(accountId, 'success');
  }

  private reportFailure(accountId: string, err: UpstreamError): void {
    this.pool.reportFailure(accountId, err);
    this.metrics.upstreamOutcome(accountId, err.failure);
  }

  /** The usage record and the metrics of one admitted request; never awaited by the client. */
  private record(x: Exchange): void {
    const tokens = x.meter.result();
    const credits = computeCredits(x.model.credits, tokens.prompt, tokens.completion);
    const durationMs = performance.now() - x.started;
    if (x.accountId) this.pool.addCredits(x.accountId, credits);
    this.usage.record({
      // Our own id: a client's X-Request-Id may repeat, and usage must never be deduplicated away.
      request_id: randomUUID(),
      api_key_id: x.req.apiKey.id,
      model: x.model.id,
      account_id: x.accountId,
      status: x.status,
      http_status: x.httpStatus,
      prompt_tokens: tokens.prompt,
      completion_tokens: tokens.completion,
      total_tokens: tokens.prompt + tokens.completion,
      credits,
      usage_estimated: tokens.estimated,
      stream: x.request.stream === true,
      latency_ms: Math.round(durationMs),
      ttft_ms: x.ttftMs === null ? null : Math.round(x.ttftMs),
      error_code: x.errorCode,
    });
    this.metrics.completed({
      model: x.model.id,
      status: x.status === 'error' && x.httpStatus === 429 ? 'rate_limited' : x.status,
      durationSeconds: durationMs / 1000,
      ttftSeconds: x.ttftMs === null ? null : x.ttftMs / 1000,
      overheadSeconds: Math.max(0, durationMs - x.waitedMs) / 1000,
      promptTokens: tokens.prompt,
      completionTokens: tokens.completion,
      credits,
    });
  }
}

/** Rewrites a chunk for the client; false when the client must not see it (usage it did not ask for). */
function forClient(chunk: ChatCompletionChunk, model: string, includeUsage: boolean): boolean {
  chunk.model = model;
  if (chunk.choices.length === 0 && chunk.usage) return includeUsage;
  // Left out by JSON.stringify; `delete` would turn every chunk into a slow dictionary object.
  if (!includeUsage && 'usage' in chunk) chunk.usage = undefined;
  return true;
}

function estimatedUsageChunk(last: ChatCompletionChunk, x: Exchange): ChatCompletionChunk {
  const { prompt, completion } = x.meter.result();
  return {
    id: last.id,
    object: 'chat.completion.chunk',
    created: last.created,
    model: x.request.model,
    choices: [],
    usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion },
  };
}

function markCancelled(x: Exchange): void {
  const draining = x.cancel.signal.reason === DRAINING;
  Object.assign(x, { status: 'cancelled', httpStatus: draining ? 503 : CLIENT_CLOSED, errorCode: draining ? 'draining' : 'client_closed' });
}

/** What the client sees for a failure before its first byte (or in the stream's error event). */
export function toClientError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  if (err instanceof UpstreamError) {
    if (err.failure === 'client' && err.status) {
      return new GatewayError(err.status, 'invalid_request_error', 'upstream_rejected_request', err.message);
    }
    if (err.failure === 'timeout') return new GatewayError(504, 'upstream_error', 'upstream_timeout', 'The upstream did not answer in time.');
    if (err.failure === 'stream') return new GatewayError(502, 'upstream_error', 'upstream_error', err.message);
    return new GatewayError(502, 'upstream_error', 'upstream_error', 'The upstream failed on every account tried.');
  }
  return new GatewayError(500, 'server_error', 'internal_error', 'Internal server error.');
}

function ignore(): void {}
