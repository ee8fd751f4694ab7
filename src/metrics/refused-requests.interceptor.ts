import { CallHandler, ExecutionContext, Injectable, NestInterceptor } from '@nestjs/common';
import type { Request, Response } from 'express';
import { catchError, type Observable } from 'rxjs';
import { toGatewayError } from '../common/envelope.filter';
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
  constructor(private readonly metrics: GatewayMetrics) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const http = context.switchToHttp();
    const req = http.getRequest<Request>();
    const res = http.getResponse<Response>();
    return next.handle().pipe(
      catchError((err: unknown) => {
        if (!res.locals[COUNTED]) {
          const status = toGatewayError(err).status;
          this.metrics.refused((req.body as { model?: unknown } | undefined)?.model, status === 429 ? 'rate_limited' : 'error');
        }
        throw err;
      }),
    );
  }
}
