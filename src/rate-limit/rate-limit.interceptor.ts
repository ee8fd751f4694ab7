import { CallHandler, ExecutionContext, Injectable, NestInterceptor } from '@nestjs/common';
import type { ServerResponse } from 'node:http';
import { from, switchMap, type Observable } from 'rxjs';
import type { AuthedRequest } from '../auth/authed-request';
import { RateLimiter } from './rate-limiter';

/**
 * The rate limit on the Nest-routed /v1 endpoints (`/v1/models`). Chat completions run the same
 * RateLimiter from their own route (see CompletionsRoute).
 */
@Injectable()
export class RateLimitInterceptor implements NestInterceptor {
  constructor(private readonly limiter: RateLimiter) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const http = context.switchToHttp();
    const req = http.getRequest<AuthedRequest>();
    const res = http.getResponse<ServerResponse>();
    return from(this.limiter.admit(req.apiKey, res)).pipe(switchMap(() => next.handle()));
  }
}
