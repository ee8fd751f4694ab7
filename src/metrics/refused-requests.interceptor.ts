import { CallHandler, ExecutionContext, Inject, Injectable, NestInterceptor } from '@nestjs/common';
import type { Response } from 'express';
import { catchError, type Observable } from 'rxjs';
import { toGatewayError } from '../common/envelope.filter';
import { JsonRequest, readJsonBody } from '../common/json-body';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import { GatewayMetrics } from './gateway-metrics';

/** Set by the completions service once it has counted a request itself. */
export const COUNTED = 'drawbridgeCounted';

/**
 * Counts chat completions refused before they reached the pool (rate limit, bad body, unknown
 * model…) in `drawbridge_requests_total`; admitted ones are counted where they end. Sits first,
 * right after the API-key guard, so only authenticated requests are counted.
 */
@Injectable()
export class RefusedRequestsInterceptor implements NestInterceptor {
  private readonly bodyLimit: number;

  constructor(
    private readonly metrics: GatewayMetrics,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.bodyLimit = config.server.body_limit_bytes;
  }

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const http = context.switchToHttp();
    const req = http.getRequest<JsonRequest>();
    const res = http.getResponse<Response>();
    return next.handle().pipe(
      catchError(async (err: unknown) => {
        if (!res.locals[COUNTED]) {
          const status = toGatewayError(err).status === 429 ? 'rate_limited' : 'error';
          this.metrics.refused(await this.requestedModel(req), status);
        }
        throw err;
      }),
    );
  }

  /**
   * The model the request named. A request the rate limit refused was never read, so its body is
   * read here (within the body limit; an unreadable one counts as `unknown`).
   */
  private async requestedModel(req: JsonRequest): Promise<unknown> {
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
