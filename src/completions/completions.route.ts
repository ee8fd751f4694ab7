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
import { setHeaders } from '../rate-limit/rate-limit.interceptor';
import { RateLimiter } from '../rate-limit/rate-limiter';
import { CompletionsService, type Exchange } from './completions.service';

/**
 * The whole of `POST /v1/chat/completions` as one plain async sequence (DESIGN §4's hot path):
 * request id → API key → rate limit → body → admission → service, and every failure answered in
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
   * Rate limit, body and admission. A refusal is counted in `drawbridge_requests_total` here;
   * admitted requests are counted where they end. Unauthenticated ones are not counted at all.
   */
  private async admit(req: AuthedRequest, res: ServerResponse): Promise<Exchange> {
    try {
      const headers = await this.limiter.admit(req.apiKey);
      if (headers) setHeaders(res, headers);
      await readJsonBody(req, this.bodyLimit);
      return this.completions.admit(req, res);
    } catch (err) {
      const status = toGatewayError(err).status === 429 ? 'rate_limited' : 'error';
      this.metrics.refused(await this.requestedModel(req), status);
      throw err;
    }
  }

  /**
   * The model the request named. A request the rate limit refused was never read, so its body is
   * read here (within the body limit; an unreadable one counts as `unknown`).
   */
  private async requestedModel(req: AuthedRequest): Promise<unknown> {
    if (req.body === undefined && !req.readableEnded) {
      try {
        await readJsonBody(req, this.bodyLimit);
      } catch {
        return undefined;
      }
    }
    return (req.body as { model?: unknown } | undefined)?.model;
  }
}
