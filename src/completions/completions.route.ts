import { Inject, Injectable, Logger } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { authenticateBearer } from '../auth/api-key.guard';
import type { AuthedRequest } from '../auth/authed-request';
import { answerError, toGatewayError } from '../common/envelope.filter';
import { readJsonBody } from '../common/json-body';
import { ensureRequestId } from '../common/request-id';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import { KeyAuthenticator } from '../keys/key-authenticator';
import { GatewayMetrics } from '../metrics/gateway-metrics';
import { RateLimiter } from '../rate-limit/rate-limiter';
import { CompletionsService, type Exchange } from './completions.service';

/**
 * The whole of `POST /v1/chat/completions` as one plain async sequence (DESIGN §4's hot path):
 * request id → API key → body → admission → rate limit → service, and every failure answered in
 * the error envelope. The same steps Nest's guard, interceptors and filter run for other routes,
 * without their per-request machinery (RxJS chains, route resolution): CompletionsFastLane hands
 * this route its requests straight from node:http.
 */
@Injectable()
export class CompletionsRoute {
  private readonly logger = new Logger(CompletionsRoute.name);
  private readonly bodyLimit: number;

  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    private readonly authenticator: KeyAuthenticator,
    private readonly limiter: RateLimiter,
    private readonly completions: CompletionsService,
    private readonly metrics: GatewayMetrics,
  ) {
    this.bodyLimit = config.server.body_limit_bytes;
  }

  /** Never rejects: whatever goes wrong is the client's error envelope. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const authed = req as AuthedRequest;
    ensureRequestId(req, res);
    try {
      authed.apiKey = await authenticateBearer(this.authenticator, req.headers);
      await this.completions.serve(await this.admit(authed, res));
    } catch (err) {
      answerError(req, res, err, this.logger);
    }
  }

  /**
   * Body, admission and rate limit. Every authenticated request counts against its key's rate
   * limit, and a full window is answered 429 before any other refusal. The rate limit's round
   * trip overlaps the slot's when the key is well within its limit (RateLimiter.likelyAdmits).
   * A refusal is counted in `drawbridge_requests_total` here; admitted requests where they end.
   */
  private async admit(req: AuthedRequest, res: ServerResponse): Promise<Exchange> {
    let exchange: Exchange;
    try {
      await readJsonBody(req, this.bodyLimit);
      exchange = this.completions.admit(req, res);
    } catch (err) {
      const refusal = await this.limiter.admit(req.apiKey, res).then(() => err, (limited: unknown) => limited);
      // The model the body named, when it could be read and parsed.
      this.countRefusal((req.body as { model?: unknown } | undefined)?.model, refusal);
      throw refusal;
    }
    if (this.limiter.likelyAdmits(req.apiKey)) this.completions.reserve(exchange);
    try {
      await this.limiter.admit(req.apiKey, res);
    } catch (err) {
      this.completions.unreserve(exchange);
      this.countRefusal(exchange.request.model, err);
      throw err;
    }
    return exchange;
  }

  private countRefusal(model: unknown, err: unknown): void {
    this.metrics.refused(model, toGatewayError(err).status === 429 ? 'rate_limited' : 'error');
  }
}
